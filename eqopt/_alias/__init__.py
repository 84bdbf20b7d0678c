"""Popular optimisers, one family a file; re-exports only."""

from .adam import Adam as Adam, adam as adam, AdamW as AdamW, adamw as adamw
from .base import AbstractOptimiser as AbstractOptimiser, LearningRate as LearningRate
from .sgd import RMSProp as RMSProp, rmsprop as rmsprop, SGD as SGD, sgd as sgd

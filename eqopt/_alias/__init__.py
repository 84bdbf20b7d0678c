"""Popular optimisers, one family a file; re-exports only."""

from .accumulators import (
    Adadelta as Adadelta,
    adadelta as adadelta,
    Adagrad as Adagrad,
    adagrad as adagrad,
    Adan as Adan,
    adan as adan,
    Novograd as Novograd,
    novograd as novograd,
    SM3 as SM3,
    sm3 as sm3,
)
from .adam import Adam as Adam, adam as adam, AdamW as AdamW, adamw as adamw
from .base import AbstractOptimiser as AbstractOptimiser, LearningRate as LearningRate
from .factored import Adafactor as Adafactor, adafactor as adafactor
from .sgd import RMSProp as RMSProp, rmsprop as rmsprop, SGD as SGD, sgd as sgd

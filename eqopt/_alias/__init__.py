"""Popular optimisers, one family a file; re-exports only."""

from .adam import Adam as Adam, adam as adam, AdamW as AdamW, adamw as adamw
from .base import AbstractOptimiser as AbstractOptimiser, LearningRate as LearningRate
from .sgd import RMSProp as RMSProp, rmsprop as rmsprop, SGD as SGD, sgd as sgd
from .sign import (
    Lion as Lion,
    lion as lion,
    Rprop as Rprop,
    rprop as rprop,
    sign_sgd as sign_sgd,
    SignSGD as SignSGD,
    Signum as Signum,
    signum as signum,
)
from .trust_ratio import (
    Fromage as Fromage,
    fromage as fromage,
    LAMB as LAMB,
    lamb as lamb,
    LARS as LARS,
    lars as lars,
)

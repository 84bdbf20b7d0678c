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
from .adam import (
    Adam as Adam,
    adam as adam,
    AdamW as AdamW,
    adamw as adamw,
    nadam as nadam,
    nadamw as nadamw,
)
from .adam_variants import (
    AdaBelief as AdaBelief,
    adabelief as adabelief,
    Adamax as Adamax,
    adamax as adamax,
    AdamaxW as AdamaxW,
    adamaxw as adamaxw,
    AMSGrad as AMSGrad,
    amsgrad as amsgrad,
    RAdam as RAdam,
    radam as radam,
    Yogi as Yogi,
    yogi as yogi,
)
from .base import (
    AbstractOptimiser as AbstractOptimiser,
    LearningRate as LearningRate,
)
from .factored import (
    Adafactor as Adafactor,
    adafactor as adafactor,
)
from .misc import (
    noisy_sgd as noisy_sgd,
    NoisySGD as NoisySGD,
    optimistic_adam as optimistic_adam,
    optimistic_adam_v2 as optimistic_adam_v2,
    optimistic_gradient_descent as optimistic_gradient_descent,
    OptimisticAdam as OptimisticAdam,
    OptimisticAdamV2 as OptimisticAdamV2,
    OptimisticGradientDescent as OptimisticGradientDescent,
)
from .polyak import (
    polyak_sgd as polyak_sgd,
    PolyakSGD as PolyakSGD,
)
from .sgd import (
    RMSProp as RMSProp,
    rmsprop as rmsprop,
    SGD as SGD,
    sgd as sgd,
)
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

"""Adam and AdamW."""

from collections.abc import Callable
from typing import no_type_check

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._transforms.adaptive import ScaleByAdam
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .base import AbstractOptimiser, LearningRate


_ADAM_RANGES = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE, eps_root=NONNEGATIVE)


@no_type_check
def _scale_by_adam(opt: "Adam | AdamW") -> ScaleByAdam:
    return ScaleByAdam(
        opt.b1, opt.b2, opt.eps, opt.eps_root, opt.mu_dtype, nesterov=opt.nesterov
    )


class Adam(AbstractOptimiser):
    r"""Adam: Adam's moment scaling followed by the learning rate.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)$, with the
    moments of [`eqopt.ScaleByAdam`][].

    Optax: `optax.adam`. Built as `chain(scale_by_adam(...),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`: as in
        [`eqopt.ScaleByAdam`][].

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adam", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        return Chain((_scale_by_adam(self), ScaleByLearningRate(self.learning_rate)))


class AdamW(AbstractOptimiser):
    r"""AdamW: Adam with decoupled weight decay.

    $u_t = -\eta_t \left(\hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)
    + \lambda\, \theta_t\right)$.

    The weight decay is multiplied by the learning rate, as in PyTorch and Optax.

    Optax: `optax.adamw`. Built as `chain(scale_by_adam(...),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`: as in
        [`eqopt.ScaleByAdam`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-4)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adamw", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        return Chain(
            (
                _scale_by_adam(self),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


adam = Adam
adamw = AdamW

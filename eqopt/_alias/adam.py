"""Adam and AdamW, and NAdam and NAdamW (the same Modules with Nesterov momentum)."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import ScalarLike
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
        opt.b1,
        opt.b2,
        opt.eps,
        opt.eps_root,
        opt.mu_dtype,
        nesterov=opt.nesterov,
        nu_dtype=opt.nu_dtype,
    )


class Adam(AbstractOptimiser):
    r"""Adam: Adam's moment scaling followed by the learning rate.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)$, with the
    moments of [`eqopt.ScaleByAdam`][].

    Optax: `optax.adam`. Built as `chain(scale_by_adam(...),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`, `nu_dtype`: as in
        [`eqopt.ScaleByAdam`][] (`nu_dtype`, keyword-only, is not in Optax).

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
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

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
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`, `nu_dtype`: as in
        [`eqopt.ScaleByAdam`][] (`nu_dtype`, keyword-only, is not in Optax).
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
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

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


def nadam(
    learning_rate: ScalarLike | AbstractSchedule | Callable,
    b1: ScalarLike = 0.9,
    b2: ScalarLike = 0.999,
    eps: ScalarLike = 1e-8,
    eps_root: ScalarLike = 0.0,
    mu_dtype: DTypeLike | None = None,
    *,
    nesterov: bool = True,
    nu_dtype: DTypeLike | None = None,
) -> Adam:
    r"""NAdam: [`eqopt.Adam`][] with Nesterov momentum.

    $\hat m_t = \beta_1 m_t / (1 - \beta_1^{t+1}) + (1 - \beta_1)\, g_t / (1 - \beta_1^t)$
    replaces Adam's $m_t / (1 - \beta_1^t)$; the rest is Adam.

    Optax: `optax.nadam` (`functools.partial(optax.adam, nesterov=True)`), with the same
    signature; returns an `Adam` Module with `nesterov=True`. `nu_dtype` (keyword-only)
    is not in Optax: see [`eqopt.ScaleByAdam`][].

    **Arguments:** as [`eqopt.Adam`][], with `nesterov=True` by default.

    ??? cite "References"

        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """
    return Adam(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
    )


def nadamw(
    learning_rate: ScalarLike | AbstractSchedule | Callable,
    b1: ScalarLike = 0.9,
    b2: ScalarLike = 0.999,
    eps: ScalarLike = 1e-8,
    eps_root: ScalarLike = 0.0,
    mu_dtype: DTypeLike | None = None,
    weight_decay: ScalarLike | AbstractSchedule | Callable = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: DTypeLike | None = None,
) -> AdamW:
    r"""NAdamW: [`eqopt.AdamW`][] with Nesterov momentum (NAdam's first moment, as in
    [`eqopt.nadam`][], and decoupled weight decay).

    Optax: `optax.nadamw` (`functools.partial(optax.adamw, nesterov=True)`), with the
    same signature; returns an `AdamW` Module with `nesterov=True`. `nu_dtype`
    (keyword-only) is not in Optax: see [`eqopt.ScaleByAdam`][].

    **Arguments:** as [`eqopt.AdamW`][], with `nesterov=True` by default.

    ??? cite "References"

        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    return AdamW(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        mask,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
    )

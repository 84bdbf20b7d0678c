"""Adagrad, SM3, Adadelta, Adan and NovoGrad."""

from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, Float

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT, UNIT_CLOSED
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_optional_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._transforms.accumulators import (
    ScaleByAdaDelta,
    ScaleByAdan,
    ScaleByNovograd,
    ScaleByRSS,
    ScaleBySM3,
)
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import Scale, ScaleByLearningRate
from .base import AbstractOptimiser, LearningRate


class Adagrad(AbstractOptimiser):
    r"""Adagrad: the learning rate divided by the root of the sum of squared gradients.

    $u_t = -\eta_t\, g_t / \sqrt{s_t + \varepsilon}$, $s_t = s_0 + \sum_{k \le t} |g_k|^2$,
    as in [`eqopt.ScaleByRSS`][].

    Optax: `optax.adagrad`. Built as `chain(scale_by_rss(initial_accumulator_value,
    eps), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `initial_accumulator_value`, `eps`: as in [`eqopt.ScaleByRSS`][].

    ??? cite "References"

        Duchi et al., *Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization*, JMLR 2011.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    initial_accumulator_value: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.1
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-7)

    def __check_init__(self):
        check_hyperparameters(
            "adagrad", self, initial_accumulator_value=NONNEGATIVE, eps=NONNEGATIVE
        )

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByRSS(self.initial_accumulator_value, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class SM3(AbstractOptimiser):
    r"""SM3: memory-efficient Adagrad with per-axis accumulators, and momentum.

    $u_t = -\eta\, m_t$, with $m_t$ of [`eqopt.ScaleBySM3`][] (`b1=momentum`).

    Optax: `optax.sm3`. Built as `chain(scale_by_sm3(momentum), scale(-learning_rate))`:
    the learning rate is a number, not a schedule, as in Optax.

    **Arguments:**

    - `learning_rate`: $\eta$.
    - `momentum`: the decay $\beta_1$ of the momentum, in $[0, 1]$.

    ??? cite "References"

        Anil et al., *Memory-Efficient Adaptive Optimization*, NeurIPS 2019.
    """

    learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    momentum: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)

    def __check_init__(self):
        check_hyperparameters("sm3", self, momentum=UNIT_CLOSED)

    def as_chain(self) -> Chain:
        return Chain((ScaleBySM3(self.momentum), Scale(-self.learning_rate)))


class Adadelta(AbstractOptimiser):
    r"""Adadelta: Adagrad's successor with running averages of squared gradients and
    updates, and optional weight decay.

    $u_t = -\eta_t\, \Delta_t$, with $\Delta_t$ the update of [`eqopt.ScaleByAdaDelta`][]
    for the gradient plus $\lambda\,\theta_t$.

    Optax: `optax.adadelta`. Built as `chain(add_decayed_weights(weight_decay,
    weight_decay_mask), scale_by_adadelta(rho, eps),
    scale_by_learning_rate(learning_rate))`; with `learning_rate=None` the updates are
    Adadelta's own, not negated (as in Optax).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array, a schedule or `None`.
    - `rho`, `eps`: as in [`eqopt.ScaleByAdaDelta`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `weight_decay_mask`: which parameters to decay, as in
        [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """

    learning_rate: Float[Array, ""] | AbstractSchedule | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    rho: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    weight_decay_mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters("adadelta", self, rho=UNIT_CLOSED, eps=NONNEGATIVE)

    def as_chain(self) -> Chain:
        return Chain(
            (
                AddDecayedWeights(self.weight_decay, self.weight_decay_mask),
                ScaleByAdaDelta(self.rho, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class Adan(AbstractOptimiser):
    r"""Adan: adaptive Nesterov momentum, with decoupled weight decay.

    $u_t = -\eta_t \left(d_t + \lambda\,\theta_t\right)$, with $d_t$ the direction of
    [`eqopt.ScaleByAdan`][].

    Optax: `optax.adan`. Built as `chain(scale_by_adan(b1, b2, b3, eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `b3`, `eps`, `eps_root`: as in [`eqopt.ScaleByAdan`][] (note
        `eps_root=1e-8` here, as in Optax).
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
        Deep Models*, IEEE TPAMI 2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.98)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.92)
    b3: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "adan",
            self,
            b1=UNIT,
            b2=UNIT,
            b3=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByAdan(self.b1, self.b2, self.b3, self.eps, self.eps_root),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class Novograd(AbstractOptimiser):
    r"""NovoGrad: momentum on gradients normalised by layer-wise second moments.

    $u_t = -\eta_t\, m_t$, with $m_t$ of [`eqopt.ScaleByNovograd`][].

    Optax: `optax.novograd`. Built as `chain(scale_by_novograd(b1, b2, eps, eps_root,
    weight_decay), scale_by_learning_rate(learning_rate))`. The weight decay is a
    number (Optax's type says schedule, but its transformation takes only a number).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `weight_decay`: as in [`eqopt.ScaleByNovograd`][].

    ??? cite "References"

        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments
        for Training of Deep Networks*, 2019.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.25)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        check_hyperparameters(
            "novograd",
            self,
            b1=UNIT_CLOSED,
            b2=UNIT_CLOSED,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByNovograd(
                    self.b1, self.b2, self.eps, self.eps_root, self.weight_decay
                ),
                ScaleByLearningRate(self.learning_rate),
            )
        )


adagrad = Adagrad
sm3 = SM3
adadelta = Adadelta
adan = Adan
novograd = Novograd

"""Sign-based optimisers: Lion, signSGD, Signum and Rprop."""

from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._checks import check_hyperparameters, UNIT, UNIT_CLOSED
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import Scale, ScaleByLearningRate
from .._transforms.sign import (
    check_rprop_ranges,
    ScaleByLion,
    ScaleByRprop,
    ScaleBySign,
)
from .base import AbstractOptimiser, LearningRate


class Lion(AbstractOptimiser):
    r"""Lion: the sign of an interpolated momentum, with decoupled weight decay.

    $u_t = -\eta_t \left(\operatorname{sign}\big((1 - \beta_1) g_t + \beta_1
    m_{t-1}\big) + \lambda\, \theta_t\right)$, $m_t = (1 - \beta_2) g_t + \beta_2
    m_{t-1}$ (see [`eqopt.ScaleByLion`][]).

    Its updates have a larger norm than Adam's: a learning rate 3-10x smaller and a
    weight decay 3-10x larger than AdamW's are typical.

    Optax: `optax.lion`. Built as `chain(scale_by_lion(b1, b2, mu_dtype),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `mu_dtype`: as in [`eqopt.ScaleByLion`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-3)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters("lion", self, b1=UNIT_CLOSED, b2=UNIT)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByLion(self.b1, self.b2, self.mu_dtype),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class SignSGD(AbstractOptimiser):
    r"""signSGD: $u_t = -\eta_t \operatorname{sign}(g_t)$.

    Optax: `optax.sign_sgd`. Built as `chain(scale_by_sign(),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.

    ??? cite "References"

        Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex Problems*,
        ICML 2018.
        Balles et al., *The Geometry of Sign Gradient Descent*, 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)

    def as_chain(self) -> Chain:
        return Chain((ScaleBySign(), ScaleByLearningRate(self.learning_rate)))


class Signum(AbstractOptimiser):
    r"""Signum: the sign of an exponential moving average of the gradients.

    $m_t = \beta m_{t-1} + (1 - \beta)\, g_t$, $u_t = -\eta_t \operatorname{sign}(m_t)$.

    Optax: `optax.signum`, built there as `chain(ema(beta, debias=False,
    accumulator_dtype), scale_by_sign(), scale_by_learning_rate(learning_rate))`.
    Here the first two are one [`eqopt.ScaleByLion`][] with $\beta_1 = \beta_2 =
    \beta$ (Lion's update is then the sign of its new momentum): the same numbers, but
    the state is `(ScaleByLionState(count, mu), <learning-rate state>)` where Optax's
    is `(EmaState(count, ema), EmptyState(), <learning-rate state>)`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `beta`: $\beta$, the decay of the moving average, in $[0, 1)$.
    - `accumulator_dtype`: dtype of the moving average; `None` uses the parameter's.

    ??? cite "References"

        Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex Problems*,
        ICML 2018.
        Zhao et al., *Deconstructing What Makes a Good Optimizer for Language Models*,
        2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters("signum", self, beta=UNIT)

    def as_chain(self) -> Chain:
        moving_sign = ScaleByLion(self.beta, self.beta, self.accumulator_dtype)
        return Chain((moving_sign, ScaleByLearningRate(self.learning_rate)))


class Rprop(AbstractOptimiser):
    r"""Rprop (resilient backpropagation): per-element step sizes that grow while the
    gradient keeps its sign and shrink when it flips.

    The negated steps of [`eqopt.ScaleByRprop`][] (including Optax 0.2.8's one-step
    delay: the first update is zero).

    Optax: `optax.rprop`. Built as `chain(scale_by_rprop(...), scale(-1.0))`.

    **Arguments:**

    - `learning_rate`, `eta_minus`, `eta_plus`, `min_step_size`, `max_step_size`: as
        in [`eqopt.ScaleByRprop`][].

    ??? cite "References"

        Riedmiller and Braun, *A Direct Adaptive Method for Faster Backpropagation
        Learning: The RPROP Algorithm*, ICNN 1993.
        Igel and Hüsken, *Empirical evaluation of the improved Rprop learning
        algorithms*, Neurocomputing 2003.
    """

    learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    eta_minus: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.5)
    eta_plus: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.2)
    min_step_size: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    max_step_size: Float[Array, ""] = eqx.field(converter=as_scalar, default=50.0)

    def __check_init__(self):
        check_rprop_ranges("rprop", self)

    def as_chain(self) -> Chain:
        rprop = ScaleByRprop(
            self.learning_rate,
            self.eta_minus,
            self.eta_plus,
            self.min_step_size,
            self.max_step_size,
        )
        return Chain((rprop, Scale(-1.0)))


lion = Lion
sign_sgd = SignSGD
signum = Signum
rprop = Rprop

"""Layer-wise trust-ratio optimisers: LAMB, LARS and Fromage."""

from collections.abc import Callable
from typing import Any, Literal, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from .._base import AbstractSchedule, EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._transforms.adaptive import ScaleByAdam
from .._transforms.decay import AddDecayedWeights
from .._transforms.momentum import Trace
from .._transforms.scaling import ScaleByLearningRate
from .._transforms.trust_ratio import scale_by_trust_ratio_where, ScaleByTrustRatio
from .base import AbstractOptimiser, LearningRate


class LAMB(AbstractOptimiser):
    r"""LAMB: Adam's update with decoupled weight decay, rescaled per layer by the
    trust ratio.

    $u_t = -\eta_t\, \frac{\|\theta_t\|}{\|r_t\|}\, r_t$ with
    $r_t = \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon) + \lambda\,
    \theta_t$, per parameter leaf.

    Optax: `optax.lamb`. Built as `chain(scale_by_adam(b1, b2, eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_trust_ratio(),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`: as in [`eqopt.ScaleByAdam`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76
        minutes*, ICLR 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "lamb", self, b1=UNIT, b2=UNIT, eps=NONNEGATIVE, eps_root=NONNEGATIVE
        )

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByAdam(self.b1, self.b2, self.eps, self.eps_root),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByTrustRatio(),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class _MaskedTrustRatio(GradientTransformation):
    """`ScaleByTrustRatio` applied only where `mask` is true (Optax's
    `masked(scale_by_trust_ratio(...), mask)` inside `lars`)."""

    inner: ScaleByTrustRatio
    mask: FrozenMask | Callable | None = eqx.field(static=True, converter=freeze_mask)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return scale_by_trust_ratio_where(self.inner, updates, params, self.mask), state


class LARS(AbstractOptimiser):
    r"""LARS: SGD with momentum whose step is rescaled per layer by the trust ratio.

    $r_t = c\, \frac{\|\theta_t\|}{\|d_t\| + \varepsilon}\, d_t$ with
    $d_t = g_t + \lambda\, \theta_t$, then momentum on $-\eta_t r_t$ (see
    [`eqopt.ScaleByTrustRatio`][] and [`eqopt.Trace`][]).

    Optax: `optax.lars`. Built as `chain(add_decayed_weights(weight_decay,
    weight_decay_mask), masked(scale_by_trust_ratio(trust_coefficient=...,
    eps=...), trust_ratio_mask), scale_by_learning_rate(learning_rate),
    trace(momentum, nesterov))`. The masked trust ratio's state is `EmptyState`
    (Optax's is `MaskedState(inner_state=EmptyState())`).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `weight_decay_mask`: which parameters to decay (a pytree of bools, a prefix of
        one such as `True`, or a function of the parameters returning one).
    - `trust_coefficient`: $c$.
    - `eps`: $\varepsilon \ge 0$.
    - `trust_ratio_mask`: which parameters get the trust ratio, as `weight_decay_mask`.
    - `momentum`: the momentum coefficient.
    - `nesterov`: whether the momentum is Nesterov's.

    ??? cite "References"

        You et al., *Large Batch Training of Convolutional Networks*, 2017.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    weight_decay_mask: FrozenMask | Callable = eqx.field(
        static=True, converter=freeze_mask, default=True
    )
    trust_coefficient: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.001)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    trust_ratio_mask: FrozenMask | Callable = eqx.field(
        static=True, converter=freeze_mask, default=True
    )
    momentum: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    nesterov: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters("lars", self, eps=NONNEGATIVE, momentum=NONNEGATIVE)

    def as_chain(self) -> Chain:
        trust_ratio = ScaleByTrustRatio(
            trust_coefficient=self.trust_coefficient, eps=self.eps
        )
        return Chain(
            (
                AddDecayedWeights(self.weight_decay, self.weight_decay_mask),
                _MaskedTrustRatio(trust_ratio, self.trust_ratio_mask),
                ScaleByLearningRate(self.learning_rate),
                Trace(self.momentum, self.nesterov),
            )
        )


@no_type_check
def _fromage_factors(learning_rate: Array) -> tuple[Array, Array]:
    r"""$\eta / \sqrt{1 + \eta^2}$ and $1 / \sqrt{1 + \eta^2} - 1$.

    The second is written $-\eta^2 / (\sqrt{1 + \eta^2}\,(1 + \sqrt{1 + \eta^2}))$, which
    does not cancel in float32 for small $\eta$.
    """
    root = jnp.sqrt(1 + learning_rate**2)
    return learning_rate / root, -(learning_rate**2) / (root * (1 + root))


class _FromageSchedule(AbstractSchedule):
    """One of Fromage's two factors (`"step"` or `"decay"`) of a scheduled learning
    rate, at each step."""

    learning_rate: AbstractSchedule
    factor: Literal["step", "decay"] = eqx.field(static=True)

    def __call__(self, count: Real[ArrayLike, "*batch"]) -> Float[Array, "*batch"]:
        step, decay = _fromage_factors(self.learning_rate(count))
        return step if self.factor == "step" else decay


class Fromage(AbstractOptimiser):
    r"""Fromage (Frobenius matched gradient descent): a trust-ratio step followed by a
    shrinkage of the parameters.

    $$
    \theta_{t+1} = \frac{1}{\sqrt{1 + \eta_t^2}} \left(\theta_t - \eta_t\,
        \frac{\|\theta_t\|}{\|g_t\|}\, g_t\right),
    $$

    per parameter leaf, with the norms bounded below by `min_norm`.

    Optax: `optax.fromage`. Built as `chain(scale_by_trust_ratio(min_norm),
    scale_by_learning_rate(eta / sqrt(1 + eta**2)),
    add_decayed_weights(1 / sqrt(1 + eta**2) - 1))`, each factor a schedule when
    `learning_rate` is one.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `min_norm`: the lower bound of the norms, as in [`eqopt.ScaleByTrustRatio`][].

    ??? cite "References"

        Bernstein et al., *On the distance between two neural networks and the
        stability of learning*, NeurIPS 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    min_norm: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)

    def __check_init__(self):
        check_hyperparameters("fromage", self, min_norm=NONNEGATIVE)

    def as_chain(self) -> Chain:
        if isinstance(self.learning_rate, AbstractSchedule):
            step = _FromageSchedule(self.learning_rate, "step")
            decay = _FromageSchedule(self.learning_rate, "decay")
        else:
            step, decay = _fromage_factors(self.learning_rate)
        return Chain(
            (
                ScaleByTrustRatio(self.min_norm),
                ScaleByLearningRate(step),
                AddDecayedWeights(decay),
            )
        )


lamb = LAMB
lars = LARS
fromage = Fromage

"""AdEMAMix (a fast and a slow momentum) and its simplified, single-momentum form."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar, is_scheduled, value_at
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, bias_correction, safe_increment
from .._transforms.adaptive import adam_denominator, decay_weights, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast, zeros_like_params


@no_type_check
def _check_b3(owner: str, opt: Any) -> None:
    """`b3` in [0, 1), unless it is a schedule (whose values are not checked)."""
    if not is_scheduled(opt.b3):
        check_hyperparameters(owner, opt, b3=UNIT)


class ScaleByAdemamixState(eqx.Module):
    """State of [`eqopt.contrib.scale_by_ademamix`][]: the step counts of the fast
    moments (`count`) and of the slow one and the schedules (`count_m2`), the fast
    and slow moving averages `m1`, `m2`, and the second moment `nu`."""

    count: Count
    count_m2: Count
    m1: Moments
    m2: Moments
    nu: Moments


class ScaleByAdemamix(GradientTransformation):
    r"""Rescale updates by AdEMAMix: Adam's step with a slow momentum mixed in.

    $$
    \begin{aligned}
    m^{(1)}_t &= \beta_1 m^{(1)}_{t-1} + (1 - \beta_1)\, g_t, \qquad
    m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1 - \beta_3)\, g_t, \\
    \nu_t &= \beta_2 \nu_{t-1} + (1 - \beta_2)\, g_t^2, \\
    u_t &= \frac{m^{(1)}_t / (1 - \beta_1^t) + \alpha\, m^{(2)}_t}
        {\sqrt{\nu_t / (1 - \beta_2^t) + \bar\varepsilon} + \varepsilon}.
    \end{aligned}
    $$

    The slow average is not debiased (it fills slowly on purpose). $\beta_3$ and
    $\alpha$ may be schedules (the paper warms both up), read at `count_m2`.

    Optax: `optax.contrib.scale_by_ademamix`. Moments are computed in float32 (or
    wider) and stored in `mu_dtype` (Optax stores the promoted dtype).

    **Arguments:**

    - `b1`: $\beta_1$, decay of the fast average, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the second moment, in $[0, 1)$.
    - `b3`: $\beta_3$, decay of the slow average: a float, array or schedule.
    - `alpha`: $\alpha$, the weight of the slow average: a float, array or schedule.
    - `eps`, `eps_root`: $\varepsilon$ and $\bar\varepsilon$, as in Adam.
    - `mu_dtype`: dtype of the three moments; `None` uses each parameter's.

    ??? cite "References"

        Pagliardini, Ablin and Grangier, *The AdEMAMix Optimizer: Better, Faster,
        Older*, ICLR 2025.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    b3: LearningRate = eqx.field(converter=as_hyperparameter, default=0.9999)
    alpha: LearningRate = eqx.field(converter=as_hyperparameter, default=6.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_ademamix",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

        _check_b3("scale_by_ademamix", self)

    def init(self, params: Params) -> ScaleByAdemamixState:
        return ScaleByAdemamixState(
            count=jnp.zeros([], jnp.int32),
            count_m2=jnp.zeros([], jnp.int32),
            m1=zeros_like_params(params, self.mu_dtype),
            m2=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params, self.mu_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdemamixState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdemamixState]:
        b3 = value_at(self.b3, state.count_m2)
        alpha = value_at(self.alpha, state.count_m2)
        count = safe_increment(state.count)
        values = cast_per_dtype(self.b1, self.b2, b3, alpha, self.eps, self.eps_root)
        per_dtype = {}

        @no_type_check
        def scalars(dtype):
            if dtype not in per_dtype:
                b1, b2, b3, alpha, eps, eps_root = values(dtype)
                per_dtype[dtype] = (
                    decay_weights(b1),
                    decay_weights(b2),
                    decay_weights(b3),
                    bias_correction(b1, count),
                    bias_correction(b2, count),
                    alpha,
                    eps,
                    eps_root,
                )
            return per_dtype[dtype]

        @no_type_check
        def rule(g, m1, m2, nu):
            x = upcast(g)
            w1, w2, w3, c1, c2, alpha, eps, eps_root = scalars(x.dtype)
            m1_new, m2_new = ema(w1, m1, x), ema(w3, m2, x)
            nu_new = ema(w2, nu, abs_sq(x))
            u = (m1_new / c1 + alpha * m2_new) / adam_denominator(
                nu_new / c2, eps_root, eps
            )
            return (
                to_dtype(u, g.dtype),
                to_dtype(m1_new, m1.dtype),
                to_dtype(m2_new, m2.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "state.m1", "state.m2", "state.nu")
        updates, m1, m2, nu = map_leaves(
            rule, updates, state.m1, state.m2, state.nu, names=names
        )
        return updates, ScaleByAdemamixState(
            count=count,
            count_m2=safe_increment(state.count_m2),
            m1=m1,
            m2=m2,
            nu=nu,
        )


class AdEMAMix(AbstractOptimiser):
    r"""AdEMAMix: AdamW with a second, slow momentum mixed into the step.

    $u_t = -\eta_t \left(\frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}{\sqrt{\hat\nu_t +
    \bar\varepsilon} + \varepsilon} + \lambda \theta_t\right)$, with the moments of
    [`eqopt.contrib.scale_by_ademamix`][]. Best for long runs: the slow average
    ($\beta_3 = 0.9999$) remembers gradients for thousands of steps; warm up $\alpha$
    and $\beta_3$ with schedules as the paper does.

    Optax: `optax.contrib.ademamix`. Built as `chain(scale_by_ademamix(...),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `b3`, `alpha`, `eps`, `eps_root`, `mu_dtype`: as in
        [`eqopt.contrib.scale_by_ademamix`][] (here `alpha` defaults to 5).
    - `weight_decay`: $\lambda$.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Pagliardini, Ablin and Grangier, *The AdEMAMix Optimizer: Better, Faster,
        Older*, ICLR 2025.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    b3: LearningRate = eqx.field(converter=as_hyperparameter, default=0.9999)
    alpha: LearningRate = eqx.field(converter=as_hyperparameter, default=5.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "ademamix",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

        _check_b3("ademamix", self)

    def as_chain(self) -> Chain:
        scale = ScaleByAdemamix(
            self.b1,
            self.b2,
            self.b3,
            self.alpha,
            self.eps,
            self.eps_root,
            self.mu_dtype,
        )
        return Chain(
            (
                scale,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class ScaleBySimplifiedAdEMAMixState(eqx.Module):
    """State of [`eqopt.contrib.scale_by_simplified_ademamix`][]: the step count `t`,
    the accumulated momentum `m` and the second moment `n`."""

    t: Count
    m: Moments
    n: Moments


class ScaleBySimplifiedAdEMAMix(GradientTransformation):
    r"""Rescale updates by simplified AdEMAMix: one undamped momentum plus the gradient.

    $$
    m_t = \beta_1 m_{t-1} + g_t, \quad
    n_t = \beta_2 n_{t-1} + (1 - \beta_2)\, g_t^2, \quad
    u_t = \frac{m_t + \alpha\, g_t}{\sqrt{n_t / (1 - \beta_2^t) + \bar\varepsilon}
        + \varepsilon}.
    $$

    With $\alpha = 0$ it is Adam with a rescaled learning rate and $\beta_1$. $\alpha$
    may be a schedule (read at `t` before the step).

    Optax: `optax.contrib.scale_by_simplified_ademamix`.

    **Arguments:**

    - `b1`: $\beta_1$, the decay of the momentum, in $[0, 1)$.
    - `b2`: $\beta_2$, the decay of the second moment, in $[0, 1)$.
    - `alpha`: $\alpha$, the weight of the current gradient: a float, array or
        schedule.
    - `eps`, `eps_root`: $\varepsilon$ and $\bar\varepsilon$, as in Adam.

    ??? cite "References"

        Morwani et al., *Connections between Schedule-Free Optimizers, AdEMAMix, and
        Accelerated SGD Variants*, 2025.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    alpha: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_simplified_ademamix",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleBySimplifiedAdEMAMixState:
        return ScaleBySimplifiedAdEMAMixState(
            t=jnp.zeros([], jnp.int32),
            m=zeros_like_params(params),
            n=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleBySimplifiedAdEMAMixState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleBySimplifiedAdEMAMixState]:
        alpha = value_at(self.alpha, state.t)
        t = safe_increment(state.t)
        values = cast_per_dtype(self.b1, self.b2, alpha, self.eps, self.eps_root)
        per_dtype = {}

        @no_type_check
        def scalars(dtype):
            if dtype not in per_dtype:
                b1, b2, alpha, eps, eps_root = values(dtype)
                c2 = bias_correction(b2, t)
                per_dtype[dtype] = (b1, decay_weights(b2), c2, alpha, eps, eps_root)
            return per_dtype[dtype]

        @no_type_check
        def rule(g, m, n):
            x = upcast(g)
            b1, w2, c2, alpha, eps, eps_root = scalars(x.dtype)
            m_new = x + b1 * to_dtype(m, x.dtype)
            n_new = ema(w2, n, abs_sq(x))
            u = (m_new + alpha * x) / adam_denominator(n_new / c2, eps_root, eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(m_new, m.dtype),
                to_dtype(n_new, n.dtype),
            )

        names = ("updates", "state.m", "state.n")
        updates, m, n = map_leaves(rule, updates, state.m, state.n, names=names)
        return updates, ScaleBySimplifiedAdEMAMixState(t=t, m=m, n=n)


class SimplifiedAdEMAMix(AbstractOptimiser):
    r"""Simplified AdEMAMix: one momentum, no $\alpha$ schedule needed.

    $u_t = -\eta_t \left(\frac{m_t + \alpha\, g_t}{\sqrt{\hat n_t + \bar\varepsilon} +
    \varepsilon} + \lambda \theta_t\right)$, with the moments of
    [`eqopt.contrib.scale_by_simplified_ademamix`][].

    Optax: `optax.contrib.simplified_ademamix`. Built as
    `chain(scale_by_simplified_ademamix(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `alpha`, `eps`, `eps_root`: as in
        [`eqopt.contrib.scale_by_simplified_ademamix`][].
    - `weight_decay`: $\lambda$.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Morwani et al., *Connections between Schedule-Free Optimizers, AdEMAMix, and
        Accelerated SGD Variants*, 2025.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    alpha: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "simplified_ademamix",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def as_chain(self) -> Chain:
        scale = ScaleBySimplifiedAdEMAMix(
            self.b1, self.b2, self.alpha, self.eps, self.eps_root
        )
        return Chain(
            (
                scale,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_ademamix = ScaleByAdemamix
ademamix = AdEMAMix
scale_by_simplified_ademamix = ScaleBySimplifiedAdEMAMix
simplified_ademamix = SimplifiedAdEMAMix

"""ADOPT: Adam with the current gradient normalised by the previous second moment."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._numerics import abs_sq, safe_increment, safe_sqrt
from .._transforms.adaptive import ScaleByAdamState
from .._transforms.scaling import ScaleByLearningRate
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast, zeros_like_params


_quarter_power = lambda x: x**0.25  # noqa: E731  (Optax's default, a lambda too)


class ScaleByAdopt(GradientTransformation):
    r"""Rescale updates by ADOPT: normalise the gradient by the *previous* second
    moment, then average.

    $$
    \begin{aligned}
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \quad (v_1 = g_1^2), \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\,
        \operatorname{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \varepsilon)},
        -c_t, c_t\right) \quad (m_1 = m_0 = 0), \\
    u_t &= m_t \quad (\text{Nesterov: } \beta_1 m_t + (1 - \beta_1) \cdot
        \text{the clipped term}),
    \end{aligned}
    $$

    with $c_t$ = `clip_value_fn(t - 1)` (no clipping with `use_clipping=False`). The
    first step only initialises $v$: its update is zero.

    Optax: `optax.contrib.scale_by_adopt`, with its state `ScaleByAdamState`. Computed in
    float32 (or wider) for bfloat16 parameters.

    **Arguments:**

    - `b1`: $\beta_1$, in $[0, 1)$.
    - `b2`: $\beta_2$, in $[0, 1)$.
    - `eps`: $\varepsilon \ge 0$, the floor of $\sqrt{v}$.
    - `mu_dtype`: dtype of the first moment; `None` uses each parameter's.
    - `nesterov`: Nesterov momentum.
    - `use_clipping`: whether to clip the normalised gradient.
    - `clip_value_fn`: the step count (0 at the first step) to the clipping value $c$;
        by default $t^{1/4}$. Static (a new function recompiles).

    ??? cite "References"

        Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any $\beta_2$ with
        the Optimal Rate*, NeurIPS 2024.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)
    use_clipping: bool = eqx.field(static=True, default=True, kw_only=True)
    clip_value_fn: Callable = eqx.field(
        static=True, default=_quarter_power, kw_only=True
    )

    def __check_init__(self):
        check_hyperparameters("scale_by_adopt", self, b1=UNIT, b2=UNIT, eps=NONNEGATIVE)

    def init(self, params: Params) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdamState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdamState]:
        started = state.count > 0
        b1 = jnp.where(started, self.b1, 1)
        b2 = jnp.where(started, self.b2, 0)
        clip = None
        if self.use_clipping:
            with jax.numpy_dtype_promotion("standard"):  # `count ** 0.25`, as Optax
                clip = self.clip_value_fn(state.count)
        values = cast_per_dtype(b1, b2, self.eps, clip if clip is not None else 0.0)

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            b1, b2, eps, clip_value = values(x.dtype)
            old_nu = to_dtype(nu, x.dtype)
            nu_new = b2 * old_nu + (1 - b2) * abs_sq(x)
            normalised = x / jnp.maximum(safe_sqrt(old_nu), eps)
            if clip is not None:
                normalised = jnp.clip(normalised, -clip_value, clip_value)
            mu_new = b1 * to_dtype(mu, x.dtype) + (1 - b1) * normalised
            u = b1 * mu_new + (1 - b1) * normalised if self.nesterov else mu_new
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "state.mu", "state.nu")
        updates, mu, nu = map_leaves(rule, updates, state.mu, state.nu, names=names)
        return updates, ScaleByAdamState(
            count=safe_increment(state.count), mu=mu, nu=nu
        )


class Adopt(AbstractOptimiser):
    r"""ADOPT: a modified Adam that converges for any $\beta_2$.

    $u_t = -\eta_t\, m_t$, with the momentum of [`eqopt.contrib.scale_by_adopt`][] (the
    average of gradients normalised by the previous second moment, clipped early on).

    Optax: `optax.contrib.adopt`. Built as `chain(scale_by_adopt(...),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `mu_dtype`, `nesterov`, `use_clipping`, `clip_value_fn`: as in
        [`eqopt.contrib.scale_by_adopt`][].

    ??? cite "References"

        Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any $\beta_2$ with
        the Optimal Rate*, NeurIPS 2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)
    use_clipping: bool = eqx.field(static=True, default=True, kw_only=True)
    clip_value_fn: Callable = eqx.field(
        static=True, default=_quarter_power, kw_only=True
    )

    def __check_init__(self):
        check_hyperparameters("adopt", self, b1=UNIT, b2=UNIT, eps=NONNEGATIVE)

    def as_chain(self) -> Chain:
        scale = ScaleByAdopt(
            self.b1,
            self.b2,
            self.eps,
            self.mu_dtype,
            nesterov=self.nesterov,
            use_clipping=self.use_clipping,
            clip_value_fn=self.clip_value_fn,
        )
        return Chain((scale, ScaleByLearningRate(self.learning_rate)))


scale_by_adopt = ScaleByAdopt
adopt = Adopt

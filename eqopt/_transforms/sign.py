"""Sign-based transformations: the sign of the gradient, Lion and Rprop.

Their output depends on the gradients only through signs, so it is piecewise constant in
the decay rates: hypergradients with respect to `b1`, `b2`, `eta_minus`... are exactly
zero almost everywhere (and finite everywhere). Step sizes still get hypergradients.
"""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._base import EmptyState, GradientTransformation
from .._checks import (
    check_hyperparameters,
    check_value,
    Interval,
    NONNEGATIVE,
    POSITIVE,
    UNIT,
    UNIT_CLOSED,
)
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import safe_increment
from .._tree import (
    cast,
    full_like_params,
    map_leaves,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .adaptive import decay_weights, ema


class ScaleBySign(GradientTransformation):
    r"""Replace each update element by its sign: $u \leftarrow \operatorname{sign}(g)$.

    Optax: `optax.scale_by_sign`.

    ??? cite "References"

        Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex Problems*,
        ICML 2018.
    """

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return map_leaves(_sign, updates)[0], state


@no_type_check
def _sign(g: Array) -> tuple[Array]:
    return (jnp.sign(g),)


_LION_MODES = ("hard", "smooth", "refined")


@no_type_check
def _lion_sign(x: Array, mode: str, smooth_beta: Array) -> Array:
    """The sign of `x`, or the smooth variant `mode` of it."""
    if mode == "smooth":
        return jnp.tanh(smooth_beta * x)
    if mode == "refined":  # linear below 1 in magnitude, the sign above
        return jnp.where(jnp.abs(x) < 1, x, jnp.sign(x))
    return jnp.sign(x)


class ScaleByLionState(eqx.Module):
    """State of `ScaleByLion`: the step count and the momentum."""

    count: Count
    mu: Moments


class ScaleByLion(GradientTransformation):
    r"""Rescale updates by the Lion rule: the sign of an interpolated momentum.

    $$
    u_t = \operatorname{sign}\big((1 - \beta_1)\, g_t + \beta_1 m_{t-1}\big), \qquad
    m_t = (1 - \beta_2)\, g_t + \beta_2 m_{t-1}.
    $$

    With `mode="smooth"` the sign is $\tanh(\beta_s\, \cdot)$; with `mode="refined"` it
    is the identity where $|\cdot| < 1$ and the sign elsewhere.

    The momentum is computed in float32 (or wider) and rounded to `mu_dtype` only when
    stored. (With a bfloat16 `mu_dtype`, Optax multiplies $\beta_2$ into the momentum in
    bfloat16, where $0.99$ is $0.98828125$: there the numbers differ.)

    Optax: `optax.scale_by_lion`.

    **Arguments:**

    - `b1`: $\beta_1$, weight of the momentum in the update, in $[0, 1]$.
    - `b2`: $\beta_2$, decay of the momentum, in $[0, 1)$.
    - `mu_dtype`: dtype of the momentum; `None` uses each parameter's dtype.
    - `mode`: `"hard"` (the sign), `"smooth"` or `"refined"`.
    - `smooth_beta`: $\beta_s > 0$, the slope of `tanh` in the `"smooth"` mode.

    ??? cite "References"

        Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    # `str` rather than a `Literal`: a wrong mode is then a `ValueError` naming it.
    mode: str = eqx.field(static=True, default="hard", kw_only=True)
    smooth_beta: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=1.0, kw_only=True
    )

    def __check_init__(self):
        if self.mode not in _LION_MODES:
            raise ValueError(
                f"`scale_by_lion(mode=...)` must be one of {_LION_MODES}; "
                f"got mode={self.mode!r}."
            )
        check_hyperparameters(
            "scale_by_lion", self, b1=UNIT_CLOSED, b2=UNIT, smooth_beta=POSITIVE
        )

    def init(self, params: Params) -> ScaleByLionState:
        return ScaleByLionState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByLionState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByLionState]:
        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            b1, b2, smooth_beta = cast(dtype, self.b1, self.b2, self.smooth_beta)
            return decay_weights(b1), decay_weights(b2), smooth_beta

        @no_type_check
        def rule(g, mu):
            x = upcast(g)
            w1, w2, smooth_beta = scalars(x.dtype)
            u = _lion_sign(ema(w1, mu, x), self.mode, smooth_beta)
            return to_dtype(u, g.dtype), to_dtype(ema(w2, mu, x), mu.dtype)

        names = ("updates", "state.mu")
        updates, mu = map_leaves(rule, updates, state.mu, names=names)
        return updates, ScaleByLionState(count=safe_increment(state.count), mu=mu)


class ScaleByRpropState(eqx.Module):
    """State of `ScaleByRprop`: per-element step sizes and the previous step."""

    step_sizes: Moments
    prev_updates: Moments


_AT_LEAST_ONE = Interval(1.0, float("inf"))


class ScaleByRprop(GradientTransformation):
    r"""Rescale updates by Rprop's per-element step sizes.

    With $s_t = g_t\, p_{t-1}$ (the gradient times the previous step),

    $$
    \begin{aligned}
    \delta_t &= \begin{cases}
        \delta_{t-1} & s_t = 0 \\
        \operatorname{clip}(\eta^+ \delta_{t-1}, \delta_{\min}, \delta_{\max}) & s_t > 0
        \\
        \operatorname{clip}(\eta^- \delta_{t-1}, \delta_{\min}, \delta_{\max}) & s_t < 0
    \end{cases} \\
    p_t &= \begin{cases} 0 & s_t < 0 \\ \delta_t \operatorname{sign}(g_t) &
        \text{otherwise,} \end{cases} \qquad
    u_t = \begin{cases} 0 & s_t < 0 \\ p_{t-1} & \text{otherwise,} \end{cases}
    \end{aligned}
    $$

    starting from $\delta_0 = \eta$ (the learning rate) and $p_0 = 0$.

    As in Optax 0.2.8, the update emitted at step $t$ is the step $p_{t-1}$ computed at
    the previous step (so the first update is zero), and [`eqopt.rprop`][] negates it.

    Optax: `optax.scale_by_rprop`.

    **Arguments:**

    - `learning_rate`: $\eta$, the initial step size (a float or an array, no
        schedule).
    - `eta_minus`: $\eta^-$, the factor in $[0, 1]$ applied when the sign flips.
    - `eta_plus`: $\eta^+ \ge 1$, the factor applied when the sign stays.
    - `min_step_size`: $\delta_{\min} \ge 0$.
    - `max_step_size`: $\delta_{\max} \ge \delta_{\min}$.

    ??? cite "References"

        Riedmiller and Braun, *A Direct Adaptive Method for Faster Backpropagation
        Learning: The RPROP Algorithm*, ICNN 1993.
    """

    learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    eta_minus: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.5)
    eta_plus: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.2)
    min_step_size: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    max_step_size: Float[Array, ""] = eqx.field(converter=as_scalar, default=50.0)

    def __check_init__(self):
        check_rprop_ranges("scale_by_rprop", self)

    def init(self, params: Params) -> ScaleByRpropState:
        return ScaleByRpropState(
            step_sizes=full_like_params(params, self.learning_rate),
            prev_updates=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByRpropState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByRpropState]:
        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            return cast(
                dtype,
                self.eta_minus,
                self.eta_plus,
                self.min_step_size,
                self.max_step_size,
            )

        @no_type_check
        def rule(g, step_size, prev):
            x = upcast(g)
            eta_minus, eta_plus, low, high = scalars(x.dtype)
            step_size, prev = to_dtype(step_size, x.dtype), to_dtype(prev, x.dtype)
            s = x * prev
            factor = jnp.where(s > 0, eta_plus, eta_minus)
            new_step = jnp.where(
                s == 0, step_size, jnp.clip(step_size * factor, low, high)
            )
            flipped = s < 0
            new_prev = jnp.where(flipped, 0, new_step * jnp.sign(x))
            u = jnp.where(flipped, 0, prev)
            dtype = g.dtype
            return (
                to_dtype(u, dtype),
                to_dtype(new_step, dtype),
                to_dtype(new_prev, dtype),
            )

        names = ("updates", "state.step_sizes", "state.prev_updates")
        updates, step_sizes, prev_updates = map_leaves(
            rule, updates, state.step_sizes, state.prev_updates, names=names
        )
        return updates, ScaleByRpropState(step_sizes, prev_updates)


@no_type_check
def check_rprop_ranges(owner: str, opt: Any) -> None:
    """The range checks of Rprop's arguments, shared by `scale_by_rprop` and `rprop`."""
    check_hyperparameters(
        owner,
        opt,
        learning_rate=NONNEGATIVE,
        eta_minus=UNIT_CLOSED,
        eta_plus=_AT_LEAST_ONE,
        min_step_size=NONNEGATIVE,
    )
    low = opt.min_step_size
    check_value(owner, "max_step_size", opt.max_step_size, _at_least(low))


@no_type_check
def _at_least(low: Any) -> Interval:
    """`[low, inf)`, or everything when `low` is traced (nothing to compare with)."""
    try:
        return Interval(float(low), float("inf"))
    except (TypeError, ValueError):  # a tracer, or a batched array
        return Interval(-float("inf"), float("inf"))


scale_by_sign = ScaleBySign
scale_by_lion = ScaleByLion
scale_by_rprop = ScaleByRprop

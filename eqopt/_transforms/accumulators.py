"""Accumulator-based scalings: Adagrad's sum of squares, SM3's per-axis accumulators,
Adadelta, Adan and NovoGrad."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT, UNIT_CLOSED
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import abs_sq, bias_correction, div_sqrt, safe_increment, safe_sqrt
from .._tree import (
    cast,
    cast_per_dtype,
    full_like_params,
    map_leaves,
    map_params,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .adaptive import decay_weights, ema
from .factored import zeros_without_axes


@no_type_check
def _zero_count() -> Count:
    return jnp.zeros([], jnp.int32)


@no_type_check
def _scale_where_positive(x: Array, total: Array, eps: Array) -> Array:
    r"""$x / \sqrt{s + \varepsilon}$ where $s > 0$, and $0$ where $s = 0$ (Optax's
    convention $0 / 0 = 0$), with finite derivatives in both branches."""
    positive = total > 0
    return jnp.where(positive, div_sqrt(x, jnp.where(positive, total, 1) + eps), 0)


class ScaleByRssState(eqx.Module):
    """State of `ScaleByRSS`: the sum of squared gradients to date."""

    sum_of_squares: Moments


class ScaleByRSS(GradientTransformation):
    r"""Rescale updates by the root of the sum of all squared gradients (Adagrad).

    $$
    s_t = s_{t-1} + |g_t|^2, \qquad
    u_t = \begin{cases} g_t / \sqrt{s_t + \varepsilon} & s_t > 0 \\ 0 & s_t = 0
    \end{cases}
    $$

    with $s_0$ = `initial_accumulator_value`.

    Optax: `optax.scale_by_rss`.

    **Arguments:**

    - `initial_accumulator_value`: $s_0 \ge 0$.
    - `eps`: $\varepsilon \ge 0$, added inside the square root.

    ??? cite "References"

        Duchi et al., *Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization*, JMLR 2011.
    """

    initial_accumulator_value: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.1
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-7)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_rss",
            self,
            initial_accumulator_value=NONNEGATIVE,
            eps=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByRssState:
        return ScaleByRssState(
            sum_of_squares=full_like_params(params, self.initial_accumulator_value)
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByRssState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByRssState]:
        eps_in = cast_per_dtype(self.eps)

        @no_type_check
        def rule(g, s):
            x = upcast(g)
            s_new = to_dtype(s, x.dtype) + abs_sq(x)
            (eps,) = eps_in(x.dtype)
            u = _scale_where_positive(x, s_new, eps)
            return to_dtype(u, g.dtype), to_dtype(s_new, s.dtype)

        names = ("updates", "state.sum_of_squares")
        updates, s = map_leaves(rule, updates, state.sum_of_squares, names=names)
        return updates, ScaleByRssState(sum_of_squares=s)


class ScaleBySM3State(eqx.Module):
    """State of `ScaleBySM3`: per parameter, one accumulator per axis (`mu`, a list),
    and the momentum of the updates (`nu`)."""

    mu: Moments
    nu: Moments


@no_type_check
def _axis_accumulators(p: Array) -> list[Array]:
    """Zeros, one vector per axis of `p` (one 0-d array for a 0-d `p`)."""
    if p.ndim == 0:
        return [jnp.zeros_like(p)]
    others = [[j for j in range(p.ndim) if j != i] for i in range(p.ndim)]
    return [zeros_without_axes(p, *axes) for axes in others]


@no_type_check
def _cover_minimum(accumulators: list[Array], shape: tuple[int, ...]) -> Array:
    r"""$\min_{r \ni i} \mu(r)$ at every index $i$ of `shape`: the smallest of the
    per-axis accumulators of the slices through $i$."""
    if len(shape) < 2:
        return jnp.reshape(accumulators[0], shape)
    expanded = [
        jnp.reshape(a, [1] * axis + [shape[axis]] + [1] * (len(shape) - axis - 1))
        for axis, a in enumerate(accumulators)
    ]
    return ft.reduce(jnp.minimum, expanded)


@no_type_check
def _slice_maxima(accum: Array) -> list[Array]:
    r"""$\mu(r) = \max_{i \in r} \nu(i)$ for the slices $r$ along each axis."""
    if accum.ndim < 2:
        return [accum]
    axes = range(accum.ndim)
    return [jnp.max(accum, axis=tuple(j for j in axes if j != i)) for i in axes]


class ScaleBySM3(GradientTransformation):
    r"""Rescale updates by SM3's memory-efficient sums of squared gradients.

    Each axis of a parameter keeps one accumulator per slice, $\mu(r)$; at each entry
    $i$ the smallest over the slices through $i$ stands in for Adagrad's sum:

    $$
    \begin{aligned}
    \nu_t(i) &= c\, |g_t(i)|^2 + \beta_2 \min_{r \ni i} \mu_{t-1}(r), &
    \mu_t(r) &= \max_{i \in r} \nu_t(i), \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t / \sqrt{\nu_t + \varepsilon}, &
    u_t &= m_t,
    \end{aligned}
    $$

    with $c = 1 - \beta_2$ (or $1$ for $\beta_2 = 1$, SM3-II) and $0 / 0 = 0$. A vector
    (or a scalar) keeps the full $\nu$.

    Optax: `optax.scale_by_sm3`. Optax fails on a 0-d parameter; here it is treated
    as a 1-element vector (its state is a list of one 0-d array).

    **Arguments:**

    - `b1`: $\beta_1$, decay of the momentum, in $[0, 1]$.
    - `b2`: $\beta_2$, decay of the accumulators, in $[0, 1]$.
    - `eps`: $\varepsilon \ge 0$.

    ??? cite "References"

        Anil et al., *Memory-Efficient Adaptive Optimization*, NeurIPS 2019.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_sm3", self, b1=UNIT_CLOSED, b2=UNIT_CLOSED, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> ScaleBySM3State:
        return ScaleBySM3State(
            mu=map_params(_axis_accumulators, params), nu=zeros_like_params(params)
        )

    def update(
        self,
        updates: Updates,
        state: ScaleBySM3State,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleBySM3State]:
        @ft.cache
        @no_type_check
        def scalars(dtype):
            b1, b2, eps = cast(dtype, self.b1, self.b2, self.eps)
            c = jnp.where(b2 == 1, 1, 1 - b2)
            return decay_weights(b1), c, b2, eps

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            weights, c, b2, eps = scalars(x.dtype)
            previous = _cover_minimum([to_dtype(a, x.dtype) for a in mu], x.shape)
            accum = c * abs_sq(x) + b2 * previous
            nu_new = ema(weights, nu, _scale_where_positive(x, accum, eps))
            mu_new = [to_dtype(a, m.dtype) for a, m in zip(_slice_maxima(accum), mu)]
            return to_dtype(nu_new, g.dtype), mu_new, to_dtype(nu_new, nu.dtype)

        names = ("updates", "state.mu", "state.nu")
        updates, mu, nu = map_leaves(rule, updates, state.mu, state.nu, names=names)
        return updates, ScaleBySM3State(mu=mu, nu=nu)


class ScaleByAdaDeltaState(eqx.Module):
    """State of `ScaleByAdaDelta`: the averages of squared gradients and updates."""

    e_g: Moments
    e_x: Moments


class ScaleByAdaDelta(GradientTransformation):
    r"""Rescale updates by Adadelta's ratio of root-mean-square updates and gradients.

    $$
    \begin{aligned}
    E[g^2]_t &= \rho\, E[g^2]_{t-1} + (1 - \rho)\, |g_t|^2, \\
    u_t &= \frac{\sqrt{E[u^2]_{t-1} + \varepsilon}}{\sqrt{E[g^2]_t + \varepsilon}}\, g_t,
    \\
    E[u^2]_t &= \rho\, E[u^2]_{t-1} + (1 - \rho)\, |u_t|^2.
    \end{aligned}
    $$

    Optax: `optax.scale_by_adadelta`.

    **Arguments:**

    - `rho`: $\rho$, the decay of both averages, in $[0, 1]$.
    - `eps`: $\varepsilon \ge 0$.

    ??? cite "References"

        Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """

    rho: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_adadelta", self, rho=UNIT_CLOSED, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> ScaleByAdaDeltaState:
        return ScaleByAdaDeltaState(
            e_g=zeros_like_params(params), e_x=zeros_like_params(params)
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdaDeltaState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdaDeltaState]:
        @ft.cache
        @no_type_check
        def scalars(dtype):
            rho, eps = cast(dtype, self.rho, self.eps)
            return decay_weights(rho), eps

        @no_type_check
        def rule(g, e_g, e_x):
            x = upcast(g)
            weights, eps = scalars(x.dtype)
            e_g_new = ema(weights, e_g, abs_sq(x))
            step = safe_sqrt(to_dtype(e_x, x.dtype) + eps) / safe_sqrt(e_g_new + eps)
            u = step * x
            e_x_new = ema(weights, e_x, abs_sq(u))
            return (
                to_dtype(u, g.dtype),
                to_dtype(e_g_new, e_g.dtype),
                to_dtype(e_x_new, e_x.dtype),
            )

        names = ("updates", "state.e_g", "state.e_x")
        updates, e_g, e_x = map_leaves(rule, updates, state.e_g, state.e_x, names=names)
        return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)


class ScaleByAdanState(eqx.Module):
    """State of `ScaleByAdan`: the three moments, the previous gradient and the count
    (Optax's names and order)."""

    m: Moments
    v: Moments
    n: Moments
    g: Moments
    t: Count


class ScaleByAdan(GradientTransformation):
    r"""Rescale updates by Adan's Nesterov moment estimates.

    With $\Delta_t = g_t - g_{t-1}$ ($\Delta_1 = 0$):

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, \Delta_t, \\
    n_t &= \beta_3 n_{t-1} + (1 - \beta_3)\, |g_t + (1 - \beta_2) \Delta_t|^2, \\
    u_t &= \frac{\hat m_t + (1 - \beta_2)\, \hat v_t}
        {\sqrt{\hat n_t + \bar\varepsilon} + \varepsilon},
    \end{aligned}
    $$

    each hat the moment divided by $1 - \beta^t$.

    Optax: `optax.scale_by_adan`.

    **Arguments:**

    - `b1`, `b2`, `b3`: $\beta_1, \beta_2, \beta_3$, the decays, in $[0, 1)$.
    - `eps`: $\varepsilon$, added outside the square root.
    - `eps_root`: $\bar\varepsilon$, added inside the square root.

    ??? cite "References"

        Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
        Deep Models*, IEEE TPAMI 2024.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.98)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.92)
    b3: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_adan",
            self,
            b1=UNIT,
            b2=UNIT,
            b3=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByAdanState:
        return ScaleByAdanState(
            m=zeros_like_params(params),
            v=zeros_like_params(params),
            n=zeros_like_params(params),
            g=zeros_like_params(params),
            t=_zero_count(),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdanState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdanState]:
        first = state.t == 0
        t = safe_increment(state.t)

        @ft.cache
        @no_type_check
        def scalars(dtype):
            b1, b2, b3, eps, eps_root = cast(
                dtype, self.b1, self.b2, self.b3, self.eps, self.eps_root
            )
            corrections = tuple(bias_correction(b, t) for b in (b1, b2, b3))
            weights = tuple(decay_weights(b) for b in (b1, b2, b3))
            return weights, corrections, eps, eps_root

        @no_type_check
        def rule(g, m, v, n, previous):
            x = upcast(g)
            (w1, w2, w3), (c1, c2, c3), eps, eps_root = scalars(x.dtype)
            one_minus_b2 = w2[1]
            diff = jnp.where(first, 0, x - to_dtype(previous, x.dtype))
            m_new = ema(w1, m, x)
            v_new = ema(w2, v, diff)
            n_new = ema(w3, n, abs_sq(x + one_minus_b2 * diff))
            direction = m_new / c1 + one_minus_b2 * (v_new / c2)
            u = direction / (safe_sqrt(n_new / c3 + eps_root) + eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(m_new, m.dtype),
                to_dtype(v_new, v.dtype),
                to_dtype(n_new, n.dtype),
                to_dtype(g, previous.dtype),
            )

        names = ("updates", "state.m", "state.v", "state.n", "state.g")
        updates, m, v, n, g = map_leaves(
            rule, updates, state.m, state.v, state.n, state.g, names=names
        )
        return updates, ScaleByAdanState(m=m, v=v, n=n, g=g, t=t)


class ScaleByNovogradState(eqx.Module):
    """State of `ScaleByNovograd`: the count, the momentum and, per parameter, the
    average squared norm of its gradient (a 0-d array)."""

    count: Count
    mu: Moments
    nu: Moments


class ScaleByNovograd(GradientTransformation):
    r"""Rescale updates by NovoGrad's layer-wise second moments.

    Per parameter leaf, with its gradient's squared norm $\|g_t\|^2$:

    $$
    \begin{aligned}
    \nu_t &= \beta_2 \nu_{t-1} + (1 - \beta_2)\, \|g_t\|^2 \quad (\nu_1 = \|g_1\|^2),
    \\
    a_t &= g_t / (\sqrt{\nu_t + \bar\varepsilon} + \varepsilon) + \lambda\, \theta_t, \\
    m_t &= \beta_1 m_{t-1} + a_t \quad (m_1 = a_1), \qquad u_t = m_t.
    \end{aligned}
    $$

    Optax: `optax.scale_by_novograd`.

    **Arguments:**

    - `b1`: $\beta_1$, the momentum, in $[0, 1]$.
    - `b2`: $\beta_2$, the decay of the squared norms, in $[0, 1]$.
    - `eps`: $\varepsilon$, added outside the square root.
    - `eps_root`: $\bar\varepsilon$, added inside the square root.
    - `weight_decay`: $\lambda$.
    - `mu_dtype`: dtype of $m$; `None` uses each parameter's dtype. Optax also rounds
        the updates to it; here they are $m_t$ before rounding (as Adam's `mu_dtype`).

    ??? cite "References"

        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments
        for Training of Deep Networks*, 2019.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.25)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_novograd",
            self,
            b1=UNIT_CLOSED,
            b2=UNIT_CLOSED,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByNovogradState:
        return ScaleByNovogradState(
            count=_zero_count(),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=map_params(lambda p: jnp.zeros((), p.dtype), params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByNovogradState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByNovogradState]:
        require_params("scale_by_novograd", params)
        count = safe_increment(state.count)
        first = count == 1

        @ft.cache
        @no_type_check
        def scalars(dtype):
            b1, b2, eps, eps_root, weight_decay = cast(
                dtype, self.b1, self.b2, self.eps, self.eps_root, self.weight_decay
            )
            return b1, decay_weights(b2), eps, eps_root, weight_decay

        @no_type_check
        def rule(g, p, mu, nu):
            x = upcast(g)
            b1, w2, eps, eps_root, weight_decay = scalars(x.dtype)
            norm_sq = jnp.sum(abs_sq(x))
            nu_new = jnp.where(first, norm_sq, ema(w2, nu, norm_sq))
            a = x / (safe_sqrt(nu_new + eps_root) + eps)
            a = a + weight_decay * to_dtype(p, x.dtype)
            mu_new = jnp.where(first, a, b1 * to_dtype(mu, x.dtype) + a)
            return (
                to_dtype(mu_new, g.dtype),
                p,
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "params", "state.mu", "state.nu")
        updates, _, mu, nu = map_leaves(
            rule, updates, params, state.mu, state.nu, names=names, check_shapes=False
        )
        return updates, ScaleByNovogradState(count=count, mu=mu, nu=nu)


scale_by_rss = ScaleByRSS
scale_by_sm3 = ScaleBySM3
scale_by_adadelta = ScaleByAdaDelta
scale_by_adan = ScaleByAdan
scale_by_novograd = ScaleByNovograd

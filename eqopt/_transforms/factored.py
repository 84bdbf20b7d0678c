"""Adafactor's blocks: the factored second-moment scaling, block-RMS clipping and
scaling, and the exponential moving average of updates."""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, DTypeLike, Float, Int

from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, POSITIVE, UNIT_CLOSED
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import (
    abs_sq,
    bias_correction,
    div_sqrt,
    safe_increment,
    safe_sqrt,
)
from .._tree import (
    cast,
    cast_per_dtype,
    map_leaves,
    map_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .adaptive import decay_weights, ema as moving_average


@no_type_check
def _zero_count() -> Count:
    return jnp.zeros([], jnp.int32)


@no_type_check
def as_step(x: ArrayLike) -> Int[Array, ""]:
    """A step number as a 0-d int32 array leaf (it decides no shape)."""
    return jnp.asarray(x, jnp.int32)


@no_type_check
def _decay_rate_pow(i: ArrayLike, exponent: ArrayLike = 0.8) -> Array:
    r"""Adafactor's second-moment decay at step $i$ (from 0): $1 - (i + 1)^{-c}$.

    Computed in the dtype of `exponent` (float32 for a Python float).
    """
    exponent = jnp.asarray(exponent)
    t = (jnp.asarray(i) + 1).astype(exponent.dtype)
    return 1 - t ** (-exponent)


@no_type_check
def factored_dims(
    shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int
) -> tuple[int, int] | None:
    """The axes `(d1, d0)` of the second-largest and largest dimension of `shape`, or
    `None` when the second moment is not factored (`factored=False`, fewer than two
    dimensions, or the second-largest smaller than `min_dim_size_to_factor`)."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)  # as Optax, so that ties pick the same axes
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


@no_type_check
def zeros_without_axes(p: Array, *axes: int) -> Array:
    """Zeros of the dtype of `p` and its shape with `axes` removed.

    Made from the shape alone, so not laid out like `p`: a reduced shape has no
    sharding of its own to take (XLA lays it out inside a jitted step).
    """
    shape = tuple(n for i, n in enumerate(p.shape) if i not in axes)
    return jnp.zeros(shape, p.dtype)


class FactoredState(eqx.Module):
    """State of `ScaleByFactoredRMS`: the step count and, per parameter, either the
    row and column statistics (`v_row`, `v_col`, with `v` a 1-element placeholder) or
    the full second moment `v` (with 1-element placeholders for `v_row`, `v_col`), as
    in Optax."""

    count: Count
    v_row: Moments
    v_col: Moments
    v: Moments


class ScaleByFactoredRMS(GradientTransformation):
    r"""Rescale updates by a factored estimate of their root mean square (Adafactor).

    With $\beta_t = $ `decay_rate_fn`$(t - t_0, c)$ (by default $1 - (t - t_0 + 1)^{-c}$)
    and $G_t = |g_t|^2 + \varepsilon$, a matrix (the two largest axes of a leaf, when
    the smaller of them has at least `min_dim_size_to_factor` entries) keeps only the
    means of $G_t$ along each of them:

    $$
    \begin{aligned}
    R_t &= \beta_t R_{t-1} + (1 - \beta_t)\, \operatorname{mean}_{\text{cols}} G_t, &
    C_t &= \beta_t C_{t-1} + (1 - \beta_t)\, \operatorname{mean}_{\text{rows}} G_t, \\
    u_t &= g_t \Big/ \sqrt{\frac{R_t C_t^\top}{\operatorname{mean}(R_t)}},
    \end{aligned}
    $$

    and any other leaf the full $v_t = \beta_t v_{t-1} + (1 - \beta_t)\, G_t$, with
    $u_t = g_t / \sqrt{v_t}$.

    Which leaves are factored depends only on their shapes, so `factored` and
    `min_dim_size_to_factor` are static. The derivatives of $u_t$ in the statistics are
    zero where $g_t = 0$ (not $0 \cdot \infty$ for $G_t = \varepsilon = 10^{-30}$), so
    hypergradients are finite with exactly-zero gradients. Unlike Optax, `update` does
    not need `params`; low-precision leaves are computed in float32 and their statistics
    stored in the parameters' dtype.

    Optax: `optax.scale_by_factored_rms`.

    **Arguments:**

    - `factored`: whether to factor the second moment of matrices.
    - `decay_rate`: $c$, the argument of `decay_rate_fn`.
    - `step_offset`: $t_0$, an integer: the step count at which the decay schedule
        starts (for fine-tuning from a restored state). The default schedule needs
        $t - t_0 \ge 0$.
    - `min_dim_size_to_factor`: factor only if the two largest dimensions have at least
        this size.
    - `epsilon`: $\varepsilon$, added to the squared gradients.
    - `decay_rate_fn`: `(step, decay_rate) -> decay`, the schedule of $\beta_t$.

    ??? cite "References"

        Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost*, ICML 2018.
        Zhai et al., *Scaling Vision Transformers*, CVPR 2022.
    """

    factored: bool = eqx.field(static=True, default=True)
    decay_rate: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.8)
    step_offset: Int[Array, ""] = eqx.field(converter=as_step, default=0)
    min_dim_size_to_factor: int = eqx.field(static=True, default=128)
    epsilon: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-30)
    decay_rate_fn: Callable[[Any, Any], Any] = eqx.field(
        static=True, default=_decay_rate_pow
    )

    def __check_init__(self):
        check_hyperparameters("scale_by_factored_rms", self, epsilon=NONNEGATIVE)

    def _dims(self, shape: tuple[int, ...]) -> tuple[int, int] | None:
        return factored_dims(shape, self.factored, self.min_dim_size_to_factor)

    def init(self, params: Params) -> FactoredState:
        @no_type_check
        def statistics(p):
            placeholder = jnp.zeros((1,), p.dtype)
            dims = self._dims(p.shape)
            if dims is None:
                return placeholder, placeholder, jnp.zeros_like(p)
            d1, d0 = dims
            return zeros_without_axes(p, d0), zeros_without_axes(p, d1), placeholder

        return FactoredState(
            count=_zero_count(),
            v_row=map_params(lambda p: statistics(p)[0], params),
            v_col=map_params(lambda p: statistics(p)[1], params),
            v=map_params(lambda p: statistics(p)[2], params),
        )

    def update(
        self,
        updates: Updates,
        state: FactoredState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, FactoredState]:
        step = state.count - self.step_offset

        @ft.cache
        @no_type_check
        def scalars(dtype):
            decay_rate, epsilon = cast(dtype, self.decay_rate, self.epsilon)
            decay = to_dtype(jnp.asarray(self.decay_rate_fn(step, decay_rate)), dtype)
            return decay_weights(decay), epsilon

        @no_type_check
        def rule(g, v_row, v_col, v):
            x = upcast(g)
            weights, epsilon = scalars(x.dtype)
            g_sq = abs_sq(x) + epsilon
            dims = self._dims(g.shape)
            if dims is None:
                v_new = moving_average(weights, v, g_sq)
                u = div_sqrt(x, v_new)
                return to_dtype(u, g.dtype), v_row, v_col, to_dtype(v_new, v.dtype)
            d1, d0 = dims
            row = moving_average(weights, v_row, jnp.mean(g_sq, axis=d0))
            col = moving_average(weights, v_col, jnp.mean(g_sq, axis=d1))
            # Reduced by d0, `row` has lost an axis before d1 if d0 < d1.
            row_mean = jnp.mean(row, axis=d1 - (d0 < d1), keepdims=True)
            # u = g / sqrt(row / row_mean) / sqrt(col), each root through `div_sqrt`.
            x_scaled = x * jnp.expand_dims(safe_sqrt(row_mean), d0)
            u = div_sqrt(x_scaled, jnp.expand_dims(row, d0))
            u = div_sqrt(u, jnp.expand_dims(col, d1))
            return (
                to_dtype(u, g.dtype),
                to_dtype(row, v_row.dtype),
                to_dtype(col, v_col.dtype),
                v,
            )

        names = ("updates", "state.v_row", "state.v_col", "state.v")
        updates, v_row, v_col, v = map_leaves(
            rule,
            updates,
            state.v_row,
            state.v_col,
            state.v,
            names=names,
            check_shapes=False,
        )
        count = safe_increment(state.count)
        return updates, FactoredState(count=count, v_row=v_row, v_col=v_col, v=v)


class ClipByBlockRMS(GradientTransformation):
    r"""Clip each update leaf (a "block") to a root mean square of at most $c$.

    $$
    u = g \,/\, \max\!\left(1, \sqrt{\operatorname{mean}|g|^2} \,/\, c\right).
    $$

    The root has a finite derivative at zero (an all-zero block). Where the RMS equals
    $c$ the map has a kink: updates are continuous in $c$ but not differentiable there.

    Optax: `optax.clip_by_block_rms`.

    **Arguments:**

    - `threshold`: $c > 0$, the largest RMS of a block.
    """

    threshold: Float[Array, ""] = eqx.field(converter=as_scalar)

    def __check_init__(self):
        check_hyperparameters("clip_by_block_rms", self, threshold=POSITIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        threshold_in = cast_per_dtype(self.threshold)

        @no_type_check
        def rule(g):
            x = upcast(g)
            (threshold,) = threshold_in(x.dtype)
            rms = safe_sqrt(jnp.mean(abs_sq(x)))
            return (to_dtype(x / jnp.maximum(1, rms / threshold), g.dtype),)

        return map_leaves(rule, updates)[0], state


class ScaleByParamBlockRMS(GradientTransformation):
    r"""Scale each update leaf by the root mean square of its parameter leaf.

    $u = g \cdot \max\!\left(\sqrt{\operatorname{mean}|\theta|^2},\ s\right)$, with a
    derivative that is finite (zero) for an all-zero parameter.

    Optax: `optax.scale_by_param_block_rms`.

    **Arguments:**

    - `min_scale`: $s$, the smallest scale.
    """

    min_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)

    def __check_init__(self):
        check_hyperparameters("scale_by_param_block_rms", self, min_scale=NONNEGATIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        if params is None:
            raise ValueError("`scale_by_param_block_rms` needs `params` in `update`.")
        min_scale_in = cast_per_dtype(self.min_scale)

        @no_type_check
        def rule(g, p):
            x = upcast(g)
            (min_scale,) = min_scale_in(x.dtype)
            rms = safe_sqrt(jnp.mean(abs_sq(to_dtype(p, x.dtype))))
            return to_dtype(x * jnp.maximum(rms, min_scale), g.dtype), p

        return map_leaves(rule, updates, params, names=("updates", "params"))[0], state


class EmaState(eqx.Module):
    """State of `EMA`: the step count and the moving average."""

    count: Count
    ema: Moments


class EMA(GradientTransformation):
    r"""An exponential moving average of updates, optionally debiased.

    $$
    m_t = \beta m_{t-1} + (1 - \beta)\, g_t, \qquad
    u_t = m_t / (1 - \beta^t) \ \text{(debiased) or } m_t.
    $$

    Optax: `optax.ema`.

    **Arguments:**

    - `decay`: $\beta$, in $[0, 1]$.
    - `debias`: whether to divide by $1 - \beta^t$.
    - `accumulator_dtype`: dtype of $m$; `None` uses each parameter's dtype.
    """

    decay: Float[Array, ""] = eqx.field(converter=as_scalar)
    debias: bool = eqx.field(static=True, default=True)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters("ema", self, decay=UNIT_CLOSED)

    def init(self, params: Params) -> EmaState:
        return EmaState(
            count=_zero_count(),
            ema=zeros_like_params(params, self.accumulator_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: EmaState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmaState]:
        count = safe_increment(state.count)

        @ft.cache
        @no_type_check
        def scalars(dtype):
            (decay,) = cast(dtype, self.decay)
            return decay_weights(decay), bias_correction(decay, count)

        @no_type_check
        def rule(g, m):
            x = upcast(g)
            weights, correction = scalars(x.dtype)
            m_new = moving_average(weights, m, x)
            u = m_new / correction if self.debias else m_new
            return to_dtype(u, g.dtype), to_dtype(m_new, m.dtype)

        updates, m = map_leaves(
            rule, updates, state.ema, names=("updates", "state.ema")
        )
        return updates, EmaState(count=count, ema=m)


scale_by_factored_rms = ScaleByFactoredRMS
clip_by_block_rms = ClipByBlockRMS
scale_by_param_block_rms = ScaleByParamBlockRMS
ema = EMA

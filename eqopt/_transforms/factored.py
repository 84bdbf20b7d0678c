"""Adafactor's blocks: the factored second-moment scaling, block-RMS clipping and
scaling, and the exponential moving average of updates."""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import (
    abs_sq,
    div_sqrt,
    safe_increment,
    safe_sqrt,
)
from .._tree import (
    cast,
    map_leaves,
    map_params,
    to_dtype,
    upcast,
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


scale_by_factored_rms = ScaleByFactoredRMS

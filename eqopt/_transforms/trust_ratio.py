"""Scalings by norms: trust ratios (LARS, LAMB, Fromage), parameter-block norms,
normalisation by the update norm, and distance over gradients (DoG).

Every norm here goes through `safe_sqrt`, whose derivative is finite (zero) at zero, so
hypergradients stay finite when gradients or parameters vanish.
"""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, POSITIVE
from .._custom_types import Moments, Params, Updates
from .._hyperparams import as_scalar
from .._masking import FrozenMask, mask_tree
from .._numerics import abs_sq, safe_sqrt
from .._tree import (
    cast,
    cast_per_dtype,
    global_norm_squared,
    like,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
)
from ..tree_utils._leaves import is_none


@no_type_check
def block_norm(x: Array, min_norm: Array, mean: bool = False) -> Array:
    r"""$\max(\|x\|, n_{\min})$, the root mean square instead of the norm if `mean`.

    Optax's `safe_norm` (`safe_root_mean_squares`): the value is the textbook one; the
    derivative is that of the norm, finite (zero) where the norm is $0$, and zero where
    the bound $n_{\min}$ is taken.
    """
    squares = abs_sq(x)
    norm = safe_sqrt(jnp.mean(squares) if mean else jnp.sum(squares))
    return jnp.where(norm <= min_norm, min_norm, norm)


# ScaleByTrustRatio -----------------------------------------------------------------


class ScaleByTrustRatio(GradientTransformation):
    r"""Scale each parameter block's update by the trust ratio of its norms.

    For each leaf, with $\|\cdot\|$ bounded below by $n_{\min}$,

    $$
    u = g \cdot \begin{cases}
        1 & \|\theta\| = 0 \text{ or } \|g\| = 0 \\
        c\, \|\theta\| / (\|g\| + \varepsilon) & \text{otherwise.}
    \end{cases}
    $$

    Used by [`eqopt.lars`][], [`eqopt.lamb`][] and [`eqopt.fromage`][]. Its state is
    `EmptyState` (Optax: `ScaleByTrustRatioState = EmptyState`).

    Optax: `optax.scale_by_trust_ratio`.

    **Arguments:**

    - `min_norm`: $n_{\min} \ge 0$, the lower bound of both norms.
    - `trust_coefficient`: $c$, a multiplier of the trust ratio.
    - `eps`: $\varepsilon \ge 0$, added to the update norm.

    ??? cite "References"

        You et al., *Large Batch Training of Convolutional Networks*, 2017.
    """

    min_norm: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    trust_coefficient: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_trust_ratio", self, min_norm=NONNEGATIVE, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return scale_by_trust_ratio_where(self, updates, params, None), state


@no_type_check
def scale_by_trust_ratio_where(
    opt: ScaleByTrustRatio,
    updates: Updates,
    params: Params | None,
    mask: FrozenMask | Callable | None,
) -> Updates:
    """The updates of `opt` where `mask` is true; unchanged elsewhere (Optax's `masked`).

    `mask` is a static mask as `eqopt._masking` has it; `None` means everywhere.
    """
    require_params("scale_by_trust_ratio", params)
    scalars = cast_per_dtype(opt.min_norm, opt.trust_coefficient, opt.eps)

    @no_type_check
    def rule(g, p, selected):
        if not selected:
            return g, p, selected
        x = upcast(g)
        min_norm, coefficient, eps = scalars(x.dtype)
        param_norm = block_norm(to_dtype(p, x.dtype), min_norm)
        update_norm = block_norm(x, min_norm)
        zero_norm = (param_norm == 0) | (update_norm == 0)
        denominator = jnp.where(zero_norm, 1, update_norm + eps)  # no 0/0 unused
        ratio = jnp.where(zero_norm, 1, coefficient * param_norm / denominator)
        return to_dtype(x * ratio, g.dtype), p, selected

    names = ("updates", "params", "mask")
    masks = mask_tree(mask, params)
    return map_leaves(rule, updates, params, masks, names=names)[0]


ScaleByTrustRatioState = EmptyState


# Parameter-block norms ------------------------------------------------------------


@no_type_check
def _scale_by_param_block(
    owner: str, updates: Updates, params: Params | None, min_scale: Array, mean: bool
) -> Updates:
    """`g * max(norm or rms of the parameter leaf, min_scale)` for every leaf."""
    require_params(owner, params)
    min_scale_in = cast_per_dtype(min_scale)

    @no_type_check
    def rule(g, p):
        x = upcast(g)
        (low,) = min_scale_in(x.dtype)
        scale = block_norm(to_dtype(p, x.dtype), low, mean)
        return to_dtype(x * scale, g.dtype), p

    return map_leaves(rule, updates, params, names=("updates", "params"))[0]


class ScaleByParamBlockNorm(GradientTransformation):
    r"""Scale each leaf's update by the norm of its parameters:
    $u = g \cdot \max(\|\theta\|, s_{\min})$.

    A block is one leaf of the parameters (a weight vector or matrix).

    Optax: `optax.scale_by_param_block_norm`.

    **Arguments:**

    - `min_scale`: $s_{\min} \ge 0$, the smallest scale.
    """

    min_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)

    def __check_init__(self):
        check_hyperparameters("scale_by_param_block_norm", self, min_scale=NONNEGATIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        owner = "scale_by_param_block_norm"
        return _scale_by_param_block(
            owner, updates, params, self.min_scale, False
        ), state


class ScaleByParamBlockRMS(GradientTransformation):
    r"""Scale each leaf's update by the root mean square of its parameters:
    $u = g \cdot \max(\operatorname{rms}(\theta), s_{\min})$.

    Optax: `optax.scale_by_param_block_rms`.

    **Arguments:**

    - `min_scale`: $s_{\min} \ge 0$, the smallest scale.
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
        owner = "scale_by_param_block_rms"
        return _scale_by_param_block(
            owner, updates, params, self.min_scale, True
        ), state


# Normalisation by the update norm ------------------------------------------------


class NormalizeByUpdateNorm(GradientTransformation):
    r"""Divide all updates by their global norm: $u = g\, s / (\|g\| + \varepsilon)$.

    Optax computes $g / ((\|g\| + \varepsilon) / s)$, and so does this; the norm's
    derivative is finite when all updates vanish.

    Optax: `optax.normalize_by_update_norm`.

    **Arguments:**

    - `scale_factor`: $s$, multiplied into the normalised update (`-1.0` for descent).
    - `eps`: $\varepsilon \ge 0$, added to the norm.
    """

    scale_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)

    def __check_init__(self):
        check_hyperparameters("normalize_by_update_norm", self, eps=NONNEGATIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        norm = safe_sqrt(global_norm_squared(updates))
        eps, scale_factor = like(self.eps, norm), like(self.scale_factor, norm)
        divisor_in = cast_per_dtype((norm + eps) / scale_factor)

        @no_type_check
        def rule(g):
            x = upcast(g)
            (divisor,) = divisor_in(x.dtype)
            return (to_dtype(x / divisor, g.dtype),)

        return map_leaves(rule, updates)[0], state


# Distance over gradients ---------------------------------------------------------


class ScaleByDistanceOverGradientsState(eqx.Module):
    """State of `ScaleByDistanceOverGradients`: per leaf, the largest distance from the
    initial parameters, the sum of squared gradient norms, and the initial parameters."""

    max_dist: Moments
    grad_sum_of_squares: Moments
    init_params: Moments


@no_type_check
def _distance(x: Array, y: Array | None = None) -> Array:
    r"""$\|x - y\|$ (or $\|x\|$), with a finite derivative where it is $0$."""
    difference = x if y is None else x - y
    return safe_sqrt(jnp.sum(abs_sq(difference)))


class ScaleByDistanceOverGradients(GradientTransformation):
    r"""Distance over gradients (layer-wise DoG): a learning-rate-free step size.

    For each leaf, with $\theta_0$ the initial parameters,

    $$
    \begin{aligned}
    r_t &= \max\big(r_{t-1},\ \|\theta_t - \theta_0\|\big), \quad
    r_0 = r_\epsilon (1 + \|\theta_0\|), \qquad
    G_t = G_{t-1} + \|g_t\|^2, \\
    u_t &= s\, \frac{r_t}{\sqrt{G_t + \varepsilon}}\, g_t.
    \end{aligned}
    $$

    `init` computes $r_0$ and $\theta_0$ from the parameters with traceable operations,
    so it also runs from abstract shapes (`jax.eval_shape`). Distances go through a
    square root whose derivative is finite at $0$: at the first step
    $\|\theta_1 - \theta_0\| = 0$, where Optax's hypergradients are NaN.

    Difference from Optax 0.2.8: $G$ is stored with shape `()`, like $r$, where Optax
    stores `jnp.zeros(1)`; Optax's step then has shape `(1,)`, and so has its update of
    a 0-d leaf (here `()`, the leaf's own shape).

    Optax: `optax.scale_by_distance_over_gradients`.

    **Arguments:**

    - `reps_rel`: $r_\epsilon > 0$, the relative size of the first step (`1e-4` for
        models with batch norm, `1e-6` otherwise).
    - `eps`: $\varepsilon \ge 0$, added under the square root.
    - `param_dtype`: the dtype in which the initial parameters are stored.
    - `global_scale`: $s$, a global factor (`-1.0` for descent).

    ??? cite "References"

        Ivgi et al., *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
        Schedule*, ICML 2023.
    """

    reps_rel: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    param_dtype: DTypeLike = eqx.field(static=True, default=jnp.float32)
    global_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_distance_over_gradients",
            self,
            reps_rel=POSITIVE,
            eps=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByDistanceOverGradientsState:
        reps_rel_in = cast_per_dtype(self.reps_rel)

        @no_type_check
        def initial_distance(p):
            x = upcast(p)
            (reps_rel,) = reps_rel_in(x.dtype)
            return to_dtype(reps_rel * (1 + _distance(x)), p.dtype)

        @no_type_check
        def per_leaf(fn):
            return jax.tree.map(
                lambda p: fn(p) if eqx.is_inexact_array(p) else None, params
            )

        return ScaleByDistanceOverGradientsState(
            max_dist=per_leaf(initial_distance),
            grad_sum_of_squares=per_leaf(lambda p: jnp.zeros(())),
            # A copy, not the parameter itself: parameters and state can be donated.
            init_params=per_leaf(lambda p: jnp.array(p, self.param_dtype, copy=True)),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByDistanceOverGradientsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByDistanceOverGradientsState]:
        require_params("scale_by_distance_over_gradients", params)

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            return cast(dtype, self.eps, self.global_scale)

        @no_type_check
        def rule(g, p, p0, scalars_in):
            max_dist, sum_of_squares = scalars_in
            x = upcast(g)
            eps, global_scale = scalars(x.dtype)
            dtype = x.dtype
            distance = _distance(to_dtype(p, dtype), to_dtype(p0, dtype))
            r = jnp.maximum(to_dtype(max_dist, dtype), distance)
            total = to_dtype(sum_of_squares, dtype) + jnp.sum(abs_sq(x))
            step = global_scale * r / safe_sqrt(total + eps)
            scalars_out = (
                to_dtype(r, max_dist.dtype),
                to_dtype(total, sum_of_squares.dtype),
            )
            return to_dtype(step * x, g.dtype), p, p0, scalars_out

        # `max_dist` and `grad_sum_of_squares` hold one scalar per leaf, not one value
        # per element: they travel as pairs at the leaves' positions.
        treedef = jax.tree.structure(updates, is_leaf=is_none)
        pairs = _zip(treedef, state.max_dist, state.grad_sum_of_squares)
        names = ("updates", "params", "state.init_params", "state")
        updates, _, _, pairs = map_leaves(
            rule, updates, params, state.init_params, pairs, names=names
        )
        max_dist, sum_of_squares = _unzip(treedef, pairs)
        return updates, ScaleByDistanceOverGradientsState(
            max_dist, sum_of_squares, state.init_params
        )


@no_type_check
def _zip(treedef: Any, a: Any, b: Any) -> Any:
    """One tree of pairs `(a_i, b_i)` at the leaf positions of `treedef`."""
    return treedef.unflatten(
        list(zip(treedef.flatten_up_to(a), treedef.flatten_up_to(b)))
    )


@no_type_check
def _unzip(treedef: Any, pairs: Any) -> tuple[Any, Any]:
    """The inverse of `_zip`."""
    flat = treedef.flatten_up_to(pairs)
    return tuple(treedef.unflatten([pair[i] for pair in flat]) for i in range(2))


scale_by_trust_ratio = ScaleByTrustRatio
scale_by_param_block_norm = ScaleByParamBlockNorm
scale_by_param_block_rms = ScaleByParamBlockRMS
normalize_by_update_norm = NormalizeByUpdateNorm
scale_by_distance_over_gradients = ScaleByDistanceOverGradients

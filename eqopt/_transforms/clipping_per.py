"""Clipping per block, per unit and per example.

Every norm here is computed with `safe_sqrt`, so its derivative is finite (zero) where
the norm is zero, and every ratio divides only by a norm known to be positive.
"""

import math
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from .._base import EmptyState, GradientTransformation
from .._checks import (
    check_hyperparameters,
    check_value,
    Interval,
    NONNEGATIVE,
    POSITIVE,
)
from .._custom_types import Params, Updates
from .._hyperparams import as_scalar
from .._numerics import abs_sq, safe_sqrt
from .._tree import (
    cast_per_dtype,
    compute_dtype,
    global_norm_squared,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
)


# A clipping norm may be infinite (no clipping), as in Optax's examples.
_CLIP_NORM = Interval(0.0, math.inf, closed_high=True)


class ClipByBlockRMS(GradientTransformation):
    r"""Clip each leaf (a weight vector or matrix) to a root mean square of at most $c$.

    $$
    u = g / \max\left(1, \operatorname{rms}(g) / c\right), \qquad
    \operatorname{rms}(g) = \sqrt{\operatorname{mean}|g|^2}.
    $$

    Optax: `optax.clip_by_block_rms`.

    **Arguments:**

    - `threshold`: $c > 0$, the largest root mean square of a leaf.
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
            return (to_dtype(clip_rms(x, threshold), g.dtype),)

        return map_leaves(rule, updates)[0], state


@no_type_check
def clip_rms(x: Array, threshold: Array) -> Array:
    r"""$x / \max(1, \operatorname{rms}(x) / c)$: `x` scaled down to a root mean
    square of at most $c$ = `threshold` (left as it is below)."""
    rms = safe_sqrt(jnp.mean(abs_sq(x)))
    return x / jnp.maximum(1, rms / threshold)


@no_type_check
def _default_unit_axes(x: Array) -> tuple[int, ...] | None:
    """Optax's reduction axes by rank; `None` means the whole array."""
    if jnp.squeeze(x).ndim <= 1:  # scalars and vectors
        return None
    if x.ndim in (2, 3):  # linear layers (in, out), multi-head (in, heads, out)
        return (0,)
    if x.ndim in (4, 5):  # convolution kernels (H, W, in, out), (D, H, W, in, out)
        return tuple(range(x.ndim - 1))
    raise ValueError(
        f"`unitwise_norm` expects an array of rank 1 to 5, got shape {x.shape}: pass "
        "`axis` to choose the reduction axes of other shapes."
    )


def unitwise_norm(
    x: ArrayLike, axis: int | tuple[int, ...] | None = None
) -> Float[Array, "..."]:
    r"""The L2 norm of each unit of `x`, broadcast back to the shape of `x`.

    A unit is a slice of `x` along `axis`. With `axis=None` the axes follow the usual
    layer layouts, as in Optax: the whole array for scalars and vectors (and arrays
    with one non-unit dimension), axis 0 for ranks 2 and 3 (linear layers), all axes
    but the last for ranks 4 and 5 (convolution kernels); other ranks are an error.

    The norm has a finite derivative (zero) where a unit is all zeros.

    Optax: `optax.unitwise_norm` (`optax.transforms.unitwise_norm`).

    **Arguments:**

    - `x`: the array.
    - `axis`: the axis or axes to reduce over; `None` chooses them from the rank.
    """
    x = jnp.asarray(x)
    return jnp.broadcast_to(_unit_norms(x, axis), x.shape)


@no_type_check
def _unit_norms(x: Array, axis: int | tuple[int, ...] | None) -> Array:
    """The norm of each unit of `x`, with the reduced axes kept (of size 1)."""
    axes = _default_unit_axes(x) if axis is None else axis
    return safe_sqrt(jnp.sum(abs_sq(x), axis=axes, keepdims=True))


def unitwise_clip(
    g_norm: ArrayLike,
    max_norm: ArrayLike,
    grad: ArrayLike,
    div_eps: ArrayLike = 1e-6,
) -> Array:
    r"""Rescale each unit of `grad` whose norm is at least `max_norm` to that norm.

    $$
    u = \begin{cases} g & \|g\| < m \\
    g\, m / \max(\|g\|, \epsilon) & \text{otherwise,} \end{cases}
    $$

    where `g_norm` and `max_norm` are given per element (as from
    [`eqopt.transforms.unitwise_norm`][]) and must have the shape of `grad`.

    Optax: `optax.unitwise_clip` (`optax.transforms.unitwise_clip`).

    **Arguments:**

    - `g_norm`: the norm of each unit of `grad`, broadcast to its shape.
    - `max_norm`: the largest norm allowed, with the same shape.
    - `grad`: the gradient.
    - `div_eps`: $\epsilon$, a floor on the norm divided by.
    """
    g_norm, max_norm, grad = (
        jnp.asarray(g_norm),
        jnp.asarray(max_norm),
        jnp.asarray(grad),
    )
    for name, value in (("g_norm", g_norm), ("max_norm", max_norm)):
        if value.shape != grad.shape:
            raise ValueError(
                f"`unitwise_clip`: `{name}` has shape {value.shape} but `grad` has "
                f"shape {grad.shape}; they must be equal."
            )
    clipped = grad * (max_norm / jnp.maximum(g_norm, div_eps))
    return jnp.where(g_norm < max_norm, grad, clipped)


AdaptiveGradClipState = EmptyState
_DIV_EPS = 1e-6  # `unitwise_clip`'s default, as Optax's `adaptive_grad_clip` uses it


class AdaptiveGradClip(GradientTransformation):
    r"""Clip each unit of the updates to a fraction of its parameter's norm (AGC).

    $$
    u = \begin{cases} g & \|g\|_\text{unit} < \lambda \max(\|\theta\|_\text{unit},
    \varepsilon) \\ g\, \lambda \max(\|\theta\|_\text{unit}, \varepsilon) /
    \max(\|g\|_\text{unit}, 10^{-6}) & \text{otherwise,} \end{cases}
    $$

    with the unit-wise norms of [`eqopt.transforms.unitwise_norm`][].

    Optax: `optax.adaptive_grad_clip`.

    **Arguments:**

    - `clipping`: $\lambda \ge 0$, the largest ratio of update norm to parameter norm.
    - `eps`: $\varepsilon \ge 0$, a floor on the parameter norm, so that
        zero-initialised parameters can move.
    - `axis`: the axes of a unit (see [`eqopt.transforms.unitwise_norm`][]); `None` chooses
        them from each leaf's rank.

    ??? cite "References"

        Brock et al., *High-Performance Large-Scale Image Recognition Without
        Normalization*, ICML 2021.
    """

    clipping: Float[Array, ""] = eqx.field(converter=as_scalar)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)
    axis: int | tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters(
            "adaptive_grad_clip", self, clipping=NONNEGATIVE, eps=NONNEGATIVE
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
        require_params("adaptive_grad_clip", params)
        scalars = cast_per_dtype(self.clipping, self.eps)

        @no_type_check
        def rule(g, p):
            x = upcast(g)
            clipping, eps = scalars(x.dtype)
            # `unitwise_clip` as a factor per unit, broadcast in the product only, so
            # that the result keeps the layout of a sharded `g`.
            g_norm = _unit_norms(x, self.axis)
            max_norm = clipping * jnp.maximum(
                _unit_norms(to_dtype(p, x.dtype), self.axis), eps
            )
            factor = jnp.where(
                g_norm < max_norm, 1, max_norm / jnp.maximum(g_norm, _DIV_EPS)
            )
            return to_dtype(x * factor, g.dtype), p

        names = ("updates", "params")
        return map_leaves(rule, updates, params, names=names)[0], state


@no_type_check
def _as_float(x: ArrayLike) -> Array:
    """An array in its compute dtype; integers as the default float."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(jnp.result_type(float))
    return x.astype(compute_dtype(x))


@no_type_check
def _check_batch_axis(owner: str, grads: PyTree) -> list[Array]:
    """The leaves of `grads`, checked to share a leading (batch) axis."""
    leaves = jax.tree.leaves(grads)
    batch = leaves[0].shape[0] if leaves and jnp.ndim(leaves[0]) else None
    if batch is None or any(
        jnp.ndim(g) < 1 or jnp.shape(g)[0] != batch for g in leaves
    ):
        raise ValueError(
            f"Unlike other transformations, `{owner}` expects `grads` to have a batch "
            f"dimension in the 0th axis; got shapes {jax.tree.map(jnp.shape, grads)}."
        )
    return leaves


@no_type_check
def _clip_and_sum(
    leaves: list[Array], l2_norm_clip: Array
) -> tuple[list[Array], Int[Array, ""]]:
    """Clip each example (the leading index across `leaves`) to `l2_norm_clip`, then
    sum over examples; also count the examples clipped."""
    floats = [_as_float(g) for g in leaves]
    norms = safe_sqrt(jax.vmap(global_norm_squared)(floats))
    clip = jnp.asarray(l2_norm_clip).astype(norms.dtype)
    clipped = norms > clip  # also false for a NaN norm, as Optax's `nan_to_num`
    multipliers = jnp.where(clipped, clip / jnp.where(clipped, norms, 1), 1)
    sums = [
        to_dtype(jnp.tensordot(multipliers.astype(x.dtype), x, axes=1), _out(g))
        for g, x in zip(leaves, floats)
    ]
    return sums, jnp.sum(multipliers < 1)


@no_type_check
def _out(g: Array):
    """The dtype of a clipped sum: the gradient's, or the default float for integers."""
    g = jnp.asarray(g)
    return g.dtype if jnp.issubdtype(g.dtype, jnp.inexact) else jnp.result_type(float)


def per_example_global_norm_clip(
    grads: PyTree[ArrayLike], l2_norm_clip: ArrayLike
) -> tuple[PyTree[Array], Int[Array, ""]]:
    r"""Clip each example's gradient to a global norm of at most $C$, then sum.

    $$
    \sum_i g_i \min\left(1, C / \|g_i\|\right)
    $$

    where $g_i$ is the gradient of example $i$ (the leading index of every leaf) and
    $\|g_i\|$ its norm over all leaves. An example whose norm is zero, infinite
    against an infinite $C$, or NaN is kept unscaled (as Optax).

    This acts on per-example gradients, not on a batch's gradient: it is a function,
    not a transformation.

    Optax: `optax.per_example_global_norm_clip`.

    **Arguments:**

    - `grads`: a pytree of per-example gradients, every leaf with the same leading
        (batch) axis.
    - `l2_norm_clip`: $C \ge 0$.

    **Returns:**

    The sum of the clipped per-example gradients (the structure of `grads` without
    the batch axis), and the number of examples that were clipped.

    ??? cite "References"

        Abadi et al., *Deep Learning with Differential Privacy*, CCS 2016.
    """
    check_value(
        "per_example_global_norm_clip", "l2_norm_clip", l2_norm_clip, _CLIP_NORM
    )
    leaves = _check_batch_axis("per_example_global_norm_clip", grads)
    sums, num_clipped = _clip_and_sum(leaves, l2_norm_clip)
    return jax.tree.unflatten(jax.tree.structure(grads), sums), num_clipped


def per_example_layer_norm_clip(
    grads: PyTree[ArrayLike], global_l2_norm_clip: ArrayLike, uniform: bool = True
) -> tuple[PyTree[Array], PyTree[Int[Array, ""]]]:
    r"""Clip each example's gradient leaf by leaf (layer by layer), then sum.

    Each of the $K$ leaves is clipped as by [`eqopt.per_example_global_norm_clip`][]
    on its own, to $C_k = C / \sqrt{K}$ (`uniform`) or $C_k = C \sqrt{D_k / D}$,
    where $D_k$ is the size of one example of leaf $k$ and $D$ their total. Either
    way $\sum_k C_k^2 = C^2$.

    Optax: `optax.per_example_layer_norm_clip`.

    **Arguments:**

    - `grads`: a pytree of per-example gradients, every leaf with the same leading
        (batch) axis.
    - `global_l2_norm_clip`: $C \ge 0$.
    - `uniform`: share $C$ equally among leaves, rather than by their sizes.

    **Returns:**

    The sum of the clipped per-example gradients, and for each leaf the number of
    examples clipped (two pytrees with the structure of `grads`).

    ??? cite "References"

        McMahan et al., *Learning Differentially Private Recurrent Language Models*,
        ICLR 2018.
    """
    owner = "per_example_layer_norm_clip"
    check_value(owner, "global_l2_norm_clip", global_l2_norm_clip, _CLIP_NORM)
    leaves = _check_batch_axis(owner, grads)
    sizes = [jnp.size(g) // jnp.shape(g)[0] for g in leaves]
    if uniform:
        fractions = [1.0 / len(leaves)] * len(leaves)
    else:
        fractions = [size / sum(sizes) for size in sizes]
    sums, counts = [], []
    for g, fraction in zip(leaves, fractions):
        (total,), count = _clip_and_sum([g], global_l2_norm_clip * fraction**0.5)
        sums.append(total)
        counts.append(count)
    treedef = jax.tree.structure(grads)
    return jax.tree.unflatten(treedef, sums), jax.tree.unflatten(treedef, counts)


clip_by_block_rms = ClipByBlockRMS
adaptive_grad_clip = AdaptiveGradClip

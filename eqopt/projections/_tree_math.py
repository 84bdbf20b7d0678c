"""Whole-tree reductions shared by the projections, done in float32 or wider.

Every leaf is first made an array (Optax accepts Python scalars as leaves); the
reductions upcast low-precision leaves so that a norm of bfloat16 parameters is not
itself rounded to bfloat16, and sum leaves of different dtypes without relying on
implicit promotion.
"""

from typing import Any, no_type_check

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Inexact, PyTree

from .._numerics import abs_sq


def promote(*dtypes) -> jnp.dtype:
    """JAX's standard promotion of `dtypes`, also under `jax_numpy_dtype_promotion=strict`.

    Every implicit promotion in this package goes through here, explicitly.
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*dtypes)


def upcast(x: Array) -> Array:
    """`x` in float32 or wider (bfloat16 and float16 are computed in float32)."""
    return x.astype(promote(x.dtype, jnp.float32))


def as_arrays(tree: PyTree[ArrayLike]) -> PyTree[Array]:
    """Each leaf as a JAX array (Python scalars become weakly typed arrays)."""
    return jax.tree.map(jnp.asarray, tree)


def as_float_arrays(tree: PyTree[ArrayLike]) -> PyTree[Inexact[Array, "..."]]:
    """Each leaf as a floating array: integer and bool leaves become default floats."""

    @no_type_check
    def to_float(x):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return x.astype(jnp.result_type(float))

    return jax.tree.map(to_float, tree)


def _add_all(values: list[Array]) -> Inexact[Array, ""]:
    """Sum scalars of possibly different dtypes, promoting explicitly."""
    total = jnp.zeros((), jnp.float32)
    for s in values:
        dtype = promote(total.dtype, s.dtype)
        total = total.astype(dtype) + s.astype(dtype)
    return total


def tree_sum(tree: PyTree[Inexact[Array, "..."]]) -> Inexact[Array, ""]:
    r"""$\sum_i x_i$ over every entry of every leaf."""
    return _add_all([jnp.sum(upcast(x)) for x in jax.tree.leaves(tree)])


def tree_sum_squares(tree: PyTree[Inexact[Array, "..."]]) -> Inexact[Array, ""]:
    r"""$\|x\|_2^2 = \sum_i |x_i|^2$ over every entry of every leaf."""
    return _add_all([jnp.sum(abs_sq(upcast(x))) for x in jax.tree.leaves(tree)])


def tree_vdot(
    x: PyTree[Inexact[Array, "..."]], y: PyTree[Inexact[Array, "..."]]
) -> Inexact[Array, ""]:
    r"""$\langle x, y \rangle = \sum_i \bar x_i y_i$ over every entry of every leaf."""
    return _add_all(
        [
            jnp.vdot(upcast(a), upcast(b), precision=jax.lax.Precision.HIGHEST)
            for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
        ]
    )


def _times(scalar: Array, x: Array) -> Array:
    """`scalar * x` in the wider of the two compute dtypes."""
    dtype = promote(scalar.dtype, upcast(x).dtype)
    return scalar.astype(dtype) * x.astype(dtype)


def tree_scale(scalar: Array, tree: Any) -> Any:
    r"""$s\,x$ leaf by leaf, computed in float32 or wider and cast to each leaf's dtype."""
    return jax.tree.map(lambda x: _times(scalar, x).astype(x.dtype), tree)


def tree_add_scale(x: Any, scalar: Array, y: Any) -> Any:
    r"""$x + s\,y$ leaf by leaf, in float32 or wider, cast to the dtype of $x$."""

    @no_type_check
    def add_scale(a, b):
        sb = _times(scalar, b)
        return (upcast(a).astype(sb.dtype) + sb).astype(a.dtype)

    return jax.tree.map(add_scale, x, y)

"""Reductions of a pytree to one number: sums, extrema, sizes, inner products, norms.

Only array leaves take part: `None`, functions, Python numbers and other non-array
leaves are ignored, so `tree_norm(eqx.filter_grad(loss)(model, x))` is the gradient norm
of an Equinox model. Leaves of different dtypes are combined with JAX's standard
promotion (even under `jax_numpy_dtype_promotion="strict"`), which gives Optax's result.
"""

import functools as ft
import operator
from typing import Any, no_type_check

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Bool, PyTree

from .._numerics import safe_sqrt
from ._leaves import array_leaves, is_array, is_none, standard_fold


@no_type_check
def _vdot(a: Array, b: Array) -> Array:
    """$\\sum_j \\bar a_j b_j$ of two same-shaped arrays, in the highest precision."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if jnp.iscomplexobj(a):
        a = jnp.conj(a)
    # A tensordot over every axis, not `jnp.vdot` (which ravels): no communication for
    # sharded leaves, and it works under explicit sharding.
    mesh = jax.typeof(a).sharding.mesh
    out_sharding = None
    if mesh.axis_names and mesh.are_all_axes_explicit:
        out_sharding = jax.sharding.NamedSharding(mesh, jax.P())
    return jnp.tensordot(
        a, b, a.ndim, precision=jax.lax.Precision.HIGHEST, out_sharding=out_sharding
    )


def tree_vdot(tree_x: PyTree, tree_y: PyTree) -> ArrayLike:
    r"""The inner product of two pytrees: $\langle x, y \rangle = \sum_i \bar x_i^\top y_i$.

    Each leaf's product is computed at `jax.lax.Precision.HIGHEST`; complex leaves of
    `tree_x` are conjugated. Leaves where either tree is not an array are ignored.

    Optax: `optax.tree_utils.tree_vdot`.

    **Arguments:**

    - `tree_x`: the first pytree.
    - `tree_y`: the second pytree, with the structure of `tree_x`.

    **Returns:**

    The inner product, a scalar (`0` if no leaf takes part).
    """
    leaves, treedef = jtu.tree_flatten_with_path(tree_x, is_leaf=is_none)
    others = treedef.flatten_up_to(tree_y)
    products = []
    for (path, x), y in zip(leaves, others):
        if not (is_array(x) and is_array(y)):
            continue
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(
                f"`tree_vdot`: leaves at `{jtu.keystr(path) or '<root>'}` have shapes "
                f"{jnp.shape(x)} in `tree_x` and {jnp.shape(y)} in `tree_y`; they must "
                "be equal."
            )
        products.append(_vdot(x, y))
    return standard_fold(operator.add, products, 0)


def tree_sum(tree: PyTree, associative_reduction: bool = False) -> ArrayLike:
    r"""The sum of all elements of all array leaves: $\sum_i \sum_j x_{ij}$.

    Optax: `optax.tree_utils.tree_sum`.

    **Arguments:**

    - `tree`: the pytree.
    - `associative_reduction`: combine the per-leaf sums as a balanced tree
        (`jax.tree.reduce_associative`) rather than left to right, which can compile
        faster for pytrees with many leaves but may change the last bits.

    **Returns:**

    The sum, a scalar (`0` if the tree has no array leaf).
    """
    sums = [jnp.sum(x) for x in array_leaves(tree)]
    if associative_reduction:
        with jax.numpy_dtype_promotion("standard"):
            return jax.tree.reduce_associative(operator.add, sums, identity=0)
    return standard_fold(operator.add, sums, 0)


@no_type_check
def _extremum(reduce_leaf, combine, initial, tree):
    values = [reduce_leaf(x) for x in array_leaves(tree) if jnp.size(x) > 0]
    return standard_fold(combine, values, initial)


def tree_max(tree: PyTree) -> ArrayLike:
    r"""The largest element of all array leaves: $\max_{i,j} x_{ij}$.

    Optax: `optax.tree_utils.tree_max`.

    **Arguments:**

    - `tree`: the pytree.

    **Returns:**

    The maximum, a scalar; $-\infty$ if no array leaf has an element.
    """
    return _extremum(jnp.max, jnp.maximum, -float("inf"), tree)


def tree_min(tree: PyTree) -> ArrayLike:
    r"""The smallest element of all array leaves: $\min_{i,j} x_{ij}$.

    Optax: `optax.tree_utils.tree_min`.

    **Arguments:**

    - `tree`: the pytree.

    **Returns:**

    The minimum, a scalar; $+\infty$ if no array leaf has an element.
    """
    return _extremum(jnp.min, jnp.minimum, float("inf"), tree)


def tree_size(tree: PyTree) -> int:
    r"""The total number of elements of all array leaves, $\sum_i |x_i|$.

    Optax: `optax.tree_utils.tree_size`.

    **Arguments:**

    - `tree`: the pytree.

    **Returns:**

    The number of elements, a Python `int`. Non-array leaves (including Python
    numbers, which Optax counts as one element each) count for nothing.
    """
    return sum(int(jnp.size(x)) for x in array_leaves(tree))


@no_type_check
def _square(x: Array) -> Array:
    """$|x|^2$ elementwise, real for complex `x`.

    A real `x` is squared directly: `x.imag` (zeros) would cost an array and, eagerly on
    an array with an explicit-axes sharding, fails outside a mesh context."""
    if not jnp.iscomplexobj(x):
        return jnp.square(x)
    return jnp.square(x.real) + jnp.square(x.imag)


def tree_norm(
    tree: PyTree,
    ord: int | str | float | None = None,
    squared: bool = False,
) -> Array:
    r"""The vector norm of a pytree, seen as one long vector of its array leaves.

    $$
    \|x\|_2 = \Big(\sum_{i,j} |x_{ij}|^2\Big)^{1/2}, \qquad
    \|x\|_1 = \sum_{i,j} |x_{ij}|, \qquad
    \|x\|_\infty = \max_{i,j} |x_{ij}|.
    $$

    The 2-norm's square root has derivative $0$ (not $\infty$) at a zero tree, so
    gradients through `tree_norm` of all-zero gradients are finite; the value is
    Optax's.

    Optax: `optax.tree_utils.tree_norm`.

    **Arguments:**

    - `tree`: the pytree.
    - `ord`: the order: `None` or `2`, `1`, or `jnp.inf` (also `"inf"` or
        `"infinity"`).
    - `squared`: return $\|x\|^2$ instead of $\|x\|$.

    **Returns:**

    The norm, a scalar array.

    **Raises:**

    `ValueError` for any other `ord`.
    """
    if ord is None or ord == 2:
        sqnorm = jnp.asarray(tree_sum(jax.tree.map(_square, array_leaves(tree))))
        if squared:
            return jnp.array(sqnorm)
        if jnp.issubdtype(sqnorm.dtype, jnp.inexact):
            return jnp.array(safe_sqrt(sqnorm))
        return jnp.array(jnp.sqrt(sqnorm))
    if ord == 1:
        norm = tree_sum(jax.tree.map(jnp.abs, array_leaves(tree)))
    elif ord == jnp.inf or ord in ("inf", "infinity"):
        norm = tree_max(jax.tree.map(jnp.abs, array_leaves(tree)))
    else:
        raise ValueError(f"Unsupported ord: {ord}")
    return jnp.array(_square(jnp.asarray(norm)) if squared else norm)


@no_type_check
def _is_numeric(x: Any) -> bool:
    """An array, NumPy scalar or Python number: compared numerically."""
    return is_array(x) or isinstance(x, (bool, int, float, complex))


@no_type_check
def _leaves_close(a: Any, b: Any, rtol, atol, equal_nan) -> Bool[ArrayLike, ""]:
    if _is_numeric(a) and _is_numeric(b):
        return jnp.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if _is_numeric(a) or _is_numeric(b):
        return False
    return bool(a is b or a == b)


def tree_allclose(
    a: PyTree,
    b: PyTree,
    rtol: ArrayLike = 1e-05,
    atol: ArrayLike = 1e-08,
    equal_nan: bool = False,
) -> Bool[ArrayLike, ""]:
    r"""Whether two pytrees are close everywhere, as `jnp.allclose` says for arrays.

    $$|a_{ij} - b_{ij}| \le \text{atol} + \text{rtol}\, |b_{ij}| \quad \forall i, j$$

    Numeric leaves (arrays and Python numbers) are compared with `jnp.allclose`. Other
    leaves (`None`, functions, strings) must be equal (`==`), and a numeric leaf never
    matches a non-numeric one; so two Equinox models are close when their arrays are
    close and their activation functions are the same.

    Optax: `optax.tree_utils.tree_allclose`.

    **Arguments:**

    - `a`: the first pytree.
    - `b`: the second pytree, with the structure of `a`.
    - `rtol`: the relative tolerance.
    - `atol`: the absolute tolerance.
    - `equal_nan`: whether NaNs compare equal.

    **Returns:**

    A boolean scalar.
    """
    leaves, treedef = jtu.tree_flatten(a, is_leaf=is_none)
    others = treedef.flatten_up_to(b)
    with jax.numpy_dtype_promotion("standard"):
        results = [
            _leaves_close(x, y, rtol, atol, equal_nan) for x, y in zip(leaves, others)
        ]
    return ft.reduce(operator.and_, results, True)

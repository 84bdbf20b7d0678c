"""Dtypes of pytrees: cast every array leaf, cast like another tree, read the dtype.

Only array leaves are cast or inspected; `None`, functions, Python numbers and other
leaves are left exactly as they are (and play no part in `tree_dtype`).
"""

import functools as ft
from typing import no_type_check

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import DTypeLike, PyTree

from ._leaves import array_leaves, is_array, is_none, map_arrays


def tree_cast(tree: PyTree, dtype: DTypeLike | None) -> PyTree:
    r"""Cast every array leaf to `dtype`: $z_i = \operatorname{cast}(x_i)$.

    Optax: `optax.tree_utils.tree_cast`.

    **Arguments:**

    - `tree`: the pytree.
    - `dtype`: the dtype to cast to; `None` returns `tree` unchanged.

    **Returns:**

    The cast pytree; non-array leaves are kept as they are.
    """
    if dtype is None:
        return tree
    return map_arrays(lambda x: x.astype(dtype), tree)


def tree_cast_like(tree: PyTree, other_tree: PyTree) -> PyTree:
    r"""Cast each array leaf of `tree` to the dtype of the matching leaf of `other_tree`.

    Optax: `optax.tree_utils.tree_cast_like`.

    **Arguments:**

    - `tree`: the pytree to cast.
    - `other_tree`: the reference pytree, with the structure of `tree` (it may hold
        anything below a `None` of `tree`); its leaves may be arrays or anything with a
        `dtype`, such as `jax.ShapeDtypeStruct`.

    **Returns:**

    `tree` with each array leaf cast; a leaf is kept as it is where it is not an array
    or where the reference leaf has no `dtype` (`None`, a function).
    """

    @no_type_check
    def cast(x, other):
        if is_array(x) and hasattr(other, "dtype"):
            return x.astype(other.dtype)
        return x

    return jtu.tree_map(cast, tree, other_tree, is_leaf=is_none)


@no_type_check
def _lower_dtype(dtype1: jnp.dtype, dtype2: jnp.dtype) -> jnp.dtype:
    """The lower of two dtypes, if one promotes to the other."""
    promoted = jnp.promote_types(dtype1, dtype2)
    if promoted == dtype1:
        return dtype2
    if promoted == dtype2:
        return dtype1
    raise ValueError(
        f"Cannot compare dtype of {dtype1=} and {dtype2=}. Neither {dtype1} nor "
        f"{dtype2} can be promoted to the other."
    )


@no_type_check
def _higher_dtype(dtype1: jnp.dtype, dtype2: jnp.dtype) -> jnp.dtype:
    """The higher of two dtypes, if one promotes to the other."""
    return dtype2 if _lower_dtype(dtype1, dtype2) == dtype1 else dtype1


def tree_dtype(tree: PyTree, mixed_dtype_handler: str | None = None) -> DTypeLike:
    r"""The dtype of the array leaves of a pytree.

    With leaf dtypes $d_1, \dots, d_n$ ordered by promotion ($d \le d'$ when
    `jnp.promote_types(d, d') == d'`), the handlers return:

    - `None`: the common dtype, which all leaves must share;
    - `"promote"`: $d_1 \vee \dots \vee d_n$, their promoted dtype;
    - `"highest"` / `"lowest"`: the largest / smallest $d_i$, which must be
        comparable.

    Optax: `optax.tree_utils.tree_dtype`.

    **Arguments:**

    - `tree`: the pytree; only its array leaves are looked at.
    - `mixed_dtype_handler`: `None`, `"promote"`, `"highest"` or `"lowest"`.

    **Returns:**

    The dtype; JAX's default float dtype when `tree` has no array leaf.

    **Raises:**

    `ValueError` when the leaves' dtypes differ and `mixed_dtype_handler=None` (naming
    each offending path), when `"highest"`/`"lowest"` meet incomparable dtypes, or for
    an unknown `mixed_dtype_handler`.
    """
    leaves = array_leaves(tree)
    if not leaves:
        return jnp.asarray([]).dtype
    dtypes = [jnp.asarray(x).dtype for x in leaves]
    if mixed_dtype_handler is None:
        dtype = dtypes[0]
        errors = [
            f"Expected {dtype=} for {jtu.keystr(path) or '<root>'} but got {x.dtype}."
            for path, x in jtu.tree_leaves_with_path(tree)
            if is_array(x) and jnp.asarray(x).dtype != dtype
        ]
        if errors:
            raise ValueError("\n".join(errors))
        return dtype
    # The ordering is JAX's standard promotion lattice, whatever the promotion mode.
    with jax.numpy_dtype_promotion("standard"):
        if mixed_dtype_handler == "promote":
            return ft.reduce(jnp.promote_types, dtypes)
        if mixed_dtype_handler == "highest":
            return ft.reduce(_higher_dtype, dtypes)
        if mixed_dtype_handler == "lowest":
            return ft.reduce(_lower_dtype, dtypes)
    raise ValueError(
        f"Invalid value for {mixed_dtype_handler=}, possible values are: None, "
        '"promote", "highest", "lowest".'
    )

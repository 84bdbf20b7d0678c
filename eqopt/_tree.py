"""Tree helpers that skip `None` and non-array leaves, shared by every transformation.

Gradients from `eqx.filter_grad` hold `None` wherever a model has a non-array leaf (an
activation function, an int, `None`). Every helper here treats such a leaf as "no
gradient": it passes through untouched and its state (also `None`) is left alone.

The helpers called once per leaf or per tree node while tracing are `@no_type_check`:
the public `init`/`update` calling them are checked, and a jaxtyping + beartype wrapper
on every leaf would add milliseconds to every trace. So are the helpers that run each
time an optimiser builds its chain (converters, range checks), and every function
defined inside another function, which the import hook would otherwise wrap anew at
each call of the outer one (`tests/test_conventions.py` checks this).
"""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, DTypeLike, Inexact

from .tree_utils._casting import tree_cast_like
from .tree_utils._constructors import tree_full_like, tree_zeros_like
from .tree_utils._leaves import is_none
from .tree_utils._reductions import tree_norm


@no_type_check
def compute_dtype(x: Array) -> np.dtype:
    """The dtype arithmetic on `x` is done in: its own, but at least float32.

    bfloat16 and float16 leaves are computed in float32, so that hyperparameters such as
    `b2=0.999` are never rounded to low precision (in bfloat16 that is `1.0`).
    """
    dtype = jnp.dtype(x.dtype)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


@no_type_check
def upcast(x: Array) -> Array:
    """`x` in its compute dtype."""
    return to_dtype(x, compute_dtype(x))


@no_type_check
def to_dtype(x: Array, dtype: DTypeLike) -> Array:
    """`x.astype(dtype)`, skipped (it is not free to trace) when `x` has that dtype."""
    return x if x.dtype == dtype else x.astype(dtype)


@no_type_check
def like(value: Any, x: Array) -> Array:
    """A hyperparameter (or any scalar) cast to the dtype of `x`."""
    return jnp.asarray(value).astype(x.dtype)


@no_type_check
def cast(dtype: DTypeLike, *values: Any) -> tuple[Array, ...]:
    """Hyperparameters (or any scalars) as arrays of `dtype`.

    Transformations cast their hyperparameters once per leaf dtype (with
    `functools.cache`, or `cast_per_dtype`), not once per leaf, so that tracing a tree
    of many leaves does not repeat the same scalar arithmetic.
    """
    return tuple(jnp.asarray(v).astype(dtype) for v in values)


@no_type_check
def cast_per_dtype(*values: Any) -> Callable[[DTypeLike], tuple[Array, ...]]:
    """`dtype -> cast(dtype, *values)`, computed once per dtype (a `functools.cache`)."""
    return ft.cache(lambda dtype: cast(dtype, *values))


@no_type_check
def require_params(owner: str, params: Any) -> None:
    """Raise a `ValueError` if a transformation that reads the parameters got none."""
    if params is None:
        raise ValueError(
            f"`{owner}` needs the parameters: call `update(updates, state, params)` "
            "with `params`."
        )


def _paths(tree: Any) -> list[str]:
    leaves, _ = jtu.tree_flatten_with_path(tree, is_leaf=is_none)
    return [jtu.keystr(path) for path, _ in leaves]


def structure_mismatch(names: tuple[str, ...], trees: tuple[Any, ...]) -> ValueError:
    """A `ValueError` naming the first path at which two trees differ."""
    first_name, first = names[0], trees[0]
    first_paths = _paths(first)
    for name, tree in zip(names[1:], trees[1:]):
        paths = _paths(tree)
        for i in range(max(len(first_paths), len(paths))):
            a = first_paths[i] if i < len(first_paths) else "<nothing>"
            b = paths[i] if i < len(paths) else "<nothing>"
            if a != b:
                return ValueError(
                    f"`{first_name}` and `{name}` have different tree structures: the "
                    f"first difference is at leaf {i}, path `{a or '<root>'}` in "
                    f"`{first_name}` but `{b or '<root>'}` in `{name}`. They must "
                    "have the same structure (`None` standing in for a leaf is fine)."
                )
        if jtu.tree_structure(first, is_leaf=is_none) != jtu.tree_structure(
            tree, is_leaf=is_none
        ):
            return ValueError(
                f"`{first_name}` and `{name}` have different tree structures with "
                f"the same leaf paths: {jtu.tree_structure(first, is_leaf=is_none)} "
                f"versus {jtu.tree_structure(tree, is_leaf=is_none)}."
            )
    return ValueError(f"Trees {names} have different structures.")


@no_type_check
def map_leaves(
    fn: Callable[..., tuple[Any, ...]],
    updates: Any,
    *others: Any,
    names: tuple[str, ...] = (),
    check_shapes: bool = True,
) -> tuple[Any, ...]:
    """Apply `fn(g, *o) -> (g', *o')` to every leaf `g` of `updates` that is an array.

    Where `g` is `None` or not an array, `(g, *o)` is returned unchanged: no gradient,
    no update, no change of state. The trees in `others` must have the structure of
    `updates`, except that they may hold anything at its `None` leaves. Errors name the
    path of the first offending leaf: a different structure or shape is a `ValueError`,
    an integer array in `updates` a `TypeError`.

    **Arguments:**

    - `fn`: the per-leaf rule, written like the equation it implements.
    - `updates`: the gradients or updates.
    - `others`: trees of state or parameters to walk alongside.
    - `names`: names of `updates` and `others` for error messages.
    - `check_shapes`: whether the leaves of `others` must have the shapes of those of
        `updates`; `False` for state of other shapes (factored or per-leaf statistics).

    **Returns:**

    One tree per output of `fn`, each with the structure of `updates`.
    """
    flat, treedef = jtu.tree_flatten(updates, is_leaf=is_none)
    try:
        columns = [treedef.flatten_up_to(tree) for tree in others]
    except (ValueError, TypeError) as e:
        names = names or ("updates",) + tuple(f"tree {i}" for i in range(len(others)))
        for name, tree in zip(names[1:], others):
            try:
                treedef.flatten_up_to(tree)
            except (ValueError, TypeError):
                raise structure_mismatch((names[0], name), (updates, tree)) from e
        raise
    _check_leaves(flat, columns if check_shapes else [], updates, names)
    outs = [
        fn(g, *rest) if eqx.is_inexact_array(g) else (g, *rest)
        for g, *rest in zip(flat, *columns)
    ]
    n = 1 + len(others) if not outs else len(outs[0])
    return tuple(treedef.unflatten([out[i] for out in outs]) for i in range(n))


@no_type_check
def _check_leaves(flat, columns, updates, names) -> None:
    """Raise an error naming the path of the first leaf of `updates` that is an integer
    array, or whose shape differs from that of the matching leaf of another tree."""
    first = names[0] if names else "updates"
    for i, g in enumerate(flat):
        if not eqx.is_array(g):
            continue
        if not eqx.is_inexact_array(g):
            raise TypeError(
                f"`{first}` has a {g.dtype} array at path "
                f"`{_paths(updates)[i] or '<root>'}`; "
                "gradients and updates must be floating-point arrays (or `None`, "
                "which `eqx.filter_grad` gives for integer leaves)."
            )
        for j, column in enumerate(columns):
            other = column[i]
            if eqx.is_array(other) and other.shape != g.shape:
                name = names[j + 1] if len(names) > j + 1 else f"tree {j}"
                raise ValueError(
                    f"Shape mismatch at path `{_paths(updates)[i] or '<root>'}`: "
                    f"`{first}` has shape {g.shape} but `{name}` has shape "
                    f"{other.shape}."
                )


def _inexact_only(tree: Any) -> Any:
    """`tree` with `None` at every leaf that is not an inexact array."""
    return jax.tree.map(
        lambda x: x if eqx.is_inexact_array(x) else None, tree, is_leaf=is_none
    )


def zeros_like_params(params: Any, dtype: DTypeLike | None = None) -> Any:
    """Zeros shaped like each inexact-array leaf of `params`; `None` elsewhere."""
    return tree_zeros_like(_inexact_only(params), dtype)


def full_like_params(params: Any, value: Any, dtype: DTypeLike | None = None) -> Any:
    """`value` shaped like each inexact-array leaf of `params`; `None` elsewhere.

    The dtype is `dtype` if given, else the parameter's own.
    """
    # `jnp.asarray` first: a Python float is rounded to float32, then to the leaf dtype.
    return tree_full_like(_inexact_only(params), jnp.asarray(value), dtype)


def cast_like(tree: Any, reference: Any) -> Any:
    """Cast each array leaf of `tree` to the dtype of the matching leaf of `reference`."""
    return tree_cast_like(tree, reference)


def global_norm_squared(updates: Any) -> Inexact[Array, ""]:
    r"""$\sum_i |g_i|^2$ over all inexact-array leaves, in float32 or wider."""
    upcast_leaves = jax.tree.map(upcast, _inexact_only(updates))
    total = tree_norm(upcast_leaves, squared=True)
    if not jnp.issubdtype(total.dtype, jnp.inexact):  # no leaves: the integer 0
        return jnp.zeros((), jnp.float32)
    return total


def map_params(fn: Callable[[Array], Any], params: Any) -> Any:
    """`fn(p)` for each inexact-array leaf `p` of `params`; `None` elsewhere.

    For state whose shapes are not those of the parameters (per-axis or factored
    statistics). `fn` must read only `p.shape` and `p.dtype` (or use `jnp.zeros_like`
    and shape-only functions of `p`), so that `init` runs under `jax.eval_shape`.
    """
    return jax.tree.map(
        lambda p: fn(p) if eqx.is_inexact_array(p) else None, params, is_leaf=is_none
    )


@no_type_check
def float_dtype(params: Any, which: str = "lowest") -> np.dtype:
    """The lowest (or highest) dtype of the floating leaves of `params`, at least
    float32 (the dtype of scalar state: never bfloat16), float32 if there is none.

    Reads only dtypes (so `init` runs on `jax.ShapeDtypeStruct`s), and skips non-array
    and integer leaves (Equinox models), where Optax's `tree.dtype` would fail.
    """
    dtypes = [
        jnp.dtype(x.dtype)
        for x in jax.tree.leaves(params)
        if eqx.is_inexact_array(x) or _is_inexact_struct(x)
    ]
    if not dtypes:
        return jnp.dtype(jnp.float32)
    key = lambda d: jnp.finfo(d).bits  # noqa: E731
    chosen = min(dtypes, key=key) if which == "lowest" else max(dtypes, key=key)
    return compute_dtype(jnp.zeros((), chosen))


@no_type_check
def _is_inexact_struct(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jnp.inexact)

"""What counts as an array leaf, and maps and folds that skip every other leaf.

Every helper of `eqopt.tree_utils` works on Equinox models and on `eqx.filter_grad`
output as they are. A leaf is an *array leaf* when `eqx.is_array` says so (a JAX or
NumPy array, or a NumPy scalar); `None`, Python numbers, functions, strings and any
other object are *skipped*. `None` is always a leaf position, never an empty subtree, so
a tree of gradients with `None` holes lines up with the model it came from.

Private helpers of this sub-package, and functions nested in its public ones, are marked
`@no_type_check`. The jaxtyping import hook would otherwise wrap them with beartype, and
a nested function is wrapped anew each time its parent runs (a few milliseconds a call,
paid in every eager call). The public functions are checked as usual.
"""

from collections.abc import Callable, Iterable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.tree_util as jtu


@no_type_check
def is_none(x: Any) -> bool:
    return x is None


@no_type_check
def is_array(x: Any) -> bool:
    """Whether `x` is an array leaf (`eqx.is_array`)."""
    return eqx.is_array(x)


@no_type_check
def map_arrays(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """`fn(x, *r)` at each leaf where `x` and every `r` are arrays; `x` elsewhere.

    The trees in `rest` must have the structure of `tree`, where a `None` or any other
    leaf of `tree` may stand for a whole subtree of theirs.
    """

    @no_type_check
    def apply(x, *r):
        if is_array(x) and all(is_array(y) for y in r):
            return fn(x, *r)
        return x

    return jax.tree.map(apply, tree, *rest, is_leaf=is_none)


@no_type_check
def construct_arrays(fn: Callable[[Any], Any], tree: Any) -> Any:
    """`fn(x)` at each array leaf `x` of `tree`; `None` at every other leaf."""
    return jax.tree.map(lambda x: fn(x) if is_array(x) else None, tree, is_leaf=is_none)


@no_type_check
def array_leaves(tree: Any) -> list[Any]:
    """The array leaves of `tree`, in `jax.tree.leaves` order."""
    return [x for x in jtu.tree_leaves(tree) if is_array(x)]


@no_type_check
def standard_fold(op: Callable[[Any, Any], Any], values: Iterable[Any], initial: Any):
    """`op(...op(op(initial, v0), v1)..., vn)`, as `jax.tree.reduce` does.

    Leaves of a tree often have different dtypes (bfloat16 weights beside float32 norms),
    so the fold uses JAX's standard promotion even under
    `jax_numpy_dtype_promotion="strict"`: the result is what Optax gives.
    """
    result = initial
    with jax.numpy_dtype_promotion("standard"):
        for v in values:
            result = op(result, v)
    return result

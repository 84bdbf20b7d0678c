"""Projections onto boxes: the non-negative orthant, boxes, hypercubes, l∞ balls."""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree, Shaped

from .._checks import check_value, NONNEGATIVE
from .._custom_types import ScalarLike
from ._tree_math import as_arrays


#: Any pytree of arrays or scalars, each leaf keeping its shape through a projection.
_In = PyTree[Shaped[ArrayLike, "?*shape"], " T"]
_Out = PyTree[Shaped[Array, "?*shape"], " T"]


def _clip(x: Array, lower: ArrayLike, upper: ArrayLike) -> Array:
    """`clip(x, lower, upper)`, with the bounds cast to the dtype of `x`."""
    lower = jnp.asarray(lower).astype(x.dtype)
    upper = jnp.asarray(upper).astype(x.dtype)
    return jnp.clip(x, lower, upper)


def _bound_tree(bound: Any, tree: Any) -> Any:
    """A bound as a tree shaped like `tree`: a single array or scalar is broadcast."""
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)):
        return jax.tree.map(lambda _: bound, tree)
    return bound


def projection_non_negative(tree: _In) -> _Out:
    r"""Projection onto the non-negative orthant.

    $$
    \operatorname*{argmin}_{p} \|x - p\|_2^2 \quad \text{subject to} \quad p \ge 0,
    $$

    that is $p = \max(x, 0)$ entry by entry.

    Optax: `optax.projections.projection_non_negative`.

    **Arguments:**

    - `tree`: the pytree $x$ to project.

    **Returns:**

    The projected pytree, with the structure, shapes and dtypes of `tree`.
    """
    return jax.tree.map(jax.nn.relu, as_arrays(tree))


def projection_box(
    tree: _In,
    lower: PyTree[ArrayLike],
    upper: PyTree[ArrayLike],
) -> _Out:
    r"""Projection onto box constraints.

    $$
    \operatorname*{argmin}_{p} \|x - p\|_2^2 \quad \text{subject to} \quad
    \ell \le p \le u,
    $$

    that is $p = \min(\max(x, \ell), u)$ entry by entry.

    Optax: `optax.projections.projection_box`. Unlike Optax (where only a tree works
    when `tree` has several leaves), a scalar bound applies to every leaf.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `lower`: the lower bound $\ell$: a scalar, or a tree with the structure of
        `tree` whose leaves broadcast against its leaves.
    - `upper`: the upper bound $u$, likewise.

    **Returns:**

    The projected pytree, with the structure, shapes and dtypes of `tree`.
    """
    tree = as_arrays(tree)
    lower = _bound_tree(lower, tree)
    upper = _bound_tree(upper, tree)
    return jax.tree.map(_clip, tree, lower, upper)


def projection_hypercube(tree: _In, scale: PyTree[ArrayLike] = 1) -> _Out:
    r"""Projection onto the hypercube $[0, s]^n$ (the unit hypercube by default).

    $$
    \operatorname*{argmin}_{p} \|x - p\|_2^2 \quad \text{subject to} \quad
    0 \le p \le s.
    $$

    This is [`eqopt.projections.projection_box`][] with `lower=0` and `upper=scale`.

    Optax: `optax.projections.projection_hypercube`.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the side $s$ of the hypercube, a scalar or a tree like `tree`.

    **Returns:**

    The projected pytree, with the structure, shapes and dtypes of `tree`.
    """
    return projection_box(tree, lower=0, upper=scale)


def projection_linf_ball(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the $\ell_\infty$ ball of radius $s$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \|y\|_\infty \le s,
    $$

    that is $y = \min(\max(x, -s), s)$ entry by entry.

    Optax: `optax.projections.projection_linf_ball`.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the radius $s \ge 0$ of the ball.

    **Returns:**

    The projected pytree, with the structure, shapes and dtypes of `tree`.
    """
    check_value("projection_linf_ball", "scale", scale, NONNEGATIVE)
    return projection_box(tree, lower=-jnp.asarray(scale), upper=scale)

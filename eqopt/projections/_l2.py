r"""Projections onto $\ell_2$ spheres and balls."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree, Shaped

from .._checks import check_value, NONNEGATIVE
from .._custom_types import ScalarLike
from ._tree_math import as_float_arrays, tree_scale, tree_sum_squares


_In = PyTree[Shaped[ArrayLike, "?*shape"], " T"]
_Out = PyTree[Shaped[Array, "?*shape"], " T"]


def projection_l2_sphere(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the $\ell_2$ sphere of radius $s$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \|y\|_2 = s, \qquad\text{so}\qquad y = \frac{s}{\|x\|_2}\, x.
    $$

    Optax: `optax.projections.projection_l2_sphere`. At $x = 0$ every point of the
    sphere is a closest point and the formula divides by zero (Optax returns NaN);
    eqopt returns the point whose entries all equal $s / \sqrt{n}$, and its
    derivative there is zero, so values and gradients stay finite.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the radius $s \ge 0$ of the sphere.

    **Returns:**

    The projected pytree, with the structure and shapes of `tree`.
    """
    check_value("projection_l2_sphere", "scale", scale, NONNEGATIVE)
    tree = as_float_arrays(tree)
    nonzero = tree_sum_squares(tree) > 0
    # Double `where`: the zero tree is replaced before the norm, not after.
    safe = jax.tree.map(lambda x: jnp.where(nonzero, x, jnp.ones_like(x)), tree)
    squared_norm = tree_sum_squares(safe)
    factor = jnp.asarray(scale).astype(squared_norm.dtype) / jnp.sqrt(squared_norm)
    return tree_scale(factor, safe)


def projection_l2_ball(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the $\ell_2$ ball of radius $s$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \|y\|_2 \le s, \qquad\text{so}\qquad
    y = \frac{s}{\max(\|x\|_2, s)}\, x.
    $$

    Optax: `optax.projections.projection_l2_ball`. Inside the ball the factor is
    exactly $1$, so the derivative is the identity even at $x = 0$ or $s = 0$, where
    Optax's $s / \sqrt{\max(\|x\|^2, s^2)}$ gives NaN.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the radius $s \ge 0$ of the ball.

    **Returns:**

    The projected pytree, with the structure and shapes of `tree`.
    """
    check_value("projection_l2_ball", "scale", scale, NONNEGATIVE)
    tree = as_float_arrays(tree)
    squared_norm = tree_sum_squares(tree)
    scale = jnp.asarray(scale).astype(squared_norm.dtype)
    inside = squared_norm <= scale**2
    # Double `where`: outside the ball the norm is positive, so the square root and the
    # division are safe; inside, neither is evaluated on the differentiated path.
    safe_squared_norm = jnp.where(inside, jnp.ones_like(squared_norm), squared_norm)
    factor = jnp.where(
        inside, jnp.ones_like(scale), scale / jnp.sqrt(safe_squared_norm)
    )
    return tree_scale(factor, tree)

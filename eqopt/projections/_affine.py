"""Projections onto a vector's span, a hyperplane and a halfspace."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree, Shaped

from .._custom_types import ScalarLike
from ._tree_math import as_float_arrays, tree_add_scale, tree_scale, tree_vdot


_In = PyTree[Shaped[ArrayLike, "?*shape"], " T"]
_Out = PyTree[Shaped[Array, "?*shape"], " T"]


def _coefficient(numerator: Array, a_dot_a: Array) -> Array:
    r"""$\text{numerator} / \langle a, a \rangle$, or $0$ when $a = 0$ (double `where`)."""
    nonzero = a_dot_a > 0
    safe = jnp.where(nonzero, a_dot_a, jnp.ones_like(a_dot_a))
    return jnp.where(nonzero, numerator / safe, jnp.zeros_like(numerator))


def projection_vector(x: _In, a: _In) -> _Out:
    r"""Projection onto the line spanned by a vector.

    $$
    \operatorname{proj}_a x = \frac{\langle x, a \rangle}{\langle a, a \rangle}\, a,
    $$

    where the inner product runs over every entry of every leaf.

    Optax: `optax.projections.projection_vector`. For $a = 0$ the line is the single
    point $0$, which eqopt returns (Optax returns NaN).

    **Arguments:**

    - `x`: the pytree to project.
    - `a`: the pytree spanning the line, with the structure and shapes of `x`.

    **Returns:**

    The projected pytree, with the structure and shapes of `x`.
    """
    x, a = as_float_arrays(x), as_float_arrays(a)
    return tree_scale(_coefficient(tree_vdot(x, a), tree_vdot(a, a)), a)


def _offset(x, a, b):
    r"""$(b - \langle x, a \rangle) / \langle a, a \rangle$, zero for $a = 0$."""
    x_dot_a = tree_vdot(x, a)
    numerator = jnp.asarray(b).astype(x_dot_a.dtype) - x_dot_a
    return _coefficient(numerator, tree_vdot(a, a))


def projection_hyperplane(x: _In, a: _In, b: ScalarLike) -> _Out:
    r"""Projection onto the hyperplane $\{y : \langle a, y \rangle = b\}$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \langle a, y \rangle = b, \qquad\text{so}\qquad
    y = x + \frac{b - \langle a, x \rangle}{\langle a, a \rangle}\, a.
    $$

    Optax: `optax.projections.projection_hyperplane`. For $a = 0$ the set is empty
    (or everything, if $b = 0$); eqopt then returns $x$ (Optax returns NaN).

    **Arguments:**

    - `x`: the pytree to project.
    - `a`: the pytree normal to the hyperplane, with the structure and shapes of `x`.
    - `b`: the scalar offset $b$.

    **Returns:**

    The projected pytree, with the structure and shapes of `x`.
    """
    x, a = as_float_arrays(x), as_float_arrays(a)
    return tree_add_scale(x, _offset(x, a, b), a)


def projection_halfspace(x: _In, a: _In, b: ScalarLike) -> _Out:
    r"""Projection onto the halfspace $\{y : \langle a, y \rangle \le b\}$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \langle a, y \rangle \le b, \qquad\text{so}\qquad
    y = x + \min\!\left(0, \frac{b - \langle a, x \rangle}{\langle a, a \rangle}\right)
    a.
    $$

    Optax: `optax.projections.projection_halfspace`. For $a = 0$ eqopt returns $x$
    (Optax returns NaN).

    **Arguments:**

    - `x`: the pytree to project.
    - `a`: the pytree normal to the halfspace, with the structure and shapes of `x`.
    - `b`: the scalar offset $b$.

    **Returns:**

    The projected pytree, with the structure and shapes of `x`.
    """
    x, a = as_float_arrays(x), as_float_arrays(a)
    offset = _offset(x, a, b)
    return tree_add_scale(x, jnp.minimum(offset, jnp.zeros_like(offset)), a)

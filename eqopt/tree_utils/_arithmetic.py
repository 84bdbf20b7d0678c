"""Leafwise arithmetic on pytrees: sums, differences, products, scaling, clipping.

Each function maps over the array leaves of its first tree. At a leaf where the first
tree or any other tree holds `None` or a non-array (an activation function, a Python
int), the first tree's leaf is returned unchanged: `tree_add(model, grads)` keeps the
model's activation functions where `eqx.filter_grad` gave `None`. Dtypes follow JAX's
promotion rules, exactly as in Optax.
"""

import operator
from collections.abc import Sequence

import jax.numpy as jnp
from jaxtyping import ArrayLike, Bool, PyTree, Shaped

from ._leaves import map_arrays


def tree_add(tree_x: PyTree, tree_y: PyTree, *other_trees: PyTree) -> PyTree:
    r"""Add two (or more) pytrees leaf by leaf.

    $$z_i = x_i + y_i + \sum_k t^{(k)}_i$$

    Optax: `optax.tree_utils.tree_add`.

    **Arguments:**

    - `tree_x`: the first pytree.
    - `tree_y`: the second pytree, with the structure of `tree_x`.
    - `other_trees`: more pytrees to add, with the same structure.

    **Returns:**

    The sum, with the structure of `tree_x`. Where any tree holds `None` or a
    non-array leaf, the leaf of `tree_x` is kept.
    """
    return map_arrays(lambda *leaves: sum(leaves), tree_x, tree_y, *other_trees)


def tree_sub(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    r"""Subtract two pytrees leaf by leaf: $z_i = x_i - y_i$.

    Optax: `optax.tree_utils.tree_sub`.

    **Arguments:**

    - `tree_x`: the first pytree.
    - `tree_y`: the pytree to subtract, with the structure of `tree_x`.

    **Returns:**

    The difference; `tree_x`'s leaf where either leaf is skipped.
    """
    return map_arrays(operator.sub, tree_x, tree_y)


def tree_mul(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    r"""Multiply two pytrees leaf by leaf: $z_i = x_i \odot y_i$.

    Optax: `optax.tree_utils.tree_mul`.

    **Arguments:**

    - `tree_x`: the first pytree.
    - `tree_y`: the second pytree, with the structure of `tree_x`.

    **Returns:**

    The elementwise product; `tree_x`'s leaf where either leaf is skipped.
    """
    return map_arrays(operator.mul, tree_x, tree_y)


def tree_div(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    r"""Divide two pytrees leaf by leaf: $z_i = x_i / y_i$.

    Optax: `optax.tree_utils.tree_div`.

    **Arguments:**

    - `tree_x`: the numerator pytree.
    - `tree_y`: the denominator pytree, with the structure of `tree_x`.

    **Returns:**

    The elementwise quotient; `tree_x`'s leaf where either leaf is skipped.
    """
    return map_arrays(operator.truediv, tree_x, tree_y)


def tree_scale(scalar: Shaped[ArrayLike, ""], tree: PyTree) -> PyTree:
    r"""Multiply every array leaf of a pytree by a scalar: $z_i = \alpha\, x_i$.

    Optax: `optax.tree_utils.tree_scale`.

    **Arguments:**

    - `scalar`: $\alpha$, a Python number or a 0-d array.
    - `tree`: the pytree to scale.

    **Returns:**

    The scaled pytree; skipped leaves are kept as they are.
    """
    return map_arrays(lambda x: scalar * x, tree)


def tree_add_scale(
    tree_x: PyTree, scalar: Shaped[ArrayLike, ""], tree_y: PyTree
) -> PyTree:
    r"""Add a scaled pytree to another: $z_i = x_i + \alpha\, y_i$.

    Optax: `optax.tree_utils.tree_add_scale`.

    **Arguments:**

    - `tree_x`: the pytree to add to.
    - `scalar`: $\alpha$, a Python number or a 0-d array.
    - `tree_y`: the pytree to scale and add, with the structure of `tree_x`.

    **Returns:**

    The pytree $x + \alpha y$; `tree_x`'s leaf where either leaf is skipped (so
    `tree_add_scale(model, -lr, grads)` is a gradient step on an Equinox model).
    """
    scalar = jnp.asarray(scalar)
    return map_arrays(lambda x, y: x + scalar * y, tree_x, tree_y)


def tree_batch_shape(tree: PyTree, shape: Sequence[int] = ()) -> PyTree:
    r"""Add leading batch dimensions to every array leaf by broadcasting.

    A leaf of shape $(d_1, \dots, d_k)$ becomes one of shape
    $(b_1, \dots, b_m, d_1, \dots, d_k)$, each batch entry a copy of the leaf.

    Optax: `optax.tree_utils.tree_batch_shape`.

    **Arguments:**

    - `tree`: the pytree.
    - `shape`: the batch shape $(b_1, \dots, b_m)$ to prepend.

    **Returns:**

    The broadcast pytree; skipped leaves are kept as they are.
    """
    return map_arrays(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def tree_conj(tree: PyTree) -> PyTree:
    r"""The complex conjugate $\bar x_i$ of every array leaf.

    Optax: `optax.tree_utils.tree_conj`.

    **Arguments:**

    - `tree`: the pytree.

    **Returns:**

    The conjugated pytree; skipped leaves are kept as they are.
    """
    return map_arrays(jnp.conj, tree)


def tree_real(tree: PyTree) -> PyTree:
    r"""The real part $\operatorname{Re} x_i$ of every array leaf.

    Optax: `optax.tree_utils.tree_real`.

    **Arguments:**

    - `tree`: the pytree.

    **Returns:**

    The real parts; skipped leaves are kept as they are.
    """
    return map_arrays(jnp.real, tree)


def tree_clip(
    tree: PyTree,
    min_value: ArrayLike | None = None,
    max_value: ArrayLike | None = None,
) -> PyTree:
    r"""Clip every array leaf to $[a, b]$: $z_i = \min(\max(x_i, a), b)$.

    Optax: `optax.tree_utils.tree_clip`.

    **Arguments:**

    - `tree`: the pytree.
    - `min_value`: $a$, or `None` for no lower bound.
    - `max_value`: $b$, or `None` for no upper bound.

    **Returns:**

    The clipped pytree; skipped leaves are kept as they are.
    """
    return map_arrays(lambda x: jnp.clip(x, min_value, max_value), tree)


def tree_where(
    condition: Bool[ArrayLike, "..."], tree_x: PyTree, tree_y: PyTree
) -> PyTree:
    r"""Choose between two pytrees: $z_i = x_i$ where `condition` holds, else $y_i$.

    Optax: `optax.tree_utils.tree_where`.

    **Arguments:**

    - `condition`: a boolean, or a boolean array broadcastable against each leaf.
    - `tree_x`: the values taken where `condition` is true.
    - `tree_y`: the values taken where it is false, with the structure of `tree_x`.

    **Returns:**

    The selected pytree; `tree_x`'s leaf where either leaf is skipped.
    """
    return map_arrays(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)

"""Pytrees of constants shaped like another pytree: zeros, ones, any fill value.

These build optimiser state from parameters. Each array leaf gets a new array of its
shape (and dtype, unless `dtype` is given); every other leaf (`None`, an activation
function, a Python int) becomes `None`, the "no state here" marker of eqopt, so the
state of an Equinox model needs no `eqx.filter`.
"""

import jax.numpy as jnp
from jaxtyping import ArrayLike, DTypeLike, PyTree

from ._leaves import construct_arrays


def tree_zeros_like(tree: PyTree, dtype: DTypeLike | None = None) -> PyTree:
    r"""Zeros shaped like each array leaf: $z_i = 0 \in \mathbb{R}^{\text{shape}(x_i)}$.

    Optax: `optax.tree_utils.tree_zeros_like`.

    **Arguments:**

    - `tree`: the pytree whose shapes (and dtypes) to copy.
    - `dtype`: the dtype of every new leaf; `None` keeps each leaf's own.

    **Returns:**

    A pytree of zeros with the structure of `tree`; `None` at each non-array leaf.
    """
    return construct_arrays(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def tree_ones_like(tree: PyTree, dtype: DTypeLike | None = None) -> PyTree:
    r"""Ones shaped like each array leaf: $z_i = 1 \in \mathbb{R}^{\text{shape}(x_i)}$.

    Optax: `optax.tree_utils.tree_ones_like`.

    **Arguments:**

    - `tree`: the pytree whose shapes (and dtypes) to copy.
    - `dtype`: the dtype of every new leaf; `None` keeps each leaf's own.

    **Returns:**

    A pytree of ones with the structure of `tree`; `None` at each non-array leaf.
    """
    return construct_arrays(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def tree_full_like(
    tree: PyTree, fill_value: ArrayLike, dtype: DTypeLike | None = None
) -> PyTree:
    r"""`fill_value` shaped like each array leaf: $z_i = c \cdot \mathbf{1}$.

    Optax: `optax.tree_utils.tree_full_like`.

    **Arguments:**

    - `tree`: the pytree whose shapes (and dtypes) to copy.
    - `fill_value`: $c$, a scalar (converted to each new leaf's dtype).
    - `dtype`: the dtype of every new leaf; `None` keeps each leaf's own.

    **Returns:**

    A pytree with the structure of `tree`; `None` at each non-array leaf.
    """
    return construct_arrays(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)

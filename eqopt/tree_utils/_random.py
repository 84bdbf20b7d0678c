"""Random pytrees: one PRNG key per array leaf, random leaves of matching shapes.

Only array leaves get a key or a random value; every other leaf (`None`, an activation
function, a Python int) becomes `None`. Keys are handed out in `jax.tree.leaves` order,
so for a pytree of arrays the result is exactly Optax's.
"""

import inspect
from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.random as jr
import jax.tree_util as jtu
from jaxtyping import DTypeLike, PRNGKeyArray, PyTree

from ._leaves import is_array, is_none


def tree_split_key_like(rng_key: PRNGKeyArray, target_tree: PyTree) -> PyTree:
    r"""Split a key into one independent key per array leaf of `target_tree`.

    With $n$ array leaves, $(k_1, \dots, k_n) = \operatorname{split}(k, n)$ and leaf
    $i$ gets $k_i$.

    Optax: `optax.tree_utils.tree_split_key_like`.

    **Arguments:**

    - `rng_key`: the key to split (a typed key or a raw `uint32[2]` key).
    - `target_tree`: the pytree whose structure to match.

    **Returns:**

    A pytree of keys with the structure of `target_tree`; `None` at each non-array leaf.
    """
    leaves, treedef = jtu.tree_flatten(target_tree, is_leaf=is_none)
    positions = [i for i, x in enumerate(leaves) if is_array(x)]
    keys = jr.split(rng_key, len(positions))
    out: list[Any] = [None] * len(leaves)
    for i, key in zip(positions, keys):
        out[i] = key
    return jtu.tree_unflatten(treedef, out)


@no_type_check
def _accepts_out_sharding(sampler: Callable[..., Any]) -> bool:
    try:
        return "out_sharding" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):  # no signature to inspect
        return False


def tree_random_like(
    rng_key: PRNGKeyArray,
    target_tree: PyTree,
    sampler: Callable[..., Any] = jr.normal,
    dtype: DTypeLike | None = None,
) -> PyTree:
    r"""A random pytree shaped like `target_tree`: $z_i \sim \text{sampler}$, independently.

    Each array leaf $x_i$ gets `sampler(k_i, x_i.shape, dtype or x_i.dtype)` with its
    own key $k_i$ from `tree_split_key_like`, and the leaf's sharding (as
    `out_sharding`) where the sampler accepts one.

    Optax: `optax.tree_utils.tree_random_like`.

    **Arguments:**

    - `rng_key`: the key.
    - `target_tree`: the pytree whose shapes (and dtypes) to match.
    - `sampler`: called as `sampler(key, shape, dtype)`, by default
        `jax.random.normal`. Some samplers allow only some dtypes
        (`jax.random.rademacher` wants integers).
    - `dtype`: the dtype of every random leaf; `None` uses each leaf's own.

    **Returns:**

    The random pytree; `None` at each non-array leaf.
    """
    keys = tree_split_key_like(rng_key, target_tree)
    with_sharding = _accepts_out_sharding(sampler)

    @no_type_check
    def sample(leaf, key):
        if not is_array(leaf):
            return None
        leaf_dtype = dtype or leaf.dtype
        if with_sharding:
            sharding = jax.typeof(leaf).sharding
            return sampler(key, leaf.shape, leaf_dtype, out_sharding=sharding)
        return sampler(key, leaf.shape, leaf_dtype)

    return jtu.tree_map(sample, target_tree, keys, is_leaf=is_none)


def tree_unwrap_random_key_data(input_tree: PyTree) -> PyTree:
    r"""Replace every typed PRNG key leaf by its raw data (`jax.random.key_data`).

    Useful to compare or print pytrees that hold keys.

    Optax: `optax.tree_utils.tree_unwrap_random_key_data`.

    **Arguments:**

    - `input_tree`: a pytree of arrays and keys (and anything else).

    **Returns:**

    The pytree with each key array unwrapped; every other leaf is kept as it is.
    """

    @no_type_check
    def unwrap(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return jr.key_data(x)
        return x

    return jtu.tree_map(unwrap, input_tree, is_leaf=is_none)

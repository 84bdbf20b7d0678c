"""`flatten`: run a transformation on one long vector instead of many small leaves."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._base import GradientTransformation
from .._custom_types import OptState, Params, Updates
from .._tree import is_none


@no_type_check
def _groups(tree: Any) -> dict[Any, list[int]]:
    """The indices of the floating-array leaves of `tree`, grouped by dtype (in order of
    first appearance)."""
    groups = {}
    for i, x in enumerate(jtu.tree_leaves(tree, is_leaf=is_none)):
        if eqx.is_inexact_array(x):
            groups.setdefault(jnp.dtype(x.dtype), []).append(i)
    return groups


@no_type_check
def _spec(x: Any) -> Any:
    """The sharding spec in `x`'s type (explicit sharding), or `None` if it has none."""
    spec = getattr(jax.typeof(x).sharding, "spec", ())
    return spec if any(s is not None for s in spec) else None


@no_type_check
def _replicated(x: Any) -> Any:
    """`x`, resharded to be replicated if its type carries an explicit sharding (one
    vector cannot concatenate leaves laid out differently)."""
    if _spec(x) is None:
        return x
    return jax.sharding.reshard(x, jax.typeof(x).sharding.update(spec=jax.P()))


@no_type_check
def _laid_out_like(piece: Any, leaf: Any) -> Any:
    """`piece`, resharded to `leaf`'s explicit sharding, if it has one."""
    if _spec(leaf) is None:
        return piece
    return jax.sharding.reshard(piece, jax.typeof(leaf).sharding)


@no_type_check
def flatten_tree(tree: Any) -> Any:
    """The floating-array leaves of `tree` concatenated into one vector per dtype.

    One dtype (the usual case) gives a single vector, as Optax's `flatten`; several give
    a tuple of vectors, so that no leaf changes dtype. Other leaves (`None`, non-arrays)
    are left out.
    """
    leaves = jtu.tree_leaves(tree, is_leaf=is_none)
    flats = tuple(
        jnp.concatenate([jnp.ravel(_replicated(leaves[i])) for i in indices])
        for indices in _groups(tree).values()
    )
    return flats[0] if len(flats) == 1 else flats


@no_type_check
def unflatten_tree(reference: Any, flat: Any) -> Any:
    """The inverse of `flatten_tree`: `flat` cut into the leaves of `reference`."""
    leaves, treedef = jtu.tree_flatten(reference, is_leaf=is_none)
    groups = _groups(reference)
    flats = (flat,) if len(groups) == 1 else flat
    out = list(leaves)
    for indices, vector in zip(groups.values(), flats):
        sizes = [int(np.size(leaves[i])) for i in indices]
        pieces = jnp.split(vector, np.cumsum(sizes)[:-1])
        for i, piece in zip(indices, pieces):
            out[i] = _laid_out_like(jnp.reshape(piece, jnp.shape(leaves[i])), leaves[i])
    return jtu.tree_unflatten(treedef, out)


class Flatten(GradientTransformation):
    r"""Run `inner` on all parameters at once, concatenated into one vector.

    $u = \mathrm{unflatten}(T(\mathrm{flatten}(g)))$. An elementwise transformation
    gives the same numbers as unflattened; what changes is the cost: one operation on
    a long vector instead of one per leaf, which is faster on many small leaves, at the
    price of a copy of the parameters and gradients. The inner state holds flat
    vectors.

    Leaves that are not floating arrays (`None` gradients, an Equinox model's
    activation functions) are left out of the vector and pass through unchanged.
    Parameters of several dtypes give one vector per dtype (a tuple), where Optax
    would promote them to one dtype.

    Optax: `optax.flatten`.

    **Arguments:**

    - `inner`: the transformation to run on the flattened vector. Its hyperparameters
        stay leaves: `eqx.tree_at(lambda f: f.inner.learning_rate, opt, ...)`.
    """

    inner: GradientTransformation

    def init(self, params: Params) -> OptState:
        return self.inner.init(flatten_tree(params))

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        flat_params = None if params is None else flatten_tree(params)
        flat, state = self.inner.update(
            flatten_tree(updates), state, flat_params, **extra_args
        )
        return unflatten_tree(updates, flat), state


flatten = Flatten

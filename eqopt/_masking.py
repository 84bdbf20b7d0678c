"""Masks: which parameters a transformation applies to.

Optax accepts a mask as a pytree of bools with the structure of the parameters (or a
prefix of it), or as a function `params -> such a pytree`. In eqopt the mask decides
which code runs, so it is a static field, and static fields must be hashable: a pytree
mask is frozen into a `FrozenMask` at construction. Callables are kept as they are.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.tree_util as jtu

from ._tree import is_none


@dataclasses.dataclass(frozen=True)
class FrozenMask:
    """A hashable pytree of Python bools."""

    treedef: Any
    leaves: tuple[bool, ...]

    @property
    def tree(self) -> Any:
        """The mask as the pytree it was given as."""
        return jtu.tree_unflatten(self.treedef, self.leaves)


MaskLike = Any  # a pytree of bools, a callable returning one, or None


def freeze_mask(mask: MaskLike) -> "FrozenMask | Callable | None":
    """Convert a user's mask into a hashable static value."""
    if mask is None or callable(mask) or isinstance(mask, FrozenMask):
        return mask
    leaves, treedef = jtu.tree_flatten(mask)
    try:
        frozen = tuple(bool(leaf) for leaf in leaves)
    except (TypeError, jax.errors.ConcretizationTypeError) as e:
        raise ValueError(
            "A mask must be a pytree of Python bools (or concrete boolean arrays), or "
            "a function returning one; a traced value cannot decide which code runs."
        ) from e
    return FrozenMask(treedef, frozen)


@no_type_check
def mask_tree(mask: "FrozenMask | Callable | None", params: Any) -> Any:
    """The mask as a tree of bools with the structure of `params` (prefixes broadcast).

    `None` means "everything".
    """
    if mask is None:
        return jax.tree.map(lambda _: True, params, is_leaf=is_none)
    tree = mask(params) if callable(mask) else mask.tree
    tree = freeze_mask(tree).tree  # concrete Python bools
    return jax.tree.map(
        lambda m, sub: jax.tree.map(lambda _: m, sub, is_leaf=is_none),
        tree,
        params,
        is_leaf=is_none,
    )

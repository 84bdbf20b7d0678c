"""Masks and labels: which parameters a transformation applies to.

Optax accepts a mask as a pytree of bools with the structure of the parameters (or a
prefix of it), or as a function `params -> such a pytree`; labels (`partition`) the
same, with hashable labels for leaves. In eqopt the mask decides which code runs, so it
is a static field, and static fields must be hashable: a pytree mask is frozen into a
`FrozenMask` (labels into a `FrozenLabels`) at construction. Functions are kept as
they are.

This module is the one place masks and labels are interpreted: `mask_tree` and
`label_tree` turn one into a tree with the full structure of the parameters, raising a
`ValueError` that names the path where a mask or labels tree does not fit.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.tree_util as jtu

from ._tree import is_none, structure_mismatch


@dataclasses.dataclass(frozen=True)
class FrozenMask:
    """A hashable pytree of Python bools."""

    treedef: Any
    leaves: tuple[bool, ...]

    @property
    def tree(self) -> Any:
        """The mask as the pytree it was given as."""
        return jtu.tree_unflatten(self.treedef, self.leaves)


@dataclasses.dataclass(frozen=True)
class FrozenLabels:
    """A hashable pytree of hashable labels."""

    treedef: Any
    leaves: tuple[Any, ...]

    @property
    def tree(self) -> Any:
        """The labels as the pytree they were given as."""
        return jtu.tree_unflatten(self.treedef, self.leaves)


MaskLike = Any  # a pytree of bools, a callable returning one, or None


@no_type_check
def is_mask_function(mask: Any) -> bool:
    """Whether `mask` is a function of the parameters rather than a pytree.

    Optax's rule: a callable whose leaves are all callable. An Equinox model of bools is
    callable (it has `__call__`) but is a pytree mask (optax#913).
    """
    return callable(mask) and all(callable(x) for x in jax.tree.leaves(mask))


@no_type_check
def _concrete_bools(tree: Any, what: str = "A mask") -> FrozenMask:
    leaves, treedef = jtu.tree_flatten(tree)
    try:
        frozen = tuple(bool(leaf) for leaf in leaves)
    except (TypeError, jax.errors.ConcretizationTypeError) as e:
        raise ValueError(
            f"{what} must be a pytree of Python bools (or concrete boolean arrays), or "
            "a function returning one; a traced value cannot decide which code runs."
        ) from e
    return FrozenMask(treedef, frozen)


def freeze_mask(mask: MaskLike) -> "FrozenMask | Callable | None":
    """Convert a user's mask into a hashable static value."""
    if mask is None or isinstance(mask, FrozenMask) or is_mask_function(mask):
        return mask
    return _concrete_bools(mask)


def freeze_labels(labels: Any) -> "FrozenLabels | Callable":
    """Convert a user's labels (a pytree or a function) into a hashable static value."""
    if isinstance(labels, FrozenLabels) or is_mask_function(labels):
        return labels
    leaves, treedef = jtu.tree_flatten(labels)
    for leaf in leaves:
        try:
            hash(leaf)
        except TypeError as e:
            raise ValueError(
                f"Labels must be hashable (strings, say); got {leaf!r}."
            ) from e
    return FrozenLabels(treedef, tuple(leaves))


def _leaf_paths(tree: Any) -> list[tuple]:
    return [path for path, _ in jtu.tree_flatten_with_path(tree, is_leaf=is_none)[0]]


def prefix_mismatch(names: tuple[str, str], prefix: Any, tree: Any) -> ValueError:
    """A `ValueError` naming the first path at which `prefix` is not a prefix of `tree`."""
    prefix_name, name = names
    prefix_paths, paths = _leaf_paths(prefix), _leaf_paths(tree)
    for p in prefix_paths:
        if not any(q[: len(p)] == p for q in paths):
            return ValueError(
                f"`{prefix_name}` does not fit `{name}`: it has an entry at path "
                f"`{jtu.keystr(p) or '<root>'}`, where `{name}` has none. It must have "
                f"the structure of `{name}`, or a prefix of it."
            )
    for q in paths:
        if not any(q[: len(p)] == p for p in prefix_paths):
            return ValueError(
                f"`{prefix_name}` does not fit `{name}`: it says nothing about the leaf "
                f"at path `{jtu.keystr(q) or '<root>'}` of `{name}`. It must have the "
                f"structure of `{name}`, or a prefix of it."
            )
    return structure_mismatch((prefix_name, name), (prefix, tree))


@no_type_check
def broadcast_prefix(prefix: Any, tree: Any, names: tuple[str, str]) -> Any:
    """`prefix`'s leaves repeated over the subtrees of `tree` they stand for.

    The result has the structure of `tree` (`None` counted as a leaf); errors name the
    first path at which `prefix` does not fit.
    """
    try:
        return jax.tree.map(
            lambda x, sub: jax.tree.map(lambda _: x, sub, is_leaf=is_none),
            prefix,
            tree,
            is_leaf=is_none,
        )
    except (ValueError, TypeError) as e:
        raise prefix_mismatch(names, prefix, tree) from e


@no_type_check
def mask_tree(mask: "FrozenMask | Callable | None", params: Any) -> Any:
    """The mask as a tree of bools with the structure of `params` (prefixes broadcast).

    `None` means "everything". A function is called on `params` as they are (an Equinox
    model with its non-array leaves, say).
    """
    if mask is None:
        return jax.tree.map(lambda _: True, params, is_leaf=is_none)
    if isinstance(mask, FrozenMask):
        tree = mask.tree
    else:
        tree = _concrete_bools(mask(params), "A mask function's result").tree
    return broadcast_prefix(tree, params, ("mask", "params"))


@no_type_check
def label_tree(labels: "FrozenLabels | Callable", params: Any) -> Any:
    """The labels as a tree with the structure of `params` (prefixes broadcast)."""
    tree = labels(params) if is_mask_function(labels) else labels.tree
    return broadcast_prefix(tree, params, ("param_labels", "params"))

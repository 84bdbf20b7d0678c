"""Find and replace values by name in optimiser states (and any other pytree).

A *named node* is an `eqx.Module` (every eqopt state, optimiser and Equinox model) or a
`NamedTuple` (every Optax state). Its children are its pytree fields, and the path to a
child is a `NamedTupleKey(class_name, field)`, so a filter can tell apart two `count`s
held by different states of a chain. Dictionaries are searched by key. A key matches a
field of a named node, a key of a dict, or the class name of a named node (which then
matches the whole node). Static fields of a Module are not pytree children and are not
searched.
"""

import dataclasses
import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check, TypeAlias

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import PyTree


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """The key of a field of a named node (a `NamedTuple` or an `eqx.Module`) in a path.

    `tree_get_all_with_path`, `tree_get` and `tree_set` give paths in which each field
    of a named node is a `NamedTupleKey`, so that a `filtering(path, value)` function can
    check `path[-1].tuple_name` to pick the state it means.

    Optax: `optax.tree_utils.NamedTupleKey`.

    **Arguments:**

    - `tuple_name`: the class name of the node (`"ScaleByAdamState"`).
    - `name`: the name of the field (`"count"`).
    """

    tuple_name: str
    name: str

    def __str__(self):
        return f"{self.tuple_name}.{self.name}"


#: A path: `jax.tree_util` key entries (`DictKey`, `SequenceKey`, `GetAttrKey`,
#: `FlattenedIndexKey`), with a `NamedTupleKey` for each field of a named node.
KeyPath: TypeAlias = tuple[Any, ...]
Filtering: TypeAlias = Callable[[KeyPath, Any], bool]


@no_type_check
def _is_named_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


@no_type_check
def _is_named(x: Any) -> bool:
    return _is_named_tuple(x) or isinstance(x, eqx.Module)


@no_type_check
def _one_level(node: Any) -> tuple[list[tuple[Any, Any]], Any]:
    """The children of `node` with their key entries, and its one-level treedef."""
    children, treedef = jtu.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # `node` is a leaf
        return [], None
    return [(path[0], child) for path, child in children], treedef


@no_type_check
def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]] | None:
    """The children of a node with their paths, or `None` for a leaf.

    A named node's fields get `NamedTupleKey`s; a dict's children come in insertion
    order (as Optax lists them); other nodes keep JAX's key entries.
    """
    if isinstance(node, dict):
        return [((*path, jtu.DictKey(k)), v) for k, v in node.items()]
    entries, treedef = _one_level(node)
    if treedef is None:
        return None
    if _is_named(node):
        name = type(node).__name__
        return [((*path, NamedTupleKey(name, e.name)), c) for e, c in entries]
    return [((*path, e), c) for e, c in entries]


@no_type_check
def _leaves_with_path(tree: Any, stop: Callable[[Any], bool], path: KeyPath = ()):
    """`(path, node)` for each leaf of `tree` and each node where `stop` holds.

    Like `jax.tree_util.tree_leaves_with_path`, except that fields of named nodes get
    `NamedTupleKey`s; dictionaries are walked in JAX's (sorted) key order.
    """
    if stop(tree):
        return [(path, tree)]
    if isinstance(tree, dict) or not _is_named(tree):
        entries, treedef = _one_level(tree)
        if treedef is None:
            return [(path, tree)]
        children = [((*path, e), c) for e, c in entries]
    else:
        children = _children(path, tree) or []
    return [
        found
        for child_path, child in children
        for found in _leaves_with_path(child, stop, child_path)
    ]


@no_type_check
def _has_keys(node: Any, keys: tuple[Any, ...]) -> bool:
    """Whether a named node has a field or class name in `keys`, or a dict a key."""
    if _is_named(node):
        fields = [e.name for e, _ in _one_level(node)[0]]
        return any(k in fields or k == type(node).__name__ for k in keys)
    return isinstance(node, dict) and any(k in node for k in keys)


@no_type_check
def _at_key(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
    """The `(path, value)` that `key` names in a node that has it."""
    if _is_named(node):
        if key == type(node).__name__:
            return path, node
        return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)
    return (*path, jtu.DictKey(key)), node[key]


@no_type_check
def _get_all_with_path(tree: Any, key: Any) -> list[tuple[KeyPath, Any]]:
    has_key = ft.partial(_has_keys, keys=(key,))
    nodes = [(p, n) for p, n in _leaves_with_path(tree, has_key) if has_key(n)]
    found = [_at_key(path, node, key) for path, node in nodes]
    for path, node in nodes:  # matches may nest: search below each match, too
        for child_path, child in _children(path, node) or []:
            found += [((*child_path, *p), v) for p, v in _get_all_with_path(child, key)]
    return found


def tree_get_all_with_path(
    tree: PyTree, key: Any, filtering: Filtering | None = None
) -> list[tuple[KeyPath, Any]]:
    r"""All values in a pytree found under a given key, with their paths.

    `key` may be a field of a state (`"count"`, `"mu"`), a dictionary key, or the class
    name of a state (`"ScaleByAdamState"`), and may occur many times (a chain holds
    many states).

    Optax: `optax.tree_utils.tree_get_all_with_path`.

    **Arguments:**

    - `tree`: the pytree to search, such as an optimiser state.
    - `key`: the field, dictionary key or class name to look for.
    - `filtering`: an optional `filtering(path, value) -> bool` that keeps only some of
        the matches; `path` ends with a `NamedTupleKey` for a field of a named node.

    **Returns:**

    A list of `(path, value)` pairs; `jax.tree_util.keystr(path)` prints a path.
    """
    found = _get_all_with_path(tree, key)
    if filtering:
        found = [(path, value) for path, value in found if filtering(path, value)]
    return found


def tree_get(
    tree: PyTree,
    key: Any,
    default: Any | None = None,
    filtering: Filtering | None = None,
) -> Any:
    r"""The one value in a pytree found under a given key.

    `tree_get(state, "count")` is the step count of an Adam state;
    `tree_get(state, "ScaleByAdamState")` is the Adam state itself inside a chain.

    Optax: `optax.tree_utils.tree_get`.

    **Arguments:**

    - `tree`: the pytree to search.
    - `key`: the field, dictionary key or class name to look for.
    - `default`: what to return when nothing matches.
    - `filtering`: an optional `filtering(path, value) -> bool` to choose among
        matches (see `tree_get_all_with_path`).

    **Returns:**

    The value, or `default` when nothing matches.

    **Raises:**

    `KeyError` when more than one value matches.
    """
    found = tree_get_all_with_path(tree, key, filtering=filtering)
    if len(found) > 1:
        raise KeyError(f"Found multiple values for '{key}' in {tree}.")
    if not found:
        return default
    return found[0][1]


@no_type_check
def _key_of(entry: Any) -> Any:
    """The plain key (`str` or `int`) of a key entry."""
    if isinstance(entry, jtu.DictKey):
        if isinstance(entry.key, (str, int)):
            return entry.key
        raise KeyError("Hashable keys not supported")
    if isinstance(entry, jtu.FlattenedIndexKey):
        return entry.key
    if isinstance(entry, (jtu.GetAttrKey, NamedTupleKey)):
        return entry.name
    if isinstance(entry, jtu.SequenceKey):
        return entry.idx
    raise KeyError(f"Tree key '{entry}' of type '{type(entry)}' not valid.")


@no_type_check
def _rebuild(node: Any, children: list[Any]) -> Any:
    """`node` with its children replaced, in the order `_children` gave them."""
    if type(node) is dict:
        return dict(zip(node.keys(), children))
    if isinstance(node, dict):
        by_key = dict(zip(node.keys(), children))
        children = [by_key[_key_of(e)] for e, _ in _one_level(node)[0]]
    return jtu.tree_unflatten(_one_level(node)[1], children)


def tree_set(
    tree: PyTree, filtering: Filtering | None = None, /, **kwargs: Any
) -> PyTree:
    r"""A copy of a pytree with the values found under some keys replaced.

    `tree_set(state, count=jnp.asarray(10))` sets the step count of every state that
    has one; `tree_set(opt, learning_rate=jnp.asarray(3e-4))` changes the learning rate
    of an eqopt optimiser, which is itself a pytree. A class name replaces the whole
    node. Module fields are replaced without running `__init__`, as JAX
    transformations do.

    Optax: `optax.tree_utils.tree_set`.

    **Arguments:**

    - `tree`: the pytree.
    - `filtering`: an optional `filtering(path, value) -> bool`; only matches for which
        it holds are replaced (see `tree_get_all_with_path`).
    - `kwargs`: the keys to look for and their new values.

    **Returns:**

    The new pytree, with the structure of `tree` except where a value was replaced.

    **Raises:**

    `KeyError` when a key has no match (given `filtering`).
    """
    for key in kwargs:
        if not tree_get_all_with_path(tree, key, filtering):
            if filtering:
                raise KeyError(
                    f"Found no values matching '{key}' given the filtering operation "
                    f"in {tree}"
                )
            raise KeyError(f"Found no values matching '{key}' in {tree}")

    @no_type_check
    def accept(path, value):
        return filtering is None or filtering(path, value)

    @no_type_check
    def replace(path: KeyPath, node: Any) -> Any:
        if _is_named(node) and type(node).__name__ in kwargs and accept(path, node):
            return kwargs[type(node).__name__]
        children = _children(path, node)
        if children is None:
            return node
        keyed = _is_named(node) or isinstance(node, dict)
        new = []
        for child_path, child in children:
            key = _key_of(child_path[-1]) if keyed else None
            if keyed and key in kwargs and accept(child_path, child):
                new.append(kwargs[key])
            else:
                new.append(replace(child_path, child))
        return _rebuild(node, new)

    return replace((), tree)

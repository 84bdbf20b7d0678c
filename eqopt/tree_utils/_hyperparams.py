"""Find and change hyperparameters by name, however deep they are in an optimiser.

`tree_set_hyperparams(opt, learning_rate=3e-4)` is Optimisers.jl's `adjust` for eqopt:
it changes every `learning_rate` in `opt` (inside chains, optimisers, wrappers, schedule
Modules...) in one line, converting the new value as the constructor does (a float
becomes an array leaf) and checking its range again. It also reaches the
`state.hyperparams` of `inject_hyperparams`.

A *hyperparameter* is a Module field converted by one of eqopt's hyperparameter
converters (`as_scalar`, `as_hyperparameter`...), or an entry of a dict field marked as
holding hyperparameters by name. Static fields are never searched. Paths are those of
`tree_get_all_with_path`: a Module field is a `NamedTupleKey(class name, field)`.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import PyTree

from ._state_utils import NamedTupleKey


@no_type_check
def hyperparameter_fields(cls: type) -> tuple:
    """`eqopt._hyperparams.hyperparameter_fields`, imported on first use (that module
    imports `eqopt._base`, which imports this package)."""
    from .._hyperparams import hyperparameter_fields

    return hyperparameter_fields(cls)


@no_type_check
def _visit(tree: Any, path: tuple, fn: Callable) -> Any:
    """Rebuild `tree`, replacing each hyperparameter `x` at `path` (named `name`) by
    `fn(path, name, x, convert)`; `convert(new, old)` makes a new value a leaf."""
    if isinstance(tree, eqx.Module):
        marked = {
            n: (convert, d) for n, convert, d in hyperparameter_fields(type(tree))
        }
        changes = {}
        for field in dataclasses.fields(tree):
            if field.metadata.get("static", False) or not hasattr(tree, field.name):
                continue
            value = getattr(tree, field.name)
            key = (*path, NamedTupleKey(type(tree).__name__, field.name))
            if field.name in marked and marked[field.name][1]:
                convert = marked[field.name][0]
                new = {
                    k: fn((*key, jtu.DictKey(k)), k, v, convert)
                    for k, v in value.items()
                }
            elif field.name in marked:
                new = fn(key, field.name, value, marked[field.name][0])
                if new is value:  # a schedule Module's own hyperparameters
                    new = _visit(value, key, fn)
            else:
                new = _visit(value, key, fn)
            unchanged = new is value or (
                isinstance(new, dict) and all(new[k] is value[k] for k in value)
            )
            if not unchanged:  # (by identity: values may be tracers)
                changes[field.name] = new
        return _replace_fields(tree, changes) if changes else tree
    if isinstance(tree, tuple | list):
        new = [_visit(x, (*path, jtu.SequenceKey(i)), fn) for i, x in enumerate(tree)]
        if all(a is b for a, b in zip(new, tree)):
            return tree
        return type(tree)(*new) if hasattr(tree, "_fields") else type(tree)(new)
    if isinstance(tree, dict):
        new = {k: _visit(x, (*path, jtu.DictKey(k)), fn) for k, x in tree.items()}
        return tree if all(new[k] is tree[k] for k in tree) else type(tree)(new)
    return tree


@no_type_check
def _replace_fields(module: eqx.Module, changes: dict[str, Any]) -> eqx.Module:
    """`module` with some fields replaced, without `__init__` (as `eqx.tree_at`), then
    range-checked again by each `__check_init__` of its class."""
    new = object.__new__(type(module))
    for field in dataclasses.fields(module):
        if hasattr(module, field.name):
            value = changes.get(field.name, getattr(module, field.name))
            object.__setattr__(new, field.name, value)
    for cls in type(module).__mro__:
        check = cls.__dict__.get("__check_init__")
        if check is not None:
            check(new)
    return new


def tree_get_hyperparams(
    tree: PyTree, name: str, filtering: Callable[[tuple, Any], bool] | None = None
) -> list[tuple[tuple, Any]]:
    r"""Every hyperparameter called `name` in `tree`, with its path.

    ```python
    opt = eqopt.chain(eqopt.clip(1.0), eqopt.adamw(1e-3))
    eqopt.tree_utils.tree_get_hyperparams(opt, "learning_rate")
    # [((NamedTupleKey('Chain', 'transforms'), SequenceKey(1),
    #    NamedTupleKey('AdamW', 'learning_rate')), Array(0.001))]
    ```

    **Arguments:**

    - `tree`: an optimiser, a state of `inject_hyperparams`, or any pytree holding them.
    - `name`: the hyperparameter's name (`"learning_rate"`, `"b1"`...).
    - `filtering`: an optional `filtering(path, value) -> bool` keeping some matches.

    **Returns:**

    A list of `(path, value)`; `jax.tree_util.keystr(path)` prints a path.
    """
    found = []

    @no_type_check
    def record(path, key, value, convert):
        if key == name and (filtering is None or filtering(path, value)):
            found.append((path, value))
        return value

    _visit(tree, (), record)
    return found


def tree_set_hyperparams(
    tree: PyTree,
    filtering: Callable[[tuple, Any], bool] | None = None,
    /,
    **values: Any,
) -> PyTree:
    r"""`tree` with every hyperparameter named in `values` set, as the constructor would.

    The one-line way to change a hyperparameter wherever it is (Optimisers.jl's
    `adjust`):

    ```python
    opt = eqopt.chain(eqopt.clip_by_global_norm(1.0), eqopt.adamw(1e-3))
    opt = eqopt.tree_utils.tree_set_hyperparams(opt, learning_rate=3e-4)
    ```

    Each new value is converted by the field's converter, so a Python float becomes an
    array leaf (a plain `eqx.tree_at` would store the float itself: static under
    `eqx.filter_jit`, recompiling at each change, with no hypergradient); a schedule is
    accepted where the constructor accepts one. The Module's range checks run again
    (`ValueError` for `b1=1.5`). In the state of `inject_hyperparams`, the new value
    takes the dtype of the one it replaces.

    Unlike `tree_set` (Optax's semantics), only hyperparameters are matched, values
    are converted, and every match is set.

    **Arguments:**

    - `tree`: an optimiser, a state of `inject_hyperparams`, or any pytree holding them.
    - `filtering`: an optional `filtering(path, value) -> bool`: only matches for
        which it holds are set (`lambda p, _: p[-1].tuple_name == "ScaleByAdam"`).
    - `values`: hyperparameter names and their new values.

    **Returns:**

    The new tree, with the structure of `tree` (a new schedule apart).

    **Raises:**

    `KeyError` when a name matches nothing (given `filtering`).
    """
    unmatched = set(values)

    @no_type_check
    def replace(path, key, value, convert):
        if key not in values or (filtering is not None and not filtering(path, value)):
            return value
        unmatched.discard(key)
        return convert(values[key], value)

    new = _visit(tree, (), replace)
    if unmatched:
        raise KeyError(
            f"No hyperparameter named {sorted(unmatched)} in this "
            f"{type(tree).__name__}{' (given the filtering)' if filtering else ''}."
        )
    return new

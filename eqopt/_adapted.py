"""Hyperparameters adapted during training: found by name in a wrapped optimiser, kept
in the state, and substituted into the optimiser at each `update`.

The wrapped optimiser itself is never changed (it is an immutable Module, and its
fields are the starting values); wrappers that adapt a hyperparameter
([`eqopt.HypergradientDescent`][], [`eqopt.ReduceLROnPlateauLR`][]) hold its current
value in their state, where it is read, checkpointed and replaced like any other leaf.
"""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from ._base import GradientTransformation
from .tree_utils._hyperparams import _visit, tree_get_hyperparams


@no_type_check
def locate(
    opt: GradientTransformation, names: tuple[str, ...], owner: str
) -> dict[str, tuple[tuple, Any]]:
    """The path and value of each hyperparameter called one of `names` in `opt`, keyed
    by its name where the name is unique in `opt`, else by name and path
    (`"learning_rate.transforms['head'].learning_rate"`)."""
    located = {}
    for name in names:
        matches = tree_get_hyperparams(opt, name)
        if not matches:
            raise ValueError(
                f"`{owner}`: the wrapped {type(opt).__name__} has no hyperparameter "
                f"named {name!r}."
            )
        for path, value in matches:
            if not (eqx.is_inexact_array(value) and value.ndim == 0):
                raise TypeError(
                    f"`{owner}` adapts scalar float hyperparameters; "
                    f"{name}{jtu.keystr(path)} is {type(value).__name__} "
                    f"{getattr(value, 'shape', '')}. (A schedule cannot be adapted: "
                    "pass its starting value, or adapt the schedule's own fields.)"
                )
            key = name if len(matches) == 1 else f"{name}{jtu.keystr(path)}"
            located[key] = (path, value)
    return located


@no_type_check
def current_values(located: dict[str, tuple[tuple, Any]]) -> dict:
    """The `located` values, copied (state never aliases the optimiser)."""
    # Strongly typed: the values an `update` returns must have the same types.
    return {k: jnp.array(v, v.dtype) for k, (_, v) in located.items()}


@no_type_check
def substitute(
    opt: GradientTransformation,
    located: dict[str, tuple[tuple, Any]],
    values: dict[str, Any],
) -> GradientTransformation:
    """`opt` with the hyperparameter at each located path replaced by its value, cast
    to the dtype it had (no conversion, no range check: values may be traced)."""
    new = {path: values[k] for k, (path, _) in located.items()}

    def replace(path, key, value, convert):
        if path not in new:
            return value
        return jnp.asarray(new[path], value.dtype)

    return _visit(opt, (), replace)

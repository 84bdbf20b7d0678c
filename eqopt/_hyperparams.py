"""The one way eqopt declares a hyperparameter.

A float hyperparameter is an array leaf, made at construction by a converter:

```python
b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
learning_rate: Float[Array, ""] | AbstractSchedule = eqx.field(converter=as_hyperparameter)
```

so that the optimiser can be jitted as an argument without recompiling, vmapped over,
differentiated and serialised. Range checks on concrete values go through
`eqopt._checks.check_hyperparameters` in `__check_init__`.
"""

import dataclasses
import functools as ft
import warnings
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._base import AbstractSchedule, FunctionSchedule
from ._custom_types import ScalarLike


@no_type_check
def as_scalar(x: ScalarLike) -> Float[Array, ""]:
    """A hyperparameter as a floating 0-d array.

    Python floats stay weakly typed; integers become floats (so they can be
    differentiated); arrays and tracers keep their dtype.
    """
    if isinstance(x, bool | int):
        x = float(x)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


@no_type_check
def as_optional_scalar(x: ScalarLike | None) -> Float[Array, ""] | None:
    """`as_scalar`, keeping `None` (an Optax argument that switches a feature off)."""
    return None if x is None else as_scalar(x)


@no_type_check
def as_hyperparameter(
    x: ScalarLike | AbstractSchedule | Callable,
) -> Float[Array, ""] | AbstractSchedule:
    """A float, an array or a schedule (Optax's `ScalarOrSchedule`).

    Schedule Modules are kept; a plain callable is wrapped in `FunctionSchedule`.
    """
    if isinstance(x, AbstractSchedule):
        return x
    if callable(x):
        return FunctionSchedule(x)
    return as_scalar(x)


@no_type_check
def as_optional_hyperparameter(
    x: ScalarLike | AbstractSchedule | Callable | None,
) -> Float[Array, ""] | AbstractSchedule | None:
    """`as_hyperparameter`, keeping `None`."""
    return None if x is None else as_hyperparameter(x)


@no_type_check
def as_schedule(x: AbstractSchedule | Callable) -> AbstractSchedule:
    """A schedule Module, wrapping a plain callable in `FunctionSchedule`."""
    return x if isinstance(x, AbstractSchedule) else FunctionSchedule(x)


@no_type_check
def is_scheduled(x: object) -> bool:
    """Whether a hyperparameter is a schedule (and so needs a step count in the state)."""
    return isinstance(x, AbstractSchedule)


@no_type_check
def value_at(
    x: Float[Array, ""] | AbstractSchedule, count: Int[Array, ""] | None
) -> Float[Array, ""]:
    """The value of a hyperparameter at step `count`: the schedule's, or the constant."""
    return x(count) if isinstance(x, AbstractSchedule) else jnp.asarray(x)


#: The converters that make a Module field a hyperparameter (`hyperparameter_fields`).
HYPERPARAMETER_CONVERTERS = (
    as_scalar,
    as_optional_scalar,
    as_hyperparameter,
    as_optional_hyperparameter,
)
#: A class attribute: set (to `True`) on composites whose `update` calls
#: `warn_python_number_hyperparameters` on themselves.
CHECKS_OWN_HYPERPARAMETERS = "checks_own_hyperparameters"
#: Field metadata marking a dict whose entries are hyperparameters by name (the
#: `hyperparams` of `inject_hyperparams`); its value is `convert(new, old) -> leaf`.
HYPERPARAMETER_DICT = "eqopt_hyperparameter_dict"


@no_type_check
@ft.cache
def hyperparameter_fields(cls: type) -> tuple[tuple[str, Callable, bool], ...]:
    """`(field name, convert(new, old), is_dict)` for each hyperparameter field of a
    Module class: a field converted by one of `HYPERPARAMETER_CONVERTERS`, or a dict
    field marked with `HYPERPARAMETER_DICT`. Computed once per class."""
    found = []
    for field in dataclasses.fields(cls):
        converter = field.metadata.get("converter")
        if converter in HYPERPARAMETER_CONVERTERS:
            found.append((field.name, _ignore_old(converter), False))
        elif HYPERPARAMETER_DICT in field.metadata:
            found.append((field.name, field.metadata[HYPERPARAMETER_DICT], True))
    return tuple(found)


@no_type_check
def _ignore_old(converter: Callable) -> Callable:
    return lambda new, old: converter(new)


@no_type_check
def is_python_number(x: object) -> bool:
    """A Python `float`/`int`/`bool` (not a NumPy scalar, which is an array leaf)."""
    return isinstance(x, float | int) and not isinstance(x, np.generic)


@no_type_check
def python_number_hyperparameters(
    tree: Any, path: str = "", nested: bool = False
) -> list[tuple[str, str, Any]]:
    """`(path, name, value)` of every hyperparameter in `tree` that is a Python number.

    Walks Modules (their hyperparameter fields, and every other non-static field),
    tuples, lists and dicts. A hyperparameter set as a Python float with a plain
    `eqx.tree_at` is such a number: not an array leaf, so static under
    `eqx.filter_jit` (a recompilation per value, no hypergradient). Below the root,
    Modules that check themselves (`CHECKS_OWN_HYPERPARAMETERS`) are not walked, so
    that each mistake is reported once, by its nearest owner.
    """
    found = []
    if nested and getattr(type(tree), CHECKS_OWN_HYPERPARAMETERS, False):
        return found
    if isinstance(tree, eqx.Module):
        marked = {
            name: is_dict for name, _, is_dict in hyperparameter_fields(type(tree))
        }
        for field in dataclasses.fields(tree):
            if field.metadata.get("static", False):
                continue
            value = getattr(tree, field.name, None)
            where = f"{path}.{field.name}"
            if field.name in marked and marked[field.name]:
                found += [
                    (f"{where}[{k!r}]", k, v)
                    for k, v in value.items()
                    if is_python_number(v)
                ]
            elif field.name in marked and is_python_number(value):
                found.append((where, field.name, value))
            else:
                found += python_number_hyperparameters(value, where, True)
    elif isinstance(tree, tuple | list):
        for i, x in enumerate(tree):
            found += python_number_hyperparameters(x, f"{path}[{i}]", True)
    elif isinstance(tree, dict):
        for k, x in tree.items():
            found += python_number_hyperparameters(x, f"{path}[{k!r}]", True)
    return found


@no_type_check
def is_tracing(updates: Any) -> bool:
    """Whether `updates` are being traced (by `jit`, `vmap`, `grad`...)."""
    leaves = jax.tree.leaves(updates)
    return bool(leaves) and isinstance(leaves[0], jax.core.Tracer)


@no_type_check
def warn_python_number_hyperparameters(updates: Any, **trees: Any) -> None:
    """Warn, while `updates` are traced, about hyperparameters that are Python numbers.

    Called by the `update` of composite transformations (chains, optimisers, wrappers:
    those with a true class attribute `checks_own_hyperparameters`) with themselves
    (and the state, for hyperparameters kept there), so that the plain
    `eqx.tree_at(lambda o: o.learning_rate, opt, 0.01)` mistake is loud: under
    `eqx.filter_jit` such a number is static, so every new value recompiles the step
    and `eqx.filter_grad` gives it no hypergradient. The walk runs once per trace (not
    in the compiled step); eager calls, where a Python number does no harm, skip it.
    """
    if not is_tracing(updates):
        return
    for root, tree in trees.items():
        for where, name, value in python_number_hyperparameters(tree, root):
            warnings.warn(
                f"The hyperparameter `{where}` is a Python {type(value).__name__} "
                f"({value!r}), not an array leaf: under `eqx.filter_jit` it is static, "
                "so each new value recompiles the step, and `eqx.filter_grad` gives it "
                "no hypergradient. Set hyperparameters with "
                f"`eqopt.tree_utils.tree_set_hyperparams(..., {name}=...)`"
                ", which converts the value as the constructor does, or pass an array "
                f"(`jnp.asarray({value!r})`).",
                stacklevel=3,
            )

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

from collections.abc import Callable
from typing import no_type_check

import jax.numpy as jnp
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

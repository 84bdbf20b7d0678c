"""Range checks for concrete hyperparameters, shared by every `__check_init__`."""

import dataclasses
import math
from typing import Any, no_type_check

import jax
import numpy as np


@no_type_check
@dataclasses.dataclass(frozen=True)
class Interval:
    """An interval of allowed values, printed in the usual notation (`[0, 1)`)."""

    low: float
    high: float
    closed_low: bool = True
    closed_high: bool = False

    def contains(self, x: np.ndarray) -> bool:
        above = x >= self.low if self.closed_low else x > self.low
        below = x <= self.high if self.closed_high else x < self.high
        return bool(np.all(above & below))

    def __str__(self) -> str:
        def show(v):
            return "inf" if math.isinf(v) else f"{v:g}"

        left = "[" if self.closed_low else "("
        right = "]" if self.closed_high else ")"
        return f"{left}{show(self.low)}, {show(self.high)}{right}"


NONNEGATIVE = Interval(0.0, math.inf)
POSITIVE = Interval(0.0, math.inf, closed_low=False)
UNIT = Interval(0.0, 1.0)  # decay rates such as `b1`, `b2`: [0, 1)
UNIT_CLOSED = Interval(0.0, 1.0, closed_high=True)


@no_type_check
def _concrete(value) -> np.ndarray | None:
    """The value as a NumPy array, or `None` when it cannot be inspected now."""
    if value is None or isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError):  # a schedule Module, a callable...
        return None


@no_type_check
def is_known_zero(value) -> bool:
    """Whether `value` is concretely zero (not traced): a closed-over hyperparameter of
    0 lets a transformation skip its work, as Optax skips for a Python `0.0`."""
    x = _concrete(value)
    return x is not None and x.ndim == 0 and x == 0


@no_type_check
def _show(x: np.ndarray) -> str:
    return str(x)  # NumPy prints the shortest repr of the value in its own dtype


@no_type_check
def check_hyperparameters(owner: str, module, **intervals: Interval) -> None:
    """Raise `ValueError` for each concrete field of `module` outside its interval.

    **Arguments:**

    - `owner`: the public name of the factory, used in the message (`"scale_by_adam"`).
    - `module`: the Module whose fields are checked.
    - `intervals`: field name to allowed `Interval`.

    Traced values (inside `jit`, `vmap` or `grad`) and schedules are not checked.
    """
    for name, interval in intervals.items():
        check_value(owner, name, getattr(module, name), interval)


@no_type_check
def check_value(owner: str, name: str, value, interval: Interval) -> None:
    """Raise `ValueError` if the concrete `value` of argument `name` is outside `interval`."""
    x = _concrete(value)
    if x is not None and not interval.contains(x):
        raise ValueError(
            f"`{owner}({name}=...)` must be in {interval}; got {name}={_show(x)}."
        )


@no_type_check
def check_steps(owner: str, **steps: int) -> None:
    """Raise `ValueError` for a negative step count."""
    for name, value in steps.items():
        if value < 0:
            raise ValueError(
                f"`{owner}({name}=...)` must be a non-negative number of steps; "
                f"got {name}={value!r}."
            )


@no_type_check
def require_extra_arg(owner: str, name: str, value: Any, how: str) -> None:
    """Raise a `ValueError` naming the missing extra argument `name` of `update`."""
    if value is None:
        raise ValueError(
            f"`{owner}.update` needs the extra keyword argument `{name}`: call "
            f"`update(updates, state, params, {name}=...)` with {how}."
        )

"""The schedule base class, and the wrapper that makes a plain function a schedule."""

import abc
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, Real


class AbstractSchedule(eqx.Module):
    """A schedule: a callable Module mapping a step count to a value.

    Its float settings are array leaves, so a schedule can be vmapped over, differentiated
    and optimised like any other eqopt hyperparameter. Every argument of eqopt that Optax
    types `ScalarOrSchedule` accepts a float, an array or an `AbstractSchedule`.
    """

    @abc.abstractmethod
    def __call__(self, count: Real[ArrayLike, "*batch"]) -> Float[Array, "*batch"]:
        """The value at step `count` (an int, an array of ints, or a tracer)."""


class FunctionSchedule(AbstractSchedule):
    """Wraps a plain function `count -> value` (an Optax-style schedule) as a Module.

    The function is a static field: it must be hashable, and a new function object means
    a new compilation. Prefer the schedule Modules, whose values are leaves.
    """

    fn: Callable = eqx.field(static=True)

    def __call__(self, count: Real[ArrayLike, "*batch"]) -> Float[Array, "*batch"]:
        return self.fn(count)

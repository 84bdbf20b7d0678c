"""The abstract bases (transformations and schedules), the empty state, two trivial transforms."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, Real

from ._custom_types import OptState, Params, Updates
from ._tree import is_none


class GradientTransformation(eqx.Module):
    """An optimiser, or one step of one: `init` makes the state, `update` uses it.

    Every transformation in eqopt is a final subclass of this abstract Module. Its float
    hyperparameters are array leaves and everything that decides structure is a static
    field, so the transformation itself can be passed through `jax.jit`, batched with
    `jax.vmap`, differentiated with `eqx.filter_grad` and serialised.

    (It keeps Optax's name, `GradientTransformation`, rather than `Abstract...`, so that
    code written against Optax's type keeps working.)
    """

    @abc.abstractmethod
    def init(self, params: Params) -> OptState:
        """Make the initial state for `params`.

        **Arguments:**

        - `params`: any pytree, including an Equinox model. Leaves that are not floating
            arrays get no state (`None`).

        **Returns:**

        The state, a Module (or a tuple of Modules for a chain).
        """

    @abc.abstractmethod
    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        """Transform `updates` (gradients, at first) and advance the state.

        **Arguments:**

        - `updates`: a pytree of floating arrays, with `None` where nothing was
            differentiated (as `eqx.filter_grad` gives). `None` leaves stay `None`.
        - `state`: the state from `init` or from the previous `update`.
        - `params`: the current parameters, needed by some transformations (weight
            decay).
        - `extra_args`: extra keyword arguments (for example `value` for line
            searches); transformations that do not use them ignore them.

        **Returns:**

        The transformed updates, with the structure of `updates`, and the new state.
        """


class EmptyState(eqx.Module):
    """The state of a transformation that keeps none.

    Optax names it differently for several transformations; the same names are offered
    here, bound to this class: `ScaleState`, `ClipState`, `ClipByGlobalNormState`,
    `AddDecayedWeightsState` (`optax.ScaleState is optax.EmptyState`, and so on).
    """


#: Optax's name for a transformation whose `update` accepts extra keyword arguments.
#: Every eqopt transformation's `update` does (`**extra_args`), so it is the same class.
GradientTransformationExtraArgs = GradientTransformation


def init_empty_state(params: Params) -> EmptyState:
    """The `init` of a stateless transformation: an `EmptyState`, whatever `params`.

    Optax: `optax.init_empty_state`.

    **Arguments:**

    - `params`: any pytree (unused).

    **Returns:**

    `EmptyState()`.
    """
    return EmptyState()


class Identity(GradientTransformation):
    """Leaves updates unchanged. Optax: `optax.identity`."""

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return updates, state


class SetToZero(GradientTransformation):
    """Sets every update to zero (used to freeze parameters). Optax: `optax.set_to_zero`."""

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        zeros = jax.tree.map(
            lambda g: None if g is None else jax.numpy.zeros_like(g),
            updates,
            is_leaf=is_none,
        )
        return zeros, state


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


identity = Identity
set_to_zero = SetToZero

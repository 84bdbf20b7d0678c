"""Scaling by a constant, a learning rate or a schedule."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import AbstractSchedule, EmptyState, GradientTransformation
from .._custom_types import Count, Params, Updates
from .._hyperparams import (
    as_optional_hyperparameter,
    as_scalar,
    as_schedule,
    value_at,
)
from .._numerics import safe_increment
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast


class ScaleByScheduleState(eqx.Module):
    """The step count of a transformation whose hyperparameter follows a schedule."""

    count: Count


@no_type_check
def schedule_state(hyperparameter: Any) -> ScaleByScheduleState | EmptyState:
    """A step counter if `hyperparameter` is a schedule, else no state."""
    if isinstance(hyperparameter, AbstractSchedule):
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
    return EmptyState()


@no_type_check
def advance(state: ScaleByScheduleState | EmptyState):
    """The state after one step."""
    if isinstance(state, ScaleByScheduleState):
        return ScaleByScheduleState(count=safe_increment(state.count))
    return state


@no_type_check
def current_value(hyperparameter: Any, state: ScaleByScheduleState | EmptyState):
    """The hyperparameter's value at this step."""
    return value_at(hyperparameter, getattr(state, "count", None))


@no_type_check
def scale_leaves(updates: Updates, step_size: Array) -> Updates:
    """`step_size * g` for every leaf, computed in float32 or wider, cast back."""

    factor = cast_per_dtype(step_size)

    @no_type_check
    def rule(g):
        x = upcast(g)
        (step,) = factor(x.dtype)
        return (to_dtype(step * x, g.dtype),)

    return map_leaves(rule, updates)[0]


class Scale(GradientTransformation):
    r"""Scale updates by a fixed factor: $u \leftarrow \alpha\, g$.

    Optax: `optax.scale`.

    **Arguments:**

    - `step_size`: the factor $\alpha$.
    """

    step_size: Float[Array, ""] = eqx.field(converter=as_scalar)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return scale_leaves(updates, self.step_size), state


class ScaleBySchedule(GradientTransformation):
    r"""Scale updates by a schedule: $u_t \leftarrow \alpha(t)\, g_t$.

    Optax: `optax.scale_by_schedule`.

    **Arguments:**

    - `step_size_fn`: the schedule $\alpha$, a schedule Module or a function of the step.
    """

    step_size_fn: AbstractSchedule = eqx.field(converter=as_schedule)

    def init(self, params: Params) -> ScaleByScheduleState:
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(
        self,
        updates: Updates,
        state: ScaleByScheduleState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByScheduleState]:
        step_size = self.step_size_fn(state.count)
        return scale_leaves(updates, step_size), advance(state)


class ScaleByLearningRate(GradientTransformation):
    r"""Scale updates by the learning rate, flipping the sign: $u \leftarrow -\eta\, g$.

    The sign flip turns a gradient into a descent direction, so this is the last step of
    most optimisers. Optax: `optax.scale_by_learning_rate`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule. `None` leaves updates
        unchanged.
    - `flip_sign`: whether to multiply by $-\eta$ (the default) rather than $\eta$.
    """

    learning_rate: Float[Array, ""] | AbstractSchedule | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    flip_sign: bool = eqx.field(static=True, default=True, kw_only=True)

    def init(self, params: Params) -> ScaleByScheduleState | EmptyState:
        return schedule_state(self.learning_rate)

    def update(
        self,
        updates: Updates,
        state: ScaleByScheduleState | EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByScheduleState | EmptyState]:
        if self.learning_rate is None:
            return updates, state
        learning_rate = current_value(self.learning_rate, state)
        sign = -1 if self.flip_sign else 1
        return scale_leaves(updates, sign * learning_rate), advance(state)


scale = Scale
scale_by_schedule = ScaleBySchedule
scale_by_learning_rate = ScaleByLearningRate

# Optax's names for their (empty) states.
ScaleState = EmptyState

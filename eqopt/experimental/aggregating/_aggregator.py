"""Aggregators (transformations of per-example updates) and `process`, which runs one
between a preprocessing and a postprocessing transformation."""

from collections.abc import Callable, Sequence
from typing import Any, no_type_check, Protocol, runtime_checkable, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ..._base import GradientTransformation
from ..._combine import _check_state_length
from ..._custom_types import OptState, Params, Updates
from ...tree_utils._state_utils import tree_get


#: Per-element updates: each leaf has one or more leading per-element (batch) axes.
PerElementUpdates: TypeAlias = PyTree
#: Aggregated updates: the structure and shapes of the parameters.
AggregatedUpdates: TypeAlias = PyTree
#: An axis, several axes, or none.
MaybeAxis: TypeAlias = int | Sequence[int] | None


@runtime_checkable
class AggregatorUpdateFn(Protocol):
    """The type of an aggregator's `update`: per-element updates (and the state, and
    optionally the parameters) to aggregated updates and the new state.

    Optax: `optax.experimental.aggregating.AggregatorUpdateFn`.
    """

    def __call__(
        self,
        per_elt_updates: PerElementUpdates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[AggregatedUpdates, OptState]:
        """Aggregate `per_elt_updates` into one update direction."""


class _AggregatorMeta(type(eqx.Module)):
    """`isinstance(x, Aggregator)` is also true of every eqopt Module whose
    `is_aggregator` is `True` (its own aggregators, and `process` or
    `add_mean_variance_to_opt` built around one), as Optax's factories return
    `Aggregator`s."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return super().__instancecheck__(instance) or (
            isinstance(instance, GradientTransformation)
            and getattr(instance, "is_aggregator", False) is True
        )


class Aggregator(GradientTransformation, metaclass=_AggregatorMeta):
    """A transformation of **per-element** updates (every leaf with a leading batch
    axis, from `jax.vmap(jax.grad(loss), (None, 0))`) into one aggregated update with
    the shapes of the parameters, made of two functions.

    `Aggregator(init=..., update=...)` wraps plain functions, as Optax's does; the
    functions are static fields (see [`eqopt.stateless`][]). eqopt's own aggregators
    ([`eqopt.experimental.aggregating.average_per_element_updates`][]...) are Modules
    with their hyperparameters as leaves, and are `Aggregator`s too for `isinstance`,
    as is a [`eqopt.experimental.aggregating.process`][] around one.

    Optax: `optax.experimental.aggregating.Aggregator`.

    **Arguments:**

    - `init`: `init(params) -> state`.
    - `update`: `update(per_elt_updates, state, params=None, **extra_args) ->
        (aggregated_updates, state)`.
    """

    init_fn: Callable[[Params], OptState] = eqx.field(static=True)
    update_fn: Callable[..., tuple[Updates, OptState]] = eqx.field(static=True)

    def __init__(
        self,
        init: Callable[[Params], OptState],
        update: Callable[..., tuple[Updates, OptState]],
    ):
        self.init_fn = init
        self.update_fn = update

    def init(self, params: Params) -> OptState:
        return self.init_fn(params)

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        return self.update_fn(updates, state, params, **extra_args)


class Process(GradientTransformation):
    r"""Per-example updates through three stages: a `preprocessor` on the per-example
    updates (clipping each example...), an `aggregator` into one update (averaging,
    accumulating over micro-batches...), and a `postprocessor` on the aggregate (an
    ordinary optimiser).

    When the aggregator's state has a `ready` field (an accumulator waiting for more
    micro-batches), the postprocessor runs only when it is true (a `lax.cond`); until
    then the updates are zeros and the postprocessor's state is kept. With
    `aggregator_has_aux`, the aggregator returns `(updates, aux)` with `aux` a dict,
    which is passed on to the postprocessor as extra keyword arguments.

    It is an [`eqopt.experimental.aggregating.Aggregator`][] (for `isinstance`) when its
    aggregator is one. The state is `(preprocessor state, aggregator state,
    postprocessor state)`, as in Optax.

    Optax: `optax.experimental.aggregating.process`.

    **Arguments:**

    - `preprocessor`: a transformation of per-example updates.
    - `aggregator`: a transformation of per-example updates into one update.
    - `postprocessor`: a transformation of the aggregated update.
    - `aggregator_has_aux`: whether the aggregator returns `(updates, aux)`.
    """

    preprocessor: GradientTransformation
    aggregator: GradientTransformation
    postprocessor: GradientTransformation
    aggregator_has_aux: bool = eqx.field(static=True, default=False)

    @property
    def is_aggregator(self) -> bool:
        """Whether this takes per-element updates (its aggregator is an aggregator)."""
        return isinstance(self.aggregator, Aggregator)

    def init(self, params: Params) -> tuple[OptState, OptState, OptState]:
        return (
            self.preprocessor.init(params),
            self.aggregator.init(params),
            self.postprocessor.init(params),
        )

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, tuple[OptState, OptState, OptState]]:
        _check_state_length("process", state, 3)
        pre_state, aggregate_state, post_state = state
        updates, pre_state = self.preprocessor.update(
            updates, pre_state, params, **extra_args
        )
        aggregated, aggregate_state = self.aggregator.update(
            updates, aggregate_state, params, **extra_args
        )
        if self.aggregator_has_aux:
            aggregated, aux = aggregated
            extra_args = extra_args | aux
        ready = tree_get(aggregate_state, "ready", True)
        if ready is True:  # nothing to wait for
            updates, post_state = self.postprocessor.update(
                aggregated, post_state, params, **extra_args
            )
        else:
            updates, post_state = _when_ready(
                ready, self.postprocessor, aggregated, post_state, params, extra_args
            )
        return updates, (pre_state, aggregate_state, post_state)


@no_type_check
def _when_ready(ready, postprocessor, aggregated, post_state, params, extra_args):
    """`postprocessor.update(...)` if `ready`, else zero updates and the state kept: a
    `lax.cond`, so that the postprocessor's work is skipped while not ready. Non-array
    leaves (of an Equinox model) are closed over rather than passed through."""
    operands = (aggregated, post_state, params, extra_args)
    dynamic, static = eqx.partition(operands, eqx.is_array)

    @no_type_check
    def run(dynamic):
        aggregated, post_state, params, extra_args = eqx.combine(dynamic, static)
        return postprocessor.update(aggregated, post_state, params, **extra_args)

    # Zeros of the postprocessor's output dtypes (which may be wider than the input's).
    shapes, _ = jax.eval_shape(run, dynamic)

    @no_type_check
    def wait(dynamic):
        _, post_state, _, _ = eqx.combine(dynamic, static)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), post_state

    return jax.lax.cond(ready, run, wait, dynamic)


process = Process

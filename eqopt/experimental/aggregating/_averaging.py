"""Averaging per-element updates, and accumulating averages over micro-batches."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool

from ..._base import EmptyState, GradientTransformation
from ..._combine import Chain
from ..._custom_types import Count, Moments, OptState, Params, Updates
from ..._tree import map_leaves, to_dtype, upcast, zeros_like_params


@no_type_check
def as_axes(axis: Any) -> Any:
    """An axis or a sequence of axes (made a tuple, so it can be a static field);
    `None` kept."""
    if axis is None or isinstance(axis, int):
        return axis
    return tuple(axis)


@no_type_check
def check_accumulation_steps(owner: str, accumulation_steps: Any) -> None:
    if not isinstance(accumulation_steps, int) or accumulation_steps < 1:
        raise ValueError(
            f"`{owner}(accumulation_steps=...)` must be an int larger than or equal to "
            f"1; got accumulation_steps={accumulation_steps!r}."
        )


class AveragePerElementUpdates(GradientTransformation):
    r"""Average per-element updates over their per-element axis:
    $u = \frac{1}{B} \sum_{i=1}^{B} g_i$.

    An aggregator ([`eqopt.experimental.aggregating.Aggregator`][]): it takes
    per-element updates and returns updates with the shapes of the parameters. No
    state ([`eqopt.EmptyState`][]).

    Optax: `optax.experimental.aggregating.average_per_element_updates`.

    **Arguments:**

    - `per_elt_axis`: the axis (or axes) to average over.
    """

    per_elt_axis: int | tuple[int, ...] = eqx.field(
        static=True, converter=as_axes, default=0
    )
    is_aggregator = True

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        @no_type_check
        def rule(g):
            return (jnp.mean(g, axis=self.per_elt_axis),)

        return map_leaves(rule, updates)[0], state


class AccumulateAvgUpdatesState(eqx.Module):
    """State of `AccumulateAvgUpdates`: the number of micro-batches seen since the last
    output (`micro_step`), whether the last call gave an output (`ready`), and the
    running average (`avg_grad`)."""

    micro_step: Count
    ready: Bool[Array, ""]
    avg_grad: Moments


class AccumulateAvgUpdates(GradientTransformation):
    r"""Average updates over `accumulation_steps` consecutive calls (micro-batches):
    zeros until the last one, then the average.

    With $k$ the micro-step, $a_k = a_{k-1} + (g_k - a_{k-1}) / k$, and at
    $k = K$ (`accumulation_steps`) the output is $a_K$, the state is reset and `ready`
    is true. With [`eqopt.experimental.aggregating.process`][], the postprocessor (the
    optimiser) then runs once every $K$ calls, on the average over an effective batch
    $K$ times larger. With $K = 1$ this is the identity, with an
    [`eqopt.EmptyState`][] (as Optax returns `identity()`).

    Optax: `optax.experimental.aggregating.accumulate_avg_updates`.

    **Arguments:**

    - `accumulation_steps`: $K \ge 1$, the number of micro-batches.
    """

    accumulation_steps: int = eqx.field(static=True)

    def __check_init__(self):
        check_accumulation_steps("accumulate_avg_updates", self.accumulation_steps)

    def init(self, params: Params) -> AccumulateAvgUpdatesState | EmptyState:
        if self.accumulation_steps == 1:
            return EmptyState()
        return AccumulateAvgUpdatesState(
            micro_step=jnp.zeros([], jnp.int32),
            ready=jnp.asarray(False),
            avg_grad=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: AccumulateAvgUpdatesState | EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, AccumulateAvgUpdatesState | EmptyState]:
        if self.accumulation_steps == 1:
            return updates, state
        micro_step = state.micro_step + 1
        done = micro_step == self.accumulation_steps

        @no_type_check
        def rule(g, a):
            x = upcast(g)
            a_ = to_dtype(a, x.dtype)
            new = a_ + (x - a_) / micro_step.astype(x.dtype)
            zero = jnp.zeros_like(new)
            out = jnp.where(done, new, zero)
            return to_dtype(out, g.dtype), to_dtype(jnp.where(done, zero, new), a.dtype)

        names = ("updates", "state.avg_grad")
        updates, avg_grad = map_leaves(rule, updates, state.avg_grad, names=names)
        new_state = AccumulateAvgUpdatesState(
            micro_step=jnp.where(done, 0, micro_step),
            ready=done,
            avg_grad=avg_grad,
        )
        return updates, new_state


class AverageIncrementallyUpdates(GradientTransformation):
    r"""Average per-element updates (over `per_elt_axis`), then accumulate the
    averages over `accumulation_steps` micro-batches.

    With `per_elt_axis=None` there is no per-element axis: this is
    [`eqopt.experimental.aggregating.accumulate_avg_updates`][] (same state), not an
    aggregator. Otherwise it is an aggregator whose state is that of
    `chain(average_per_element_updates(per_elt_axis),
    accumulate_avg_updates(accumulation_steps))`, as in Optax.

    Optax: `optax.experimental.aggregating.average_incrementally_updates`.

    **Arguments:**

    - `per_elt_axis`: the axis (or axes) to average over, or `None`.
    - `accumulation_steps`: the number of micro-batches to accumulate.
    """

    per_elt_axis: int | tuple[int, ...] | None = eqx.field(
        static=True, converter=as_axes
    )
    accumulation_steps: int = eqx.field(static=True)

    def __check_init__(self):
        check_accumulation_steps(
            "average_incrementally_updates", self.accumulation_steps
        )

    @property
    def is_aggregator(self) -> bool:
        """Whether this takes per-element updates (`per_elt_axis` is not `None`)."""
        return self.per_elt_axis is not None

    def _inner(self) -> GradientTransformation:
        accumulate = AccumulateAvgUpdates(self.accumulation_steps)
        if self.per_elt_axis is None:
            return accumulate
        return Chain((AveragePerElementUpdates(self.per_elt_axis), accumulate))

    def init(self, params: Params) -> OptState:
        return self._inner().init(params)

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        return self._inner().update(updates, state, params, **extra_args)


average_per_element_updates = AveragePerElementUpdates
accumulate_avg_updates = AccumulateAvgUpdates
average_incrementally_updates = AverageIncrementallyUpdates

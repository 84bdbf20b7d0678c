"""Recording measurements of the updates in the state: `snapshot`, `measure_with_ema`,
`monitor`."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float, PyTree

from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, UNIT_CLOSED
from .._custom_types import OptState, Params, Updates
from .._hyperparams import as_scalar
from .._transforms.misc import EMA, EmaState
from .stateless import Stateless


class SnapshotState(eqx.Module):
    """State of [`eqopt.snapshot`][]: `{measure_name: measurement}`, the last measurement.

    Read it with `eqopt.tree.get(state, measure_name)`, as in Optax.

    Optax: `optax.transforms.SnapshotState` (also `optax.SnapshotState`).
    """

    measurement: dict[str, Any]


class Snapshot(GradientTransformation):
    r"""Keep a measurement of the updates in the state, to look at later (debugging a
    chain); the updates pass through unchanged.

    `init` stores `measure(params)` (so the state has its structure from the start);
    each `update` stores `measure(updates)`: in a chain, the updates transformed so far.

    ```python
    opt = eqopt.chain(
        eqopt.sgd(0.1, momentum=0.9),
        eqopt.snapshot("norm_before_clip", eqopt.tree.norm),
        eqopt.clip_by_global_norm(0.05),
    )
    ...
    norm = eqopt.tree.get(state, "norm_before_clip")
    ```

    `measure` is a **static field** (a new function object recompiles; numbers it
    closes over are not leaves): pass a module-level function, not a new `lambda` per
    construction.

    Optax: `optax.snapshot` (also `optax.transforms.snapshot`).

    **Arguments:**

    - `measure_name`: the key of the measurement in the state.
    - `measure`: `updates -> pytree`, the measurement.
    """

    measure_name: str = eqx.field(static=True)
    measure: Callable[[Updates], PyTree] = eqx.field(static=True)

    def init(self, params: Params) -> SnapshotState:
        return SnapshotState({self.measure_name: self.measure(params)})

    def update(
        self,
        updates: Updates,
        state: SnapshotState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, SnapshotState]:
        return updates, SnapshotState({self.measure_name: self.measure(updates)})


snapshot = Snapshot


@no_type_check
def _as_float(x):
    """A measurement leaf as floats: booleans and integers (`norm > threshold`) become
    float32, so that their average is a fraction."""
    if eqx.is_array(x) and not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(jnp.float32)
    return x


class MeasureWithEMA(GradientTransformation):
    r"""An exponential moving average of a measurement of the updates.

    $$
    m_t = \beta\, m_{t-1} + (1 - \beta)\, \mu(u_t), \qquad
    \text{output: } m_t / (1 - \beta^t) \ \text{(debiased), or } m_t.
    $$

    Its output is the average measurement, not updates: use it inside
    [`eqopt.monitor`][], which records it and passes the updates on. Boolean and integer
    measurements are averaged as float32 (a fraction of steps).

    The state is Optax's, `(EmptyState(), EmaState(count, ema))`, except that the
    average of a boolean measurement is float32 from `init` on (Optax starts it as
    booleans and changes its dtype at the first step).

    `measure` is a **static field**; `decay` is a leaf.

    Optax: `optax.measure_with_ema`.

    **Arguments:**

    - `measure`: `updates -> pytree`, the measurement $\mu$.
    - `decay`: $\beta \in [0, 1]$.
    - `debias`: whether to divide by $1 - \beta^t$.
    - `accumulator_dtype`: dtype of the average; `None` uses the measurement's.
    """

    measure: Callable[[Updates], PyTree] = eqx.field(static=True)
    decay: Float[Array, ""] = eqx.field(converter=as_scalar)
    debias: bool = eqx.field(static=True, default=True)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def _ema(self) -> EMA:
        # Built on the fly: the one `decay` leaf is this Module's.
        return EMA(self.decay, self.debias, self.accumulator_dtype)

    def __check_init__(self):
        check_hyperparameters("measure_with_ema", self, decay=UNIT_CLOSED)

    def _measure(self, tree: PyTree) -> PyTree:
        return jax.tree.map(_as_float, self.measure(tree))

    def init(self, params: Params) -> tuple[EmptyState, EmaState]:
        shapes = eqx.filter_eval_shape(self._measure, params)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return EmptyState(), self._ema().init(zeros)

    def update(
        self,
        updates: Updates,
        state: tuple[EmptyState, EmaState],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[PyTree, tuple[EmptyState, EmaState]]:
        average, ema_state = self._ema().update(self._measure(updates), state[1])
        return average, (state[0], ema_state)


measure_with_ema = MeasureWithEMA


class MonitorState(eqx.Module):
    """State of [`eqopt.monitor`][].

    Optax: `optax.transforms.MonitorState` (also `optax.MonitorState`).

    **Fields:**

    - `measurements`: `{name: measurement}`, the last step's (zeros after `init`).
    - `measure_states`: the states of the measures, in the order of their sorted names
        (the order in which JAX flattens a dict; Optax uses the order of `measures`).
    """

    measurements: dict[str, Any]
    measure_states: tuple[OptState, ...]


class _OfUpdates(eqx.Module):
    """`(updates, params) -> measure(updates)`: a plain measure as a `stateless`
    function (a Module, so that two of the same `measure` are equal: no retrace)."""

    measure: Callable[[Updates], PyTree] = eqx.field(static=True)

    def __call__(self, updates: Updates, params: Params | None) -> PyTree:
        return self.measure(updates)


@no_type_check
def _as_measures(measures):
    """Plain functions as `stateless` transformations; transformations kept."""
    return {
        name: m if isinstance(m, GradientTransformation) else Stateless(_OfUpdates(m))
        for name, m in measures.items()
    }


class Monitor(GradientTransformation):
    r"""Record several measurements of the updates, some with state (a moving average),
    in the state; the updates pass through unchanged.

    ```python
    opt = eqopt.chain(
        eqopt.sgd(0.1, momentum=0.9),
        eqopt.monitor({
            "norm_before_clip": eqopt.tree.norm,
            "is_clipped_ema": eqopt.measure_with_ema(is_clipped, decay=0.9),
        }),
        eqopt.clip_by_global_norm(1.0),
    )
    ...
    eqopt.tree.get(state, "is_clipped_ema")
    ```

    Each measure is a transformation whose output (not updates) is the measurement,
    such as [`eqopt.measure_with_ema`][], or a function `updates -> measurement`
    (held as a [`eqopt.stateless`][], a static field). Hyperparameters of
    transformation measures stay leaves (`decay`).

    Unlike Optax, whose `init` leaves `measurements` empty (`{}`) and whose state so
    changes structure at the first step, `init` stores zeros shaped like each
    measurement: the state keeps one structure (for `lax.scan`, checkpoints, no
    retrace).

    Optax: `optax.monitor` (also `optax.transforms.monitor`).

    **Arguments:**

    - `measures`: `{name: transformation or function}`.
    """

    measures: dict[str, GradientTransformation] = eqx.field(converter=_as_measures)

    def _measure_all(
        self, updates: Updates, states: tuple[OptState, ...], params: Any, extra: dict
    ) -> tuple[dict[str, Any], tuple[OptState, ...]]:
        measurements, new_states = {}, []
        for name, state in zip(sorted(self.measures), states):
            measurements[name], new_state = self.measures[name].update(
                updates, state, params, **extra
            )
            new_states.append(new_state)
        return measurements, tuple(new_states)

    def init(self, params: Params) -> MonitorState:
        states = tuple(
            self.measures[name].init(params) for name in sorted(self.measures)
        )
        shapes = eqx.filter_eval_shape(
            lambda p, s: self._measure_all(p, s, p, {})[0], params, states
        )
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return MonitorState(zeros, states)

    def update(
        self,
        updates: Updates,
        state: MonitorState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MonitorState]:
        measurements, states = self._measure_all(
            updates, state.measure_states, params, extra_args
        )
        return updates, MonitorState(measurements, states)


monitor = Monitor

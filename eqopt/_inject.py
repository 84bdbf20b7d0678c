"""Hyperparameters kept in the optimiser state, as Optax's `inject_hyperparams` does.

eqopt's own way to change a hyperparameter is to change the optimiser, whose
hyperparameters are leaves (`eqx.tree_at`, or `eqopt.tree_utils.tree_set_hyperparams`).
`inject_hyperparams` exists so that Optax code which reads or writes
`state.hyperparams[...]` runs unchanged.
"""

import abc
import dataclasses
import functools as ft
import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, DTypeLike

from ._base import AbstractSchedule, GradientTransformation
from ._custom_types import Count, OptState, Params, Updates
from ._hyperparams import (
    as_schedule,
    HYPERPARAMETER_DICT,
    warn_python_number_hyperparameters,
)
from ._numerics import safe_increment


class StatefulSchedule(eqx.Module):
    """A schedule with a state, updated at each step (Optax: `optax.StatefulSchedule`).

    Subclasses implement `init() -> state`, `update(state, **extra_args) -> state` and
    `__call__(state, **extra_args) -> value`; the `extra_args` are those given to the
    optimiser's `update`, so a schedule may follow the loss, for example. Optax's
    stateful schedules that are not Modules (any object with these three methods) are
    accepted by `inject_hyperparams` too, as static values.
    """

    @abc.abstractmethod
    def init(self) -> Any:
        """The initial state of the schedule."""

    @abc.abstractmethod
    def update(self, state: Any, **extra_args: Any) -> Any:
        """The state after one step."""

    @abc.abstractmethod
    def __call__(self, state: Any, **extra_args: Any) -> Any:
        """The value of the schedule in `state`."""


class WrappedScheduleState(eqx.Module):
    """The state of a `WrappedSchedule`: the step count."""

    count: Count


class WrappedSchedule(StatefulSchedule):
    """A (stateless) schedule made stateful: its state is the step count.

    Optax: `optax.WrappedSchedule`.

    **Arguments:**

    - `schedule_fn`: the schedule, a schedule Module (whose values are leaves) or a
        function of the step (then a static field).
    """

    schedule_fn: AbstractSchedule = eqx.field(converter=as_schedule)

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=jnp.zeros([], jnp.int32))

    def update(self, state: WrappedScheduleState, **extra_args: Any):
        return WrappedScheduleState(count=safe_increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra_args: Any) -> Array:
        return self.schedule_fn(state.count)


class _StaticStatefulSchedule(StatefulSchedule):
    """An Optax-style stateful schedule that is not a Module, kept as a static field."""

    schedule: Any = eqx.field(static=True)

    def init(self) -> Any:
        return self.schedule.init()

    def update(self, state: Any, **extra_args: Any) -> Any:
        return self.schedule.update(state, **extra_args)

    def __call__(self, state: Any, **extra_args: Any) -> Any:
        return self.schedule(state, **extra_args)


@no_type_check
def _as_state_value(new: Any, old: Any) -> Any:
    """A value set in `state.hyperparams`, in the dtype of the value it replaces."""
    dtype = getattr(old, "dtype", None)
    return jnp.asarray(new) if dtype is None else jnp.asarray(new, dtype)


@no_type_check
def _as_numeric(new: Any, old: Any = None) -> Array:
    """A number as an array leaf: floats stay weakly typed, integers integers."""
    return jnp.asarray(new)


class InjectHyperparamsState(eqx.Module):
    """The state Optax's `inject_hyperparams` had before 0.1.9, kept for its name.

    `inject_hyperparams` makes an `InjectStatefulHyperparamsState`.
    Optax: `optax.InjectHyperparamsState`.
    """

    count: Count
    hyperparams: dict[str, Any] = eqx.field(
        metadata={HYPERPARAMETER_DICT: _as_state_value}
    )
    inner_state: OptState


class InjectStatefulHyperparamsState(eqx.Module):
    """The state of `inject_hyperparams`: the current hyperparameters and inner state.

    `state.hyperparams["learning_rate"]` reads the learning rate used at the last step
    (at step 0, the initial one). A new value takes effect at the next `update`, set
    either way (both keep it an array leaf):

    ```python
    state = eqx.tree_at(lambda s: s.hyperparams["learning_rate"], state, jnp.asarray(1e-4))
    state.hyperparams["learning_rate"] = jnp.asarray(1e-4)  # Optax's way, in place
    ```

    The in-place assignment changes the dict of this state object (and of anything
    sharing it), as in Optax. A Python float set there works, but under
    `eqx.filter_jit` it is static (a recompilation per value, with a warning).
    Scheduled hyperparameters are recomputed at every step, so setting them has no
    effect (as in Optax).

    Optax: `optax.InjectStatefulHyperparamsState`.
    """

    count: Count
    hyperparams: dict[str, Any] = eqx.field(
        metadata={HYPERPARAMETER_DICT: _as_state_value}
    )
    hyperparams_states: dict[str, Any]
    inner_state: OptState


@dataclasses.dataclass(frozen=True)
class _Frozen:
    """An unhashable static argument (a pytree mask...) as a hashable pytree."""

    treedef: Any
    leaves: tuple[Any, ...]

    def thaw(self) -> Any:
        return jtu.tree_unflatten(self.treedef, self.leaves)


@no_type_check
def _freeze(name: str, value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        pass
    leaves, treedef = jtu.tree_flatten(value)
    frozen = _Frozen(treedef, tuple(leaves))
    try:
        hash(frozen)
    except TypeError as e:
        raise ValueError(
            f"`inject_hyperparams`: argument `{name}` is neither a number, a schedule "
            f"nor hashable (got {type(value).__name__}), so it cannot be a static "
            "field of the optimiser."
        ) from e
    return frozen


@no_type_check
def _thaw(value: Any) -> Any:
    return value.thaw() if isinstance(value, _Frozen) else value


@no_type_check
def _is_stateful_schedule(x: Any) -> bool:
    """`StatefulSchedule` or any object with its three methods (Optax's protocol)."""
    if isinstance(x, StatefulSchedule):
        return True
    return callable(x) and all(hasattr(x, m) for m in ("init", "update"))


@no_type_check
def _highest_float_dtype(tree: Any) -> np.dtype:
    """The widest real dtype among the inexact-array leaves of `tree`, and at least
    float32 (so hyperparameters are never rounded to bfloat16: optax#1414)."""
    dtype = jnp.dtype(jnp.float32)
    for leaf in jax.tree.leaves(tree):
        if eqx.is_inexact_array(leaf):
            real = jnp.dtype(jnp.finfo(leaf.dtype).dtype)
            dtype = real if real.itemsize > dtype.itemsize else dtype
    return dtype


@no_type_check
def _convert_floats(x: Any, dtype: DTypeLike) -> Any:
    """A floating value in `dtype`; strongly typed arrays and non-floats unchanged."""
    if isinstance(x, jax.Array) and not getattr(x, "weak_type", False):
        return x
    current = x.dtype if hasattr(x, "dtype") else type(x)
    if jnp.issubdtype(current, jnp.floating):
        return jnp.asarray(x, dtype=dtype)
    return x


class InjectHyperparams(GradientTransformation):
    r"""An inner transformation whose hyperparameters live in the optimiser state.

    Built by [`eqopt.inject_hyperparams`][]: at each step the inner transformation is
    rebuilt by `inner_factory` from `state.hyperparams` (numbers, which a user may
    replace) and from its schedules evaluated at the step (which a user may not).

    Floating hyperparameters are kept in the widest floating dtype of the parameters,
    and never below float32 (`hyperparam_dtype` overrides this; strongly typed arrays
    keep their dtype, as in Optax). Optax uses the parameters' dtype, which with
    bfloat16 parameters rounds `b2=0.999` to `1.0` (optax#1414).

    The Module's own `hyperparams` and `schedules` are leaves: they set the state made
    by `init`, so they can be vmapped over (`jax.vmap` of the factory) and
    differentiated through a training run. Once training has started it is the
    state's values that count: change them there (or re-`init`).

    **Arguments:**

    - `inner_factory`: the factory of the inner transformation (static).
    - `hyperparams`: the numeric hyperparameters, by name (array leaves).
    - `schedules`: the scheduled hyperparameters, as `StatefulSchedule`s, by name.
    - `other_args`: the other arguments of `inner_factory` (static), as
        `(name, value)` pairs.
    - `hyperparam_dtype`: the dtype of floating hyperparameters, or `None` (see above).
    """

    inner_factory: Callable[..., GradientTransformation] = eqx.field(static=True)
    hyperparams: dict[str, Array] = eqx.field(
        metadata={HYPERPARAMETER_DICT: _as_numeric}
    )
    schedules: dict[str, StatefulSchedule]
    other_args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    hyperparam_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def _dtype(self, tree: Any) -> Any:
        if self.hyperparam_dtype is not None:
            return self.hyperparam_dtype
        return _highest_float_dtype(tree)

    def _inner(self, hyperparams: dict[str, Any]) -> GradientTransformation:
        other = {name: _thaw(value) for name, value in self.other_args}
        return self.inner_factory(**other, **hyperparams)

    def init(self, params: Params) -> InjectStatefulHyperparamsState:
        dtype = self._dtype(params)
        hyperparams = {
            k: jnp.asarray(_convert_floats(v, dtype))
            for k, v in self.hyperparams.items()
        }
        states = {k: s.init() for k, s in self.schedules.items()}
        for k, s in self.schedules.items():
            hyperparams[k] = _convert_floats(s(states[k]), dtype)
        return InjectStatefulHyperparamsState(
            count=jnp.zeros([], jnp.int32),
            hyperparams=hyperparams,
            hyperparams_states=states,
            inner_state=self._inner(hyperparams).init(params),
        )

    def update(
        self,
        updates: Updates,
        state: InjectStatefulHyperparamsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, InjectStatefulHyperparamsState]:
        warn_python_number_hyperparameters(updates, state=state)
        dtype = self._dtype(updates if params is None else params)
        hyperparams = {
            k: _convert_floats(v, dtype) for k, v in state.hyperparams.items()
        }
        old = state.hyperparams_states
        for k, s in self.schedules.items():
            hyperparams[k] = _convert_floats(s(old[k], **extra_args), dtype)
        states = {k: s.update(old[k], **extra_args) for k, s in self.schedules.items()}
        updates, inner_state = self._inner(hyperparams).update(
            updates, state.inner_state, params, **extra_args
        )
        return updates, InjectStatefulHyperparamsState(
            count=safe_increment(state.count),
            hyperparams=hyperparams,
            hyperparams_states=states,
            inner_state=inner_state,
        )


@no_type_check
def _split_arguments(
    arguments: dict[str, Any], static_args: set[str]
) -> tuple[dict, dict, tuple]:
    """Optax's sorting of the inner factory's arguments: numbers, schedules, others."""
    numeric, schedules, other = {}, {}, []
    for name, value in arguments.items():
        if name in static_args or isinstance(value, bool):
            other.append((name, _freeze(name, value)))
        elif _is_stateful_schedule(value):
            if not isinstance(value, eqx.Module):
                value = _StaticStatefulSchedule(value)
            schedules[name] = value
        elif callable(value):
            schedules[name] = WrappedSchedule(value)
        elif isinstance(value, int | float | jax.Array | np.ndarray | np.number):
            numeric[name] = _as_numeric(value)
        else:
            other.append((name, _freeze(name, value)))
    return numeric, schedules, tuple(other)


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: DTypeLike | None = None,
) -> Callable[..., InjectHyperparams]:
    r"""Keep the hyperparameters of a transformation in its state, as Optax does.

    ```python
    opt = eqopt.inject_hyperparams(eqopt.adam)(learning_rate=1e-3, b1=schedule)
    state = opt.init(params)
    state.hyperparams["learning_rate"]                    # read
    state = eqx.tree_at(lambda s: s.hyperparams["learning_rate"], state, jnp.asarray(1e-4))
    ```

    The factory's arguments are sorted as in Optax: names in `static_args` and bools
    are static; objects with `init`/`update`/`__call__` are stateful schedules; other
    callables (schedule Modules, functions of the step) are schedules, evaluated at
    each step; numbers and arrays are numeric hyperparameters, which `update` reads
    from `state.hyperparams`; anything else is static.

    Unlike Optax, floating hyperparameters are never cast below float32 (with bfloat16
    parameters Optax rounds `b2=0.999` to `1.0`: optax#1414); see
    [`eqopt.InjectHyperparams`][].

    Optax: `optax.inject_hyperparams`.

    **Arguments:**

    - `inner_factory`: a function (an eqopt factory such as `eqopt.adam`) returning
        the inner eqopt transformation. For an Optax factory, wrap it:
        naming its arguments:
        `lambda learning_rate: eqopt.interop.from_optax(optax.adam(learning_rate))`.
    - `static_args`: the name or names of arguments that are callables but not
        schedules (masks given as functions, for example).
    - `hyperparam_dtype`: the dtype of floating hyperparameters; `None` for the
        parameters' widest floating dtype, at least float32.

    **Returns:**

    A factory with the signature of `inner_factory`, returning an
    [`eqopt.InjectHyperparams`][].
    """
    static_args = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    if not static_args.issubset(signature.parameters):
        raise ValueError(
            "`static_args` must specify a subset of `inner_factory`'s parameters. "
            f"Given `static_args`: {static_args}. `inner_factory` parameters: "
            f"{set(signature.parameters)}"
        )

    @ft.wraps(inner_factory, updated=())  # a class's `__dict__` is not a function's
    @no_type_check
    def wrapped_transform(*args: Any, **kwargs: Any) -> InjectHyperparams:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        numeric, schedules, other = _split_arguments(bound.arguments, static_args)
        return InjectHyperparams(
            inner_factory, numeric, schedules, other, hyperparam_dtype
        )

    return wrapped_transform


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: DTypeLike | None = None,
) -> Callable[..., InjectHyperparams]:
    """Deprecated in Optax: the same as [`eqopt.inject_hyperparams`][], with a
    `DeprecationWarning`.

    Optax: `optax.inject_stateful_hyperparams`.
    """
    warnings.warn(
        "inject_stateful_hyperparams is deprecated, use inject_hyperparams instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)

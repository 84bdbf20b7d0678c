"""Gradient accumulation: `MultiSteps` (with its inner optimiser) and `apply_every`."""

from collections.abc import Callable
from typing import Any, no_type_check, Protocol

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, DTypeLike, Int, PyTree

from .._base import GradientTransformation
from .._custom_types import Count, Params, Updates
from .._numerics import safe_increment
from .._tree import compute_dtype, map_leaves, to_dtype, zeros_like_params
from ..tree_utils._arithmetic import tree_where
from ..tree_utils._leaves import map_arrays


class ShouldSkipUpdateFunction(Protocol):
    """Decides whether `MultiSteps` ignores a mini-step.

    Called as `fn(updates, gradient_step, params)`, it returns a boolean scalar array
    (`True` to skip the mini-step as if it never happened) and any pytree of arrays,
    kept in `MultiStepsState.skip_state` for monitoring. See [`eqopt.skip_not_finite`][]
    and [`eqopt.skip_large_updates`][].

    Optax: `optax.ShouldSkipUpdateFunction`.
    """

    def __call__(
        self, updates: Updates, gradient_step: ArrayLike, params: Params | None
    ) -> tuple[Bool[ArrayLike, ""], PyTree]: ...


class _StaticFunction(eqx.Module):
    """A plain function held as a static field (it must be hashable)."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@no_type_check
def _as_skip_function(fn: Callable | None) -> eqx.Module | None:
    """A Module callable is kept (its float fields stay leaves); a plain function is
    held as a static field."""
    if fn is None or isinstance(fn, eqx.Module):
        return fn
    return _StaticFunction(fn)


@no_type_check
def as_step_count(x: Any) -> Int[Array, ""] | eqx.Module:
    """A number of steps as an int32 leaf (changing it does not recompile), or a
    schedule of it: a schedule Module, or a plain function held as a static field (its
    values may be integers, which `FunctionSchedule` would reject)."""
    if isinstance(x, eqx.Module):
        return x
    if callable(x):
        return _StaticFunction(x)
    return jnp.asarray(x, jnp.int32)


@no_type_check
def check_step_count(owner: str, name: str, value: Any) -> None:
    """`ValueError` for a concrete number of steps below 1."""
    if isinstance(value, eqx.Module | jax.core.Tracer):
        return
    if np.any(np.asarray(value) < 1):  # NumPy: jnp ops are staged out inside a trace
        raise ValueError(
            f"`{owner}({name}=...)` must be at least 1; got {name}={value}."
        )


@no_type_check
def _step_count_at(k: Int[Array, ""] | eqx.Module, step: Count) -> Count:
    """The value of `every_k_schedule` at `step`, as an int32 (rounded if a float)."""
    if not isinstance(k, eqx.Module):
        return k
    k = jnp.asarray(k(step))
    if jnp.issubdtype(k.dtype, jnp.inexact):
        k = jnp.round(k)
    return k.astype(jnp.int32)


@no_type_check
def _canonical_dtype(dtype: DTypeLike | None) -> Any:
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


@no_type_check
def _wider(a: Any, b: Any) -> Any:
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(a, b)


@no_type_check
def _accumulate(use_mean: bool, n: Count, g: Array, acc: Array) -> tuple[Array, Array]:
    r"""$a \leftarrow a + (g - a) / (n + 1)$ (the running mean, Welford's form) or
    $a \leftarrow a + g$; returned in the gradient's dtype (for the inner optimiser)
    and in the accumulator's."""
    dtype = _wider(compute_dtype(g), acc.dtype)
    x, a = to_dtype(g, dtype), to_dtype(acc, dtype)
    new = a + (x - a) / (n + 1).astype(dtype) if use_mean else a + x
    return to_dtype(new, g.dtype), to_dtype(new, acc.dtype)


class MultiStepsState(eqx.Module):
    """State of `MultiSteps`.

    **Fields:**

    - `mini_step`: the mini-steps accumulated since the last inner step.
    - `gradient_step`: the number of inner steps taken.
    - `inner_opt_state`: the state of the wrapped optimiser.
    - `acc_grads`: the accumulated gradients (their mean, or sum).
    - `skip_state`: what `should_skip_update_fn` returned last (`()` without one).
    """

    mini_step: Count
    gradient_step: Count
    inner_opt_state: Any
    acc_grads: Any
    skip_state: PyTree = ()


class MultiSteps(GradientTransformation):
    r"""Accumulate gradients over $k$ mini-steps, then take one step of `opt`.

    $$
    a_i = a_{i-1} + \frac{g_i - a_{i-1}}{i}, \qquad
    u_i = \begin{cases} T(a_k) & i = k \\ 0 & i < k \end{cases}
    $$

    ($a_i = a_{i-1} + g_i$ with `use_grad_mean=False`). So $k$ mini-steps on $k$
    slices of a batch are one step on the whole batch (with a mean-reduced loss). The
    mini-step counter restarts after each inner step; $k$ is read from
    `every_k_schedule` at the current `gradient_step`.

    The inner update is computed once per mini-step and its result selected (as in
    Optax, there is no `lax.cond`), and the state is the inner state, one accumulator
    and the counters. Works on any pytree (Equinox models with non-array leaves, `None`
    gradients), and with bfloat16 parameters: the accumulator has `accumulator_dtype`
    and the inner optimiser gets the mean in the gradients' dtype.

    A mini-step that `should_skip_update_fn` rejects changes nothing but `skip_state`,
    and returns zero updates.

    Optax: `optax.MultiSteps`. Optax's methods are here: `init`, `update`,
    `has_updated`, `gradient_transformation()` (this Module itself) and `inner_opt`.
    Unlike Optax, zero updates stay zero when the inner update is not finite.

    **Arguments:**

    - `opt`: the wrapped optimiser; its hyperparameters stay leaves
        (`eqx.tree_at(lambda m: m.opt.learning_rate, opt, ...)`).
    - `every_k_schedule`: $k$, an int (stored as an int32 leaf, so changing it does
        not recompile) or a schedule `gradient_step -> k`.
    - `use_grad_mean`: average the gradients (default) rather than sum them.
    - `should_skip_update_fn`: a [`eqopt.ShouldSkipUpdateFunction`][], such as
        [`eqopt.skip_not_finite`][]. A plain function is a static field; an
        `eqx.Module` with a `__call__` keeps its float fields as leaves.
    - `accumulator_dtype`: the dtype of the accumulator, float32 by default (as Optax);
        `None` uses each parameter's dtype.
    """

    opt: GradientTransformation
    every_k_schedule: Int[Array, ""] | eqx.Module = eqx.field(converter=as_step_count)
    use_grad_mean: bool = eqx.field(static=True, default=True)
    should_skip_update_fn: eqx.Module | None = eqx.field(
        converter=_as_skip_function, default=None
    )
    accumulator_dtype: DTypeLike | None = eqx.field(
        static=True, converter=_canonical_dtype, default=jnp.float32
    )

    def __check_init__(self):
        check_step_count("MultiSteps", "every_k_schedule", self.every_k_schedule)

    @property
    def inner_opt(self) -> GradientTransformation:
        """The wrapped optimiser (Optax's name)."""
        return self.opt

    def gradient_transformation(self) -> "MultiSteps":
        """This Module: it is a `GradientTransformation` already."""
        return self

    def has_updated(self, state: MultiStepsState) -> Bool[Array, ""]:
        """Whether the last `update` took an inner step."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def init(self, params: Params) -> MultiStepsState:
        gradient_step = jnp.zeros([], jnp.int32)
        skip_state = ()
        if self.should_skip_update_fn is not None:
            _, skip_state = self.should_skip_update_fn(
                zeros_like_params(params), gradient_step, params
            )
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=gradient_step,
            inner_opt_state=self.opt.init(params),
            acc_grads=zeros_like_params(params, self.accumulator_dtype),
            skip_state=skip_state,
        )

    def update(
        self,
        updates: Updates,
        state: MultiStepsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MultiStepsState]:
        k = _step_count_at(self.every_k_schedule, state.gradient_step)
        skip, skip_state = self._should_skip(updates, state, params)
        n = state.mini_step

        mean, acc = map_leaves(
            lambda g, a: _accumulate(self.use_grad_mean, n, g, a),
            updates,
            state.acc_grads,
            names=("updates", "state.acc_grads"),
        )
        inner_updates, inner_state = self.opt.update(
            mean, state.inner_opt_state, params, **extra_args
        )
        emit = n == k - 1
        step = jnp.logical_and(emit, jnp.logical_not(skip))
        acc = map_arrays(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc)
        new_state = MultiStepsState(
            mini_step=jnp.where(skip, n, safe_increment(n) % k),
            gradient_step=jnp.where(
                step, safe_increment(state.gradient_step), state.gradient_step
            ),
            inner_opt_state=tree_where(step, inner_state, state.inner_opt_state),
            acc_grads=tree_where(skip, state.acc_grads, acc),
            skip_state=skip_state,
        )
        out = map_arrays(lambda u: jnp.where(step, u, jnp.zeros_like(u)), inner_updates)
        return out, new_state

    def _should_skip(self, updates, state, params):
        if self.should_skip_update_fn is None:
            return jnp.array(False), ()
        skip, skip_state = self.should_skip_update_fn(
            updates, state.gradient_step, params
        )
        skip = jnp.asarray(skip)
        if (skip.dtype, skip.shape) != (jnp.bool_, ()):
            raise ValueError(
                "The `should_skip_update_fn` function should return a boolean scalar "
                f"array, but it returned an array of dtype {skip.dtype} and shape "
                f"{skip.shape}."
            )
        return skip, skip_state


class ApplyEvery(eqx.Module):
    """State of `apply_every` (Optax's name for it): the step count modulo $k$ and the
    sum of the gradients since the last emitted update."""

    count: Count
    grad_acc: Any


@no_type_check
def _sum_every(restart: Array, emit: Array, g: Array, acc: Array):
    dtype = _wider(compute_dtype(g), acc.dtype)
    a = to_dtype(acc, dtype)
    new = jnp.where(restart, jnp.zeros_like(a), a) + to_dtype(g, dtype)
    out = jnp.where(emit, new, jnp.zeros_like(new))
    return to_dtype(out, g.dtype), to_dtype(new, acc.dtype)


class ApplyEveryK(GradientTransformation):
    r"""Sum gradients over $k$ steps and emit the sum every $k$-th step, zeros between.

    $$
    a_t = [t \bmod k \ne 0]\, a_{t-1} + g_t, \qquad u_t = [t \bmod k = k - 1]\, a_t.
    $$

    Inside a chain, the transformations after it see the zeros too (their state
    advances at every step); for one inner step per $k$ gradients use
    [`eqopt.MultiSteps`][].

    Optax: `optax.apply_every` (whose state is `optax.ApplyEvery`, hence this name).

    **Arguments:**

    - `k`: emit every $k$ steps (an int32 leaf: changing it does not recompile).
    """

    k: Int[Array, ""] = eqx.field(converter=as_step_count, default=1)

    def __check_init__(self):
        check_step_count("apply_every", "k", self.k)

    def init(self, params: Params) -> ApplyEvery:
        return ApplyEvery(
            count=jnp.zeros([], jnp.int32), grad_acc=zeros_like_params(params)
        )

    def update(
        self,
        updates: Updates,
        state: ApplyEvery,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ApplyEvery]:
        c = state.count % self.k
        restart, emit = c == 0, c == self.k - 1
        updates, grad_acc = map_leaves(
            lambda g, a: _sum_every(restart, emit, g, a),
            updates,
            state.grad_acc,
            names=("updates", "state.grad_acc"),
        )
        count = safe_increment(state.count) % self.k
        return updates, ApplyEvery(count=count, grad_acc=grad_acc)


apply_every = ApplyEveryK

"""Protection against bad steps: `apply_if_finite`, and the skip functions of
`MultiSteps` (`skip_not_finite`, `skip_large_updates`)."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Int, PyTree, Real

from .._base import GradientTransformation
from .._custom_types import Count, Params, Updates
from .._numerics import safe_increment
from .._tree import global_norm_squared
from ..tree_utils._arithmetic import tree_where
from ..tree_utils._leaves import map_arrays


@no_type_check
def _float_leaves(tree: Any) -> list[Array]:
    return [x for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]


@no_type_check
def count_not_finite(tree: Any) -> Int[Array, ""]:
    """The number of NaN and infinite entries in the floating-array leaves of `tree`."""
    counts = [jnp.sum(~jnp.isfinite(x), dtype=jnp.int32) for x in _float_leaves(tree)]
    return sum(counts, jnp.zeros([], jnp.int32))


@no_type_check
def all_finite(tree: Any) -> Bool[Array, ""]:
    """Whether every floating-array leaf of `tree` is finite."""
    finite = [jnp.all(jnp.isfinite(x)) for x in _float_leaves(tree)]
    return jnp.all(jnp.stack(finite)) if finite else jnp.array(True)


def skip_not_finite(
    updates: Updates, gradient_step: ArrayLike, params: Params | None
) -> tuple[Bool[Array, ""], PyTree]:
    """Skip a mini-step of `MultiSteps` whose updates hold a NaN or an infinity.

    A [`eqopt.ShouldSkipUpdateFunction`][]: pass it as `MultiSteps(...,
    should_skip_update_fn=skip_not_finite)`.

    Optax: `optax.skip_not_finite`.

    **Returns:**

    Whether to skip, and `{"should_skip": ..., "num_not_finite": ...}` (the number of
    non-finite entries), kept in `MultiStepsState.skip_state`.
    """
    del gradient_step, params
    num_not_finite = count_not_finite(updates)
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates,
    gradient_step: ArrayLike,
    params: Params | None,
    max_squared_norm: Real[ArrayLike, ""],
) -> tuple[Bool[Array, ""], PyTree]:
    r"""Skip a mini-step of `MultiSteps` whose updates have $\|u\|^2 \ge$
    `max_squared_norm` (or a NaN norm).

    Use it with a threshold bound in: `MultiSteps(..., should_skip_update_fn=
    functools.partial(skip_large_updates, max_squared_norm=42.0))`. The squared norm
    is summed in float32 or wider.

    Optax: `optax.skip_large_updates`.

    **Returns:**

    Whether to skip, and `{"should_skip": ..., "norm_squared": ...}`, kept in
    `MultiStepsState.skip_state`.
    """
    del gradient_step, params
    norm_squared = global_norm_squared(updates)
    threshold = jnp.asarray(max_squared_norm).astype(norm_squared.dtype)
    should_skip = jnp.logical_not(norm_squared < threshold)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_squared}


class ApplyIfFiniteState(eqx.Module):
    """State of `ApplyIfFinite`, with Optax's counters.

    **Fields:**

    - `notfinite_count`: consecutive non-finite steps so far (reset by a finite one).
    - `last_finite`: whether the last step's updates were finite.
    - `total_notfinite`: non-finite steps since `init` (never reset).
    - `inner_state`: the state of the wrapped transformation.
    """

    notfinite_count: Count
    last_finite: Bool[Array, ""]
    total_notfinite: Count
    inner_state: Any


class ApplyIfFinite(GradientTransformation):
    r"""Skip steps whose gradients hold a NaN or an infinity.

    On a non-finite step the updates are zero and the inner state is left exactly as it
    was: the parameters and the optimiser are untouched, as if the step never happened.
    After more than `max_consecutive_errors` non-finite steps in a row the step is
    taken anyway (as Optax: a persistent problem should surface).

    The inner update is computed once and selected (no `lax.cond`), so the wrapper
    vmaps and differentiates like the optimiser it holds.

    Optax: `optax.apply_if_finite`.

    **Arguments:**

    - `inner`: the wrapped transformation; its hyperparameters stay leaves
        (`eqx.tree_at(lambda a: a.inner.learning_rate, opt, ...)`).
    - `max_consecutive_errors`: how many non-finite steps in a row to skip.
    """

    inner: GradientTransformation
    max_consecutive_errors: int = eqx.field(static=True)

    def __check_init__(self):
        if self.max_consecutive_errors < 0:
            raise ValueError(
                "`apply_if_finite(max_consecutive_errors=...)` must be non-negative; "
                f"got max_consecutive_errors={self.max_consecutive_errors}."
            )

    def init(self, params: Params) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(
            notfinite_count=jnp.zeros([], jnp.int32),
            last_finite=jnp.array(True),
            total_notfinite=jnp.zeros([], jnp.int32),
            inner_state=self.inner.init(params),
        )

    def update(
        self,
        updates: Updates,
        state: ApplyIfFiniteState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ApplyIfFiniteState]:
        finite = all_finite(updates)
        notfinite_count = jnp.where(
            finite, jnp.zeros([], jnp.int32), safe_increment(state.notfinite_count)
        )
        take = jnp.logical_or(finite, notfinite_count > self.max_consecutive_errors)
        inner_updates, inner_state = self.inner.update(
            updates, state.inner_state, params, **extra_args
        )
        new_state = ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(
                finite, state.total_notfinite, safe_increment(state.total_notfinite)
            ),
            inner_state=tree_where(take, inner_state, state.inner_state),
        )
        out = map_arrays(lambda u: jnp.where(take, u, jnp.zeros_like(u)), inner_updates)
        return out, new_state


apply_if_finite = ApplyIfFinite

"""Applying a transformation at some steps only: `conditionally_transform`, `_mask`."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from ._base import GradientTransformation
from ._custom_types import OptState, Params, Updates
from ._numerics import safe_increment


class ConditionallyTransformState(eqx.Module):
    """The state of [`eqopt.conditionally_transform`][].

    Optax: `optax.ConditionallyTransformState`.

    **Arguments:**

    - `inner_state`: the inner transformation's state.
    - `step`: the number of `update` calls so far (int32, saturating).
    """

    inner_state: OptState
    step: Int[Array, ""]


class ConditionallyMaskState(eqx.Module):
    """The state of [`eqopt.conditionally_mask`][].

    Optax: `optax.ConditionallyMaskState`.

    **Arguments:**

    - `step`: the number of `update` calls so far (int32, saturating).
    - `inner_state`: the inner transformation's state.
    """

    step: Int[Array, ""]
    inner_state: OptState


@no_type_check
def _zeros(updates: Any) -> Any:
    return jax.tree.map(jnp.zeros_like, updates)


@no_type_check
def _conditional_update(
    owner: "ConditionallyTransform | ConditionallyMask",
    updates: Any,
    inner_state: Any,
    step: Any,
    params: Any,
    extra_args: dict[str, Any],
    otherwise: Callable[[Any], Any],
) -> tuple[Any, Any]:
    """`inner.update` if `should_transform_fn(step)`, else `(otherwise(updates), state)`.

    A `lax.cond`: the inner update is computed only at the steps that use it (under
    `vmap` of a batched condition it becomes a select, as any `lax.cond`).
    """
    condition_kwargs = extra_args if owner.forward_extra_args else {}
    condition = owner.should_transform_fn(step, **condition_kwargs)

    # The parameters (an Equinox model with non-array leaves, say) are closed over,
    # not operands: `lax.cond` takes arrays only.
    @no_type_check
    def transform(updates, inner_state):
        return owner.inner.update(updates, inner_state, params, **extra_args)

    @no_type_check
    def skip(updates, inner_state):
        return otherwise(updates), inner_state

    return jax.lax.cond(condition, transform, skip, updates, inner_state)


class ConditionallyTransform(GradientTransformation):
    """Apply `inner` only at the steps where `should_transform_fn(step)` is true; at the
    others, pass the updates and the inner state through unchanged.

    `step` counts the `update` calls so far (0 at the first).

    Optax: `optax.conditionally_transform`.

    **Arguments:**

    - `inner`: the transformation.
    - `should_transform_fn`: `step -> bool` (a 0-d boolean array), with the extra
        arguments of `update` as keywords if `forward_extra_args`. Static: a new
        function object means a new compilation.
    - `forward_extra_args`: whether to pass the extra arguments to
        `should_transform_fn`.
    """

    inner: GradientTransformation
    should_transform_fn: Callable = eqx.field(static=True)
    forward_extra_args: bool = eqx.field(static=True, default=False)

    def init(self, params: Params) -> ConditionallyTransformState:
        return ConditionallyTransformState(
            self.inner.init(params), jnp.zeros((), jnp.int32)
        )

    def update(
        self,
        updates: Updates,
        state: ConditionallyTransformState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ConditionallyTransformState]:
        updates, inner_state = _conditional_update(
            self,
            updates,
            state.inner_state,
            state.step,
            params,
            extra_args,
            otherwise=_identity,
        )
        return updates, ConditionallyTransformState(
            inner_state, safe_increment(state.step)
        )


@no_type_check
def _identity(updates: Any) -> Any:
    return updates


class ConditionallyMask(GradientTransformation):
    """Apply `inner` only at the steps where `should_transform_fn(step)` is true; at the
    others, the updates are zero and the inner state is passed through unchanged.

    `step` counts the `update` calls so far (0 at the first).

    Optax: `optax.conditionally_mask`.

    **Arguments:**

    - `inner`: the transformation.
    - `should_transform_fn`: `step -> bool` (a 0-d boolean array), with the extra
        arguments of `update` as keywords if `forward_extra_args`. Static: a new
        function object means a new compilation.
    - `forward_extra_args`: whether to pass the extra arguments to
        `should_transform_fn`.
    """

    inner: GradientTransformation
    should_transform_fn: Callable = eqx.field(static=True)
    forward_extra_args: bool = eqx.field(static=True, default=False)

    def init(self, params: Params) -> ConditionallyMaskState:
        return ConditionallyMaskState(jnp.zeros((), jnp.int32), self.inner.init(params))

    def update(
        self,
        updates: Updates,
        state: ConditionallyMaskState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ConditionallyMaskState]:
        updates, inner_state = _conditional_update(
            self,
            updates,
            state.inner_state,
            state.step,
            params,
            extra_args,
            otherwise=_zeros,
        )
        return updates, ConditionallyMaskState(safe_increment(state.step), inner_state)


conditionally_transform = ConditionallyTransform
conditionally_mask = ConditionallyMask

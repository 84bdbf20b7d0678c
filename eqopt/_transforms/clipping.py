"""Clipping by value and by global norm."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Params, Updates
from .._hyperparams import as_scalar
from .._numerics import safe_sqrt
from .._tree import (
    cast_per_dtype,
    global_norm_squared,
    like,
    map_leaves,
    to_dtype,
    upcast,
)


class Clip(GradientTransformation):
    r"""Clip each update element to $[-\delta, \delta]$.

    Optax: `optax.clip`.

    **Arguments:**

    - `max_delta`: $\delta \ge 0$.
    """

    max_delta: Float[Array, ""] = eqx.field(converter=as_scalar)

    def __check_init__(self):
        check_hyperparameters("clip", self, max_delta=NONNEGATIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        delta_in = cast_per_dtype(self.max_delta)

        @no_type_check
        def rule(g):
            (delta,) = delta_in(g.dtype)
            return (jnp.clip(g, -delta, delta),)

        return map_leaves(rule, updates)[0], state


class ClipByGlobalNorm(GradientTransformation):
    r"""Rescale all updates together so that their global norm is at most $c$.

    $$
    \|g\| = \sqrt{\textstyle\sum_i \|g_i\|^2}, \qquad
    u_i = g_i \cdot \begin{cases} 1 & \|g\| < c \\ c / \|g\| & \text{otherwise.}
    \end{cases}
    $$

    The norm's derivative is finite at zero, so hypergradients through clipping are
    finite when all gradients vanish.

    Optax: `optax.clip_by_global_norm`.

    **Arguments:**

    - `max_norm`: $c > 0$.

    ??? cite "References"

        Pascanu et al., *On the difficulty of training Recurrent Neural Networks*, ICML
        2013.
    """

    max_norm: Float[Array, ""] = eqx.field(converter=as_scalar)

    def __check_init__(self):
        check_hyperparameters("clip_by_global_norm", self, max_norm=NONNEGATIVE)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        norm = safe_sqrt(global_norm_squared(updates))
        max_norm = like(self.max_norm, norm)
        small = norm < max_norm
        safe_norm = jnp.where(small, 1, norm)  # no 0/0 in the unused branch

        scalars = cast_per_dtype(safe_norm, max_norm)

        @no_type_check
        def rule(g):
            x = upcast(g)
            norm_in, max_norm_in = scalars(x.dtype)
            clipped = x / norm_in * max_norm_in
            return (to_dtype(jnp.where(small, x, clipped), g.dtype),)

        return map_leaves(rule, updates)[0], state


clip = Clip
clip_by_global_norm = ClipByGlobalNorm

# Optax's names for their (empty) states.
ClipState = EmptyState
ClipByGlobalNormState = EmptyState

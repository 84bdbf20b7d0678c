"""Optimistic gradients (extrapolation from the previous gradient)."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._base import GradientTransformation
from .._custom_types import Moments, Params, Updates
from .._hyperparams import as_scalar
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast, zeros_like_params


class ScaleByOptimisticGradientState(eqx.Module):
    """State of `ScaleByOptimisticGradient`: whether no step was taken yet, and the
    previous gradient."""

    is_initial_step: Bool[Array, ""]
    previous_gradient: Moments


class ScaleByOptimisticGradient(GradientTransformation):
    r"""Generalised optimistic gradient: extrapolate from the previous gradient.

    $$
    u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}, \qquad g_0 := g_1
    $$

    (at the first step there is no previous gradient, and the current one stands in
    for it, as in Optax since optax#1082). With $\alpha = \beta = 1$ this is
    $2 g_t - g_{t-1}$, optimistic gradient descent.

    Optax: `optax.scale_by_optimistic_gradient`.

    **Arguments:**

    - `alpha`: $\alpha$, the weight of the current gradient.
    - `beta`: $\beta$, the weight of the negative momentum.

    ??? cite "References"

        Mokhtari et al., *A Unified Analysis of Extra-gradient and Optimistic Gradient
        Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020.
    """

    alpha: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)

    def init(self, params: Params) -> ScaleByOptimisticGradientState:
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(True),
            previous_gradient=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByOptimisticGradientState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByOptimisticGradientState]:
        scalars = cast_per_dtype(self.alpha + self.beta, self.beta)
        first = state.is_initial_step

        @no_type_check
        def rule(g, previous):
            x = upcast(g)
            alpha_plus_beta, beta = scalars(x.dtype)
            g_previous = jnp.where(first, x, to_dtype(previous, x.dtype))
            u = alpha_plus_beta * x - beta * g_previous
            return to_dtype(u, g.dtype), to_dtype(g, previous.dtype)

        names = ("updates", "state.previous_gradient")
        new_updates, previous = map_leaves(
            rule, updates, state.previous_gradient, names=names
        )
        return new_updates, ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(False), previous_gradient=previous
        )


scale_by_optimistic_gradient = ScaleByOptimisticGradient

"""MADGRAD: momentumised, adaptive, dual-averaged gradients."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT_CLOSED
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar, value_at
from .._numerics import safe_increment
from .._transforms.decay import AddDecayedWeights
from .._tree import (
    cast_per_dtype,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)


@jax.custom_jvp
@no_type_check
def safe_cbrt(x: Array) -> Array:
    r"""$\sqrt[3]{x}$, whose derivative at $0$ is taken as $0$ (it is infinite there),
    so that hypergradients stay finite where a gradient entry has always been zero."""
    return jnp.cbrt(x)


@safe_cbrt.defjvp
@no_type_check
def _safe_cbrt_jvp(primals, tangents):
    (x,), (tx,) = primals, tangents
    y = jnp.cbrt(x)
    nonzero = x != 0
    # d cbrt(x) / dx = 1 / (3 cbrt(x)^2)
    return y, jnp.where(nonzero, tx / (3 * jnp.where(nonzero, y * y, 1)), 0)


class MadgradState(eqx.Module):
    r"""State of `ScaleByMadgrad`: the step count $k$, the weighted sums of squared
    gradients $G_k$ (`grad_sum_sq`) and of gradients $s_k$ (`s`), and the initial
    parameters $x_0$ (`x0`)."""

    count: Count
    grad_sum_sq: Moments
    s: Moments
    x0: Moments


class ScaleByMadgrad(GradientTransformation):
    r"""Rescale updates by MADGRAD, a dual-averaging method with an adaptive cube-root
    denominator and momentum.

    With $\lambda_k = (\eta_k + \varepsilon) \sqrt{k + 1}$ at step $k = 0, 1, \dots$:

    $$
    \begin{aligned}
    G_{k+1} &= G_k + \lambda_k\, g_k^2, &
    s_{k+1} &= s_k + \lambda_k\, g_k, \\
    z_{k+1} &= x_0 - \frac{s_{k+1}}{\sqrt[3]{G_{k+1}} + \varepsilon}, &
    u_k &= (1 - \mu)\, z_{k+1} + \mu\, x_k - x_k,
    \end{aligned}
    $$

    so that $x_{k+1} = x_k + u_k$. The learning rate is part of the rule (there is no
    separate learning-rate step), and the updates are already descent steps.

    `init` reads only the shapes of the parameters: $x_0$ is stored at the first
    `update`, from its `params` (Optax stores it at `init`, from the parameters'
    values; the numbers are the same when the first `update` sees the parameters given
    to `init`). The cube root's derivative is taken as 0 at 0, so hypergradients are
    finite with exactly-zero gradients.

    Optax: `optax.contrib.scale_by_madgrad`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule (of the step count $k$).
    - `momentum`: $\mu$, in $[0, 1]$.
    - `eps`: $\varepsilon$, added to the learning rate and to the denominator.

    ??? cite "References"

        Defazio and Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive,
        Dual Averaged Gradient Method for Stochastic Optimization*, JMLR 2022.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    momentum: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_madgrad", self, momentum=UNIT_CLOSED, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> MadgradState:
        return MadgradState(
            count=jnp.zeros([], jnp.int32),
            grad_sum_sq=zeros_like_params(params),
            s=zeros_like_params(params),
            x0=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: MadgradState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MadgradState]:
        require_params("scale_by_madgrad", params)
        count = state.count
        learning_rate = value_at(self.learning_rate, count)
        lamb = (learning_rate + self.eps) * lax.sqrt(
            (count + 1).astype(jnp.result_type(learning_rate, self.eps))
        )
        first = count == 0
        scalars = cast_per_dtype(lamb, self.momentum, self.eps)

        @no_type_check
        def rule(g, p, grad_sum_sq, s, x0):
            x = upcast(g)
            lamb, momentum, eps = scalars(x.dtype)
            p_, x0_ = to_dtype(p, x.dtype), to_dtype(x0, x.dtype)
            x0_ = jnp.where(first, p_, x0_)
            grad_sum_sq_new = to_dtype(grad_sum_sq, x.dtype) + lamb * (x * x)
            s_new = to_dtype(s, x.dtype) + lamb * x
            z = x0_ - s_new / (safe_cbrt(grad_sum_sq_new) + eps)
            u = ((1 - momentum) * z + momentum * p_) - p_
            return (
                to_dtype(u, g.dtype),
                p,
                to_dtype(grad_sum_sq_new, grad_sum_sq.dtype),
                to_dtype(s_new, s.dtype),
                to_dtype(x0_, x0.dtype),
            )

        names = ("updates", "params", "state.grad_sum_sq", "state.s", "state.x0")
        updates, _, grad_sum_sq, s, x0 = map_leaves(
            rule, updates, params, state.grad_sum_sq, state.s, state.x0, names=names
        )
        return updates, MadgradState(
            count=safe_increment(count), grad_sum_sq=grad_sum_sq, s=s, x0=x0
        )


class Madgrad(AbstractOptimiser):
    r"""MADGRAD, with L2 weight decay added to the gradients first.

    $g_k \leftarrow g_k + \lambda x_k$, then [`eqopt.contrib.ScaleByMadgrad`][].

    Optax: `optax.contrib.madgrad`. Built as `chain(add_decayed_weights(weight_decay),
    scale_by_madgrad(learning_rate, momentum, eps))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `momentum`: $\mu$, in $[0, 1]$.
    - `weight_decay`: $\lambda$, the L2 regularisation (a float, an array or a
        schedule).
    - `eps`: $\varepsilon$, as in [`eqopt.contrib.ScaleByMadgrad`][].

    ??? cite "References"

        Defazio and Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive,
        Dual Averaged Gradient Method for Stochastic Optimization*, JMLR 2022.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    momentum: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)

    def __check_init__(self):
        check_hyperparameters("madgrad", self, momentum=UNIT_CLOSED, eps=NONNEGATIVE)

    def as_chain(self) -> Chain:
        return Chain(
            (
                AddDecayedWeights(self.weight_decay),
                ScaleByMadgrad(self.learning_rate, self.momentum, self.eps),
            )
        )


scale_by_madgrad = ScaleByMadgrad
madgrad = Madgrad

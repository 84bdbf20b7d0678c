"""Mechanic: a learned scale for the updates of any optimiser."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Count, Moments, OptState, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import abs_sq, safe_increment, safe_sqrt
from .._tree import (
    cast_per_dtype,
    float_dtype,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ._parameter_free import (
    capture_initial,
    dot,
    leaf_sums,
    placeholders,
    sums_or_zeros,
)


class MechanicState(eqx.Module):
    """State of [`eqopt.contrib.mechanize`][]: the base optimiser's state, the step
    count, Mechanic's per-$\\beta$ statistics `r`, `m`, `v` and scales `s` (each of
    shape `(num_betas,)`), and the initial parameters `x0` (zeros until the first
    `update` stores the parameters it sees, as Optax's does too)."""

    base_optimizer_state: OptState
    count: Count
    r: Float[Array, " num_betas"]
    m: Float[Array, " num_betas"]
    v: Float[Array, " num_betas"]
    s: Float[Array, " num_betas"]
    x0: Moments


class Mechanize(GradientTransformation):
    r"""Mechanic: learn the scale of a base optimiser's updates as training goes.

    With $\Delta_t$ the sum of the base optimiser's updates so far, Mechanic sets
    $x_t = x_0 + S_t \Delta_t$ where $S_t = \sum_i s_{t,i}$ is learned by online betting
    for each $\beta_i = 1 - 10^{-i}$, $i = 1..n$:

    $$
    \begin{aligned}
    \tilde g_t &= g_t + \lambda S_{t-1} \frac{\|g_t\|}{\|x_t\| + \epsilon}\, x_t,
    \qquad h_t = \langle \tilde g_t, \Delta_{t-1} \rangle, \quad
    \Delta_{t-1} = (x_0 - x_t) / (S_{t-1} + \epsilon), \\
    m_{t,i} &= \max(\beta_i m_{t-1,i}, |h_t| + \epsilon), \qquad
    v_{t,i} = \beta_i^2 v_{t-1,i} + h_t^2, \\
    r_{t,i} &= \beta_i r_{t-1,i} + \operatorname{clip}(h_t, -m_{t-1,i}, m_{t-1,i})\,
        s_{t-1,i}, \\
    s_{t,i} &= \frac{(s_{\text{init}} / n)\, m_{t,i} + \max(0, r_{t,i})}
        {\sqrt{v_{t,i}} + \epsilon}, \qquad
    u_t = x_0 - S_t (\Delta_{t-1} - b_t) - x_t,
    \end{aligned}
    $$

    $b_t$ being the base optimiser's update. (The sign convention is Optax's: $h_t$ is
    taken against $x_0 - x_t$.)

    The base optimiser is a Module field, so its hyperparameters (its learning rate)
    stay leaves next to Mechanic's own (`weight_decay`, `eps`, `s_init`): vmapped,
    differentiated, set with `eqx.tree_at(lambda o: o.base_optimizer...)`. `init`
    reads only the parameters' shapes; $x_0$ is the parameters seen by the first
    `update`, as in Optax. Square roots have finite derivatives at $0$ ($v = 0$ at
    the first step, where Optax's hypergradients are NaN).

    Optax: `optax.contrib.mechanize`.

    **Arguments:**

    - `base_optimizer`: the optimiser whose updates are scaled (any eqopt
        transformation; an Optax one through `eqopt.interop.from_optax`), with its
        learning rate (1.0, or a schedule peaking at 1.0, is recommended).
    - `weight_decay`: $\lambda$, Mechanic's own weight decay (not the base's).
    - `eps`: $\epsilon$.
    - `s_init`: $s_{\text{init}}$, the initial scale.
    - `num_betas`: $n$, the number of decay rates $\beta_i$ (static).

    ??? cite "References"

        Cutkosky, Defazio and Mehta, *Mechanic: A Learning Rate Tuner*, NeurIPS 2023
        (arXiv:2306.00144).
    """

    base_optimizer: GradientTransformation
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-2)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    s_init: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    num_betas: int = eqx.field(static=True, default=6)

    def __check_init__(self):
        if self.num_betas < 1:
            raise ValueError(
                "`mechanize(num_betas=...)` must be at least 1; got "
                f"num_betas={self.num_betas!r}."
            )
        check_hyperparameters(
            "mechanize", self, weight_decay=NONNEGATIVE, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> MechanicState:
        dtype = float_dtype(params)
        shape = (self.num_betas,)
        return MechanicState(
            base_optimizer_state=self.base_optimizer.init(params),
            count=jnp.zeros([], jnp.int32),
            r=jnp.zeros(shape, dtype),
            m=jnp.zeros(shape, dtype),
            v=jnp.zeros(shape, dtype),
            s=jnp.full(shape, jnp.asarray(self.s_init).astype(dtype)),
            x0=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: MechanicState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MechanicState]:
        require_params("mechanize", params)
        base_updates, base_state = self.base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra_args
        )
        dtype = state.s.dtype
        first_step = state.count == 0
        weight_decay, eps, s_init = (
            jnp.asarray(a).astype(dtype)
            for a in (self.weight_decay, self.eps, self.s_init)
        )
        s_sum = jnp.sum(state.s)

        # The norms of the gradients and of the parameters (one pass).
        @no_type_check
        def norms(g, p, _):
            x = upcast(g)
            return g, p, (jnp.sum(abs_sq(x)), jnp.sum(abs_sq(to_dtype(p, x.dtype))))

        names = ("updates", "params")
        partials = map_leaves(
            norms, updates, params, placeholders(updates), names=names
        )
        grads_sq, params_sq = (
            to_dtype(s, dtype)
            for s in sums_or_zeros(leaf_sums(updates, partials[2]), 2, dtype)
        )
        decay = (
            weight_decay * s_sum * safe_sqrt(grads_sq) / (safe_sqrt(params_sq) + eps)
        )
        h_in = cast_per_dtype(decay, s_sum + eps)

        # h = <g + decay * x, (x0 - x) / (S + eps)> (a second pass).
        @no_type_check
        def inner_product(g, p, x0, _):
            x = upcast(g)
            decay, denominator = h_in(x.dtype)
            p_ = to_dtype(p, x.dtype)
            delta_prev = (to_dtype(x0, x.dtype) - p_) / denominator
            return g, p, x0, (dot(x + decay * p_, delta_prev),)

        names = ("updates", "params", "state.x0")
        x0 = capture_initial(first_step, params, state.x0, "state.x0")
        _, _, x0, partials = map_leaves(
            inner_product, updates, params, x0, placeholders(updates), names=names
        )
        (h,) = sums_or_zeros(leaf_sums(updates, partials), 1, dtype)
        h = to_dtype(h, dtype)

        # In double precision, then rounded (as Optax computes them, from Python floats).
        betas = np.array([1 - 0.1**i for i in range(1, self.num_betas + 1)])
        betas = jnp.asarray(betas).astype(dtype)
        clipped_h = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped_h * state.s
        wealth = (s_init / self.num_betas) * m + jnp.maximum(0, r)
        s = wealth / (safe_sqrt(v) + eps)
        step_in = cast_per_dtype(jnp.sum(s), s_sum + eps)

        # u = x0 - S (delta_prev - b) - x (a third pass).
        @no_type_check
        def step(g, b, p, x0):
            x = upcast(g)
            new_s_sum, denominator = step_in(x.dtype)
            p_, x0_ = to_dtype(p, x.dtype), to_dtype(x0, x.dtype)
            delta = (x0_ - p_) / denominator - to_dtype(b, x.dtype)
            return to_dtype(x0_ - new_s_sum * delta - p_, g.dtype), b, p, x0

        names = ("updates", "base updates", "params", "state.x0")
        updates = map_leaves(step, updates, base_updates, params, x0, names=names)[0]
        return updates, MechanicState(
            base_optimizer_state=base_state,
            count=safe_increment(state.count),
            r=r,
            m=m,
            v=v,
            s=s,
            x0=x0,
        )


mechanize = Mechanize

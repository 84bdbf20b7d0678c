"""MoMo: momentum (or Adam) with a Polyak-type step size from the loss value."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._base import GradientTransformation
from .._checks import (
    check_hyperparameters,
    NONNEGATIVE,
    require_extra_arg,
    UNIT,
    UNIT_CLOSED,
)
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar, value_at
from .._numerics import abs_sq, bias_correction, safe_increment, safe_sqrt
from .._tree import (
    cast,
    cast_per_dtype,
    float_dtype,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ._parameter_free import (
    dot,
    leaf_sums,
    placeholders,
    safe_divide,
    sums_or_zeros,
)


# Optax compares the squared norm with `jnp.finfo(float).eps`: double precision's.
_TINY = float(np.finfo(np.float64).eps)
_LOSS = "the latest (batch) loss, from `jax.value_and_grad`"


@no_type_check
def polyak_step(
    barf, gamma, iprod, norm_sq, alpha, weight_decay, lower_bound, lb, bc1, cap_alpha
):
    """MoMo's step size $\tau$ (`bc1 = 1` for plain MoMo; `lower_bound` is `None`
    unless the lower bound `lb` is adapted, reset first where the model says so)."""
    decay = 1 + alpha * weight_decay
    if lower_bound is not None:  # adapt the lower bound
        cap = decay * (barf - gamma) + iprod
        lb = jnp.where(
            cap < decay * bc1 * lb,
            jnp.maximum(cap / (2 * bc1 * decay), lower_bound),
            lb,
        )
    gap = jnp.maximum(decay * (barf - bc1 * lb - gamma) + iprod, 0)
    # No step where the momentum vanishes (a derivative-safe division there).
    t1 = jnp.where(norm_sq <= _TINY, 0, safe_divide(gap, norm_sq))
    return jnp.minimum(cap_alpha, t1)


class MomoState(eqx.Module):
    """State of [`eqopt.contrib.momo`][]: the momentum, the averaged loss $\\bar f$,
    the averaged $\\langle g, x \\rangle$ ($\\gamma$), the lower bound of the loss and
    the step count."""

    exp_avg: Moments
    barf: Float[Array, ""]
    gamma: Float[Array, ""]
    lb: Float[Array, ""]
    count: Count


class Momo(GradientTransformation):
    r"""MoMo: SGD with momentum and a Polyak-type adaptive step size.

    With the loss value $f_t$ (passed to `update` as `value=`), the gradient $g_t$,
    the parameters $x_t$, the learning rate $\alpha_t$, the weight decay $\lambda$ and
    $\beta$ taken as $0$ at the first step,

    $$
    \begin{aligned}
    \bar f_t &= \beta \bar f_{t-1} + (1 - \beta) f_t, \quad
    d_t = \beta d_{t-1} + (1 - \beta) g_t, \quad
    \gamma_t = \beta \gamma_{t-1} + (1 - \beta) \langle g_t, x_t \rangle, \\
    \tau_t &= \min\Big(\alpha_t,\ \frac{\big((1 + \alpha_t\lambda)(\bar f_t - f_* -
        \gamma_t) + \langle d_t, x_t \rangle\big)_+}{\|d_t\|^2}\Big), \qquad
    u_t = -\frac{\alpha_t \lambda}{1 + \alpha_t \lambda}\, x_t - \tau_t d_t,
    \end{aligned}
    $$

    with $f_*$ the lower bound of the loss (estimated on the fly with
    `adapt_lower_bound`), and no step where $\|d_t\|^2$ vanishes.

    `update` needs `value`, the latest (batch) loss: a `ValueError` names it when it is
    missing. Every float argument is a leaf. The division has finite derivatives
    where $d_t = 0$ (Optax's hypergradients are NaN there); the numbers are Optax's.

    Optax: `optax.contrib.momo`.

    **Arguments:**

    - `learning_rate`: $\alpha_t$, the largest step size (rather large: 1.0), a float,
        an array or a schedule.
    - `beta`: $\beta$, the momentum, in $[0, 1]$.
    - `lower_bound`: $f_*$, a lower bound of the loss (0 for most losses).
    - `weight_decay`: $\lambda$.
    - `adapt_lower_bound`: estimate the lower bound as training goes (static).

    ??? cite "References"

        Schaipp et al., *MoMo: Momentum Models for Adaptive Learning Rates*, ICML 2024
        (arXiv:2305.07583).
    """

    learning_rate: Float[Array, ""] | Any = eqx.field(
        converter=as_hyperparameter, default=1.0
    )
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    lower_bound: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    adapt_lower_bound: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters("momo", self, beta=UNIT_CLOSED, weight_decay=NONNEGATIVE)

    def init(self, params: Params) -> MomoState:
        dtype = float_dtype(params)
        return MomoState(
            exp_avg=zeros_like_params(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(self.lower_bound).astype(dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates: Updates,
        state: MomoState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MomoState]:
        require_params("momo", params)
        value = extra_args.get("value")
        require_extra_arg("momo", "value", value, _LOSS)
        count, dtype = state.count, state.barf.dtype
        beta, lower_bound, weight_decay, alpha = cast(
            dtype,
            self.beta,
            self.lower_bound,
            self.weight_decay,
            value_at(self.learning_rate, count),
        )
        bt = jnp.where(count == 0, jnp.zeros([], dtype), beta)
        barf = bt * state.barf + (1 - bt) * jnp.asarray(value).astype(dtype)
        bt_in = cast_per_dtype(bt)

        @no_type_check
        def momentum(g, exp_avg, p, _):
            x = upcast(g)
            (bt,) = bt_in(x.dtype)
            d = bt * to_dtype(exp_avg, x.dtype) + (1 - bt) * x
            p_ = to_dtype(p, x.dtype)
            sums = (dot(x, p_), jnp.sum(abs_sq(d)), dot(d, p_))
            return g, to_dtype(d, exp_avg.dtype), p, sums

        names = ("updates", "state.exp_avg", "params")
        _, exp_avg, _, partials = map_leaves(
            momentum, updates, state.exp_avg, params, placeholders(updates), names=names
        )
        grad_param, norm_sq, iprod = (
            to_dtype(s, dtype)
            for s in sums_or_zeros(leaf_sums(updates, partials), 3, dtype)
        )
        gamma = bt * state.gamma + (1 - bt) * grad_param
        adapt = lower_bound if self.adapt_lower_bound else None
        one = jnp.ones([], dtype)
        tau = polyak_step(
            barf,
            gamma,
            iprod,
            norm_sq,
            alpha,
            weight_decay,
            adapt,
            state.lb,
            one,
            alpha,
        )
        shrink = alpha * weight_decay / (1 + alpha * weight_decay)
        step_in = cast_per_dtype(bt, shrink, tau)

        @no_type_check
        def step(g, exp_avg, p):
            x = upcast(g)
            bt, shrink, tau = step_in(x.dtype)
            d = bt * to_dtype(exp_avg, x.dtype) + (1 - bt) * x
            u = -shrink * to_dtype(p, x.dtype) - tau * d
            return to_dtype(u, g.dtype), exp_avg, p

        updates = map_leaves(step, updates, state.exp_avg, params, names=names)[0]
        if self.adapt_lower_bound:
            new_lb = jnp.maximum(
                (barf + iprod - gamma) - tau * norm_sq / 2, lower_bound
            )
        else:
            new_lb = state.lb
        return updates, MomoState(
            exp_avg=exp_avg,
            barf=barf,
            gamma=gamma,
            lb=new_lb,
            count=safe_increment(count),
        )


class MomoAdamState(eqx.Module):
    """State of [`eqopt.contrib.momo_adam`][]: Adam's moments, the averaged loss
    $\\bar f$, the averaged $\\langle g, x \\rangle$ ($\\gamma$), the lower bound of
    the loss and the step count."""

    exp_avg: Moments
    exp_avg_sq: Moments
    barf: Float[Array, ""]
    gamma: Float[Array, ""]
    lb: Float[Array, ""]
    count: Count


class MomoAdam(GradientTransformation):
    r"""MoMo-Adam: Adam(W) with a Polyak-type adaptive step size.

    With the loss value $f_t$ (passed to `update` as `value=`), Adam's moments $m_t$,
    $v_t$, the preconditioner $D_t = \varepsilon + \sqrt{v_t / (1 - \beta_2^t)}$ and
    $\rho_t = 1 - \beta_1^t$,

    $$
    \begin{aligned}
    \bar f_t &= \beta_1 \bar f_{t-1} + (1 - \beta_1) f_t, \qquad
    \gamma_t = \beta_1 \gamma_{t-1} + (1 - \beta_1) \langle g_t, x_t \rangle, \\
    \tau_t &= \min\Big(\frac{\alpha_t}{\rho_t},\ \frac{\big((1 + \alpha_t\lambda)
        (\bar f_t - \rho_t f_* - \gamma_t) + \langle m_t, x_t \rangle\big)_+}
        {\langle m_t, m_t / D_t \rangle}\Big), \qquad
    u_t = -\frac{\alpha_t \lambda}{1 + \alpha_t \lambda}\, x_t - \tau_t\, m_t / D_t,
    \end{aligned}
    $$

    with $f_*$ the lower bound of the loss (estimated on the fly with
    `adapt_lower_bound`), and no step where the denominator vanishes.

    `update` needs `value`, the latest (batch) loss: a `ValueError` names it when it is
    missing. Every float argument is a leaf; the numbers are Optax's.

    Optax: `optax.contrib.momo_adam`.

    **Arguments:**

    - `learning_rate`: $\alpha_t$, a float, an array or a schedule.
    - `b1`, `b2`: Adam's decay rates, in $[0, 1)$.
    - `eps`: $\varepsilon$, Adam's epsilon.
    - `lower_bound`: $f_*$, a lower bound of the loss (0 for most losses).
    - `weight_decay`: $\lambda$, AdamW-style.
    - `adapt_lower_bound`: estimate the lower bound as training goes (static).

    ??? cite "References"

        Schaipp et al., *MoMo: Momentum Models for Adaptive Learning Rates*, ICML 2024
        (arXiv:2305.07583).
    """

    learning_rate: Float[Array, ""] | Any = eqx.field(
        converter=as_hyperparameter, default=1e-2
    )
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    lower_bound: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    adapt_lower_bound: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters(
            "momo_adam",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            weight_decay=NONNEGATIVE,
        )

    def init(self, params: Params) -> MomoAdamState:
        dtype = float_dtype(params)
        return MomoAdamState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=zeros_like_params(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(self.lower_bound).astype(dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates: Updates,
        state: MomoAdamState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MomoAdamState]:
        require_params("momo_adam", params)
        value = extra_args.get("value")
        require_extra_arg("momo_adam", "value", value, _LOSS)
        count, dtype = state.count, state.barf.dtype
        t = safe_increment(count)
        b1, b2, eps, lower_bound, weight_decay, alpha = cast(
            dtype,
            self.b1,
            self.b2,
            self.eps,
            self.lower_bound,
            self.weight_decay,
            value_at(self.learning_rate, count),
        )
        barf = b1 * state.barf + (1 - b1) * jnp.asarray(value).astype(dtype)
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            return cast(dtype, b1, b2, eps, bc2)

        @no_type_check
        def moments(x, exp_avg, exp_avg_sq):
            b1, b2, eps, bc2 = scalars(x.dtype)
            m = b1 * to_dtype(exp_avg, x.dtype) + (1 - b1) * x
            v = b2 * to_dtype(exp_avg_sq, x.dtype) + (1 - b2) * x * x
            return m, v, eps + safe_sqrt(v / bc2)

        @no_type_check
        def statistics(g, exp_avg, exp_avg_sq, p, _):
            x = upcast(g)
            m, v, precond = moments(x, exp_avg, exp_avg_sq)
            p_ = to_dtype(p, x.dtype)
            sums = (dot(x, p_), dot(m, m / precond), dot(m, p_))
            return (
                g,
                to_dtype(m, exp_avg.dtype),
                to_dtype(v, exp_avg_sq.dtype),
                p,
                sums,
            )

        names = ("updates", "state.exp_avg", "state.exp_avg_sq", "params")
        _, exp_avg, exp_avg_sq, _, partials = map_leaves(
            statistics,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            params,
            placeholders(updates),
            names=names,
        )
        grad_param, norm_sq, iprod = (
            to_dtype(s, dtype)
            for s in sums_or_zeros(leaf_sums(updates, partials), 3, dtype)
        )
        gamma = b1 * state.gamma + (1 - b1) * grad_param
        adapt = lower_bound if self.adapt_lower_bound else None
        tau = polyak_step(
            barf,
            gamma,
            iprod,
            norm_sq,
            alpha,
            weight_decay,
            adapt,
            state.lb,
            bc1,
            alpha / bc1,
        )
        shrink = alpha * weight_decay / (1 + alpha * weight_decay)
        step_in = cast_per_dtype(shrink, tau)

        @no_type_check
        def step(g, exp_avg, exp_avg_sq, p):
            x = upcast(g)
            shrink, tau = step_in(x.dtype)
            m, _, precond = moments(x, exp_avg, exp_avg_sq)
            u = -shrink * to_dtype(p, x.dtype) - tau * m / precond
            return to_dtype(u, g.dtype), exp_avg, exp_avg_sq, p

        updates = map_leaves(
            step, updates, state.exp_avg, state.exp_avg_sq, params, names=names
        )[0]
        if self.adapt_lower_bound:
            new_lb = jnp.maximum(
                ((barf + iprod - gamma) - tau * norm_sq / 2) / bc1, lower_bound
            )
        else:
            new_lb = state.lb
        return updates, MomoAdamState(
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            barf=barf,
            gamma=gamma,
            lb=new_lb,
            count=t,
        )


momo = Momo
momo_adam = MomoAdam

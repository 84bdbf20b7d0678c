"""D-Adaptation's AdamW: a learning rate from an estimate of the distance to a solution."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, POSITIVE
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar, value_at
from .._numerics import bias_correction, safe_increment, safe_sqrt
from .._tree import (
    cast,
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
from ._prodigy import as_betas, check_betas


class DAdaptAdamWState(eqx.Module):
    """State of [`eqopt.contrib.dadapt_adamw`][]: Adam's moments, the weighted sum of
    gradients $s$, the estimate $d$ (`estim_lr`), the numerator of the estimate and the
    step count."""

    exp_avg: Moments
    exp_avg_sq: Moments
    grad_sum: Moments
    estim_lr: Float[Array, ""]
    numerator_weighted: Float[Array, ""]
    count: Count


class DAdaptAdamW(GradientTransformation):
    r"""D-Adaptation's AdamW: learning-rate-free AdamW.

    With the gradient $g_t$, the schedule $\eta_t$ (1 is the base value) and
    $\sqrt{\beta_2}$ written $\beta$,

    $$
    \begin{aligned}
    \lambda_t &= d_t\, \eta_t \sqrt{1 - \beta_2^{t+1}} / (1 - \beta_1^{t+1}), \qquad
    r_{t+1} = \beta r_t + (1 - \beta)\, \lambda_t
        \big\langle g_t,\ s_t / (\sqrt{v_t} + \varepsilon) \big\rangle, \\
    m_{t+1} &= \beta_1 m_t + (1 - \beta_1)\, \lambda_t g_t, \qquad
    v_{t+1} = \beta_2 v_t + (1 - \beta_2)\, g_t^2, \qquad
    s_{t+1} = \beta s_t + (1 - \beta)\, \lambda_t g_t, \\
    d_{t+1} &= \max\big(d_t,\ r_{t+1} / ((1 - \beta) \|s_{t+1}\|_1)\big), \qquad
    u_t = -\lambda_t w\, x_t - m_{t+1} / (\sqrt{v_{t+1}} + \varepsilon).
    \end{aligned}
    $$

    Every float argument is a leaf. `init` reads only the parameters' shapes. Where
    Optax's estimate is $0/0$ (no nonzero gradient yet), $d$ keeps its value (Optax's
    becomes NaN); elsewhere the numbers are Optax's.

    Optax: `optax.contrib.dadapt_adamw`.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule (a linear decay from
        1.0 with a warmup is recommended).
    - `betas`: $(\beta_1, \beta_2)$, AdamW's decay rates, each in $[0, 1)$.
    - `eps`: $\varepsilon$, AdamW's epsilon.
    - `estim_lr0`: $d_0 > 0$, the initial (under-)estimate of $d$.
    - `weight_decay`: $w$, AdamW-style decoupled weight decay.

    ??? cite "References"

        Defazio and Mishchenko, *Learning-Rate-Free Learning by D-Adaptation*, ICML
        2023 (arXiv:2301.07733).
    """

    learning_rate: Float[Array, ""] | Any = eqx.field(
        converter=as_hyperparameter, default=1.0
    )
    betas: tuple[Float[Array, ""], Float[Array, ""]] = eqx.field(
        converter=as_betas, default=(0.9, 0.999)
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    estim_lr0: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        check_betas("dadapt_adamw", self.betas)
        check_hyperparameters(
            "dadapt_adamw",
            self,
            eps=NONNEGATIVE,
            estim_lr0=POSITIVE,
            weight_decay=NONNEGATIVE,
        )

    def init(self, params: Params) -> DAdaptAdamWState:
        dtype = float_dtype(params)
        return DAdaptAdamWState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=zeros_like_params(params),
            grad_sum=zeros_like_params(params),
            estim_lr=jnp.asarray(self.estim_lr0).astype(dtype),
            numerator_weighted=jnp.zeros([], dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates: Updates,
        state: DAdaptAdamWState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, DAdaptAdamWState]:
        require_params("dadapt_adamw", params)
        count = state.count
        dtype = state.estim_lr.dtype
        b1, b2, eps, weight_decay, schedule = cast(
            dtype,
            *self.betas,
            self.eps,
            self.weight_decay,
            value_at(self.learning_rate, count),
        )
        beta = safe_sqrt(b2)
        # 1 - sqrt(b2), without the cancellation of the subtraction in float32.
        one_minus_beta = (1 - b2) / (1 + beta)
        t = safe_increment(count)
        dlr = (
            state.estim_lr
            * schedule
            * (safe_sqrt(bias_correction(b2, t)) / bias_correction(b1, t))
        )

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            return cast(dtype, b1, b2, beta, one_minus_beta, eps, dlr, weight_decay)

        @no_type_check
        def rule(g, exp_avg, exp_avg_sq, grad_sum, p, _):
            x = upcast(g)
            b1, b2, beta, one_minus_beta, eps, dlr, weight_decay = scalars(x.dtype)
            m, v, s = (to_dtype(a, x.dtype) for a in (exp_avg, exp_avg_sq, grad_sum))
            numerator = dot(x, s / (safe_sqrt(v) + eps))
            m = b1 * m + (1 - b1) * dlr * x
            v = b2 * v + (1 - b2) * x * x
            s = beta * s + one_minus_beta * dlr * x
            u = -weight_decay * dlr * to_dtype(p, x.dtype) - m / (safe_sqrt(v) + eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(m, exp_avg.dtype),
                to_dtype(v, exp_avg_sq.dtype),
                to_dtype(s, grad_sum.dtype),
                p,
                (numerator, jnp.sum(jnp.abs(s))),
            )

        names = (
            "updates",
            "state.exp_avg",
            "state.exp_avg_sq",
            "state.grad_sum",
            "params",
        )
        updates, exp_avg, exp_avg_sq, grad_sum, _, partials = map_leaves(
            rule,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            state.grad_sum,
            params,
            placeholders(updates),
            names=names,
        )
        numerator, grad_sum_l1 = sums_or_zeros(leaf_sums(updates, partials), 2, dtype)
        numerator_weighted = (
            beta * state.numerator_weighted
            + one_minus_beta * dlr * to_dtype(numerator, dtype)
        )
        estimate = safe_divide(
            numerator_weighted, one_minus_beta * to_dtype(grad_sum_l1, dtype)
        )
        return updates, DAdaptAdamWState(
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            grad_sum=grad_sum,
            estim_lr=jnp.maximum(state.estim_lr, estimate),
            numerator_weighted=numerator_weighted,
            count=t,
        )


dadapt_adamw = DAdaptAdamW

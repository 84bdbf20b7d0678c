"""Prodigy: D-Adaptation's AdamW with a faster estimate of the distance to a solution."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, check_value, NONNEGATIVE, POSITIVE, UNIT
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar, value_at
from .._numerics import bias_correction, safe_increment, safe_sqrt
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
    capture_initial,
    dot,
    leaf_sums,
    placeholders,
    safe_divide,
    sums_or_zeros,
)


@no_type_check
def as_betas(betas: Any) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """A pair of decay rates `(b1, b2)`, each a hyperparameter leaf."""
    b1, b2 = betas
    return as_scalar(b1), as_scalar(b2)


@no_type_check
def check_betas(owner: str, betas: tuple[Array, Array]) -> None:
    for i, beta in enumerate(betas):
        check_value(owner, f"betas[{i}]", beta, UNIT)


class ProdigyState(eqx.Module):
    """State of [`eqopt.contrib.prodigy`][]: Adam's moments of the scaled gradients, the
    weighted sum of gradients $s$, the initial parameters $x_0$, the estimate $d$
    (`estim_lr`), the numerator of the estimate and the step count.

    `params0` holds zeros until the first `update`, which stores the parameters it is
    given there (Optax's `init` stores them; this one reads only their shapes).
    """

    exp_avg: Moments
    exp_avg_sq: Moments
    grad_sum: Moments
    params0: Moments
    estim_lr: Float[Array, ""]
    numerator_weighted: Float[Array, ""]
    count: Count


class Prodigy(GradientTransformation):
    r"""Prodigy: learning-rate-free AdamW, adapting the step size $d$ as it trains.

    With the gradient $g_t$, the parameters $x_t$ (and $x_0$ the first ones), the
    schedule $\eta_t$ (1 is the base value), $\beta_3 = \sqrt{\beta_2}$ by default and
    $d_0$ = `estim_lr0`,

    $$
    \begin{aligned}
    \lambda_t &= d_t\, \eta_t \sqrt{1 - \beta_2^{t+1}} / (1 - \beta_1^{t+1}), \\
    m_{t+1} &= \beta_1 m_t + (1 - \beta_1)\, d_t g_t, \qquad
    v_{t+1} = \beta_2 v_t + (1 - \beta_2)\, d_t^2 g_t^2, \\
    s_{t+1} &= \beta_3 s_t + \lambda_t d_t g_t / d_0, \qquad
    r_{t+1} = \beta_3 r_t + (d_t / d_0)\, \lambda_t \langle g_t, x_0 - x_t \rangle, \\
    d_{t+1} &= \max\big(d_t,\ c\, r_{t+1} / \|s_{t+1}\|_1\big), \\
    u_t &= -\lambda_t\, w\, x_t - \lambda_t\, m_{t+1} / \big(\sqrt{v_{t+1}} +
        d_{t+1} \varepsilon\big).
    \end{aligned}
    $$

    With `safeguard_warmup`, $s$ accumulates $d_t^2 g_t / d_0$ instead (no schedule in
    the denominator of the estimate).

    Every float argument is a leaf (`estim_lr_coef`, `estim_lr0`, the betas...), so a
    sweep over it is one vmapped run and it has a hypergradient. `init` reads only the
    parameters' shapes: $x_0$ is stored by the first `update`. Where Optax's estimate
    is $0/0$ (no nonzero gradient yet, $\|s\|_1 = 0$), $d$ keeps its value (Optax's
    becomes NaN); elsewhere the numbers are Optax's.

    Optax: `optax.contrib.prodigy`.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule (a linear decay from
        1.0 with a warmup is recommended).
    - `betas`: $(\beta_1, \beta_2)$, AdamW's decay rates, each in $[0, 1)$.
    - `beta3`: $\beta_3$, the decay of the estimate's sums; `None` for
        $\sqrt{\beta_2}$.
    - `eps`: $\varepsilon$, AdamW's epsilon (scaled by $d$).
    - `estim_lr0`: $d_0 > 0$, the initial (under-)estimate of $d$.
    - `estim_lr_coef`: $c$, a multiplier of every estimate.
    - `weight_decay`: $w$, AdamW-style decoupled weight decay.
    - `safeguard_warmup`: leave the schedule out of the estimate's denominator (for a
        warmup).

    ??? cite "References"

        Mishchenko and Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free
        Learner*, ICML 2024 (arXiv:2306.06101).
    """

    learning_rate: Float[Array, ""] | Any = eqx.field(
        converter=as_hyperparameter, default=1.0
    )
    betas: tuple[Float[Array, ""], Float[Array, ""]] = eqx.field(
        converter=as_betas, default=(0.9, 0.999)
    )
    beta3: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    estim_lr0: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    estim_lr_coef: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    safeguard_warmup: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_betas("prodigy", self.betas)
        check_hyperparameters(
            "prodigy",
            self,
            beta3=UNIT,
            eps=NONNEGATIVE,
            estim_lr0=POSITIVE,
            estim_lr_coef=NONNEGATIVE,
            weight_decay=NONNEGATIVE,
        )

    def init(self, params: Params) -> ProdigyState:
        dtype = float_dtype(params)
        return ProdigyState(
            exp_avg=zeros_like_params(params),
            exp_avg_sq=zeros_like_params(params),
            grad_sum=zeros_like_params(params),
            params0=zeros_like_params(params),
            estim_lr=jnp.asarray(self.estim_lr0).astype(dtype),
            numerator_weighted=jnp.zeros([], dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates: Updates,
        state: ProdigyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ProdigyState]:
        require_params("prodigy", params)
        count, first_step = state.count, state.count == 0
        dtype = state.estim_lr.dtype
        b1, b2, eps, d0, coef, weight_decay, schedule = cast(
            dtype,
            *self.betas,
            self.eps,
            self.estim_lr0,
            self.estim_lr_coef,
            self.weight_decay,
            value_at(self.learning_rate, count),
        )
        b3 = safe_sqrt(b2) if self.beta3 is None else cast(dtype, self.beta3)[0]
        d = state.estim_lr
        t = safe_increment(count)
        dlr = d * schedule * safe_sqrt(bias_correction(b2, t)) / bias_correction(b1, t)
        grad_sum_weight = d if self.safeguard_warmup else dlr

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            return cast(dtype, b1, b2, b3, d, d0, grad_sum_weight)

        @no_type_check
        def moments(x, exp_avg, exp_avg_sq):
            b1, b2, _, d, _, _ = scalars(x.dtype)
            dg = d * x
            exp_avg = b1 * to_dtype(exp_avg, x.dtype) + (1 - b1) * dg
            exp_avg_sq = b2 * to_dtype(exp_avg_sq, x.dtype) + (1 - b2) * dg * dg
            return exp_avg, exp_avg_sq, dg

        @no_type_check
        def statistics(g, exp_avg, exp_avg_sq, grad_sum, params0, p, _):
            x = upcast(g)
            _, _, b3, _, d0, weight = scalars(x.dtype)
            new_exp_avg, new_exp_avg_sq, dg = moments(x, exp_avg, exp_avg_sq)
            new_grad_sum = b3 * to_dtype(grad_sum, x.dtype) + weight * dg / d0
            difference = to_dtype(params0, x.dtype) - to_dtype(p, x.dtype)
            sums = (dot(x, difference), jnp.sum(jnp.abs(new_grad_sum)))
            return (
                g,
                to_dtype(new_exp_avg, exp_avg.dtype),
                to_dtype(new_exp_avg_sq, exp_avg_sq.dtype),
                to_dtype(new_grad_sum, grad_sum.dtype),
                params0,
                p,
                sums,
            )

        names = (
            "updates",
            "state.exp_avg",
            "state.exp_avg_sq",
            "state.grad_sum",
            "state.params0",
            "params",
        )
        params0 = capture_initial(first_step, params, state.params0, "state.params0")
        _, exp_avg, exp_avg_sq, grad_sum, params0, _, partials = map_leaves(
            statistics,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            state.grad_sum,
            params0,
            params,
            placeholders(updates),
            names=names,
        )
        numerator, denominator = sums_or_zeros(leaf_sums(updates, partials), 2, dtype)
        numerator_weighted = b3 * state.numerator_weighted + (d / d0) * dlr * to_dtype(
            numerator, dtype
        )
        estimate = safe_divide(coef * numerator_weighted, to_dtype(denominator, dtype))
        new_d = jnp.maximum(d, estimate)
        step_in = cast_per_dtype(dlr, weight_decay, new_d * eps)

        @no_type_check
        def step(g, exp_avg, exp_avg_sq, p):
            x = upcast(g)
            dlr, weight_decay, d_eps = step_in(x.dtype)
            m, v, _ = moments(x, exp_avg, exp_avg_sq)
            u = -weight_decay * dlr * to_dtype(p, x.dtype) - dlr * m / (
                safe_sqrt(v) + d_eps
            )
            return to_dtype(u, g.dtype), exp_avg, exp_avg_sq, p

        updates = map_leaves(
            step,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            params,
            names=names[:3] + ("params",),
        )[0]
        return updates, ProdigyState(
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            grad_sum=grad_sum,
            params0=params0,
            estim_lr=new_d,
            numerator_weighted=numerator_weighted,
            count=t,
        )


prodigy = Prodigy

"""MARS: variance-reduced gradients in AdamW (Yuan et al. 2024), the MARS-AdamW variant."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, safe_increment, safe_norm
from .._transforms.adaptive import adam_denominator, adam_scalars, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import map_leaves, to_dtype, upcast, zeros_like_params


_MARS_RANGES = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE, gamma=NONNEGATIVE)


class ScaleByMarsState(eqx.Module):
    """State of [`eqopt.ScaleByMars`][]: the step count, the two moments of the
    corrected gradients, and the previous step's gradient."""

    count: Count
    mu: Moments
    nu: Moments
    prev_grad: Moments


class ScaleByMars(GradientTransformation):
    r"""Rescale updates by MARS-AdamW: Adam's moments of a variance-reduced gradient.

    With $g_t$ the gradient and $g_{t-1}$ the previous step's, per leaf:

    $$
    \begin{aligned}
    c_t &= g_t + \gamma\, \frac{\beta_1}{1 - \beta_1}\, (g_t - g_{t-1}), &
    \tilde c_t &= \begin{cases} c_t / \lVert c_t \rVert_2 & \lVert c_t \rVert_2 > 1
        \\ c_t & \text{otherwise,} \end{cases} \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, \tilde c_t, &
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, \tilde c_t^2, \\
    u_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \varepsilon}.
    \end{aligned}
    $$

    This is the paper's *approximate* variant (MARS-approx): the exact one evaluates
    the gradient at the previous parameters on the current batch,
    $\nabla f(x_{t-1}, \xi_t)$, which costs a second gradient per step; here
    $g_{t-1} = \nabla f(x_{t-1}, \xi_{t-1})$ is the gradient `update` received at the
    previous step, kept in the state. At the first step $g_0 = g_1$ (the paper starts
    from $x_0 = x_1$), so $c_1 = g_1$; the authors' PyTorch code starts from
    $g_0 = 0$ instead. The norm of the clipping is that of each leaf (each tensor, as in
    the authors' code), computed in float32 or wider.

    Not in Optax.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$; it also sets the
        weight $\beta_1 / (1 - \beta_1)$ of the correction.
    - `b2`: $\beta_2$, decay of the second moment, in $[0, 1)$.
    - `eps`: $\varepsilon \ge 0$, added to the denominator.
    - `gamma`: $\gamma \ge 0$, the strength of the variance reduction ($\gamma = 0$
        is Adam on clipped gradients).
    - `mu_dtype`: dtype of the first moment; `None` uses each parameter's dtype.
    - `nu_dtype`: dtype of the second moment; `None` uses each parameter's dtype.
    - `grad_dtype`: dtype of the stored previous gradient; `None` uses each
        parameter's dtype.

    ??? cite "References"

        Yuan et al., *MARS: Unleashing the Power of Variance Reduction for Training
        Large Models*, 2024 (arXiv:2411.10438), Algorithm 2 and its approximate
        variant.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.025)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    grad_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("scale_by_mars", self, **_MARS_RANGES)

    def init(self, params: Params) -> ScaleByMarsState:
        return ScaleByMarsState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params, self.nu_dtype),
            prev_grad=zeros_like_params(params, self.grad_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByMarsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByMarsState]:
        first = state.count == 0
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.b2, self.eps, self.gamma)

        @no_type_check
        def rule(g, mu, nu, prev):
            x = upcast(g)
            w1, w2, c1, c2, _, eps, gamma = scalars(x.dtype)
            b1, one_minus_b1 = w1
            prev_x = jnp.where(first, x, to_dtype(prev, x.dtype))
            c = x + gamma * (b1 / one_minus_b1) * (x - prev_x)
            c = c / safe_norm(c, jnp.ones((), x.dtype))  # c / max(1, |c|)
            mu_new = ema(w1, mu, c)
            nu_new = ema(w2, nu, abs_sq(c))
            u = (mu_new / c1) / adam_denominator(nu_new / c2, jnp.zeros_like(eps), eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
                to_dtype(g, prev.dtype),
            )

        names = ("updates", "state.mu", "state.nu", "state.prev_grad")
        updates, mu, nu, prev_grad = map_leaves(
            rule, updates, state.mu, state.nu, state.prev_grad, names=names
        )
        return updates, ScaleByMarsState(count, mu, nu, prev_grad)


class Mars(AbstractOptimiser):
    r"""MARS-AdamW: AdamW on variance-reduced, clipped gradients.

    $\theta_{t+1} = \theta_t - \eta_t \left(u_t + \lambda\, \theta_t\right)$ with
    $u_t$ from [`eqopt.ScaleByMars`][] (the approximate variant: the correction uses
    the previous step's gradient).

    Not in Optax. Built as `chain(scale_by_mars(b1, b2, eps, gamma, ...),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.
    Defaults are those of the authors' code (`betas=(0.95, 0.99)`, `gamma=0.025`,
    no weight decay; they use a learning rate of `3e-3`).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `gamma`, `mu_dtype`, `nu_dtype`, `grad_dtype`: as in
        [`eqopt.ScaleByMars`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule (decoupled).
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Yuan et al., *MARS: Unleashing the Power of Variance Reduction for Training
        Large Models*, 2024 (arXiv:2411.10438).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.025)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    grad_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("mars", self, **_MARS_RANGES)

    def as_chain(self) -> Chain:
        scaling = ScaleByMars(
            self.b1,
            self.b2,
            self.eps,
            self.gamma,
            self.mu_dtype,
            nu_dtype=self.nu_dtype,
            grad_dtype=self.grad_dtype,
        )
        return Chain(
            (
                scaling,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_mars = ScaleByMars
mars = Mars

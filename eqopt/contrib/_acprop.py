"""ACProp: AdaBelief's centred second moment, used one step late (asynchronously)."""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, bias_correction, safe_increment, safe_sqrt
from .._transforms.adam_variants import ScaleByBeliefState
from .._transforms.adaptive import decay_weights, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import cast, map_leaves, to_dtype, upcast, zeros_like_params


_RANGES = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE, eps_root=NONNEGATIVE)


class ScaleByACProp(GradientTransformation):
    r"""Rescale updates by ACProp's rule: the gradient over the square root of the
    *previous* step's second moment of the prediction error.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
    s_t &= \beta_2 s_{t-1} + (1 - \beta_2)\, |g_t - m_{t-1}|^2 + \bar\varepsilon, \\
    \hat s_{t-1} &= s_{t-1} / (1 - \beta_2^{t-1}) \quad (\hat s_0 = 1), &
    u_t &= g_t / \left(\sqrt{\hat s_{t-1}} + \varepsilon\right).
    \end{aligned}
    $$

    The denominator uses information up to step $t - 1$ only ("asynchronous"), and the
    numerator is the raw gradient. As in Optax 0.2.8, the prediction error is taken
    against the previous first moment $m_{t-1}$, and the first step divides by
    $\sqrt{1} + \varepsilon$. The state is Optax's `ScaleByBeliefState(count, mu, nu)`
    ([`eqopt.ScaleByBeliefState`][]), `nu` holding $s_t$.

    Optax: `optax.contrib.scale_by_acprop`.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the second moment of the prediction error, in $[0, 1)$.
    - `eps`: $\varepsilon$, added to the denominator.
    - `eps_root`: $\bar\varepsilon$, added to $s_t$ at each step.

    ??? cite "References"

        Zhuang et al., *Momentum Centering and Asynchronous Update for Adaptive
        Gradient Methods*, NeurIPS 2021.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)

    def __check_init__(self):
        check_hyperparameters("scale_by_acprop", self, **_RANGES)

    def init(self, params: Params) -> ScaleByBeliefState:
        return ScaleByBeliefState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params),
            nu=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByBeliefState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByBeliefState]:
        count = safe_increment(state.count)
        initial = state.count == 0
        # The previous step's bias correction; at the first step `1 - b2` (any
        # non-zero value would do: the debiased moment is replaced by 1 there).
        t = jnp.where(initial, count, state.count)

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            b1, b2, eps, eps_root = cast(
                dtype, self.b1, self.b2, self.eps, self.eps_root
            )
            return (
                decay_weights(b1),
                decay_weights(b2),
                bias_correction(b2, t),
                eps,
                eps_root,
            )

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            w1, w2, c2, eps, eps_root = scalars(x.dtype)
            mu_old, nu_old = to_dtype(mu, x.dtype), to_dtype(nu, x.dtype)
            mu_new = ema(w1, mu_old, x)
            nu_new = ema(w2, nu_old, abs_sq(x - mu_old)) + eps_root
            nu_hat = jnp.where(initial, 1, nu_old / c2)
            u = x / (safe_sqrt(nu_hat) + eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "state.mu", "state.nu")
        updates, mu, nu = map_leaves(rule, updates, state.mu, state.nu, names=names)
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)


class ACProp(AbstractOptimiser):
    r"""ACProp: AdaBelief with the denominator of the previous step.

    $u_t = -\eta_t \left(g_t / (\sqrt{\hat s_{t-1}} + \varepsilon) + \lambda\,
    \theta_t\right)$, with $\hat s$ as in [`eqopt.contrib.ScaleByACProp`][]. The weight
    decay is multiplied by the learning rate (as PyTorch's, unlike Loshchilov and
    Hutter's).

    Optax: `optax.contrib.acprop`. Built as `chain(scale_by_acprop(b1, b2, eps,
    eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`: as in [`eqopt.contrib.ScaleByACProp`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Zhuang et al., *Momentum Centering and Asynchronous Update for Adaptive
        Gradient Methods*, NeurIPS 2021.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters("acprop", self, **_RANGES)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByACProp(self.b1, self.b2, self.eps, self.eps_root),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_acprop = ScaleByACProp
acprop = ACProp

"""Variants of Adam's scaling: Adamax, AMSGrad, AdaBelief, Yogi and RAdam.

Each shares Adam's first moment and bias corrections (`adam_scalars`, `debiased_mean`,
`adam_denominator` in `adaptive.py`) and differs in its second moment or in how that
moment scales the update.
"""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, POSITIVE, UNIT
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import abs_sq, safe_increment, safe_sqrt
from .._tree import (
    cast,
    full_like_params,
    map_leaves,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .adaptive import (
    _zero_count,
    adam_denominator,
    adam_scalars,
    debiased_mean,
    ema,
    ScaleByAdamState,
)


_DECAYS = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE)
_DECAYS_AND_ROOT = dict(_DECAYS, eps_root=NONNEGATIVE)


@no_type_check  # once per leaf: see `eqopt._tree`
def _in_compute_dtype(rule, g: Array, *moments: Array) -> tuple[Array, ...]:
    """`rule(x, *moments) -> (u, *moments')` on `g` and its moments in the compute
    dtype (float32 or wider); `u` is cast back to `g`'s dtype and each moment to its
    own. Use as `map_leaves(ft.partial(_in_compute_dtype, rule), ...)`."""
    x = upcast(g)
    u, *new = rule(x, *(to_dtype(m, x.dtype) for m in moments))
    return to_dtype(u, g.dtype), *(to_dtype(n, m.dtype) for n, m in zip(new, moments))


class ScaleByAdamax(GradientTransformation):
    r"""Rescale updates by Adamax's infinity-norm moment.

    $$
    m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
    v_t = \max(|g_t| + \varepsilon,\ \beta_2 v_{t-1}), \qquad
    u_t = \frac{m_t / (1 - \beta_1^t)}{v_t}.
    $$

    The infinity moment needs no bias correction. Its state is Optax's:
    [`eqopt.ScaleByAdamState`][] with `nu` $= v$.

    Optax: `optax.scale_by_adamax`.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the infinity moment, in $[0, 1)$.
    - `eps`: $\varepsilon$, added to $|g_t|$ (so $v_t \ge \varepsilon$).

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015
        (section 7.1).
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)

    def __check_init__(self):
        check_hyperparameters("scale_by_adamax", self, **_DECAYS)

    def init(self, params: Params) -> ScaleByAdamState:
        # Two arrays, not one aliased twice: a donated state must not hold the same
        # buffer twice.
        return ScaleByAdamState(
            count=_zero_count(),
            mu=zeros_like_params(params),
            nu=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdamState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdamState]:
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.b2, self.eps)

        @no_type_check
        def rule(x, mu, nu):
            w1, (b2, _), c1, _, _, eps = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            nu_new = jnp.maximum(jnp.abs(x) + eps, b2 * nu)
            return (mu_new / c1) / nu_new, mu_new, nu_new

        updates, mu, nu = map_leaves(
            ft.partial(_in_compute_dtype, rule),
            updates,
            state.mu,
            state.nu,
            names=("updates", "state.mu", "state.nu"),
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


class ScaleByAmsgradState(eqx.Module):
    """State of `ScaleByAMSGrad`: the step count, the two moments and the running
    maximum of the (debiased) second moment."""

    count: Count
    mu: Moments
    nu: Moments
    nu_max: Moments


class ScaleByAMSGrad(GradientTransformation):
    r"""Rescale updates by AMSGrad's running maximum of Adam's second moment.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, |g_t|^2, \\
    \hat v^{\max}_t &= \max(\hat v^{\max}_{t-1},\ v_t / (1 - \beta_2^t)), &
    u_t &= \frac{m_t / (1 - \beta_1^t)}
        {\sqrt{\hat v^{\max}_t + \bar\varepsilon} + \varepsilon}.
    \end{aligned}
    $$

    `bias_correction_mu=False` / `bias_correction_nu=False` drop the divisions by
    $1 - \beta_1^t$ / $1 - \beta_2^t$ (the original paper).

    Optax: `optax.scale_by_amsgrad`.

    **Arguments:**

    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`: as in [`eqopt.ScaleByAdam`][].
    - `bias_correction_mu`: whether to debias the first moment.
    - `bias_correction_nu`: whether to debias the second moment before the maximum.
    - `nu_dtype`: dtype of `nu` and `nu_max`; `None` uses each parameter's dtype.
        Keyword-only; not in Optax (see [`eqopt.ScaleByAdam`][]).

    ??? cite "References"

        Reddi, Kale and Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    bias_correction_mu: bool = eqx.field(static=True, default=True)
    bias_correction_nu: bool = eqx.field(static=True, default=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("scale_by_amsgrad", self, **_DECAYS_AND_ROOT)

    def init(self, params: Params) -> ScaleByAmsgradState:
        return ScaleByAmsgradState(
            count=_zero_count(),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params, self.nu_dtype),
            nu_max=zeros_like_params(params, self.nu_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAmsgradState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAmsgradState]:
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.b2, self.eps, self.eps_root)

        @no_type_check
        def rule(x, mu, nu, nu_max):
            w1, w2, c1, c2, _, eps, eps_root = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            nu_new = ema(w2, nu, abs_sq(x))
            mu_hat = mu_new / c1 if self.bias_correction_mu else mu_new
            nu_hat = nu_new / c2 if self.bias_correction_nu else nu_new
            nu_max_new = jnp.maximum(nu_max, nu_hat)
            u = mu_hat / adam_denominator(nu_max_new, eps_root, eps)
            return u, mu_new, nu_new, nu_max_new

        names = ("updates", "state.mu", "state.nu", "state.nu_max")
        updates, mu, nu, nu_max = map_leaves(
            ft.partial(_in_compute_dtype, rule),
            updates,
            state.mu,
            state.nu,
            state.nu_max,
            names=names,
        )
        return updates, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)


class ScaleByBeliefState(eqx.Module):
    """State of `ScaleByBelief`: the step count, the first moment and the second
    moment of the prediction error (`nu`, Optax's name)."""

    count: Count
    mu: Moments
    nu: Moments


class ScaleByBelief(GradientTransformation):
    r"""Rescale updates by AdaBelief's "belief": the spread of gradients around their
    moving average.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
    s_t &= \beta_2 s_{t-1} + (1 - \beta_2)\, |g_t - m_t|^2 + \bar\varepsilon, \\
    u_t &= \frac{\hat m_t}{\sqrt{s_t / (1 - \beta_2^t)} + \varepsilon}
    \end{aligned}
    $$

    with $\hat m_t$ as in [`eqopt.ScaleByAdam`][] (Nesterov's with `nesterov=True`).
    The state keeps $s_t$, $\bar\varepsilon$ included, as Optax.

    Optax: `optax.scale_by_belief`.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the second moment of the prediction error, in $[0, 1)$.
    - `eps`: $\varepsilon$, added outside the square root.
    - `eps_root`: $\bar\varepsilon$, added to $s_t$ at each step.
    - `nesterov`: use Nesterov momentum.

    ??? cite "References"

        Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in
        Observed Gradients*, NeurIPS 2020.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("scale_by_belief", self, **_DECAYS_AND_ROOT)

    def init(self, params: Params) -> ScaleByBeliefState:
        # Two arrays, not one aliased twice: a donated state must not hold the same
        # buffer twice.
        return ScaleByBeliefState(
            count=_zero_count(),
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
        scalars = adam_scalars(
            count, self.b1, self.b2, self.eps, self.eps_root, nesterov=self.nesterov
        )

        @no_type_check
        def rule(x, mu, s):
            w1, w2, c1, c2, next_c1, eps, eps_root = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            s_new = ema(w2, s, abs_sq(x - mu_new)) + eps_root
            mu_hat = debiased_mean(w1, mu_new, x, c1, next_c1)
            return mu_hat / (safe_sqrt(s_new / c2) + eps), mu_new, s_new

        updates, mu, nu = map_leaves(
            ft.partial(_in_compute_dtype, rule),
            updates,
            state.mu,
            state.nu,
            names=("updates", "state.mu", "state.nu"),
        )
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)


class ScaleByYogi(GradientTransformation):
    r"""Rescale updates by Yogi's additively updated second moment.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \\
    v_t &= v_{t-1} - (1 - \beta_2)\, \operatorname{sign}(v_{t-1} - |g_t|^2)\, |g_t|^2, \\
    u_t &= \frac{m_t / (1 - \beta_1^t)}
        {\sqrt{v_t / (1 - \beta_2^t) + \bar\varepsilon} + \varepsilon}.
    \end{aligned}
    $$

    Both moments start at `initial_accumulator_value`. The state is Optax's:
    [`eqopt.ScaleByAdamState`][].

    Optax: `optax.scale_by_yogi`.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, in $[0, 1)$.
    - `eps`: $\varepsilon$, added outside the square root.
    - `eps_root`: $\bar\varepsilon$, added inside the square root.
    - `initial_accumulator_value`: the initial $m_0$ and $v_0$, positive.

    ??? cite "References"

        Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    initial_accumulator_value: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=1e-6
    )

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_yogi",
            self,
            **_DECAYS_AND_ROOT,
            initial_accumulator_value=POSITIVE,
        )

    def init(self, params: Params) -> ScaleByAdamState:
        initial = self.initial_accumulator_value  # two arrays: state can be donated
        return ScaleByAdamState(
            count=_zero_count(),
            mu=full_like_params(params, initial),
            nu=full_like_params(params, initial),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdamState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdamState]:
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.b2, self.eps, self.eps_root)

        @no_type_check
        def rule(x, mu, nu):
            w1, (_, one_minus_b2), c1, c2, _, eps, eps_root = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            g2 = abs_sq(x)
            nu_new = nu - one_minus_b2 * jnp.sign(nu - g2) * g2
            u = (mu_new / c1) / adam_denominator(nu_new / c2, eps_root, eps)
            return u, mu_new, nu_new

        updates, mu, nu = map_leaves(
            ft.partial(_in_compute_dtype, rule),
            updates,
            state.mu,
            state.nu,
            names=("updates", "state.mu", "state.nu"),
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


@no_type_check
def _rectification(b2: Array, threshold: Array, count: Count) -> tuple[Array, Array]:
    r"""RAdam's $(\rho_t \ge$ `threshold`$,\ r_t)$ for one dtype.

    $$
    \rho_\infty = \frac{2}{1 - \beta_2} - 1, \quad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}, \quad
    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
        {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}.
    $$

    Where $\rho_t$ is below the threshold, $r_t$ is not used (the radicand may be
    negative): it is computed from a stand-in ratio of 1, so that its derivative, which
    reaches the hypergradient through `jnp.where` even when not selected, is finite.
    """
    t = count.astype(b2.dtype)
    rho_inf = 2 / (1 - b2) - 1
    b2t = b2**t
    rho = rho_inf - 2 * t * b2t / (1 - b2t)
    rectified = rho >= threshold
    numerator = (rho - 4) * (rho - 2) * rho_inf
    denominator = (rho_inf - 4) * (rho_inf - 2) * rho
    one = jnp.ones_like(rho)
    ratio = jnp.where(rectified, numerator, one) / jnp.where(
        rectified, denominator, one
    )
    return rectified, safe_sqrt(ratio)


class ScaleByRAdam(GradientTransformation):
    r"""Rescale updates by Rectified Adam: Adam's scaling once the variance of its
    adaptive learning rate is tractable, momentum alone before.

    $$
    u_t = \begin{cases}
        r_t\, \hat m_t / \left(\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon\right)
            & \rho_t \ge \text{threshold}, \\
        \hat m_t & \text{otherwise},
    \end{cases}
    $$

    with $\hat m_t$, $\hat v_t$ as in [`eqopt.ScaleByAdam`][] and

    $$
    \rho_\infty = \frac{2}{1 - \beta_2} - 1, \quad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}, \quad
    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
        {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}.
    $$

    The state is Optax's: [`eqopt.ScaleByAdamState`][].

    Optax: `optax.scale_by_radam`. One difference: Optax computes $\rho_\infty$ from
    $\beta_2$ as a Python float (in double precision) but $\beta_2^t$ in float32;
    eqopt computes both from the float32 leaf, consistently ($\rho_1 = 1$ up to
    rounding, where Optax has 0.974 for `b2=0.999`). Where
    $\beta_2$ is exactly a float32 (`0.99609375`, `0.5`) the numbers are Optax's; for
    `b2=0.999` (`float32(0.999)` is 1.3e-8 above it) $\rho_\infty$ differs by 0.026, and
    $r_t$ by up to about 1.5% in the first steps past the threshold.

    **Arguments:**

    - `b1`, `b2`, `eps`, `eps_root`, `nesterov`: as in [`eqopt.ScaleByAdam`][].
    - `threshold`: the smallest $\rho_t$ at which the rectified Adam step is taken.

    ??? cite "References"

        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*,
        ICLR 2020.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    threshold: Float[Array, ""] = eqx.field(converter=as_scalar, default=5.0)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("scale_by_radam", self, **_DECAYS_AND_ROOT)

    def init(self, params: Params) -> ScaleByAdamState:
        # Two arrays, not one aliased twice: a donated state must not hold the same
        # buffer twice.
        return ScaleByAdamState(
            count=_zero_count(),
            mu=zeros_like_params(params),
            nu=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdamState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdamState]:
        count = safe_increment(state.count)
        scalars = adam_scalars(
            count, self.b1, self.b2, self.eps, self.eps_root, nesterov=self.nesterov
        )
        rectification = ft.cache(
            lambda dtype: _rectification(*cast(dtype, self.b2, self.threshold), count)
        )

        @no_type_check
        def rule(x, mu, nu):
            w1, w2, c1, c2, next_c1, eps, eps_root = scalars(x.dtype)
            rectified, r = rectification(x.dtype)
            mu_new = ema(w1, mu, x)
            nu_new = ema(w2, nu, abs_sq(x))
            mu_hat = debiased_mean(w1, mu_new, x, c1, next_c1)
            adam = r * mu_hat / adam_denominator(nu_new / c2, eps_root, eps)
            return jnp.where(rectified, adam, mu_hat), mu_new, nu_new

        updates, mu, nu = map_leaves(
            ft.partial(_in_compute_dtype, rule),
            updates,
            state.mu,
            state.nu,
            names=("updates", "state.mu", "state.nu"),
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


scale_by_adamax = ScaleByAdamax
scale_by_amsgrad = ScaleByAMSGrad
scale_by_belief = ScaleByBelief
scale_by_yogi = ScaleByYogi
scale_by_radam = ScaleByRAdam

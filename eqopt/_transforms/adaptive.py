"""Adaptive scalings: Adam, RMS and standard-deviation preconditioning."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, DTypeLike, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT, UNIT_CLOSED
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import abs_sq, bias_correction, safe_increment, safe_sqrt
from .._tree import (
    cast,
    full_like_params,
    map_leaves,
    to_dtype,
    upcast,
    zeros_like_params,
)


@no_type_check
def _zero_count() -> Count:
    return jnp.zeros([], jnp.int32)


@no_type_check
def decay_weights(decay: Array) -> tuple[Array, Array]:
    r"""$(\beta, 1 - \beta)$, the weights of `ema`, computed once per leaf dtype."""
    return decay, 1 - decay


@no_type_check  # once per leaf: see `eqopt._tree`
def ema(weights: tuple[Array, Array], moment: Array, value: Array) -> Array:
    r"""$m \leftarrow (1 - \beta)\, x + \beta\, m$, in the dtype of `value`.

    `weights` is $(\beta, 1 - \beta)$ from `decay_weights`, in the dtype of `value`.
    """
    decay, complement = weights
    return complement * value + decay * to_dtype(moment, value.dtype)


@no_type_check
def adam_scalars(count: Count, b1: Any, b2: Any, *others: Any, nesterov: bool = False):
    r"""`dtype -> (w1, w2, c1, c2, next_c1, *others)`, computed once per leaf dtype.

    `w1`, `w2` are the `decay_weights` of $\beta_1$, $\beta_2$; `c1`, `c2` the bias
    corrections $1 - \beta_1^t$, $1 - \beta_2^t$; `next_c1` is $1 - \beta_1^{t+1}$ with
    `nesterov` (else `None`); `others` (`eps`, `eps_root`...) are cast to `dtype`. Shared
    by Adam and its variants.
    """

    @ft.cache
    def scalars(dtype):
        b1_, b2_, *others_ = cast(dtype, b1, b2, *others)
        c1, c2 = bias_correction(b1_, count), bias_correction(b2_, count)
        next_c1 = bias_correction(b1_, safe_increment(count)) if nesterov else None
        return (decay_weights(b1_), decay_weights(b2_), c1, c2, next_c1, *others_)

    return scalars


@no_type_check  # once per leaf: see `eqopt._tree`
def debiased_mean(
    w1: tuple[Array, Array], mu: Array, x: Array, c1: Array, next_c1: Array | None
) -> Array:
    r"""$\hat m_t = m_t / (1 - \beta_1^t)$; with Nesterov momentum (`next_c1` given),
    $\hat m_t = \beta_1 m_t / (1 - \beta_1^{t+1}) + (1 - \beta_1)\, g_t / (1 - \beta_1^t)$.
    """
    if next_c1 is None:
        return mu / c1
    b1, one_minus_b1 = w1
    return b1 * (mu / next_c1) + one_minus_b1 * (x / c1)


@no_type_check  # once per leaf: see `eqopt._tree`
def adam_denominator(nu_hat: Array, eps_root: Array, eps: Array) -> Array:
    r"""$\sqrt{\hat v + \bar\varepsilon} + \varepsilon$, with a derivative finite at 0."""
    return safe_sqrt(nu_hat + eps_root) + eps


class ScaleByAdamState(eqx.Module):
    """State of `ScaleByAdam`: the step count and the two moment estimates."""

    count: Count
    mu: Moments
    nu: Moments


class ScaleByAdam(GradientTransformation):
    r"""Rescale updates by Adam's moment estimates.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, |g_t|^2, \\
    \hat m_t &= m_t / (1 - \beta_1^t), &
    \hat v_t &= v_t / (1 - \beta_2^t), \\
    u_t &= \hat m_t / \left(\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon\right).
    \end{aligned}
    $$

    With `nesterov=True` (NAdam), $\hat m_t = \beta_1 m_t / (1 - \beta_1^{t+1}) +
    (1 - \beta_1)\, g_t / (1 - \beta_1^t)$.

    The square root has a finite derivative at zero, so hypergradients through Adam are
    finite even with `eps_root=0` and exactly-zero gradients.

    Optax: `optax.scale_by_adam`.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the second moment, in $[0, 1)$.
    - `eps`: $\varepsilon$, added outside the square root.
    - `eps_root`: $\bar\varepsilon$, added inside the square root.
    - `mu_dtype`: dtype of the first moment; `None` uses each parameter's dtype.
    - `nesterov`: use Nesterov momentum (NAdam).
    - `nu_dtype`: dtype of the second moment; `None` uses each parameter's dtype.
        Keyword-only; not in Optax (optax#1552). With bfloat16 parameters,
        `nu_dtype=jnp.float32` keeps $v_t$ in float32: in bfloat16 (8 significant
        bits) a change of $v$ smaller than about 0.4% rounds away, so with
        $\beta_2 = 0.999$ the second moment stops following the gradients.

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_adam",
            self,
            b1=UNIT,
            b2=UNIT,
            eps=NONNEGATIVE,
            eps_root=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=_zero_count(),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params, self.nu_dtype),
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

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            w1, w2, c1, c2, next_c1, eps, eps_root = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            nu_new = ema(w2, nu, abs_sq(x))
            mu_hat = debiased_mean(w1, mu_new, x, c1, next_c1)
            u = mu_hat / adam_denominator(nu_new / c2, eps_root, eps)
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        updates, mu, nu = map_leaves(
            rule, updates, state.mu, state.nu, names=("updates", "state.mu", "state.nu")
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


class ScaleByRmsState(eqx.Module):
    """State of `ScaleByRMS` (without bias correction): the second moment."""

    nu: Moments


class ScaleByRmsWithCountState(eqx.Module):
    """State of `ScaleByRMS` with bias correction: the step count and second moment."""

    count: Count
    nu: Moments


@no_type_check
def _rescale(x: Array, variance: Array, eps: Array, eps_in_sqrt: bool) -> Array:
    r"""$x / \sqrt{\sigma^2 + \varepsilon}$, or $x / (\sqrt{\sigma^2} + \varepsilon)$.

    Inside the root, `rsqrt` (as Optax): its derivative is finite wherever its value is,
    that is for $\varepsilon > 0$. Outside, the root of $\sigma^2 = 0$ needs `safe_sqrt`.
    """
    if eps_in_sqrt:
        return x * lax.rsqrt(variance + eps)
    return x * (1 / (safe_sqrt(variance) + eps))


@no_type_check
def _rms_scalars(opt: "ScaleByRMS | ScaleByStddev", count: Count):
    """`dtype -> (decay weights, eps, bias correction or None)`, once per leaf dtype."""

    @ft.cache
    def scalars(dtype):
        decay, eps = cast(dtype, opt.decay, opt.eps)
        correction = bias_correction(decay, count) if opt.bias_correction else None
        return decay_weights(decay), eps, correction

    return scalars


class ScaleByRMS(GradientTransformation):
    r"""Rescale updates by the root mean square of past gradients (RMSProp).

    $$
    v_t = \beta v_{t-1} + (1 - \beta)\, |g_t|^2, \qquad
    u_t = g_t / \sqrt{\hat v_t + \varepsilon}
    $$

    where $\hat v_t = v_t / (1 - \beta^t)$ with `bias_correction`, else $v_t$; with
    `eps_in_sqrt=False` the denominator is $\sqrt{\hat v_t} + \varepsilon$.

    Optax: `optax.scale_by_rms`.

    **Arguments:**

    - `decay`: $\beta$, decay of the second moment, in $[0, 1]$.
    - `eps`: $\varepsilon$.
    - `initial_scale`: the initial value of $v$.
    - `eps_in_sqrt`: whether $\varepsilon$ goes inside the square root.
    - `bias_correction`: whether to debias $v$ (and keep a step count).

    ??? cite "References"

        Hinton, *Overview of mini-batch gradient descent*, Lecture 6.5, 2012.
    """

    decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    initial_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    eps_in_sqrt: bool = eqx.field(static=True, default=True)
    bias_correction: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters("scale_by_rms", self, decay=UNIT_CLOSED, eps=NONNEGATIVE)

    def init(self, params: Params) -> ScaleByRmsState | ScaleByRmsWithCountState:
        nu = full_like_params(params, self.initial_scale)
        if self.bias_correction:
            return ScaleByRmsWithCountState(count=_zero_count(), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update(
        self,
        updates: Updates,
        state: ScaleByRmsState | ScaleByRmsWithCountState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByRmsState | ScaleByRmsWithCountState]:
        count = safe_increment(getattr(state, "count", _zero_count()))
        scalars = _rms_scalars(self, count)

        @no_type_check
        def rule(g, nu):
            x = upcast(g)
            weights, eps, correction = scalars(x.dtype)
            nu_new = ema(weights, nu, abs_sq(x))
            nu_hat = nu_new / correction if self.bias_correction else nu_new
            u = _rescale(x, nu_hat, eps, self.eps_in_sqrt)
            return to_dtype(u, g.dtype), to_dtype(nu_new, nu.dtype)

        updates, nu = map_leaves(rule, updates, state.nu, names=("updates", "state.nu"))
        if self.bias_correction:
            return updates, ScaleByRmsWithCountState(count=count, nu=nu)
        return updates, ScaleByRmsState(nu=nu)


class ScaleByRStdDevState(eqx.Module):
    """State of `ScaleByStddev` (without bias correction): the two moments."""

    mu: Moments
    nu: Moments


class ScaleByRStdDevWithCountState(eqx.Module):
    """State of `ScaleByStddev` with bias correction: the count and the two moments."""

    count: Count
    mu: Moments
    nu: Moments


class ScaleByStddev(GradientTransformation):
    r"""Rescale updates by the standard deviation of past gradients (centred RMSProp).

    $$
    m_t = \beta m_{t-1} + (1 - \beta)\, g_t, \quad
    v_t = \beta v_{t-1} + (1 - \beta)\, |g_t|^2, \quad
    u_t = g_t / \sqrt{\hat v_t - |\hat m_t|^2 + \varepsilon}
    $$

    with the same `bias_correction` and `eps_in_sqrt` options as `ScaleByRMS`.

    Optax: `optax.scale_by_stddev`.

    **Arguments:**

    - `decay`: $\beta$, in $[0, 1]$.
    - `eps`: $\varepsilon$.
    - `initial_scale`: the initial value of $v$.
    - `eps_in_sqrt`: whether $\varepsilon$ goes inside the square root.
    - `bias_correction`: whether to debias $m$ and $v$.

    ??? cite "References"

        Graves, *Generating Sequences With Recurrent Neural Networks*, 2013.
    """

    decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    initial_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    eps_in_sqrt: bool = eqx.field(static=True, default=True)
    bias_correction: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters(
            "scale_by_stddev", self, decay=UNIT_CLOSED, eps=NONNEGATIVE
        )

    def init(
        self, params: Params
    ) -> ScaleByRStdDevState | ScaleByRStdDevWithCountState:
        mu = zeros_like_params(params)
        nu = full_like_params(params, self.initial_scale)
        if self.bias_correction:
            return ScaleByRStdDevWithCountState(count=_zero_count(), mu=mu, nu=nu)
        return ScaleByRStdDevState(mu=mu, nu=nu)

    def update(
        self,
        updates: Updates,
        state: ScaleByRStdDevState | ScaleByRStdDevWithCountState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByRStdDevState | ScaleByRStdDevWithCountState]:
        count = safe_increment(getattr(state, "count", _zero_count()))
        scalars = _rms_scalars(self, count)

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            weights, eps, correction = scalars(x.dtype)
            mu_new = ema(weights, mu, x)
            nu_new = ema(weights, nu, abs_sq(x))
            mu_hat, nu_hat = mu_new, nu_new
            if self.bias_correction:
                mu_hat, nu_hat = mu_new / correction, nu_new / correction
            u = _rescale(x, nu_hat - abs_sq(mu_hat), eps, self.eps_in_sqrt)
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "state.mu", "state.nu")
        updates, mu, nu = map_leaves(rule, updates, state.mu, state.nu, names=names)
        if self.bias_correction:
            return updates, ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
        return updates, ScaleByRStdDevState(mu=mu, nu=nu)


scale_by_adam = ScaleByAdam
scale_by_rms = ScaleByRMS
scale_by_stddev = ScaleByStddev

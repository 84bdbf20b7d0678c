"""Small transformations: centralisation, non-negative parameters, NaN zeroing, EMA,
and gradient scaling in the backward pass."""

import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, DTypeLike, Float, PyTree

from .._base import EmptyState, GradientTransformation
from .._checks import _concrete, check_hyperparameters, UNIT_CLOSED
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import bias_correction, safe_increment
from .._tree import (
    cast,
    is_none,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .adaptive import decay_weights, ema as ema_step


class Centralize(GradientTransformation):
    r"""Subtract from each update its mean over all but the leading axis.

    For a leaf of shape $(n, d_1, \dots)$,
    $u_{i\ldots} = g_{i\ldots} - \operatorname{mean}_{\ldots}\, g_{i\ldots}$;
    vectors and scalars pass unchanged.

    Optax: `optax.centralize`.

    ??? cite "References"

        Yong et al., *Gradient Centralization: A New Optimization Technique for Deep
        Neural Networks*, ECCV 2020.
    """

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return map_leaves(_centralize_leaf, updates)[0], state


@no_type_check
def _centralize_leaf(g: Array) -> tuple[Array]:
    if g.ndim <= 1:
        return (g,)
    x = upcast(g)
    mean = jnp.mean(x, axis=tuple(range(1, x.ndim)), keepdims=True)
    return (to_dtype(x - mean, g.dtype),)


NonNegativeParamsState = EmptyState


class KeepParamsNonnegative(GradientTransformation):
    r"""Shorten updates that would make a parameter negative, so that it stops at 0.

    $$
    u \leftarrow \begin{cases} -\theta & \theta + g < 0 \\ g & \text{otherwise.}
    \end{cases}
    $$

    Parameters are expected non-negative; a negative one is moved to 0. In a chain, this
    comes last (after the learning rate).

    Optax: `optax.keep_params_nonnegative`.
    """

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        require_params("keep_params_nonnegative", params)
        names = ("updates", "params")
        return map_leaves(_nonnegative_leaf, updates, params, names=names)[0], state


@no_type_check
def _nonnegative_leaf(g: Array, p: Array) -> tuple[Array, Array]:
    x, theta = upcast(g), upcast(p)
    return to_dtype(jnp.where(theta + x < 0, -theta, x), g.dtype), p


class ZeroNansState(eqx.Module):
    """State of `ZeroNans`: per parameter, whether the last update held a NaN."""

    found_nan: PyTree[Bool[Array, ""] | None]


class ZeroNans(GradientTransformation):
    r"""Replace NaNs in the updates by zeros, recording where NaNs were found.

    The state is not used by the transformation; it tells the user which updates had
    NaNs at the last step (`found_nan`, one boolean per array parameter).

    Optax: `optax.zero_nans`.
    """

    def init(self, params: Params) -> ZeroNansState:
        found_nan = jax.tree.map(
            lambda p: jnp.array(False) if eqx.is_inexact_array(p) else None,
            params,
            is_leaf=is_none,
        )
        return ZeroNansState(found_nan=found_nan)

    def update(
        self,
        updates: Updates,
        state: ZeroNansState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ZeroNansState]:
        found_nan = jax.tree.map(
            lambda g: jnp.any(jnp.isnan(g)) if eqx.is_inexact_array(g) else None,
            updates,
            is_leaf=is_none,
        )
        updates = map_leaves(_zero_nans_leaf, updates)[0]
        return updates, ZeroNansState(found_nan=found_nan)


@no_type_check
def _zero_nans_leaf(g: Array) -> tuple[Array]:
    return (jnp.where(jnp.isnan(g), jnp.zeros_like(g), g),)


class EmaState(eqx.Module):
    """State of `EMA`: the step count and the moving average."""

    count: Count
    ema: Moments


class EMA(GradientTransformation):
    r"""An exponential moving average of the updates, optionally debiased.

    $$
    m_t = \beta\, m_{t-1} + (1 - \beta)\, g_t, \qquad
    u_t = m_t / (1 - \beta^t) \ \text{(debiased), or } m_t.
    $$

    Unlike [`eqopt.Trace`][] ($t_k = g_k + \mu\, t_{k-1}$), the new update is weighted
    by $1 - \beta$.

    Optax: `optax.ema`.

    **Arguments:**

    - `decay`: $\beta \in [0, 1]$.
    - `debias`: whether to divide by $1 - \beta^t$.
    - `accumulator_dtype`: dtype of the average; `None` uses each parameter's.
    """

    decay: Float[Array, ""] = eqx.field(converter=as_scalar)
    debias: bool = eqx.field(static=True, default=True)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters("ema", self, decay=UNIT_CLOSED)

    def init(self, params: Params) -> EmaState:
        return EmaState(
            count=jnp.zeros([], jnp.int32),
            ema=zeros_like_params(params, self.accumulator_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: EmaState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmaState]:
        count = safe_increment(state.count)

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            (decay,) = cast(dtype, self.decay)
            return decay_weights(decay), bias_correction(decay, count)

        @no_type_check
        def rule(g, m):
            x = upcast(g)
            weights, correction = scalars(x.dtype)
            m_new = ema_step(weights, m, x)
            u = m_new / correction if self.debias else m_new
            return to_dtype(u, g.dtype), to_dtype(m_new, m.dtype)

        names = ("updates", "state.ema")
        updates, ema = map_leaves(rule, updates, state.ema, names=names)
        return updates, EmaState(count=count, ema=ema)


@jax.custom_vjp
@no_type_check
def _scale_gradient(inputs: PyTree, scale: Array) -> PyTree:
    return inputs


@no_type_check
def _scale_gradient_fwd(inputs, scale):
    return inputs, scale


@no_type_check
def _scale_gradient_bwd(scale, cotangents):
    scaled = jax.tree.map(
        lambda c: c * jnp.asarray(scale).astype(c.dtype), cotangents, is_leaf=is_none
    )
    return scaled, jnp.zeros_like(scale)


_scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)


def scale_gradient(inputs: PyTree[ArrayLike], scale: ArrayLike) -> PyTree[ArrayLike]:
    r"""The identity on `inputs`, whose gradient is multiplied by `scale`.

    In the forward pass `inputs` is returned unchanged; in the backward pass the
    cotangent flowing into `inputs` is multiplied by `scale` (cast to its dtype). As
    in Optax, no gradient flows to `scale`, and a concrete `scale` of 1 or 0 returns
    `inputs` or `jax.lax.stop_gradient(inputs)`; unlike Optax, a traced `scale` is
    accepted (Optax's `scale == 1.0` test needs a concrete value).

    Optax: `optax.scale_gradient`.

    **Arguments:**

    - `inputs`: a pytree of arrays.
    - `scale`: the factor applied to the gradient.
    """
    concrete = _concrete(scale)
    if concrete is not None and concrete.ndim == 0:
        if concrete == 1.0:
            return inputs
        if concrete == 0.0:
            return jax.lax.stop_gradient(inputs)
    return _scale_gradient(inputs, jnp.asarray(scale))


centralize = Centralize
keep_params_nonnegative = KeepParamsNonnegative
zero_nans = ZeroNans
ema = EMA

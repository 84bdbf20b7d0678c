r"""The delta-method control variate: a second-order Taylor expansion at the mean."""

from typing import no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import DistParams, Function
from ._control_variate import AbstractControlVariate


def _gaussian(params: DistParams) -> tuple[Array, Array]:
    """The mean and the variance of the Gaussian `[loc, log_scale]`, of the event shape."""
    loc, log_scale = (jnp.asarray(p) for p in params)
    shape = jnp.broadcast_shapes(loc.shape, log_scale.shape)
    dtype = jnp.promote_types(loc.dtype, log_scale.dtype)
    mean = jnp.broadcast_to(loc.astype(dtype), shape)
    variance = jnp.broadcast_to(jnp.square(jnp.exp(log_scale.astype(dtype))), shape)
    return mean, variance


class ControlDeltaMethod(AbstractControlVariate):
    r"""The delta-method control variate, for Gaussians: the second-order Taylor
    expansion of $f$ at the mean $\mu$,

    $$
    h(x) = f(\mu) + (x - \mu)^\top \nabla f(\mu)
        + \tfrac12 (x - \mu)^\top \nabla^2 f(\mu)\, (x - \mu),
    \qquad
    \mathbb E_{\mathcal N(\mu, \operatorname{diag}\sigma^2)}[h]
    = f(\mu) + \tfrac12 \sum_d \sigma_d^2\, \partial_d^2 f(\mu).
    $$

    It is exact for quadratic $f$ and reduces the variance of every estimator when $f$
    is close to quadratic over the bulk of the distribution. $f$ must be twice
    differentiable; the parameters must be `[loc, log_scale]` of a diagonal Gaussian.
    It keeps no state.

    Returned by [`eqopt.monte_carlo.control_delta_method`][].

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar (a static field).

    ??? cite "References"

        Paisley, Blei and Jordan, *Variational Bayesian Inference with Stochastic
        Search*, ICML 2012. [icml.cc/2012/papers/687.pdf](https://icml.cc/2012/papers/687.pdf)
    """

    function: Function = eqx.field(static=True)

    def init(self) -> None:
        return None

    def __call__(
        self, params: DistParams, sample: Float[Array, "..."], state: None = None
    ) -> Float[Array, ""]:
        mean, _ = _gaussian(params)
        centred = (sample - mean).ravel()
        value, grad, hessian = self._expand(mean)
        return value + centred @ grad + centred @ hessian @ centred / 2

    def expected_value(
        self, params: DistParams, state: None = None
    ) -> Float[Array, ""]:
        mean, variance = _gaussian(params)
        value, _, hessian = self._expand(mean)
        # E[(x - mu)^T H (x - mu)] = trace(H Sigma), with a diagonal Sigma.
        return value + jnp.sum(variance.ravel() * jnp.diag(hessian)) / 2

    def update_state(
        self,
        params: DistParams,
        samples: Float[Array, "num_samples ..."],
        state: None = None,
    ) -> None:
        return state

    def _expand(self, mean: Array) -> tuple[Array, Array, Array]:
        """$f(\\mu)$, $\\nabla f(\\mu)$ and $\\nabla^2 f(\\mu)$, flattened to a vector and a
        matrix."""

        @no_type_check
        def flat(x):
            return self.function(x.reshape(mean.shape))

        x = mean.ravel()
        return jnp.asarray(flat(x)), jax.grad(flat)(x), jax.hessian(flat)(x)


def control_delta_method(function: Function) -> ControlDeltaMethod:
    r"""The delta-method control variate: a second-order Taylor expansion of
    `function` at the mean of a Gaussian.

    See [`eqopt.monte_carlo.ControlDeltaMethod`][] for the formulas.

    Optax: `optax.monte_carlo.control_delta_method` (Optax 0.2.6). As there, the result
    unpacks into three functions,
    `control_variate, expected_value, update_state = control_delta_method(f)`; it is
    also a Module.

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar, twice differentiable.

    **Returns:**

    A [`eqopt.monte_carlo.ControlDeltaMethod`][].
    """
    return ControlDeltaMethod(function)

r"""A diagonal Gaussian parametrised by its mean and the logarithm of its scale."""

import math
from collections.abc import Sequence
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats.norm as norm
import numpy as np
from jaxtyping import Array, ArrayLike, DTypeLike, Float, PRNGKeyArray, Real


def _as_float_array(x: Real[ArrayLike, "..."]) -> Float[Array, "..."]:
    """An array, with integers (and bools) made floating so that it can be differentiated."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


_MSG_SHAPES = (
    "`multi_normal(loc=..., log_scale=...)` needs shapes that broadcast together; got "
    "loc.shape={} and log_scale.shape={}."
)


class MultiNormalDiag(eqx.Module):
    r"""A Gaussian with diagonal covariance, $\mathcal N(\mu, \operatorname{diag}\sigma^2)$,
    with $\sigma = \exp(\texttt{log\_scale})$.

    Returned by [`eqopt.utils.multi_normal`][]. Both parameters are array leaves, so a
    distribution can be built inside `jax.jit`, `jax.vmap` and `jax.grad`, and passed
    through them. `loc` and `log_scale` broadcast against each other; a sample has
    their broadcast shape, the *event shape*, and `log_prob` sums over it.

    Besides `sample` and `log_prob` (what the score-function and pathwise estimators
    use), it gives the *weak derivatives* of its density that the measure-valued
    estimator needs: for each coordinate $d$,

    $$
    \frac{\partial}{\partial \mu_d} \mathbb E_{\mathcal N}[f]
    = \frac{1}{\sigma_d\sqrt{2\pi}}\Big(
        \mathbb E\big[f(x \mid x_d = \mu_d + \sigma_d W)\big]
        - \mathbb E\big[f(x \mid x_d = \mu_d - \sigma_d W')\big]\Big),
    \qquad W, W' \sim \operatorname{Weibull}(\sqrt 2, 2),
    $$

    $$
    \frac{\partial}{\partial \sigma_d} \mathbb E_{\mathcal N}[f]
    = \frac{1}{\sigma_d}\Big(
        \mathbb E\big[f(x \mid x_d = \mu_d + \sigma_d M)\big]
        - \mathbb E\big[f(x \mid x_d = \mu_d + \sigma_d Z)\big]\Big),
    \qquad M \sim \text{double-sided Maxwell},\ Z \sim \mathcal N(0, 1),
    $$

    where the other coordinates of $x$ are drawn from the Gaussian itself.

    Optax: `optax._src.utils.MultiNormalDiagFromLogScale`.

    **Arguments:**

    - `loc`: the mean $\mu$.
    - `log_scale`: $\log\sigma$, the logarithm of the standard deviation.

    ??? cite "References"

        Mohamed, Rosca, Figurnov and Mnih, *Monte Carlo Gradient Estimation in Machine
        Learning*, JMLR 21(132), 2020, section 6 and table 1.
        [arXiv:1906.10652](https://arxiv.org/abs/1906.10652)
    """

    loc: Float[Array, "..."] = eqx.field(converter=_as_float_array)
    log_scale: Float[Array, "..."] = eqx.field(converter=_as_float_array)

    def __check_init__(self):
        try:
            np.broadcast_shapes(self.loc.shape, self.log_scale.shape)
        except ValueError:
            raise ValueError(
                _MSG_SHAPES.format(self.loc.shape, self.log_scale.shape)
            ) from None

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one sample: the broadcast shape of `loc` and `log_scale`."""
        return tuple(np.broadcast_shapes(self.loc.shape, self.log_scale.shape))

    @property
    def dtype(self) -> jnp.dtype:
        """The dtype of the samples."""
        return jnp.promote_types(self.loc.dtype, self.log_scale.dtype)

    @property
    def mean(self) -> Float[Array, "..."]:
        """$\\mu$, broadcast to the event shape."""
        return jnp.broadcast_to(self.loc.astype(self.dtype), self.event_shape)

    @property
    def scale(self) -> Float[Array, "..."]:
        """$\\sigma = \\exp(\\texttt{log\\_scale})$, broadcast to the event shape."""
        scale = jnp.exp(self.log_scale.astype(self.dtype))
        return jnp.broadcast_to(scale, self.event_shape)

    @property
    def params(self) -> list[Float[Array, "..."]]:
        """`[loc, log_scale]`, as given (the arguments that rebuild the distribution)."""
        return [self.loc, self.log_scale]

    def _broadcast(self, shape: tuple[int, ...]) -> tuple[Array, Array]:
        """The mean and the scale, broadcast to `shape` (which ends with the event
        shape)."""
        return jnp.broadcast_to(self.mean, shape), jnp.broadcast_to(self.scale, shape)

    def sample(self, shape: Sequence[int], key: PRNGKeyArray) -> Float[Array, "..."]:
        r"""Draw samples $x = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$.

        The samples are a differentiable function of `loc` and `log_scale` (the
        reparameterisation the pathwise estimator relies on).

        **Arguments:**

        - `shape`: the batch shape of the samples, e.g. `(num_samples,)`.
        - `key`: a JAX PRNG key.

        **Returns:**

        An array of shape `(*shape, *event_shape)`.
        """
        sample_shape = (*shape, *self.event_shape)
        eps = jr.normal(key, sample_shape, self.dtype)
        mean, scale = self._broadcast(sample_shape)
        return eps * scale + mean

    def log_prob(self, x: Real[ArrayLike, "..."]) -> Float[Array, "..."]:
        r"""The log-density $\log p(x) = \sum_d \log \mathcal N(x_d; \mu_d, \sigma_d^2)$.

        **Arguments:**

        - `x`: one sample, or a batch of them: an array whose trailing axes are the
            event shape.

        **Returns:**

        The log-density of each sample, summed over the event axes: an array of the
        batch shape of `x`.
        """
        x = jnp.asarray(x)
        event = self.event_shape
        if x.shape[x.ndim - len(event) :] != event or x.ndim < len(event):
            raise ValueError(
                f"`MultiNormalDiag.log_prob(x)` needs `x` to end with the event shape "
                f"{event}; got x.shape={x.shape}."
            )
        dtype = jnp.promote_types(x.dtype, self.dtype)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            dtype = self.dtype
        x = x.astype(dtype)
        mean = jnp.broadcast_to(self.mean.astype(dtype), x.shape)
        scale = jnp.broadcast_to(self.scale.astype(dtype), x.shape)
        log_density = norm.logpdf(x, loc=mean, scale=scale)
        return jnp.sum(log_density, axis=tuple(range(x.ndim - len(event), x.ndim)))

    def weak_derivative(
        self,
        parameter: Literal["loc", "scale"],
        shape: Sequence[int],
        key: PRNGKeyArray,
        coupling: bool,
    ) -> tuple[Float[Array, "..."], Float[Array, "..."], Float[Array, "..."]]:
        r"""The weak derivative of the density with respect to `loc` or the scale.

        $\partial_{\theta_d} p = c_d^{-1}(p^+_d - p^-_d)$: the difference of two
        densities, which differ from $p$ only in coordinate $d$ (see the class
        docstring for both decompositions).

        **Arguments:**

        - `parameter`: `"loc"` (the mean $\mu$) or `"scale"` ($\sigma$, not its log).
        - `shape`: the batch shape of the draws, e.g. `(num_samples,)`.
        - `key`: a JAX PRNG key, split into the keys of the positive and the negative
            parts.
        - `coupling`: whether the negative draws are coupled to the positive ones
            (the same Weibull draw for `"loc"`; $Z = U M$ with $U$ uniform for
            `"scale"`), which lowers the variance of their difference.

        **Returns:**

        A 3-tuple of the constant $c$ (of the event shape) and the values of
        coordinate $d$ under $p^+_d$ and under $p^-_d$ (each of shape
        `(*shape, *event_shape)`).
        """
        sample_shape = (*shape, *self.event_shape)
        dtype = self.dtype
        mean, scale = self._broadcast(sample_shape)
        pos_key, neg_key = jr.split(key)
        if parameter == "loc":
            positive = _weibull(pos_key, sample_shape, dtype)
            negative = positive if coupling else _weibull(neg_key, sample_shape, dtype)
            constant = math.sqrt(2 * math.pi) * self.scale
            return constant, mean + scale * positive, mean - scale * negative
        if parameter == "scale":
            positive = jr.double_sided_maxwell(
                pos_key, loc=0.0, scale=1.0, shape=sample_shape, dtype=dtype
            )
            if coupling:
                negative = jr.uniform(neg_key, sample_shape, dtype) * positive
            else:
                negative = jr.normal(neg_key, sample_shape, dtype)
            return self.scale, mean + scale * positive, mean + scale * negative
        raise ValueError(
            "`MultiNormalDiag.weak_derivative(parameter=...)` must be 'loc' or "
            f"'scale'; got parameter={parameter!r}."
        )


def _weibull(key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
    r"""Draws of $\operatorname{Weibull}(\text{scale}=\sqrt 2, \text{concentration}=2)$."""
    return jr.weibull_min(
        key, scale=math.sqrt(2.0), concentration=2.0, shape=shape, dtype=dtype
    )


def multi_normal(
    loc: Real[ArrayLike, "..."], log_scale: Real[ArrayLike, "..."]
) -> MultiNormalDiag:
    r"""A Gaussian with diagonal covariance, parametrised by its mean and log-scale.

    $$
    x \sim \mathcal N\big(\texttt{loc}, \operatorname{diag}(\exp(\texttt{log\_scale}))^2\big)
    $$

    This is the distribution builder of `eqopt.monte_carlo`'s estimators:
    `dist_builder(*params)` with `params = [loc, log_scale]`. It is the only one that
    [`eqopt.monte_carlo.measure_valued_jacobians`][] supports.

    Optax: `optax._src.utils.multi_normal` (Optax 0.2.6).

    **Arguments:**

    - `loc`: the mean.
    - `log_scale`: the logarithm of the standard deviation; it broadcasts with `loc`.

    **Returns:**

    A [`eqopt.utils.MultiNormalDiag`][].

    !!! example

        ```python
        dist = eqopt.utils.multi_normal(jnp.zeros(3), jnp.zeros(3))
        x = dist.sample((5,), jax.random.key(0))  # shape (5, 3)
        dist.log_prob(x)  # shape (5,)
        ```
    """
    return MultiNormalDiag(loc=loc, log_scale=log_scale)

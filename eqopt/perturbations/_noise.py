"""Noise distributions for perturbed functions: standard Normal and standard Gumbel."""

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, DTypeLike, Float, PRNGKeyArray


class AbstractNoiseDistribution(eqx.Module):
    """A noise distribution $\\mu$ for [`eqopt.perturbations.make_perturbed_fun`][].

    Subclasses implement `sample` and `log_prob` (the log-density up to an additive
    constant, which the estimator does not need).
    """

    @abc.abstractmethod
    def sample(
        self,
        key: PRNGKeyArray,
        sample_shape: Sequence[int] = (),
        dtype: DTypeLike = float,
    ) -> Float[Array, "..."]:
        """Draw a sample of shape `sample_shape` and floating dtype `dtype`."""

    @abc.abstractmethod
    def log_prob(self, inputs: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The log-density at each entry of `inputs`, up to an additive constant."""


@runtime_checkable
class NoiseLike(Protocol):
    """Anything with `sample` and `log_prob`: an eqopt distribution, or Optax's."""

    def sample(self, key, sample_shape=(), dtype=float): ...

    def log_prob(self, inputs): ...


class Normal(AbstractNoiseDistribution):
    r"""The standard normal distribution, $z \sim \mathcal{N}(0, 1)$ entry by entry.

    $$
    \log \mu(z) = -\tfrac{1}{2} z^2 + \text{const}.
    $$

    Optax: `optax.perturbations.Normal`.
    """

    def sample(
        self,
        key: PRNGKeyArray,
        sample_shape: Sequence[int] = (),
        dtype: DTypeLike = float,
    ) -> Float[Array, "..."]:
        """A standard normal sample of shape `sample_shape` (`jax.random.normal`)."""
        return jr.normal(key, tuple(sample_shape), dtype)

    def log_prob(self, inputs: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        r"""$-\tfrac{1}{2} z^2$ at each entry $z$ of `inputs`."""
        return -0.5 * inputs**2


class Gumbel(AbstractNoiseDistribution):
    r"""The standard Gumbel distribution, entry by entry.

    $$
    \log \mu(z) = -z - e^{-z}.
    $$

    Perturbing the scores of an argmax with Gumbel noise samples from their softmax
    (the Gumbel-max trick), which makes it the default for perturbed argmax layers.

    Optax: `optax.perturbations.Gumbel`.
    """

    def sample(
        self,
        key: PRNGKeyArray,
        sample_shape: Sequence[int] = (),
        dtype: DTypeLike = float,
    ) -> Float[Array, "..."]:
        """A standard Gumbel sample of shape `sample_shape` (`jax.random.gumbel`)."""
        return jr.gumbel(key, tuple(sample_shape), dtype)

    def log_prob(self, inputs: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        r"""$-z - e^{-z}$ at each entry $z$ of `inputs`."""
        return -inputs - jnp.exp(-inputs)

"""Differentiable approximations of functions by random perturbation of their input."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Inexact, PRNGKeyArray, PyTree

from .._checks import check_hyperparameters, POSITIVE
from .._custom_types import ScalarLike
from .._hyperparams import as_scalar
from ._noise import AbstractNoiseDistribution, Gumbel, NoiseLike


def _magic_box(x: Array) -> Array:
    r"""DiCE's magic box: $\exp(x - \bot(x))$, equal to $1$, with derivative $x'$."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def _promote(*dtypes) -> jnp.dtype:
    """JAX's standard promotion, also under `jax_numpy_dtype_promotion=strict`."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*dtypes)


def _times(scalar: Array, x: ArrayLike) -> Array:
    """`scalar * x`, promoting as JAX's standard rules would (also under strict)."""
    x = jnp.asarray(x)
    dtype = _promote(scalar.dtype, x.dtype)
    return scalar.astype(dtype) * x.astype(dtype)


def _sum_all(values: list[Array]) -> Array:
    """The sum of scalars of possibly different dtypes, promoting explicitly."""
    total = jnp.zeros(()) if not values else values[0]
    for s in values[1:]:
        dtype = _promote(total.dtype, s.dtype)
        total = total.astype(dtype) + s.astype(dtype)
    return total


class PerturbedFun(eqx.Module):
    r"""A perturbed function $x \mapsto \hat f_\sigma(x)$, as a Module.

    Built by [`eqopt.perturbations.make_perturbed_fun`][], which describes the
    estimator; called as `perturbed(key, x)`. Its
    fields are named like the factory's arguments: `sigma` is a floating array leaf
    (differentiable, and changeable with `eqx.tree_at` without recompiling), while
    `fun`, `num_samples` and `use_baseline` are static. `noise` is a pytree field: an
    eqopt distribution is a Module (without leaves); a plain object such as Optax's
    `Normal()` is a non-array leaf, so pass such a `PerturbedFun` through
    `eqx.filter_jit` rather than `jax.jit`.
    """

    fun: Callable = eqx.field(static=True)
    num_samples: int = eqx.field(static=True, default=1000)
    sigma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.1)
    noise: AbstractNoiseDistribution | NoiseLike = Gumbel()
    use_baseline: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.num_samples < 1:
            raise ValueError(
                "`make_perturbed_fun(num_samples=...)` must be a positive number of "
                f"samples; got num_samples={self.num_samples!r}."
            )
        check_hyperparameters("make_perturbed_fun", self, sigma=POSITIVE)

    def __call__(
        self,
        key: PRNGKeyArray,
        x: PyTree[Inexact[ArrayLike, "?*shape"], " T"],
    ) -> PyTree[Array]:
        x = jax.tree.map(jnp.asarray, x)
        leaves, treedef = jax.tree.flatten(x)
        baseline = self.fun(jax.lax.stop_gradient(x)) if self.use_baseline else None

        @no_type_check
        def one_sample(sample_key):
            keys = jr.split(sample_key, len(leaves))
            shifted, noise = [], []
            for leaf, leaf_key in zip(leaves, keys):
                sigma = self.sigma.astype(leaf.dtype)
                z = self.noise.sample(leaf_key, leaf.shape, leaf.dtype)
                # y = x + σz is a sample of ν(x, σ); it carries no derivative itself...
                y = jax.lax.stop_gradient(leaf + sigma * z)
                shifted.append(y)
                # ...the derivative comes from z = (y - x) / σ in the log-density.
                noise.append((y - leaf) / sigma)
            log_prob = _sum_all([jnp.sum(self.noise.log_prob(z)) for z in noise])
            box = _magic_box(log_prob)
            out = jax.tree.map(
                lambda o: _times(box, o), self.fun(treedef.unflatten(shifted))
            )
            if self.use_baseline:
                out = jax.tree.map(lambda o, b: o + _times(1 - box, b), out, baseline)
            return out

        outs = jax.vmap(one_sample)(jr.split(key, self.num_samples))
        return jax.tree.map(lambda o: jnp.mean(o, axis=0), outs)


def make_perturbed_fun(
    fun: Callable[[Any], Any],
    num_samples: int = 1000,
    sigma: ScalarLike = 0.1,
    noise: AbstractNoiseDistribution | NoiseLike = Gumbel(),
    use_baseline: bool = True,
) -> PerturbedFun:
    r"""A differentiable approximation of a function, by stochastic perturbation.

    For a function $f$, a scale $\sigma$ and a noise distribution $\mu$,

    $$
    f_\sigma(x) = \mathbb{E}_{z \sim \mu}\, f(x + \sigma z)
                = \mathbb{E}_{y \sim \nu(x, \sigma)}\, f(y)
    $$

    is a smooth approximation of $f$, even where $f$ is piecewise constant (an
    argmax, a sort, a ranking). The returned function gives unbiased Monte Carlo
    estimates of $f_\sigma(x)$ from `num_samples` draws, and so do all its
    derivatives (of any order) through JAX's autodiff: the score-function
    (REINFORCE) estimator is built in with DiCE's magic box,
    $\square(\log \mu(z)) = \exp(\log\mu(z) - \bot(\log\mu(z)))$, so only values of
    $f$ are ever needed, never its derivatives:

    $$
    \hat f_\sigma(x) = \frac{1}{N} \sum_{k=1}^{N}
        \square\!\left(\log \mu\!\left(\tfrac{y_k - x}{\sigma}\right)\right) f(y_k)
        + \left(1 - \square(\cdot)\right) f(x),
    \qquad y_k = \bot(x + \sigma z_k),
    $$

    where the last term (the baseline $f(x)$, with `use_baseline=True`) is zero in
    value and only reduces the variance of the derivatives.

    Optax: `optax.perturbations.make_perturbed_fun`. The same keys give the same
    samples, values and derivatives as Optax. The result is a
    [`eqopt.perturbations.PerturbedFun`][] Module, whose `sigma` is an array leaf.

    **Arguments:**

    - `fun`: the function $f$, from a pytree of arrays to a pytree of arrays.
    - `num_samples`: the number $N$ of perturbed evaluations averaged over.
    - `sigma`: the scale $\sigma > 0$ of the perturbation.
    - `noise`: the distribution $\mu$, anything with `sample(key, shape, dtype)` and
        `log_prob(z)` ([`eqopt.perturbations.Gumbel`][] by default, or
        [`eqopt.perturbations.Normal`][]).
    - `use_baseline`: whether to subtract $f(x)$ as a control variate.

    **Returns:**

    A function called as `perturbed(key, x)`, with a leading PRNG key and otherwise the
    signature of `fun`.

    !!! example

        ```python
        f = lambda x: jnp.sum(jnp.maximum(x, 0.0))
        fn = eqopt.perturbations.make_perturbed_fun(f, 1_000, 0.1)
        jax.grad(fn, argnums=1)(jax.random.key(0), jnp.zeros(3))  # about 0.6 each
        ```

    ??? cite "References"

        Berthet, Blondel, Teboul, Cuturi, Vert and Bach, *Learning with
        differentiable perturbed optimizers*, NeurIPS 2020.

        Foerster, Farquhar, Al-Shedivat, Rocktäschel, Xing and Whiteson, *DiCE: the
        infinitely differentiable Monte Carlo estimator*, ICML 2018.

        Salimans, Ho, Chen, Sidor and Sutskever, *Evolution strategies as a scalable
        alternative to reinforcement learning*, 2017.
    """
    return PerturbedFun(fun, num_samples, sigma, noise, use_baseline)

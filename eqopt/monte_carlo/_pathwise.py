r"""The pathwise (reparameterisation) gradient estimator."""

from typing import ClassVar, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import AbstractEstimator, DistBuilder, DistParams, Function, Jacobians
from ._validation import (
    check_differentiable,
    check_distribution,
    check_function,
    check_num_samples,
    one_sample,
)


class PathwiseEstimator(AbstractEstimator):
    r"""The pathwise (reparameterisation) estimator.

    With samples written as a differentiable function of the parameters and of
    parameter-free noise, $x = g(\varepsilon; \theta)$ (for a Gaussian,
    $x = \mu + \sigma \odot \varepsilon$),

    $$
    \nabla_\theta\, \mathbb E_{p(x;\theta)}[f(x)]
    = \mathbb E_{p(\varepsilon)}\big[\nabla_\theta f(g(\varepsilon;\theta))\big]
    \approx \frac1N \sum_{n=1}^N \nabla_\theta f(g(\varepsilon_n;\theta)).
    $$

    Needs $f$ differentiable and a continuous distribution whose `sample` is
    differentiable in $\theta$ (reparameterised), such as
    [`eqopt.utils.multi_normal`][]. It is usually the lowest-variance estimator when
    $f$ is smooth: its variance depends on how fast $f$ changes, not on its size.

    Returned, and called, by [`eqopt.monte_carlo.pathwise_jacobians`][].

    **Arguments:**

    - `num_samples`: $N$, the number of samples (a static field).

    ??? cite "References"

        Kingma and Welling, *Auto-Encoding Variational Bayes*, ICLR 2014.
        Mohamed, Rosca, Figurnov and Mnih, *Monte Carlo Gradient Estimation in Machine
        Learning*, JMLR 21(132), 2020, section 5.
        [arXiv:1906.10652](https://arxiv.org/abs/1906.10652)
    """

    num_samples: int = eqx.field(static=True)

    _owner: ClassVar[str] = "pathwise_jacobians"

    def __check_init__(self):
        check_num_samples(self._owner, self.num_samples)

    def __call__(
        self,
        function: Function,
        params: DistParams,
        dist_builder: DistBuilder,
        key: PRNGKeyArray,
    ) -> Jacobians:
        dist = dist_builder(*params)
        check_distribution(self._owner, dist, ("sample",))
        sample = one_sample(dist, key)
        if not jnp.issubdtype(sample.dtype, jnp.floating):
            raise ValueError(
                f"`{self._owner}` needs a continuous, reparameterised distribution; "
                f"`dist.sample` returns {jnp.dtype(sample.dtype).name} samples. Use "
                "`score_function_jacobians` for discrete distributions."
            )
        check_differentiable(
            self._owner,
            lambda *p: dist_builder(*p).sample((1,), key),
            params,
            what="the samples",
            wrt="the parameters",
            fix="The pathwise estimator needs a reparameterised distribution; use "
            "`score_function_jacobians` otherwise.",
        )
        check_function(self._owner, function, sample, floating=True)
        check_differentiable(
            self._owner,
            function,
            [jnp.zeros(sample.shape, sample.dtype)],
            what="`function`",
            wrt="the sample",
            fix="Use `score_function_jacobians` or `measure_valued_jacobians` for a "
            "function that is not differentiable.",
        )

        @no_type_check
        def surrogate(params):
            dist = dist_builder(*params)
            # vmap, so that `function` needs to handle one sample only.
            return jax.vmap(function)(dist.sample((self.num_samples,), key))

        return jax.jacfwd(surrogate)(params)


def pathwise_jacobians(
    function: Function,
    params: DistParams,
    dist_builder: DistBuilder,
    rng: PRNGKeyArray,
    num_samples: int,
) -> Jacobians:
    r"""Pathwise (reparameterisation) gradient estimation.

    Approximates $\nabla_\theta\, \mathbb E_{p(x;\theta)}[f(x)]$ with
    $\mathbb E_{p(\varepsilon)}[\nabla_\theta f(g(\varepsilon;\theta))]$, where
    $x = g(\varepsilon;\theta)$ is how the distribution draws its samples. Needs a
    differentiable $f$ and a continuous, reparameterised distribution. See
    [`eqopt.monte_carlo.PathwiseEstimator`][].

    Optax: `optax.monte_carlo.pathwise_jacobians` (Optax 0.2.6).

    **Arguments:**

    - `function`: $f$, mapping one sample to a floating scalar, differentiably.
    - `params`: the distribution parameters, a sequence of arrays.
    - `dist_builder`: builds the distribution as `dist_builder(*params)`; its
        `sample(shape, key)` must be differentiable in `params`.
    - `rng`: a JAX PRNG key.
    - `num_samples`: the number of samples, at least 1.

    **Returns:**

    A sequence like `params`: for each parameter the per-sample Jacobians, of shape
    `(num_samples, *param.shape)`. Their mean over the first axis is the gradient
    estimate.

    **Raises:**

    `ValueError` if `function` returns an integer or boolean, or if its derivative, or
    that of the samples, is identically zero while its value is not constant (a
    step function, `jnp.round`, `stop_gradient`): the pathwise estimate would silently
    be zero.
    """
    return PathwiseEstimator(num_samples)(function, params, dist_builder, rng)

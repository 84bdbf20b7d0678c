r"""The score-function (REINFORCE, likelihood-ratio) gradient estimator."""

from typing import ClassVar, no_type_check

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from ._base import AbstractEstimator, DistBuilder, DistParams, Function, Jacobians
from ._validation import (
    as_real_scalar,
    check_differentiable,
    check_distribution,
    check_function,
    check_num_samples,
    one_sample,
)


class ScoreFunctionEstimator(AbstractEstimator):
    r"""The score-function (REINFORCE) estimator.

    $$
    \nabla_\theta\, \mathbb E_{p(x;\theta)}[f(x)]
    = \mathbb E_{p(x;\theta)}\big[f(x)\, \nabla_\theta \log p(x;\theta)\big]
    \approx \frac1N \sum_{n=1}^N f(x_n)\, \nabla_\theta \log p(x_n;\theta),
    \qquad x_n \sim p(\cdot;\theta).
    $$

    Needs a distribution whose `log_prob` is differentiable in $\theta$; $f$ may be
    anything that returns a real scalar (not differentiable, even discrete, and the
    samples may be discrete too). Its variance grows with the magnitude of $f$, so it
    is usually paired with a control variate
    ([`eqopt.monte_carlo.control_variates_jacobians`][]).

    Returned, and called, by [`eqopt.monte_carlo.score_function_jacobians`][].

    **Arguments:**

    - `num_samples`: $N$, the number of samples (a static field).

    ??? cite "References"

        Williams, *Simple statistical gradient-following algorithms for connectionist
        reinforcement learning*, Machine Learning 8, 1992.
        Mohamed, Rosca, Figurnov and Mnih, *Monte Carlo Gradient Estimation in Machine
        Learning*, JMLR 21(132), 2020, section 4.
        [arXiv:1906.10652](https://arxiv.org/abs/1906.10652)
    """

    num_samples: int = eqx.field(static=True)

    _owner: ClassVar[str] = "score_function_jacobians"

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
        check_distribution(self._owner, dist, ("sample", "log_prob"))
        sample = one_sample(dist, key)
        check_function(self._owner, function, sample, floating=False)
        check_differentiable(
            self._owner,
            lambda *p: dist_builder(*p).log_prob(
                jax.numpy.zeros(sample.shape, sample.dtype)
            ),
            params,
            what="`dist.log_prob`",
            wrt="the parameters",
            fix="The score-function estimator needs a log-density differentiable in "
            "`params`.",
        )

        @no_type_check
        def surrogate(params):
            dist = dist_builder(*params)
            samples = jax.lax.stop_gradient(dist.sample((self.num_samples,), key))

            @no_type_check
            def one_sample_surrogate(x):
                log_prob = dist.log_prob(x)
                return as_real_scalar(function(x), log_prob.dtype) * log_prob

            # vmap, so that `function` needs to handle one sample only.
            return jax.vmap(one_sample_surrogate)(samples)

        return jax.jacfwd(surrogate)(params)


def score_function_jacobians(
    function: Function,
    params: DistParams,
    dist_builder: DistBuilder,
    rng: PRNGKeyArray,
    num_samples: int,
) -> Jacobians:
    r"""Score-function (REINFORCE) gradient estimation.

    Approximates $\nabla_\theta\, \mathbb E_{p(x;\theta)}[f(x)]$ with
    $\mathbb E_{p(x;\theta)}[f(x)\, \nabla_\theta \log p(x;\theta)]$, one term per
    sample. Applicable to continuous and discrete distributions; no requirement on $f$
    beyond returning a real scalar. See [`eqopt.monte_carlo.ScoreFunctionEstimator`][].

    Optax: `optax.monte_carlo.score_function_jacobians` (Optax 0.2.6).

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar.
    - `params`: the distribution parameters, a sequence of arrays.
    - `dist_builder`: builds the distribution as `dist_builder(*params)`; it needs
        `sample(shape, key)` and a differentiable `log_prob(x)`.
    - `rng`: a JAX PRNG key.
    - `num_samples`: the number of samples, at least 1.

    **Returns:**

    A sequence like `params`: for each parameter the per-sample Jacobians, of shape
    `(num_samples, *param.shape)`. Their mean over the first axis is the gradient
    estimate.

    !!! example

        ```python
        def estimate(params, key):
            return eqopt.monte_carlo.score_function_jacobians(
                lambda x: jnp.sum(x**2), params, eqopt.utils.multi_normal, key, 1000
            )

        jacobians = jax.jit(estimate)([jnp.ones(3), jnp.zeros(3)], jax.random.key(0))
        grad_loc = jacobians[0].mean(axis=0)  # about 2 * loc
        ```
    """
    return ScoreFunctionEstimator(num_samples)(function, params, dist_builder, rng)

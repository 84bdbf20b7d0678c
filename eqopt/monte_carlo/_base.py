r"""The estimator interface shared by the score-function, pathwise and measure-valued
estimators, and the types of their arguments."""

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray


#: $f$: maps one sample of the distribution to a scalar.
Function: TypeAlias = Callable[[Array], Any]
#: The parameters of the distribution, e.g. `[loc, log_scale]`.
DistParams: TypeAlias = Sequence[Float[ArrayLike, "..."]]
#: Builds the distribution: `dist_builder(*params)`, e.g. `eqopt.utils.multi_normal`.
DistBuilder: TypeAlias = Callable[..., Any]
#: One Jacobian per distribution parameter, each of shape `(num_samples, *param.shape)`.
Jacobians: TypeAlias = Sequence[Float[Array, "num_samples ..."]]


class AbstractEstimator(eqx.Module):
    r"""A Monte Carlo estimator of the gradient of an expectation,
    $\nabla_\theta\, \mathbb E_{p(x;\theta)}[f(x)]$.

    Calling an estimator returns, for each distribution parameter, the per-sample
    Jacobians: an array of shape `(num_samples, *param.shape)` whose mean over the
    first axis is the gradient estimate, and whose spread measures the estimator's
    variance.

    $f$ must not depend on $\theta$ itself: if it does, pass it through
    `jax.lax.stop_gradient` and add its own gradient with the chain rule.

    Subclasses hold `num_samples` (a static field) and implement `__call__`.
    """

    num_samples: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self,
        function: Function,
        params: DistParams,
        dist_builder: DistBuilder,
        key: PRNGKeyArray,
    ) -> Jacobians:
        """Estimate the gradient of $\\mathbb E_{p(x;\\theta)}[f(x)]$ with respect to
        each parameter.

        **Arguments:**

        - `function`: $f$, from one sample to a scalar.
        - `params`: $\\theta$, a sequence of arrays (`[loc, log_scale]` for
            [`eqopt.utils.multi_normal`][]).
        - `dist_builder`: builds the distribution, `dist_builder(*params)`.
        - `key`: a JAX PRNG key.

        **Returns:**

        One array per parameter, of shape `(num_samples, *param.shape)`: the per-sample
        Jacobians.
        """

    def with_num_samples(self, num_samples: int) -> "AbstractEstimator":
        """The same estimator, drawing `num_samples` samples."""
        return dataclasses.replace(self, num_samples=num_samples)

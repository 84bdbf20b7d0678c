r"""Gradient estimation with a control variate, and the optimal control-variate
coefficients."""

from collections.abc import Callable, Sequence
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import ScalarLike
from .._hyperparams import as_scalar
from ._base import (
    AbstractEstimator,
    DistBuilder,
    DistParams,
    Function,
    Jacobians,
)
from ._control_variate import AbstractControlVariate
from ._validation import check_num_samples


#: An Optax-style gradient estimator:
#: `grad_estimator(function, params, dist_builder, rng, num_samples) -> jacobians`.
GradEstimator = Callable[..., Jacobians] | AbstractEstimator
#: An Optax-style control variate factory: `function -> control variate`.
ControlVariateFromFunction = Callable[[Function], Any]


class _FunctionEstimator(AbstractEstimator):
    """An Optax-style estimator function, such as `score_function_jacobians`, as a
    Module."""

    grad_estimator: Callable[..., Jacobians] = eqx.field(static=True)
    num_samples: int = eqx.field(static=True)

    def __check_init__(self):
        check_num_samples("control_variates_jacobians", self.num_samples)

    def __call__(
        self,
        function: Function,
        params: DistParams,
        dist_builder: DistBuilder,
        key: PRNGKeyArray,
    ) -> Jacobians:
        return self.grad_estimator(
            function, params, dist_builder, key, self.num_samples
        )


class _TupleControlVariate(AbstractControlVariate):
    """An Optax-style control variate, a 3-tuple of functions, as a Module."""

    function: Function = eqx.field(static=True)
    functions: tuple[Callable, Callable, Callable] = eqx.field(static=True)

    def init(self) -> None:
        return None

    def __call__(
        self, params: DistParams, sample: Float[Array, "..."], state: Any = None
    ) -> Float[Array, ""]:
        return self.functions[0](params, sample, state)

    def expected_value(self, params: DistParams, state: Any = None) -> Float[Array, ""]:
        return self.functions[1](params, state)

    def update_state(
        self,
        params: DistParams,
        samples: Float[Array, "num_samples ..."],
        state: Any = None,
    ) -> Any:
        return self.functions[2](params, samples, state)


def _as_estimator(grad_estimator: GradEstimator, num_samples: int) -> AbstractEstimator:
    if isinstance(grad_estimator, AbstractEstimator):
        return grad_estimator.with_num_samples(num_samples)
    return _FunctionEstimator(grad_estimator, num_samples)


def _as_control_variate(cv: Any, function: Function) -> AbstractControlVariate:
    if isinstance(cv, AbstractControlVariate):
        return cv
    cv = tuple(cv)
    if len(cv) != 3 or not all(callable(c) for c in cv):
        raise TypeError(
            "`control_variates_jacobians(control_variate_from_function=...)` must "
            "return an `eqopt.monte_carlo.AbstractControlVariate` or, as in Optax, a "
            "3-tuple of functions `(control_variate, expected_value, update_state)`."
        )
    return _TupleControlVariate(function, cv)


class ControlVariatesEstimator(eqx.Module):
    r"""A gradient estimator combined with a control variate.

    With a control variate $h$ whose expectation is known in closed form, and a
    coefficient $c$ per parameter,

    $$
    \nabla_\theta\, \mathbb E_p[f]
    = \underbrace{\nabla_\theta\, \mathbb E_p[f - c\,h]}_{\text{estimator}}
    + c\, \underbrace{\nabla_\theta\, \mathbb E_p[h]}_{\text{closed form}},
    $$

    where $h(x;\theta)$ may depend on $\theta$ directly, so the first term splits into
    the estimator applied to $f$ and to $h$ (with $\theta$ held fixed inside $h$), and
    the sample mean of $\nabla_\theta h(x;\theta)$ at fixed samples:

    $$
    J_n = J^f_n - c\, J^h_n - c\, \tfrac1N \textstyle\sum_m \nabla_\theta h(x_m;\theta)
        + c\, \nabla_\theta\, \mathbb E_p[h].
    $$

    The estimate stays unbiased for any $c$; its variance is lowest where $h$ and $f$
    are most correlated. With `estimate_cv_coeffs=True`, $c$ is estimated on fresh
    samples (see [`eqopt.monte_carlo.estimate_control_variate_coefficients`][]), else
    $c = 1$. The control variate's state is updated once per call, before $h$ is
    evaluated.

    `function` is the control variate's (`control_variate.function`).

    Returned, and called, by [`eqopt.monte_carlo.control_variates_jacobians`][].

    **Arguments:**

    - `estimator`: the gradient estimator, an
        [`eqopt.monte_carlo.AbstractEstimator`][].
    - `control_variate`: the control variate, an
        [`eqopt.monte_carlo.AbstractControlVariate`][].
    - `estimate_cv_coeffs`: whether to estimate the coefficients $c$ (a static field).
    - `estimate_cv_coeffs_num_samples`: the number of fresh samples to estimate them
        with (a static field).
    - `eps`: $\epsilon$ in the coefficients' denominator (an array leaf).

    ??? cite "References"

        Mohamed, Rosca, Figurnov and Mnih, *Monte Carlo Gradient Estimation in Machine
        Learning*, JMLR 21(132), 2020, section 7.4.
        [arXiv:1906.10652](https://arxiv.org/abs/1906.10652)
    """

    estimator: AbstractEstimator
    control_variate: AbstractControlVariate
    estimate_cv_coeffs: bool = eqx.field(static=True, default=False)
    estimate_cv_coeffs_num_samples: int = eqx.field(static=True, default=20)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)

    def __check_init__(self):
        # (`estimator` checks its own `num_samples`.)
        if self.estimate_cv_coeffs:
            check_num_samples(
                "estimate_control_variate_coefficients",
                self.estimate_cv_coeffs_num_samples,
            )
        check_hyperparameters(
            "estimate_control_variate_coefficients", self, eps=NONNEGATIVE
        )

    @property
    def num_samples(self) -> int:
        return self.estimator.num_samples

    def __call__(
        self,
        params: DistParams,
        dist_builder: DistBuilder,
        key: PRNGKeyArray,
        control_variate_state: Any = None,
    ) -> tuple[Jacobians, Any]:
        """Estimate the gradient of $\\mathbb E_p[f]$ with the control variate.

        **Arguments:**

        - `params`: the distribution parameters.
        - `dist_builder`: builds the distribution as `dist_builder(*params)`.
        - `key`: a JAX PRNG key.
        - `control_variate_state`: the control variate's state (`None`, or
            `control_variate.init()`, to start).

        **Returns:**

        A 2-tuple of the per-sample Jacobians (a list, one array of shape
        `(num_samples, *param.shape)` per parameter) and the updated state.
        """
        cv = self.control_variate
        function = cv.function
        if self.estimate_cv_coeffs:
            coeffs = self.coefficients(params, dist_builder, key, control_variate_state)
        else:
            coeffs = [None] * len(params)

        # The estimator applied to f: grad E_p[f].
        function_jacobians = self.estimator(function, params, dist_builder, key)

        # The same key, so the same samples as the estimator drew.
        samples = dist_builder(*params).sample((self.num_samples,), key)
        state = cv.update_state(params, samples, control_variate_state)

        # The estimator applied to h, with theta fixed inside h.
        fixed = jax.lax.stop_gradient(params)
        cv_jacobians = self.estimator(
            lambda x: cv(fixed, x, state), params, dist_builder, key
        )

        # E_p[grad_theta h(x; theta)] at the (fixed) samples.
        fixed_samples = jax.lax.stop_gradient(samples)

        @no_type_check
        def mean_cv(p):
            return jnp.mean(jax.vmap(lambda x: cv(p, x, state))(fixed_samples))

        cv_param_grads = jax.grad(mean_cv)(params)
        # grad_theta E_p[h], in closed form.
        expected_value_grads = jax.grad(lambda p: cv.expected_value(p, state))(params)

        jacobians = []
        for param, coeff, jf, jh, gh, ge in zip(
            params,
            coeffs,
            function_jacobians,
            cv_jacobians,
            cv_param_grads,
            expected_value_grads,
        ):
            correction = jh + (gh - ge)[None]
            if coeff is not None:
                correction = coeff.astype(correction.dtype) * correction
            jac = jf - correction
            if jac.shape != (self.num_samples, *jnp.shape(param)):
                raise ValueError(
                    "`control_variates_jacobians`: the Jacobians have shape "
                    f"{jac.shape}; expected {(self.num_samples, *jnp.shape(param))} "
                    "(`(num_samples, *param.shape)`)."
                )
            jacobians.append(jac)
        return jacobians, state

    def coefficients(
        self,
        params: DistParams,
        dist_builder: DistBuilder,
        key: PRNGKeyArray,
        control_variate_state: Any = None,
    ) -> list[Float[Array, ""]]:
        r"""Estimate the variance-minimising coefficient of each parameter.

        $$
        c_k = \frac{\sum_j \operatorname{Cov}\big(J^f_{kj}, J^h_{kj}\big)}
                   {\sum_j \operatorname{Var}\big(J^h_{kj}\big) + \epsilon},
        $$

        summed over the elements $j$ of parameter $k$, from
        `estimate_cv_coeffs_num_samples` samples drawn with a key split from `key`
        (fresh samples, so that the estimate stays unbiased). Coefficients are held
        constant (`stop_gradient`); the state is not updated.

        **Arguments:**

        - `params`: the distribution parameters.
        - `dist_builder`: builds the distribution as `dist_builder(*params)`.
        - `key`: a JAX PRNG key (the same as given to `__call__`).
        - `control_variate_state`: the control variate's state.

        **Returns:**

        A list of scalars, one per parameter.
        """
        cv_key, _ = jr.split(key)
        cv = self.control_variate
        estimator = self.estimator.with_num_samples(self.estimate_cv_coeffs_num_samples)
        cv_jacobians = estimator(
            lambda x: cv(params, x, control_variate_state), params, dist_builder, cv_key
        )
        function_jacobians = estimator(cv.function, params, dist_builder, cv_key)

        @no_type_check
        def coefficient(jh, jf):
            jh, jf = jh.reshape(jh.shape[0], -1), jf.reshape(jf.shape[0], -1)
            covariance = jnp.mean(
                (jf - jf.mean(0, keepdims=True)) * (jh - jh.mean(0, keepdims=True)),
                axis=0,
            )
            variance = jnp.var(jh, axis=0)
            eps = self.eps.astype(variance.dtype)
            return jax.lax.stop_gradient(
                jnp.sum(covariance) / (jnp.sum(variance) + eps)
            )

        return [coefficient(jh, jf) for jh, jf in zip(cv_jacobians, function_jacobians)]


def control_variates_jacobians(
    function: Function,
    control_variate_from_function: ControlVariateFromFunction,
    grad_estimator: GradEstimator,
    params: DistParams,
    dist_builder: DistBuilder,
    rng: PRNGKeyArray,
    num_samples: int,
    control_variate_state: Any = None,
    estimate_cv_coeffs: bool = False,
    estimate_cv_coeffs_num_samples: int = 20,
) -> tuple[Jacobians, Any]:
    r"""Gradient estimation with a control variate.

    Estimates $\nabla_\theta\, \mathbb E_p[f]$ as
    $\nabla_\theta\, \mathbb E_p[f - c\,h] + c\,\nabla_\theta\, \mathbb E_p[h]$,
    with `grad_estimator` for the first term and the control variate's closed-form
    expectation for the second. See [`eqopt.monte_carlo.ControlVariatesEstimator`][]
    for the formulas. Not every control variate helps every estimator:
    `moving_avg_baseline` changes only the score-function estimator.

    Optax: `optax.monte_carlo.control_variates_jacobians` (Optax 0.2.6). Optax
    required vector parameters; eqopt accepts any shapes.

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar.
    - `control_variate_from_function`: builds the control variate from `function`:
        [`eqopt.monte_carlo.control_delta_method`][],
        [`eqopt.monte_carlo.moving_avg_baseline`][] (use `functools.partial` to set its
        arguments), or an Optax-style function returning a 3-tuple of functions.
    - `grad_estimator`: the gradient estimator: one of the `*_jacobians` functions (or
        any function with their signature), or an
        [`eqopt.monte_carlo.AbstractEstimator`][] (its `num_samples` is replaced).
    - `params`: the distribution parameters.
    - `dist_builder`: builds the distribution as `dist_builder(*params)`.
    - `rng`: a JAX PRNG key.
    - `num_samples`: the number of samples, at least 1.
    - `control_variate_state`: the control variate's state, for control variates that
        keep one (such as the moving-average baseline).
    - `estimate_cv_coeffs`: whether to estimate the optimal coefficients with
        [`eqopt.monte_carlo.estimate_control_variate_coefficients`][]; else they are 1.
    - `estimate_cv_coeffs_num_samples`: the number of fresh samples used to estimate
        the coefficients.

    **Returns:**

    A 2-tuple of the per-sample Jacobians (a list, one array of shape
    `(num_samples, *param.shape)` per parameter) and the updated control-variate
    state.
    """
    estimator = ControlVariatesEstimator(
        _as_estimator(grad_estimator, num_samples),
        _as_control_variate(control_variate_from_function(function), function),
        estimate_cv_coeffs,
        estimate_cv_coeffs_num_samples,
    )
    return estimator(params, dist_builder, rng, control_variate_state)


def estimate_control_variate_coefficients(
    function: Function,
    control_variate_from_function: ControlVariateFromFunction,
    grad_estimator: GradEstimator,
    params: DistParams,
    dist_builder: DistBuilder,
    rng: PRNGKeyArray,
    num_samples: int,
    control_variate_state: Any = None,
    eps: ScalarLike = 1e-3,
) -> Sequence[Float[Array, ""]]:
    r"""Estimate the variance-minimising control-variate coefficient of each
    parameter.

    $c_k = \sum_j \operatorname{Cov}(J^f_{kj}, J^h_{kj}) /
    (\sum_j \operatorname{Var}(J^h_{kj}) + \epsilon)$, from `num_samples` fresh
    samples. See [`eqopt.monte_carlo.ControlVariatesEstimator.coefficients`][].

    Optax: `optax.monte_carlo.control_variates.estimate_control_variate_coefficients`
    (Optax 0.2.6).

    **Arguments:**

    - `function`, `control_variate_from_function`, `grad_estimator`, `params`,
        `dist_builder`, `rng`, `control_variate_state`: as for
        [`eqopt.monte_carlo.control_variates_jacobians`][].
    - `num_samples`: the number of samples to estimate the coefficients with.
    - `eps`: $\epsilon$, which keeps the division finite.

    **Returns:**

    A list of scalars, one per parameter.
    """
    estimator = ControlVariatesEstimator(
        _as_estimator(grad_estimator, num_samples),
        _as_control_variate(control_variate_from_function(function), function),
        estimate_cv_coeffs=True,
        estimate_cv_coeffs_num_samples=num_samples,
        eps=eps,
    )
    return estimator.coefficients(params, dist_builder, rng, control_variate_state)

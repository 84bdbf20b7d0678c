"""Control variates (delta method, moving-average baseline) and
`control_variates_jacobians`, table-driven over estimators and control variates."""

import dataclasses
import functools as ft
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqopt

from ..helpers import assert_trees_allclose, tree_isfinite
from .cases import (
    assert_unbiased,
    compiled_battery,
    ESTIMATOR_BY_ID,
    FAST,
    FUNCTIONS,
    FUNCTIONS_BY_ID,
    ids,
    make_params,
    mixture,
    NUM_SAMPLES,
    one_hot,
    true_gradients,
)


mc = eqopt.monte_carlo
multi_normal = eqopt.utils.multi_normal


@dataclasses.dataclass(frozen=True)
class ControlVariate:
    id: str
    factory: Callable  # control_variate_from_function
    estimate_cv_coeffs: bool = False
    # The estimators it is tested with (compiling each pair is slow on the CPU): those
    # whose variance it is meant to lower (the moving average changes only the score
    # function's).
    estimators: tuple[str, ...] = ("score_function", "pathwise")


CONTROL_VARIATES = [
    ControlVariate("delta", mc.control_delta_method),
    ControlVariate(
        "delta-estimated_coeffs",
        mc.control_delta_method,
        estimate_cv_coeffs=True,
        estimators=("score_function",),
    ),
    ControlVariate(
        "moving_avg",
        mc.moving_avg_baseline,
        estimators=("score_function",),
    ),
]
PAIRS = [
    pytest.param(ESTIMATOR_BY_ID[e], cv, id=f"{e}-{cv.id}")
    for cv in CONTROL_VARIATES
    for e in cv.estimators
]
# Close to a quadratic, plus an offset: what both control variates are for.
NEAR_QUADRATIC = {"constant": 5.0, "cross_quadratic": 0.5, "cosine": 0.1}


@ft.cache
def compiled_cv_battery(estimator_id, cv_id):
    estimator = ESTIMATOR_BY_ID[estimator_id]
    cv = {c.id: c for c in CONTROL_VARIATES}[cv_id]

    @jax.jit
    def run(coefficients, params, key):
        f = mixture(coefficients)
        return mc.control_variates_jacobians(
            f,
            cv.factory,
            estimator.function,
            params,
            multi_normal,
            key,
            NUM_SAMPLES,
            None,
            cv.estimate_cv_coeffs,
            100,
        )

    return run


@pytest.mark.parametrize("function", FUNCTIONS, ids=ids(FUNCTIONS))
@pytest.mark.parametrize("estimator, cv", PAIRS)
def test_unbiased(estimator, cv, function):
    """A control variate keeps the mean: the analytic gradient, within 5 s.e."""
    params = make_params("vector")
    run = compiled_cv_battery(estimator.id, cv.id)
    jacobians, state = run(one_hot(function), params, jr.key(0, impl=FAST))
    assert [j.shape for j in jacobians] == [(NUM_SAMPLES, 3), (NUM_SAMPLES, 3)]
    assert_unbiased(jacobians, true_gradients(function, params))


@pytest.mark.parametrize("estimator, cv", PAIRS)
def test_variance(estimator, cv):
    """A control variate lowers the variance of the estimators it is meant for."""
    coefficients = jnp.asarray([NEAR_QUADRATIC.get(f.id, 0.0) for f in FUNCTIONS])
    params = make_params("vector")
    key = jr.key(0, impl=FAST)
    with_cv, _ = compiled_cv_battery(estimator.id, cv.id)(coefficients, params, key)
    plain = compiled_battery(estimator.id)(coefficients, params, key)
    for j_cv, j in zip(with_cv, plain):
        total_cv, total = float(jnp.var(j_cv, 0).sum()), float(jnp.var(j, 0).sum())
        assert total_cv < 0.5 * total


def test_delta_method():
    """For a quadratic f (with cross terms), h = f and E h = E f; otherwise E h is the
    expansion's, f(mu) + sum sigma^2 f''(mu) / 2 (for log(x^2) at mu = 1 and
    sigma = e, -e^2 per coordinate: Optax's test case). Any event shape."""
    matrix = make_params("matrix")
    cross = FUNCTIONS_BY_ID["cross_quadratic"]
    cases = [
        (matrix, cross.make((2, 2)), cross.expectation(*matrix)),
        (
            [jnp.ones(10), jnp.ones(10)],
            lambda x: jnp.sum(jnp.log(x**2)),
            -(np.e**2) * 10,
        ),
    ]

    @jax.jit
    def run(key):
        out = []
        for params, f, _ in cases:
            cv, expected_value, update_state = mc.control_delta_method(f)
            samples = multi_normal(*params).sample((5,), key)
            values = jax.vmap(lambda x: cv(params, x, None))(samples)
            assert update_state(params, samples, None) is None
            out.append((values, jax.vmap(f)(samples), expected_value(params, None)))
        return out

    for (_, _, expectation), (values, f_values, expected_value) in zip(
        cases, run(jr.key(0, impl=FAST))
    ):
        np.testing.assert_allclose(expected_value, expectation, rtol=1e-5)
        if np.isfinite(expectation) and expectation > -20:  # the quadratics
            np.testing.assert_allclose(values, f_values, rtol=1e-5, atol=1e-5)


# (decay, zero_debias, heuristic, state): Optax 0.2.6's rule, written out by hand.
MOVING_AVERAGE_CASES = [
    (0.9, False, False, (1.0, 0)),
    (0.99, False, False, (2.0, 0)),
    (0.9, False, True, (1.0, 0)),
    (0.99, False, True, (2.0, 1)),
    (0.9, True, False, (0.0, 0)),
    (0.99, True, False, (0.5, 3)),
    (0.99, True, True, (3.0, 5)),
]


@pytest.mark.parametrize("decay, zero_debias, heuristic, state", MOVING_AVERAGE_CASES)
def test_moving_average_update(decay, zero_debias, heuristic, state):
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    samples = multi_normal(*params).sample((64,), jr.key(0))
    cv = mc.moving_avg_baseline(f, decay, zero_debias, heuristic)
    new_state = cv.update_state(params, samples, state)

    value, i = state
    d = min(decay, (1 + i) / (10 + i)) if heuristic else decay
    expected = d * value + (1 - d) * float(jnp.mean(jax.vmap(f)(samples)))
    if zero_debias:
        expected /= 1 - d ** (i + 1)
    assert isinstance(new_state, mc.MovingAverageBaselineState)
    np.testing.assert_allclose(new_state[0], expected, rtol=1e-5)
    assert int(new_state[1]) == i + 1
    # Optax's tuple API: the three functions, and a state that unpacks like a tuple.
    control_variate, expected_value, update_state = cv
    new_value, count = update_state(params, samples, state)
    assert (float(new_value), int(count)) == (float(new_state.value), i + 1)
    assert float(control_variate(params, samples[0], new_state)) == float(new_value)
    assert float(expected_value(params, new_state)) == float(new_value)


def test_moving_average_state():
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    cv = mc.moving_avg_baseline(f)
    assert (float(cv.init().value), int(cv.init().count)) == (0.0, 0)
    params = make_params("vector")
    samples = multi_normal(*params).sample((8,), jr.key(0))
    # `None` starts from the initial state.
    assert_trees_allclose(
        cv.update_state(params, samples, None),
        cv.update_state(params, samples, cv.init()),
    )
    # `moving_avg_baseline(f)[-1]` is `update_state`, as in Optax.
    assert_trees_allclose(
        cv[-1](params, samples, (0.0, 0)), cv.update_state(params, samples, (0.0, 0))
    )


def test_moving_average_vmap_over_decay():
    """`decay` is an array leaf: a batch of baselines is built with `jax.vmap`."""
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    params = make_params("vector")
    samples = multi_normal(*params).sample((8,), jr.key(0))
    decays = jnp.asarray([0.5, 0.9, 0.99])

    def update(decay):
        cv = mc.MovingAverageBaseline(
            f, decay, use_decay_early_training_heuristic=False
        )
        return cv.update_state(params, samples, (1.0, 2))

    batched = jax.vmap(update)(decays)
    for index, decay in enumerate(decays):
        assert_trees_allclose(jax.tree.map(lambda x: x[index], batched), update(decay))


def test_moving_average_decay_range():
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    for decay in (1.0, -0.1):
        with pytest.raises(
            ValueError,
            match=rf"`moving_avg_baseline\(decay=...\)` must be in \[0, 1\); got "
            rf"decay={decay}",
        ):
            mc.moving_avg_baseline(f, decay)


def _jaxpr(fn, *args):
    return str(jax.make_jaxpr(fn)(*args))


def test_function_module_and_tuple_forms_agree():
    """`control_variates_jacobians` is a thin wrapper around `ControlVariatesEstimator`;
    an estimator Module or an Optax-style 3-tuple control variate give the same
    program as the eqopt functions."""
    f = FUNCTIONS_BY_ID["cos_of_sum"].make((3,))
    params, key = make_params("vector"), jr.PRNGKey(0)

    def from_function(p, k, grad_estimator=mc.pathwise_jacobians, factory=None):
        factory = factory or mc.control_delta_method
        return mc.control_variates_jacobians(
            f, factory, grad_estimator, p, multi_normal, k, 16, None, True, 8
        )

    def from_module(p, k):
        module = mc.ControlVariatesEstimator(
            mc.PathwiseEstimator(16), mc.ControlDeltaMethod(f), True, 8
        )
        return module(p, multi_normal, k)

    def from_estimator_module(p, k):
        return from_function(p, k, grad_estimator=mc.PathwiseEstimator(3))

    def from_tuple(p, k):
        return from_function(p, k, factory=lambda g: tuple(mc.control_delta_method(g)))

    reference = _jaxpr(from_module, params, key)
    for form in (from_function, from_estimator_module, from_tuple):
        assert _jaxpr(form, params, key) == reference, form.__name__


def test_jit_vmap_grad():
    """With a stateful control variate: the estimate vmaps over keys and differentiates
    in the parameters, inside `jit`. (Threading the state through `lax.scan` is in the
    how-to, which `test_docs` runs.)"""
    f = FUNCTIONS_BY_ID["cos_of_sum"].make((3,))
    params = make_params("vector")
    estimator = mc.ControlVariatesEstimator(
        mc.ScoreFunctionEstimator(32), mc.moving_avg_baseline(f)
    )

    @jax.jit
    def run(estimator, params, keys):
        state = estimator.control_variate.init()
        by_key, states = jax.vmap(lambda k: estimator(params, multi_normal, k, state))(
            keys
        )

        def total(p):
            jacobians, _ = estimator(p, multi_normal, keys[0], state)
            return sum(j.mean(0).sum() for j in jacobians)

        return by_key, states, jax.grad(total)(params)

    keys = jr.split(jr.key(0, impl=FAST), 4)
    by_key, states, param_grads = run(estimator, params, keys)
    assert isinstance(states, mc.MovingAverageBaselineState)
    assert states.value.shape == (4,) and np.all(np.asarray(states.count) == 1)
    assert by_key[0].shape == (4, 32, 3)
    assert not np.allclose(by_key[0][0], by_key[0][1])
    assert tree_isfinite(param_grads)


def test_coefficients_for_an_exact_control_variate():
    """When h = f (a quadratic under the delta method), the optimal coefficient is
    Var / (Var + eps), about 1."""
    f = FUNCTIONS_BY_ID["quadratic"].make((3,))
    params = make_params("vector")
    coefficients = jax.jit(
        mc.estimate_control_variate_coefficients, static_argnums=(0, 1, 2, 4, 6)
    )(
        f,
        mc.control_delta_method,
        mc.score_function_jacobians,
        params,
        multi_normal,
        jr.key(0),
        50,
    )
    assert len(coefficients) == 2
    for c in coefficients:
        assert c.shape == ()
        np.testing.assert_allclose(c, 1.0, atol=2e-3)


def test_errors():
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    params, key = make_params("vector"), jr.key(0)
    with pytest.raises(TypeError, match="3-tuple of functions"):
        mc.control_variates_jacobians(
            f, lambda g: (g, g), mc.pathwise_jacobians, params, multi_normal, key, 4
        )
    with pytest.raises(ValueError, match=r"num_samples=...\)` must be in \[1, inf\)"):
        mc.control_variates_jacobians(
            f,
            mc.control_delta_method,
            mc.pathwise_jacobians,
            params,
            multi_normal,
            key,
            0,
        )
    with pytest.raises(
        ValueError,
        match=r"`estimate_control_variate_coefficients\(num_samples=...\)` must be in",
    ):
        mc.control_variates_jacobians(
            f,
            mc.control_delta_method,
            mc.pathwise_jacobians,
            params,
            multi_normal,
            key,
            4,
            None,
            True,
            0,
        )
    with pytest.raises(ValueError, match=r"\(eps=...\)` must be in \[0, inf\)"):
        mc.ControlVariatesEstimator(
            mc.PathwiseEstimator(4), mc.control_delta_method(f), eps=-1.0
        )

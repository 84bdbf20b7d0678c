"""The score-function, pathwise and measure-valued estimators, parametrised over the
table of estimators (`cases.ESTIMATORS`) and of functions with known expectations."""

import functools as ft
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import TypeCheckError

import eqopt

from ..helpers import assert_trees_allclose
from .cases import (
    assert_unbiased,
    compiled_battery,
    ESTIMATOR_BY_ID,
    ESTIMATORS,
    FAST,
    FUNCTIONS,
    FUNCTIONS_BY_ID,
    ids,
    make_params,
    NUM_SAMPLES,
    one_hot,
    ONE_PER_CLASS,
    true_gradients,
)


mc = eqopt.monte_carlo
multi_normal = eqopt.utils.multi_normal
# Shapes other than vectors: both kinds of broadcasting of `loc` against `log_scale`
# (the estimators see only the event shape otherwise).
SHAPES = ["broadcast", "broadcast_both"]
# The score-function and pathwise estimators both get the broadcasting from `jacfwd`;
# the measure-valued one sums over the broadcast axes itself.
SHAPE_CASES = [ESTIMATOR_BY_ID["score_function"], ESTIMATOR_BY_ID["measure_valued"]]


@ft.cache
def shape_battery(estimator_id):
    """Jacobians of `cos_of_sum` for every parameter shape, in one compilation."""
    estimator = ESTIMATOR_BY_ID[estimator_id]
    function = FUNCTIONS_BY_ID["cos_of_sum"]
    shapes = SHAPES

    @jax.jit
    def run(all_params, key):
        out = {}
        for shape, params in zip(shapes, all_params):
            event = jnp.broadcast_shapes(params[0].shape, params[1].shape)
            module = estimator.module(NUM_SAMPLES)
            out[shape] = module(function.make(event), params, multi_normal, key)
        return out

    return run([make_params(s) for s in shapes], jr.key(1, impl=FAST))


@pytest.mark.parametrize("function", FUNCTIONS, ids=ids(FUNCTIONS))
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_unbiased(estimator, function):
    """Mean Jacobian = the gradient of the closed-form expectation, within 5 s.e."""
    params = make_params("vector")
    run = compiled_battery(estimator.id)
    jacobians = run(one_hot(function), params, jr.key(0, impl=FAST))
    for jac, p in zip(jacobians, params):
        assert jac.shape == (NUM_SAMPLES, *p.shape)
        assert jac.dtype == p.dtype
    assert_unbiased(jacobians, true_gradients(function, params))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("estimator", SHAPE_CASES, ids=ids(SHAPE_CASES))
def test_unbiased_any_shape(estimator, shape):
    """Matrix-shaped and broadcasting `loc` / `log_scale`: one Jacobian per element."""
    params = make_params(shape)
    jacobians = shape_battery(estimator.id)[shape]
    assert [j.shape for j in jacobians] == [(NUM_SAMPLES, *p.shape) for p in params]
    assert_unbiased(jacobians, true_gradients(FUNCTIONS_BY_ID["cos_of_sum"], params))


def test_score_function_per_sample():
    """Each row is f(x_n) * grad log p(x_n), with x_n the distribution's own samples."""
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["cosine"].make((3,))

    @jax.jit
    def run(key):
        jacobians = mc.score_function_jacobians(f, params, multi_normal, key, 16)
        samples = multi_normal(*params).sample((16,), key)

        def one(x):
            score = jax.grad(lambda p: multi_normal(*p).log_prob(x))(params)
            return [f(x) * s for s in score]

        return jacobians, jax.vmap(one)(samples)

    jacobians, expected = run(jr.key(2, impl=FAST))
    assert_trees_allclose(jacobians, expected, rtol=1e-5, atol=1e-6)


def test_pathwise_per_sample():
    """Each row is grad_theta f(mu + exp(log_scale) * eps_n)."""
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["cos_of_sum"].make((3,))

    @jax.jit
    def run(key):
        jacobians = mc.pathwise_jacobians(f, params, multi_normal, key, 16)
        eps = jr.normal(key, (16, 3))

        def one(e):
            return jax.grad(lambda p: f(p[0] + jnp.exp(p[1]) * e))(params)

        return jacobians, jax.vmap(one)(eps)

    jacobians, expected = run(jr.key(3, impl=FAST))
    assert_trees_allclose(jacobians, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_function_and_module_agree(estimator):
    """The Optax-style function is a thin wrapper around the Module: the same program."""
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["cosine"].make((3,))
    key = jr.key(5)
    kwargs = estimator.kwargs

    def from_function(p, k):
        return estimator.function(f, p, multi_normal, k, 8, **kwargs)

    def from_module(p, k):
        return estimator.module(8)(f, p, multi_normal, k)

    assert str(jax.make_jaxpr(from_function)(params, key)) == str(
        jax.make_jaxpr(from_module)(params, key)
    )
    assert isinstance(jax.eval_shape(from_function, params, key), list)


@pytest.mark.parametrize("estimator", ONE_PER_CLASS, ids=ids(ONE_PER_CLASS))
def test_jit_vmap_grad(estimator):
    """Under `jax.jit` (the Module itself an argument), `jax.vmap` over a batch of
    distributions gives the estimates of unbatched calls; and, for a fixed key, an
    estimate is a differentiable function of the parameters: `jax.grad` through it is
    finite and, where the samples move with the parameters, agrees with central finite
    differences. (Over keys, `vmap` is tested in `test_control_variates`.)"""
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["cos_of_sum"].make((3,))
    batch = [jnp.stack([p, p + 1]) for p in params]
    eps = 1e-2
    steps = eps * jnp.concatenate([jnp.eye(3), -jnp.eye(3)])

    @jax.jit
    def run(module, batch, key):
        def one(loc, log_scale):
            return module(f, [loc, log_scale], multi_normal, key)

        def scalar(loc):
            jacobians = one(loc, params[1])
            weights = 1 + jnp.arange(3, dtype=loc.dtype)
            return sum(jnp.sum(j.mean(0) * weights) for j in jacobians)

        return (
            jax.vmap(one)(*batch),
            # `lax.map` runs the unbatched computation, once per element.
            jax.lax.map(lambda a: one(*a), batch),
            jax.grad(scalar)(params[0]),
            jax.vmap(scalar)(params[0][None] + steps),
        )

    batched, expected, grad, values = run(
        estimator.module(8), batch, jr.key(6, impl=FAST)
    )
    assert [j.shape for j in batched] == [(2, 8, 3), (2, 8, 3)]
    assert_trees_allclose(batched, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(grad))
    if estimator.follows_samples:
        finite_differences = (values[:3] - values[3:]) / (2 * eps)
        np.testing.assert_allclose(grad, finite_differences, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_num_samples_must_be_positive(estimator):
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    params = make_params("vector")
    match = (
        r"`\w+_jacobians\(num_samples=...\)` must be in \[1, inf\); got num_samples=0"
    )
    with pytest.raises(ValueError, match=match):
        estimator.function(f, params, multi_normal, jr.key(0), 0, **estimator.kwargs)
    with pytest.raises(ValueError, match=match):
        estimator.module(0)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_function_must_return_a_scalar(estimator):
    with pytest.raises(ValueError, match=r"to a scalar; got float32\[3\]"):
        estimator.module(4)(
            lambda x: 2 * x, make_params("vector"), multi_normal, jr.key(0)
        )


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_function_must_be_traceable(estimator):
    def numpy_function(x):
        return float(np.sum(np.asarray(x)))

    with pytest.raises(jax.errors.TracerArrayConversionError) as info:
        estimator.module(4)(
            numpy_function, make_params("vector"), multi_normal, jr.key(0)
        )
    assert any("must be written with `jax.numpy`" in n for n in info.value.__notes__)


NOT_DIFFERENTIABLE = {
    "step": (lambda x: jnp.sum(jnp.floor(x)), "identically zero"),
    "stop_gradient": (
        lambda x: jax.lax.stop_gradient(jnp.sum(x**2)),
        "identically zero",
    ),
    "through_integers": (
        lambda x: jnp.sum(x.astype(jnp.int32)).astype(jnp.float32),
        "identically zero",
    ),
    "integer_valued": (lambda x: jnp.sum(x > 0), "must return a floating scalar"),
}


@pytest.mark.parametrize(
    "case", NOT_DIFFERENTIABLE.values(), ids=NOT_DIFFERENTIABLE.keys()
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=ids(ESTIMATORS))
def test_non_differentiable_function(estimator, case):
    """The pathwise estimator refuses a function it would silently get wrong; the
    others accept it (they never differentiate f)."""
    function, match = case
    module = estimator.module(16)
    params = make_params("vector")
    if estimator.differentiates_function:
        with pytest.raises(ValueError, match=match):
            module(function, params, multi_normal, jr.key(0))
    else:
        # Accepted (traced only: no need to compile).
        jacobians = jax.eval_shape(
            lambda: module(function, params, multi_normal, jr.key(0))
        )
        assert [j.shape for j in jacobians] == [(16, 3), (16, 3)]


class _NotReparameterised(eqx.Module):
    """A Gaussian whose samples carry no gradient (like a sampler without the
    reparameterisation trick)."""

    loc: jax.Array
    log_scale: jax.Array

    def sample(self, shape, key):
        return jax.lax.stop_gradient(
            multi_normal(self.loc, self.log_scale).sample(shape, key)
        )

    def log_prob(self, x):
        return multi_normal(self.loc, self.log_scale).log_prob(x)


class _NoLogProb(eqx.Module):
    loc: jax.Array
    log_scale: jax.Array

    def sample(self, shape, key):
        return multi_normal(self.loc, self.log_scale).sample(shape, key)


def test_distribution_requirements():
    params = make_params("vector")
    f = FUNCTIONS_BY_ID["quadratic"].make((3,))
    key = jr.key(0)
    with pytest.raises(ValueError, match="reparameterised distribution"):
        mc.pathwise_jacobians(f, params, _NotReparameterised, key, 4)
    # The score-function estimator needs only log_prob to be differentiable.
    jacobians = jax.eval_shape(
        lambda: mc.score_function_jacobians(f, params, _NotReparameterised, key, 4)
    )
    assert [j.shape for j in jacobians] == [(4, 3), (4, 3)]
    with pytest.raises(TypeError, match="has no `log_prob`"):
        mc.score_function_jacobians(f, params, _NoLogProb, key, 4)
    for coupling in (True, False):
        with pytest.raises(ValueError, match="supports only diagonal Gaussians"):
            mc.measure_valued_jacobians(
                f, params, _NotReparameterised, key, 4, coupling
            )


def test_constant_function_is_fine_for_pathwise():
    jacobians = jax.jit(mc.pathwise_jacobians, static_argnums=(0, 2, 4))(
        lambda x: 3.0, make_params("vector"), multi_normal, jr.key(0), 4
    )
    assert_trees_allclose(jacobians, [jnp.zeros((4, 3)), jnp.zeros((4, 3))])


def test_wrong_type_names_the_argument():
    f = FUNCTIONS_BY_ID["linear"].make((3,))
    with pytest.raises(TypeCheckError, match="parameter 'rng'"):
        mc.score_function_jacobians(f, make_params("vector"), multi_normal, "key", 4)
    with pytest.raises(TypeCheckError, match="parameter 'num_samples'"):
        mc.pathwise_jacobians(f, make_params("vector"), multi_normal, jr.key(0), 4.0)


# Optax 0.2.6's signatures (names, order and defaults; `optax.monte_carlo` is gone from
# the installed Optax, so they are written out here).
_E = inspect.Parameter.empty
OPTAX_SIGNATURES = {
    "score_function_jacobians": [
        ("function", _E),
        ("params", _E),
        ("dist_builder", _E),
        ("rng", _E),
        ("num_samples", _E),
    ],
    "pathwise_jacobians": [
        ("function", _E),
        ("params", _E),
        ("dist_builder", _E),
        ("rng", _E),
        ("num_samples", _E),
    ],
    "measure_valued_jacobians": [
        ("function", _E),
        ("params", _E),
        ("dist_builder", _E),
        ("rng", _E),
        ("num_samples", _E),
        ("coupling", True),
    ],
    "control_variates_jacobians": [
        ("function", _E),
        ("control_variate_from_function", _E),
        ("grad_estimator", _E),
        ("params", _E),
        ("dist_builder", _E),
        ("rng", _E),
        ("num_samples", _E),
        ("control_variate_state", None),
        ("estimate_cv_coeffs", False),
        ("estimate_cv_coeffs_num_samples", 20),
    ],
    "estimate_control_variate_coefficients": [
        ("function", _E),
        ("control_variate_from_function", _E),
        ("grad_estimator", _E),
        ("params", _E),
        ("dist_builder", _E),
        ("rng", _E),
        ("num_samples", _E),
        ("control_variate_state", None),
        ("eps", 1e-3),
    ],
    "control_delta_method": [("function", _E)],
    "moving_avg_baseline": [
        ("function", _E),
        ("decay", 0.99),
        ("zero_debias", True),
        ("use_decay_early_training_heuristic", True),
    ],
}


@pytest.mark.parametrize("name", OPTAX_SIGNATURES)
def test_signature_matches_optax_0_2_6(name):
    parameters = inspect.signature(getattr(mc, name)).parameters.values()
    assert [(p.name, p.default) for p in parameters] == OPTAX_SIGNATURES[name]
    assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in parameters)

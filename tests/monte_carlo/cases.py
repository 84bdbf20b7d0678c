"""Tables shared by the Monte Carlo tests: the estimators, and functions whose Gaussian
expectation is known in closed form (so that the true gradient is that of the closed
form, by automatic differentiation: an oracle independent of the estimators)."""

import dataclasses
import functools as ft
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import eqopt


mc = eqopt.monte_carlo


@dataclasses.dataclass(frozen=True)
class Estimator:
    id: str
    function: Callable  # the Optax-style function
    module: Callable[[int], mc.AbstractEstimator]  # num_samples -> Module
    kwargs: dict = dataclasses.field(default_factory=dict)
    differentiates_function: bool = False  # needs a differentiable f (pathwise)
    # Whether the estimate follows its samples when the parameters move: the
    # score-function estimator holds its samples fixed (`stop_gradient`), as Optax did.
    follows_samples: bool = True


ESTIMATORS = [
    Estimator(
        "score_function",
        mc.score_function_jacobians,
        mc.ScoreFunctionEstimator,
        follows_samples=False,
    ),
    Estimator(
        "pathwise",
        mc.pathwise_jacobians,
        mc.PathwiseEstimator,
        differentiates_function=True,
    ),
    Estimator(
        "measure_valued",
        mc.measure_valued_jacobians,
        ft.partial(mc.MeasureValuedEstimator, coupling=True),
        {"coupling": True},
    ),
    Estimator(
        "measure_valued-nocoupling",
        mc.measure_valued_jacobians,
        ft.partial(mc.MeasureValuedEstimator, coupling=False),
        {"coupling": False},
    ),
]


def weights(shape):
    """Fixed, distinct weights of the event shape."""
    size = int(np.prod(shape))
    return jnp.linspace(-1.0, 1.5, size).reshape(shape)


def gaussian(loc, log_scale):
    """Mean and variance, broadcast to the event shape."""
    shape = jnp.broadcast_shapes(jnp.shape(loc), jnp.shape(log_scale))
    mean = jnp.broadcast_to(loc, shape)
    variance = jnp.broadcast_to(jnp.exp(2 * log_scale), shape)
    return mean, variance


@dataclasses.dataclass(frozen=True)
class Function:
    """`make(shape)` gives f; `expectation(loc, log_scale)` is E f in closed form."""

    id: str
    make: Callable
    expectation: Callable


def _constant(shape):
    return lambda x: jnp.asarray(0.7)


def _linear(shape):
    w = weights(shape)
    return lambda x: jnp.sum(w * x)


def _quadratic(shape):
    w = weights(shape)
    return lambda x: jnp.sum(w * x**2)


def _cross_quadratic(shape):
    w = weights(shape)
    return lambda x: jnp.sum(w * x) ** 2


def _cosine(shape):
    return lambda x: jnp.sum(jnp.cos(x))


def _cos_of_sum(shape):
    w = weights(shape)
    return lambda x: jnp.cos(jnp.sum(w * x))


def _e_constant(loc, log_scale):
    return jnp.asarray(0.7)


def _e_linear(loc, log_scale):
    m, _ = gaussian(loc, log_scale)
    return jnp.sum(weights(m.shape) * m)


def _e_quadratic(loc, log_scale):
    m, v = gaussian(loc, log_scale)
    return jnp.sum(weights(m.shape) * (m**2 + v))


def _e_cross_quadratic(loc, log_scale):
    m, v = gaussian(loc, log_scale)
    w = weights(m.shape)
    return jnp.sum(w * m) ** 2 + jnp.sum(w**2 * v)


def _e_cosine(loc, log_scale):
    # E cos(x) = cos(mu) exp(-sigma^2 / 2).
    m, v = gaussian(loc, log_scale)
    return jnp.sum(jnp.cos(m) * jnp.exp(-v / 2))


def _e_cos_of_sum(loc, log_scale):
    m, v = gaussian(loc, log_scale)
    w = weights(m.shape)
    return jnp.cos(jnp.sum(w * m)) * jnp.exp(-jnp.sum(w**2 * v) / 2)


FUNCTIONS = [
    Function("constant", _constant, _e_constant),
    Function("linear", _linear, _e_linear),
    Function("quadratic", _quadratic, _e_quadratic),
    Function("cross_quadratic", _cross_quadratic, _e_cross_quadratic),
    Function("cosine", _cosine, _e_cosine),
    Function("cos_of_sum", _cos_of_sum, _e_cos_of_sum),
]
FUNCTIONS_BY_ID = {f.id: f for f in FUNCTIONS}

# (loc, log_scale) of several shapes, broadcasting included.
PARAMS = {
    "vector": ([1.0, -0.5, 0.3], [-0.5, 0.0, 0.2]),
    "matrix": ([[1.0, -0.5], [0.3, 0.8]], [[-0.3, 0.0], [0.2, -0.6]]),
    "broadcast": ([[1.0, -0.5, 0.3], [0.2, 0.0, -1.0]], -0.4),
    "broadcast_both": ([[0.5, -0.5, 0.3]], [[-0.2], [0.1]]),
}


def make_params(name):
    loc, log_scale = PARAMS[name]
    return [jnp.asarray(loc, jnp.float32), jnp.asarray(log_scale, jnp.float32)]


def true_gradients(function: Function, params):
    return list(jax.grad(function.expectation, argnums=(0, 1))(*params))


def assert_unbiased(jacobians, expected, num_se=5.0, atol=1e-4):
    """The mean of the per-sample Jacobians is within `num_se` standard errors."""
    for index, (jac, g) in enumerate(zip(jacobians, expected)):
        jac, g = np.asarray(jac, np.float64), np.asarray(g, np.float64)
        n = jac.shape[0]
        mean = jac.mean(0)
        se = jac.std(0) / np.sqrt(n)
        tolerance = num_se * se + atol * (1 + np.abs(g))
        error = np.abs(mean - g)
        assert np.all(error <= tolerance), (
            f"parameter {index}: mean {mean}, expected {g}, standard error {se}, "
            f"error / se {error / np.maximum(se, 1e-12)}"
        )


def ids(cases):
    return [c.id for c in cases]


ESTIMATOR_BY_ID = {e.id: e for e in ESTIMATORS}
# One configuration per Module class, for the tests of how the classes compose with JAX
# transformations (where `coupling` changes nothing); compiling the measure-valued
# estimator is slow on the CPU.
_first_of_class: dict = {}
for _e in ESTIMATORS:
    _first_of_class.setdefault(type(_e.module(1)), _e)
ONE_PER_CLASS = list(_first_of_class.values())


# The statistical tests use many samples and the fast PRNG (XLA compiles threefry slowly
# on the CPU); the other tests use default keys, and Optax-style `jr.PRNGKey` keys.
NUM_SAMPLES = 4000
FAST = "unsafe_rbg"


def mixture(coefficients, shape=(3,)):
    """sum_i c_i f_i. Every estimator (and control variate) is linear in f, so a
    one-hot `coefficients` gives f_i's Jacobians exactly, and one compilation serves
    the whole table of functions."""
    fs = [function.make(shape) for function in FUNCTIONS]
    return lambda x: sum(c * f(x) for c, f in zip(coefficients, fs))


def one_hot(function):
    return jnp.asarray([float(f is function) for f in FUNCTIONS])


@ft.cache
def compiled_battery(estimator_id):
    """The estimator's Jacobians of `mixture(coefficients)`, compiled once per session."""
    module = ESTIMATOR_BY_ID[estimator_id].module(NUM_SAMPLES)
    multi_normal = eqopt.utils.multi_normal
    return jax.jit(lambda c, p, k: module(mixture(c), p, multi_normal, k))

"""`eqopt.utils.multi_normal`, against Optax's `multi_normal` (still shipped in
`optax._src.utils`), and as a Module under `jit`, `vmap` and `grad`."""

import functools as ft
import inspect
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax._src.utils as optax_utils
import pytest
from jaxtyping import TypeCheckError

import eqopt

from ..helpers import assert_trees_allclose


multi_normal = eqopt.utils.multi_normal

# (loc shape, log_scale shape, event shape): Optax's broadcasting cases, and scalars.
SHAPES = {
    "scalar": ((), (), ()),
    "vector": ((5,), (5,), (5,)),
    "matrix": ((2, 3), (2, 3), (2, 3)),
    "broadcast": ((1, 4), (3, 4), (3, 4)),
    "broadcast_rank": ((2, 3), (), (2, 3)),
    "broadcast_4d": ((1, 2, 1, 3), (2, 1, 4, 3), (2, 2, 4, 3)),
}


def make(shapes, seed=0):
    """Parameters drawn with NumPy (nothing for XLA to compile)."""
    loc_shape, scale_shape, _ = shapes
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=loc_shape).astype(np.float32)
    log_scale = 0.3 * rng.normal(size=scale_shape).astype(np.float32)
    return jnp.asarray(loc), jnp.asarray(log_scale)


@jax.jit
def _both(key):
    """For every case: our samples and log-densities, then Optax's (one compilation;
    the fast PRNG, as XLA compiles threefry slowly on the CPU)."""
    out = {}
    for name, shapes in SHAPES.items():
        loc, log_scale = make(shapes)
        ours = multi_normal(loc, log_scale)
        theirs = optax_utils.multi_normal(loc, log_scale)
        samples = ours.sample((7,), key)
        # Optax relies on implicit dtype and rank promotion.
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            expected_samples = theirs.sample((7,), key)
            expected_log_prob = theirs.log_prob(expected_samples)
        out[name] = (
            (samples, ours.log_prob(samples), ours.params),
            (expected_samples, expected_log_prob, [loc, log_scale]),
        )
    return out


@pytest.mark.parametrize("name", SHAPES)
def test_parity_with_optax(name):
    """Same samples for the same key, same log-densities, same `params`."""
    (
        (samples, log_prob, params),
        (expected_samples, expected_log_prob, expected_params),
    ) = _both(jr.key(1, impl="unsafe_rbg"))[name]
    assert samples.shape == (7, *SHAPES[name][2])
    assert_trees_allclose(samples, expected_samples)
    assert_trees_allclose(log_prob, expected_log_prob, rtol=1e-5, atol=1e-5)
    assert_trees_allclose(params, expected_params, rtol=0, atol=0)
    loc, log_scale = make(SHAPES[name])
    assert multi_normal(loc, log_scale).event_shape == SHAPES[name][2]
    assert isinstance(multi_normal(loc, log_scale).params, list)


def test_signature_matches_optax():
    assert inspect.signature(multi_normal).parameters.keys() == (
        inspect.signature(optax_utils.multi_normal).parameters.keys()
    )


def test_log_prob_is_the_gaussian_density():
    loc, log_scale = jnp.asarray([0.5, -1.0]), jnp.asarray([0.0, math.log(2.0)])
    x = jnp.asarray([1.0, 1.0])
    expected = sum(
        -0.5 * ((xi - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
        for xi, m, s in zip([1.0, 1.0], [0.5, -1.0], [1.0, 2.0])
    )
    np.testing.assert_allclose(
        multi_normal(loc, log_scale).log_prob(x), expected, rtol=1e-6
    )


def test_module_leaves_and_transformations():
    """`loc` and `log_scale` are array leaves: the distribution is built and used under
    `vmap`, passed through `jit`, and `log_prob` is differentiable in both."""
    dist = multi_normal(jnp.zeros(3), jnp.zeros(3))
    assert isinstance(dist, eqx.Module)
    assert len(jax.tree.leaves(dist)) == 2
    locs = jnp.arange(6.0).reshape(2, 3)
    batch = jax.vmap(multi_normal, in_axes=(0, None))(locs, jnp.zeros(3))
    assert batch.loc.shape == (2, 3)
    x = jnp.ones(3)

    @jax.jit
    def run(dist):
        grads = jax.grad(lambda d: d.log_prob(x))(dist)
        return (
            jax.vmap(lambda d: d.log_prob(x))(batch),
            grads,
            dist.sample((4,), jr.key(0, impl="unsafe_rbg")),
        )

    log_probs, grads, samples = run(dist)
    assert log_probs.shape == (2,) and samples.shape == (4, 3)
    # d/dmu log N(x; mu, 1) = x - mu; d/dlog_sigma = (x - mu)^2 - 1.
    assert_trees_allclose(grads, multi_normal(jnp.ones(3), jnp.zeros(3)))
    # Samples are differentiable in the parameters (reparameterised).
    d_loc = jax.jacfwd(
        lambda m: multi_normal(m, jnp.zeros(3)).sample((), jr.key(0, impl="unsafe_rbg"))
    )(jnp.zeros(3))
    assert_trees_allclose(d_loc, jnp.eye(3))


def test_integer_parameters_become_float():
    dist = multi_normal(np.asarray([1, 2]), 0)
    assert dist.loc.dtype == jnp.float32 and dist.log_scale.dtype == jnp.float32


@ft.cache
def _weak_derivatives():
    """Every (parameter, coupling) decomposition, with 20000 draws, in one compilation."""
    dist = multi_normal(jnp.asarray([0.5, -1.0]), jnp.asarray([0.0, -0.7]))

    @jax.jit
    def run(dist, key):
        return {
            (parameter, coupling): dist.weak_derivative(
                parameter, (20000,), key, coupling
            )
            for parameter in ("loc", "scale")
            for coupling in (True, False)
        }

    return dist, run(dist, jr.key(0, impl="unsafe_rbg"))


@pytest.mark.parametrize("parameter", ["loc", "scale"])
@pytest.mark.parametrize("coupling", [True, False])
def test_weak_derivative(parameter, coupling):
    r"""The decomposition d/dtheta E f = (E+ f - E- f) / c, checked on f(x) = x_d^2
    (d/dmu: 2 mu, d/dsigma: 2 sigma), within 5 standard errors."""
    dist, decompositions = _weak_derivatives()
    constant, positive, negative = decompositions[parameter, coupling]
    assert constant.shape == (2,) and positive.shape == negative.shape == (20000, 2)
    per_draw = np.asarray((positive**2 - negative**2) / constant[None])
    expected = 2 * np.asarray(dist.mean if parameter == "loc" else dist.scale)
    se = per_draw.std(0) / np.sqrt(per_draw.shape[0])
    assert np.all(np.abs(per_draw.mean(0) - expected) < 5 * se)


def test_errors():
    with pytest.raises(
        ValueError, match=r"shapes that broadcast together; got loc\.shape"
    ):
        multi_normal(jnp.zeros(3), jnp.zeros(4))
    dist = multi_normal(jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(
        ValueError, match=r"end with the event shape \(3,\); got x\.shape"
    ):
        dist.log_prob(jnp.zeros(4))
    with pytest.raises(TypeCheckError, match="parameter 'loc'"):
        multi_normal("zero", 0.0)
    with pytest.raises(TypeCheckError, match="parameter 'parameter'"):
        dist.weak_derivative("log_scale", (2,), jr.key(0), True)

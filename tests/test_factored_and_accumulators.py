"""Adafactor and its blocks, Adagrad, SM3, Adadelta, Adan and NovoGrad: range checks and
what the generic tests over the registry do not cover (factoring by shape, clipping,
step offsets, 0-d leaves, finite derivatives at zero)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt
from eqopt._numerics import div_sqrt

from .helpers import assert_trees_allclose, random_tree


# (factory, kwargs, message fragment): every range check, named argument and value.
OUT_OF_RANGE = [
    (
        eqopt.scale_by_factored_rms,
        dict(epsilon=-1.0),
        r"`scale_by_factored_rms\(epsilon=...\)` must be in \[0, inf\); got "
        r"epsilon=-1.0",
    ),
    (
        eqopt.clip_by_block_rms,
        dict(threshold=0.0),
        r"`clip_by_block_rms\(threshold=...\)` must be in \(0, inf\); got threshold=0.0",
    ),
    (
        eqopt.scale_by_param_block_rms,
        dict(min_scale=-1e-3),
        r"`scale_by_param_block_rms\(min_scale=...\)`.*min_scale=-0.001",
    ),
    (
        eqopt.ema,
        dict(decay=1.5),
        r"`ema\(decay=...\)` must be in \[0, 1\]; got decay=1.5",
    ),
    (
        eqopt.scale_by_rss,
        dict(initial_accumulator_value=-0.1),
        r"`scale_by_rss\(initial_accumulator_value=...\)`.*=-0.1",
    ),
    (eqopt.scale_by_rss, dict(eps=-1.0), r"`scale_by_rss\(eps=...\)`.*eps=-1.0"),
    (eqopt.scale_by_sm3, dict(b1=1.5), r"`scale_by_sm3\(b1=...\)`.*\[0, 1\].*b1=1.5"),
    (eqopt.scale_by_sm3, dict(b2=-0.5), r"`scale_by_sm3\(b2=...\)`.*b2=-0.5"),
    (eqopt.scale_by_sm3, dict(eps=-1.0), r"`scale_by_sm3\(eps=...\)`.*eps=-1.0"),
    (
        eqopt.scale_by_adadelta,
        dict(rho=2.0),
        r"`scale_by_adadelta\(rho=...\)`.*rho=2.0",
    ),
    (eqopt.scale_by_adadelta, dict(eps=-1.0), r"`scale_by_adadelta\(eps=...\)`"),
    (eqopt.scale_by_adan, dict(b1=1.0), r"`scale_by_adan\(b1=...\)`.*\[0, 1\).*b1=1.0"),
    (eqopt.scale_by_adan, dict(b2=-0.1), r"`scale_by_adan\(b2=...\)`.*b2=-0.1"),
    (eqopt.scale_by_adan, dict(b3=1.5), r"`scale_by_adan\(b3=...\)`.*b3=1.5"),
    (eqopt.scale_by_adan, dict(eps=-1.0), r"`scale_by_adan\(eps=...\)`"),
    (eqopt.scale_by_adan, dict(eps_root=-1.0), r"`scale_by_adan\(eps_root=...\)`"),
    (eqopt.scale_by_novograd, dict(b1=1.5), r"`scale_by_novograd\(b1=...\)`.*b1=1.5"),
    (eqopt.scale_by_novograd, dict(b2=-0.5), r"`scale_by_novograd\(b2=...\)`"),
    (eqopt.scale_by_novograd, dict(eps=-1.0), r"`scale_by_novograd\(eps=...\)`"),
    (eqopt.scale_by_novograd, dict(eps_root=-1.0), r"`scale_by_novograd\(eps_root="),
    (
        eqopt.adafactor,
        dict(clipping_threshold=0.0),
        r"`adafactor\(clipping_threshold=...\)` must be in \(0, inf\)",
    ),
    (eqopt.adafactor, dict(momentum=1.5), r"`adafactor\(momentum=...\)`.*momentum=1.5"),
    (eqopt.adafactor, dict(eps=-1.0), r"`adafactor\(eps=...\)`.*eps=-1.0"),
    (
        eqopt.adagrad,
        dict(learning_rate=0.1, initial_accumulator_value=-1.0),
        r"`adagrad\(initial_accumulator_value=...\)`",
    ),
    (eqopt.adagrad, dict(learning_rate=0.1, eps=-1.0), r"`adagrad\(eps=...\)`"),
    (eqopt.sm3, dict(learning_rate=0.1, momentum=2.0), r"`sm3\(momentum=...\)`.*=2.0"),
    (eqopt.adadelta, dict(rho=-0.1), r"`adadelta\(rho=...\)`.*rho=-0.1"),
    (eqopt.adadelta, dict(eps=-1.0), r"`adadelta\(eps=...\)`"),
    (eqopt.adan, dict(learning_rate=0.1, b1=1.0), r"`adan\(b1=...\)`.*b1=1.0"),
    (eqopt.adan, dict(learning_rate=0.1, b2=1.0), r"`adan\(b2=...\)`"),
    (eqopt.adan, dict(learning_rate=0.1, b3=-0.1), r"`adan\(b3=...\)`"),
    (eqopt.adan, dict(learning_rate=0.1, eps=-1.0), r"`adan\(eps=...\)`"),
    (eqopt.adan, dict(learning_rate=0.1, eps_root=-1.0), r"`adan\(eps_root=...\)`"),
    (eqopt.novograd, dict(learning_rate=0.1, b1=1.5), r"`novograd\(b1=...\)`"),
    (eqopt.novograd, dict(learning_rate=0.1, b2=1.5), r"`novograd\(b2=...\)`"),
    (eqopt.novograd, dict(learning_rate=0.1, eps=-1.0), r"`novograd\(eps=...\)`"),
    (eqopt.novograd, dict(learning_rate=0.1, eps_root=-1.0), r"`novograd\(eps_root="),
]


@pytest.mark.parametrize(
    "factory, kwargs, message",
    OUT_OF_RANGE,
    ids=[f"{f.__name__}-{list(k)[-1]}" for f, k, _ in OUT_OF_RANGE],
)
def test_out_of_range_hyperparameters_raise(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_traced_hyperparameters_are_not_checked():
    # Under `vmap`/`jit` values are tracers: no range check, no error.
    jax.vmap(lambda e: eqopt.scale_by_factored_rms(epsilon=e))(jnp.asarray([-1.0]))
    jax.vmap(lambda b: eqopt.adan(0.1, b1=b))(jnp.asarray([1.0]))


def _shapes(tree):
    return jax.tree.map(lambda x: x.shape, tree)


def test_factoring_follows_shapes_and_is_static():
    params = {"w": jnp.zeros((5, 3)), "t": jnp.zeros((2, 6, 4)), "b": jnp.zeros(7)}
    params["s"] = jnp.zeros(())
    state = eqopt.scale_by_factored_rms(min_dim_size_to_factor=3).init(params)
    # (5, 3): rows of length 3 (axis 0 averaged out), columns of length 5.
    assert _shapes(state.v_row) == {"w": (3,), "t": (2, 4), "b": (1,), "s": (1,)}
    assert _shapes(state.v_col) == {"w": (5,), "t": (2, 6), "b": (1,), "s": (1,)}
    assert _shapes(state.v) == {"w": (1,), "t": (1,), "b": (7,), "s": ()}
    # The smaller of the two largest dimensions decides: 3 < 4, (5, 3) is not factored.
    state = eqopt.scale_by_factored_rms(min_dim_size_to_factor=4).init(params)
    assert _shapes(state.v) == {"w": (5, 3), "t": (1,), "b": (7,), "s": ()}
    state = eqopt.scale_by_factored_rms(False, min_dim_size_to_factor=1).init(params)
    assert _shapes(state.v) == _shapes(params)
    # Structure, not hyperparameters: both fields are static.
    opt = eqopt.scale_by_factored_rms(min_dim_size_to_factor=3)
    assert all(not isinstance(leaf, bool | int) for leaf in jax.tree.leaves(opt)), (
        "factored / min_dim_size_to_factor must not be leaves"
    )


def test_factored_is_exact_for_a_rank_one_square():
    # For |g|^2 = a b^T the row and column means rebuild |g|^2 exactly, so the first
    # factored step equals the unfactored one (epsilon = 0): g / |g|.
    a, b = jnp.asarray([1.0, 2.0, 0.5, 3.0]), jnp.asarray([0.5, -1.0, 2.0])
    g = {"w": a[:, None] * b[None, :]}
    factored = eqopt.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=0.0)
    full = eqopt.scale_by_factored_rms(False, epsilon=0.0)
    u, _ = factored.update(g, factored.init(g))
    expected, _ = full.update(g, full.init(g))
    assert_trees_allclose(u, expected)
    assert_trees_allclose(u, jax.tree.map(jnp.sign, g))


def test_step_offset_shifts_the_decay_schedule():
    params = random_tree(jr.key(0))
    grads = random_tree(jr.key(1))
    shifted = eqopt.scale_by_factored_rms(step_offset=3, min_dim_size_to_factor=2)
    plain = eqopt.scale_by_factored_rms(min_dim_size_to_factor=2)
    state = plain.init(params)
    _, state = plain.update(grads, state)  # decay 0 at step 0: a state worth having
    u, new = plain.update(grads, state)
    at_offset = eqx.tree_at(lambda s: s.count, state, state.count + 3)
    u_shifted, new_shifted = shifted.update(grads, at_offset)
    assert_trees_allclose(u_shifted, u)
    assert_trees_allclose(new_shifted.v_row, new.v_row)
    # A decay_rate_fn of Optax's signature `(step, decay_rate)` is used as given.
    constant = eqopt.scale_by_factored_rms(
        False, 0.5, decay_rate_fn=lambda step, rate: rate
    )
    s = constant.init(params)
    _, s = constant.update(grads, s)
    assert_trees_allclose(s.v, jax.tree.map(lambda g: 0.5 * (g * g + 1e-30), grads))


def test_block_rms_clipping_bounds_each_leaf():
    grads = jax.tree.map(lambda x: 10 * x, random_tree(jr.key(2)))
    clip = eqopt.clip_by_block_rms(0.5)
    u, _ = clip.update(grads, clip.init(grads))
    for leaf in jax.tree.leaves(u):
        assert float(jnp.sqrt(jnp.mean(leaf**2))) <= 0.5 * (1 + 1e-6)
    # Blocks already within the threshold are untouched, and zero blocks stay finite.
    small = {"a": jnp.asarray([0.1, -0.2]), "z": jnp.zeros(3)}
    u, _ = clip.update(small, clip.init(small))
    assert_trees_allclose(u, small, rtol=0, atol=0)
    derivative = jax.grad(
        lambda c: jnp.sum(
            eqopt.clip_by_block_rms(c).update(small, eqopt.EmptyState())[0]["z"]
        )
    )(jnp.asarray(0.5))
    assert jnp.isfinite(derivative)


def test_adafactor_first_update_is_clipped_to_the_threshold():
    # The first factored-RMS step of an unfactored leaf is g / sqrt(g^2 + eps): unit
    # entries, an RMS of 1. A threshold of 0.5 halves it (without parameter scaling).
    params = random_tree(jr.key(3))
    grads = random_tree(jr.key(4))
    opt = eqopt.adafactor(
        1.0, clipping_threshold=0.5, multiply_by_parameter_scale=False, factored=False
    )
    u, _ = opt.update(grads, opt.init(params), params)
    for leaf, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads)):
        np.testing.assert_allclose(leaf, -0.5 * jnp.sign(g), rtol=1e-6)


def test_adafactor_hypergradients_are_finite_with_default_epsilon_and_zero_gradients():
    # Statistics of 1e-30 (all-zero gradients): the textbook derivative of g / sqrt(v)
    # in v overflows float32 and meets g = 0 as 0 * inf.
    params = random_tree(jr.key(5))
    zeros = jax.tree.map(jnp.zeros_like, params)

    def first_update(opt):
        u, state = opt.update(zeros, opt.init(params), params)
        u, _ = opt.update(params, state, params)
        return sum(jnp.sum(x) for x in jax.tree.leaves(u))

    for factored in (True, False):
        opt = eqopt.adafactor(0.1, min_dim_size_to_factor=2, factored=factored)
        grads = eqx.filter_grad(first_update)(opt)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grads))


def test_div_sqrt_derivative_is_zero_where_the_numerator_is():
    v = jnp.asarray([1e-30, 4.0])
    x = jnp.asarray([0.0, 2.0])
    dv = jax.grad(lambda v: jnp.sum(div_sqrt(x, v)))(v)
    np.testing.assert_allclose(dv, [0.0, -2.0 / (2 * 4.0**1.5)])
    dx = jax.grad(lambda x: jnp.sum(div_sqrt(x, v)))(x)
    np.testing.assert_allclose(dx, 1 / jnp.sqrt(v), rtol=1e-6)


def test_sm3_treats_a_scalar_as_a_one_element_vector():
    opt = eqopt.scale_by_sm3(0.5, 0.9)
    scalar, vector = {"s": jnp.asarray(0.7)}, {"s": jnp.asarray([0.7])}
    state_s, state_v = opt.init(scalar), opt.init(vector)
    assert _shapes(state_s.mu) == {"s": [()]}
    for g in (0.3, -1.2, 0.0):
        u_s, state_s = opt.update({"s": jnp.asarray(g)}, state_s)
        u_v, state_v = opt.update({"s": jnp.asarray([g])}, state_v)
        assert_trees_allclose(u_s["s"].reshape(1), u_v["s"])
    # A vector matches Optax (which fails on the scalar).
    ref = optax.scale_by_sm3(0.5, 0.9)
    ref_state, ours = ref.init(vector), opt.init(vector)
    for g in (0.3, -1.2, 0.0):
        with jax.numpy_dtype_promotion("standard"):
            expected, ref_state = ref.update({"s": jnp.asarray([g])}, ref_state)
        u, ours = opt.update({"s": jnp.asarray([g])}, ours)
        assert_trees_allclose(u, expected)


def test_sm3_accumulators_keep_per_axis_maxima():
    g = {"w": jnp.asarray([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]])}
    opt = eqopt.scale_by_sm3()
    _, state = opt.update(g, opt.init(g))
    rows, cols = state.mu["w"]
    np.testing.assert_allclose(rows, [4.0, 9.0])
    np.testing.assert_allclose(cols, [1.0, 9.0, 1.0])


@pytest.mark.parametrize(
    "opt",
    [
        eqopt.scale_by_param_block_rms(),
        eqopt.scale_by_novograd(),
        eqopt.novograd(0.1),
        eqopt.adafactor(0.1),
    ],
    ids=["scale_by_param_block_rms", "scale_by_novograd", "novograd", "adafactor"],
)
def test_transformations_reading_parameters_need_them(opt):
    params = random_tree(jr.key(6))
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))


def test_adadelta_without_learning_rate_matches_optax():
    # `learning_rate=None`: Adadelta's own (unnegated) step, as Optax gives it.
    params = random_tree(jr.key(7))
    ours, theirs = eqopt.adadelta(), optax.adadelta()
    state, ref_state = ours.init(params), theirs.init(params)
    for i in range(3):
        grads = random_tree(jr.key(10 + i))
        u, state = ours.update(grads, state, params)
        with jax.numpy_dtype_promotion("standard"):
            expected, ref_state = theirs.update(grads, ref_state, params)
        assert_trees_allclose(u, expected)


def test_novograd_keeps_one_second_moment_per_leaf():
    params = random_tree(jr.key(8))
    opt = eqopt.scale_by_novograd(b2=0.5)
    state = opt.init(params)
    assert all(x.shape == () for x in jax.tree.leaves(state.nu))
    grads = random_tree(jr.key(9))
    _, state = opt.update(grads, state, params)
    _, state = opt.update(grads, state, params)
    # nu_1 = |g|^2, nu_2 = 0.5 nu_1 + 0.5 |g|^2 = |g|^2.
    expected = jax.tree.map(lambda g: jnp.sum(g * g), grads)
    assert_trees_allclose(state.nu, expected)

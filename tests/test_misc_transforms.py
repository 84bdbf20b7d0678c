"""Clipping per block, unit and example; gradient noise; small transformations; the
optimistic and noisy optimisers: range checks, options and the functions the generic
registry tests cannot reach (they act on batched gradients or on arrays)."""

import io
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, random_tree, tree_isfinite


def _standard(fn, *args, **kwargs):
    """Call Optax (which relies on standard dtype promotion)."""
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args, **kwargs)


# Range checks.


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: eqopt.adaptive_grad_clip(-0.1), "clipping=-0.1"),
        (lambda: eqopt.adaptive_grad_clip(0.1, eps=-1e-3), "eps=-0.001"),
        (lambda: eqopt.clip_by_block_rms(0.0), "threshold=0"),
        (lambda: eqopt.clip_by_block_rms(-1.0), "threshold=-1"),
        (lambda: eqopt.add_noise(-0.01, 0.55, 0), "eta=-0.01"),
        (lambda: eqopt.add_noise(0.01, -0.5, 0), "gamma=-0.5"),
        (lambda: eqopt.noisy_sgd(0.1, -0.01, key=0), "eta=-0.01"),
        (lambda: eqopt.noisy_sgd(0.1, gamma=-1.0, key=0), "gamma=-1"),
        (lambda: eqopt.ema(1.5), "decay=1.5"),
        (lambda: eqopt.ema(-0.1), "decay=-0.1"),
        (lambda: eqopt.optimistic_adam_v2(0.1, b1=1.0), "b1=1"),
        (lambda: eqopt.optimistic_adam_v2(0.1, eps=-1.0), "eps=-1"),
    ],
)
def test_out_of_range_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_optimistic_adam_warns_checks_its_range_and_refuses_schedules():
    with pytest.warns(DeprecationWarning, match="optimistic_adam_v2"):
        eqopt.optimistic_adam(0.1)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="b2=1.5"):
        eqopt.optimistic_adam(0.1, b2=1.5)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="schedule"):
        eqopt.optimistic_adam(eqopt.constant_schedule(0.1))


def test_per_example_clipping_rejects_a_negative_norm_and_a_missing_batch_axis():
    grads = [jnp.ones((4, 3))]
    with pytest.raises(ValueError, match="l2_norm_clip=-1"):
        eqopt.per_example_global_norm_clip(grads, -1.0)
    with pytest.raises(ValueError, match="global_l2_norm_clip=-1"):
        eqopt.per_example_layer_norm_clip(grads, -1.0)
    for fn in (eqopt.per_example_global_norm_clip, eqopt.per_example_layer_norm_clip):
        with pytest.raises(ValueError, match="batch dimension"):
            fn([jnp.ones((4, 3)), jnp.ones((5,))], 1.0)
        with pytest.raises(ValueError, match="batch dimension"):
            fn([jnp.ones(())], 1.0)


def test_transformations_that_need_params_say_so():
    grads = {"w": jnp.ones(3)}
    for opt in (eqopt.adaptive_grad_clip(0.1), eqopt.keep_params_nonnegative()):
        with pytest.raises(ValueError, match="needs the parameters"):
            opt.update(grads, opt.init(grads))


# Per-example clipping (gradients with a leading batch axis).


def _per_example_grads(key, batch=6):
    k1, k2, k3 = jr.split(key, 3)
    return {
        "w": jr.normal(k1, (batch, 4, 3)),
        "b": jr.normal(k2, (batch, 3)) * 3,
        "c": jr.normal(k3, (batch,)),
    }


@pytest.mark.parametrize("clip", [0.0, 0.5, 2.0, 4.0, np.inf])
def test_per_example_global_norm_clip_matches_optax(getkey, clip):
    grads = _per_example_grads(getkey())
    grads["w"] = grads["w"].at[0].set(0.0).at[1].set(0.0)  # an all-zero example
    grads["b"] = grads["b"].at[0].set(0.0)
    grads["c"] = grads["c"].at[0].set(0.0)
    ours = eqopt.per_example_global_norm_clip(grads, clip)
    theirs = _standard(optax.per_example_global_norm_clip, grads, clip)
    assert_trees_allclose(ours, theirs)


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("clip", [0.0, 1.0, 3.0, np.inf])
def test_per_example_layer_norm_clip_matches_optax(getkey, uniform, clip):
    grads = _per_example_grads(getkey())
    ours = eqopt.per_example_layer_norm_clip(grads, clip, uniform)
    theirs = _standard(optax.per_example_layer_norm_clip, grads, clip, uniform)
    assert_trees_allclose(ours, theirs)


def test_per_example_clipping_keeps_dtype_and_has_finite_derivatives_at_zero():
    grads = {"w": jnp.zeros((3, 2)), "b": jnp.zeros((3,))}
    bf16 = jax.tree.map(lambda g: g.astype(jnp.bfloat16) + 1, grads)
    total, _ = eqopt.per_example_global_norm_clip(bf16, 1.0)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(total))

    def f(clip, grads):
        total, _ = eqopt.per_example_global_norm_clip(grads, clip)
        layered, _ = eqopt.per_example_layer_norm_clip(grads, clip)
        return sum(jnp.sum(x) for x in jax.tree.leaves((total, layered)))

    d_clip, d_grads = jax.grad(f, argnums=(0, 1))(1.0, grads)
    assert tree_isfinite((d_clip, d_grads))


# Unit-wise norms and adaptive gradient clipping.


@pytest.mark.parametrize(
    "shape", [(), (5,), (1, 5), (4, 3), (2, 3, 4), (2, 2, 3, 4), (2, 2, 2, 3, 4)]
)
def test_unitwise_norm_matches_optax(getkey, shape):
    x = jr.normal(getkey(), shape)
    assert_trees_allclose(
        eqopt.transforms.unitwise_norm(x), optax.transforms.unitwise_norm(x)
    )
    if len(shape) >= 2:
        assert_trees_allclose(
            eqopt.transforms.unitwise_norm(x, axis=-1),
            optax.transforms.unitwise_norm(x, axis=-1),
        )


def test_unitwise_norm_rejects_rank_six_and_has_a_finite_derivative_at_zero():
    with pytest.raises(ValueError, match="rank 1 to 5"):
        eqopt.transforms.unitwise_norm(jnp.ones((2,) * 6))
    eqopt.transforms.unitwise_norm(jnp.ones((2,) * 6), axis=(0, 1))  # fine with `axis`
    grad = jax.grad(lambda x: jnp.sum(eqopt.transforms.unitwise_norm(x)))(
        jnp.zeros((3, 2))
    )
    assert tree_isfinite(grad)


def test_unitwise_clip_matches_optax_and_checks_shapes(getkey):
    grad = jr.normal(getkey(), (4, 3))
    g_norm = eqopt.transforms.unitwise_norm(grad)
    max_norm = jnp.full_like(grad, 1.5)
    assert_trees_allclose(
        eqopt.transforms.unitwise_clip(g_norm, max_norm, grad),
        optax.transforms.unitwise_clip(g_norm, max_norm, grad),
    )
    with pytest.raises(ValueError, match="max_norm"):
        eqopt.transforms.unitwise_clip(g_norm, jnp.ones(3), grad)


@pytest.mark.parametrize("axis", [-1, (0, 1), None])
def test_adaptive_grad_clip_with_axis_matches_optax(getkey, axis):
    # No scalar leaf: an explicit axis does not apply to one (in Optax neither).
    params = {"w": jr.normal(getkey(), (4, 3)), "k": jr.normal(getkey(), (2, 3, 4))}
    grads = jax.tree.map(lambda p: 3 * jr.normal(getkey(), p.shape), params)
    grads["w"] = grads["w"].at[:, 0].set(0.0)
    ours = eqopt.adaptive_grad_clip(0.2, 0.1, axis)
    theirs = optax.adaptive_grad_clip(0.2, 0.1, axis)
    expected, _ = _standard(theirs.update, grads, theirs.init(params), params)
    assert_trees_allclose(ours.update(grads, ours.init(params), params)[0], expected)


# Gradient noise: the key as data.


def _noise(opt, grads, steps=3):
    state = opt.init(grads)
    out = []
    for _ in range(steps):
        updates, state = opt.update(grads, state)
        out.append(updates)
    return out, state


def test_add_noise_key_forms_give_optaxs_noise(getkey):
    grads = random_tree(getkey())
    expected, _ = _standard(_noise, optax.add_noise(0.1, 0.55, jr.key(7)), grads)
    for key in (7, jr.key(7), jr.key_data(jr.key(7))):
        ours, state = _noise(eqopt.add_noise(0.1, 0.55, key), grads)
        assert_trees_allclose(ours, expected)
    assert state.rng_key.dtype == jnp.uint32
    assert int(state.count) == 3
    # The key advances: no two steps draw the same noise.
    assert not np.allclose(ours[0]["w"], ours[1]["w"])


def test_add_noise_seed_is_deprecated_and_no_key_warns(getkey):
    grads = random_tree(getkey())
    with pytest.warns(DeprecationWarning, match="seed"):
        seeded = eqopt.add_noise(0.1, 0.55, seed=4)
    assert_trees_allclose(
        _noise(seeded, grads)[0], _noise(eqopt.add_noise(0.1, 0.55, 4), grads)[0]
    )
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="only one"):
        eqopt.add_noise(0.1, 0.55, 4, seed=4)
    with pytest.warns(UserWarning, match="no `key`"):
        unkeyed = eqopt.noisy_sgd(0.1)
    assert_trees_allclose(
        _noise(unkeyed, grads)[0], _noise(eqopt.noisy_sgd(0.1, key=0), grads)[0]
    )
    with pytest.raises(ValueError, match="default PRNG"):
        eqopt.add_noise(0.1, 0.55, jr.key(0, impl="rbg"))


def test_noisy_sgd_vmapped_over_eta_matches_separate_runs(getkey):
    params = random_tree(getkey())
    grads = random_tree(getkey())
    etas = jnp.asarray([0.0, 0.01, 0.1])

    def run(opt):
        return _noise(opt, grads)[0]

    swept = jax.vmap(lambda eta: run(eqopt.noisy_sgd(0.1, eta, key=3)))(etas)
    for i, eta in enumerate(etas):
        separate = run(eqopt.noisy_sgd(0.1, eta, key=3))
        assert_trees_allclose(jax.tree.map(lambda x: x[i], swept), separate)
        reference = _standard(_noise, optax.noisy_sgd(0.1, float(eta), key=3), grads)[0]
        assert_trees_allclose(separate, reference)
    del params


def test_noisy_state_serialises_and_resumes(getkey):
    grads = random_tree(getkey())
    opt = eqopt.noisy_sgd(0.1, key=9)
    _, state = _noise(opt, grads, 2)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, state)
    buffer.seek(0)
    restored = eqx.tree_deserialise_leaves(buffer, opt.init(grads))
    assert_trees_allclose(opt.update(grads, restored), opt.update(grads, state))


# Small transformations.


def test_centralize_matches_optaxs_example():
    grad = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    opt = eqopt.centralize()
    updates, state = opt.update(grad, opt.init(grad))
    np.testing.assert_array_equal(updates, [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    assert state == eqopt.EmptyState()


def test_zero_nans_zeroes_and_reports_nans_like_optax():
    grads = {"a": jnp.array([1.0, jnp.nan, 3.0]), "b": jnp.ones((2, 2)), "c": None}
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2)), "c": None}
    ours, theirs = eqopt.zero_nans(), optax.zero_nans()
    updates, state = ours.update(grads, ours.init(params))
    expected, expected_state = theirs.update(grads, theirs.init(params))
    assert_trees_allclose(updates, expected)
    assert_trees_allclose(state.found_nan, expected_state.found_nan)
    assert bool(state.found_nan["a"]) and not bool(state.found_nan["b"])


def test_keep_params_nonnegative_stops_parameters_at_zero():
    params = jnp.array([1.0, 0.5, 0.0, 2.0])
    updates = jnp.array([-2.0, -0.25, -1.0, 1.0])
    opt = eqopt.keep_params_nonnegative()
    new, _ = opt.update(updates, opt.init(params), params)
    np.testing.assert_array_equal(new, [-1.0, -0.25, 0.0, 1.0])
    assert bool(jnp.all(eqopt.apply_updates(params, new) >= 0))


def test_scale_gradient_matches_optax():
    inputs = {"x": jnp.array([1.0, -2.0]), "y": jnp.array(3.0)}

    def loss(scale_gradient, inputs, scale):
        scaled = scale_gradient(inputs, scale)
        return jnp.sum(scaled["x"] ** 2) + scaled["y"] ** 3

    for scale in (0.0, 1.0, 0.5, -2.0):
        assert_trees_allclose(eqopt.scale_gradient(inputs, scale), inputs)
        ours = jax.grad(loss, argnums=1)(eqopt.scale_gradient, inputs, scale)
        theirs = _standard(
            jax.grad(loss, argnums=1), optax.scale_gradient, inputs, scale
        )
        assert_trees_allclose(ours, theirs)
    # A traced scale (Optax needs a concrete one), and no gradient to the scale.
    traced = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)
    d_inputs, d_scale = traced(eqopt.scale_gradient, inputs, jnp.asarray(0.5))
    assert_trees_allclose(
        d_inputs, jax.grad(loss, 1)(eqopt.scale_gradient, inputs, 0.5)
    )
    assert float(d_scale) == 0.0


def test_ema_without_debias_and_with_bfloat16_accumulator():
    grads = {"w": jnp.array([1.0, 2.0])}
    ours = eqopt.ema(0.9, debias=False, accumulator_dtype=jnp.bfloat16)
    theirs = optax.ema(0.9, debias=False, accumulator_dtype=jnp.bfloat16)
    state, ref_state = ours.init(grads), theirs.init(grads)
    for _ in range(3):
        updates, state = ours.update(grads, state)
        expected, ref_state = _standard(theirs.update, grads, ref_state)
    assert state.ema["w"].dtype == jnp.bfloat16
    assert_trees_allclose(updates, expected, rtol=1e-2, check_dtypes=False)


def test_optimistic_gradient_first_step_uses_the_current_gradient():
    opt = eqopt.scale_by_optimistic_gradient(alpha=2.0, beta=0.5)
    g1, g2 = jnp.array([1.0, -1.0]), jnp.array([3.0, 0.0])
    state = opt.init(g1)
    u1, state = opt.update(g1, state)
    u2, state = opt.update(g2, state)
    np.testing.assert_allclose(u1, 2.0 * g1)  # (alpha + beta) g1 - beta g1
    np.testing.assert_allclose(u2, 2.5 * g2 - 0.5 * g1)
    assert not bool(state.is_initial_step)


def test_no_warning_from_the_non_deprecated_factories():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eqopt.add_noise(0.1, 0.5, 1)
        eqopt.noisy_sgd(0.1, key=1)
        eqopt.optimistic_adam_v2(0.1)

"""Sign-based and trust-ratio transformations: range checks, options and edge cases
that the generic registry tests do not reach."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, tree_isfinite


# (factory, kwargs, message fragment): every range check, named argument and value.
OUT_OF_RANGE = [
    (
        eqopt.scale_by_lion,
        dict(b1=1.5),
        r"`scale_by_lion\(b1=...\)` must be in \[0, 1\]",
    ),
    (eqopt.scale_by_lion, dict(b2=1.0), r"`scale_by_lion\(b2=...\)`.*got b2=1.0"),
    (eqopt.scale_by_lion, dict(smooth_beta=0.0), r"smooth_beta=0.0"),
    (eqopt.scale_by_lion, dict(mode="soft"), r"`scale_by_lion\(mode=...\)`.*'soft'"),
    (eqopt.lion, dict(learning_rate=1e-3, b1=-0.1), r"`lion\(b1=...\)`.*b1=-0.1"),
    (eqopt.lion, dict(learning_rate=1e-3, b2=1.2), r"`lion\(b2=...\)`.*b2=1.2"),
    (eqopt.signum, dict(learning_rate=1e-3, beta=1.0), r"`signum\(beta=...\)`"),
    (
        eqopt.scale_by_rprop,
        dict(learning_rate=-0.1),
        r"`scale_by_rprop\(learning_rate=...\)`.*learning_rate=-0.1",
    ),
    (eqopt.scale_by_rprop, dict(learning_rate=0.1, eta_minus=1.5), r"eta_minus=1.5"),
    (
        eqopt.scale_by_rprop,
        dict(learning_rate=0.1, eta_plus=0.9),
        r"`scale_by_rprop\(eta_plus=...\)` must be in \[1, inf\); got eta_plus=0.9",
    ),
    (eqopt.scale_by_rprop, dict(learning_rate=0.1, min_step_size=-1.0), r"min_step"),
    (
        eqopt.rprop,
        dict(learning_rate=0.1, min_step_size=1.0, max_step_size=0.5),
        r"`rprop\(max_step_size=...\)` must be in \[1, inf\); got max_step_size=0.5",
    ),
    (eqopt.scale_by_trust_ratio, dict(min_norm=-1.0), r"`scale_by_trust_ratio\(min"),
    (eqopt.scale_by_trust_ratio, dict(eps=-1e-3), r"eps=-0.001"),
    (
        eqopt.scale_by_param_block_norm,
        dict(min_scale=-1.0),
        r"`scale_by_param_block_norm\(min_scale=...\)`",
    ),
    (
        eqopt.scale_by_param_block_rms,
        dict(min_scale=-1.0),
        r"`scale_by_param_block_rms\(min_scale=...\)`",
    ),
    (eqopt.normalize_by_update_norm, dict(eps=-1.0), r"`normalize_by_update_norm\("),
    (
        eqopt.scale_by_distance_over_gradients,
        dict(reps_rel=0.0),
        r"`scale_by_distance_over_gradients\(reps_rel=...\)` must be in \(0, inf\)",
    ),
    (eqopt.scale_by_distance_over_gradients, dict(eps=-1.0), r"eps=-1.0"),
    (eqopt.lamb, dict(learning_rate=1e-3, b2=1.0), r"`lamb\(b2=...\)`"),
    (eqopt.lamb, dict(learning_rate=1e-3, eps=-1.0), r"`lamb\(eps=...\)`"),
    (eqopt.lars, dict(learning_rate=1e-3, eps=-1.0), r"`lars\(eps=...\)`"),
    (eqopt.lars, dict(learning_rate=1e-3, momentum=-0.9), r"`lars\(momentum=...\)`"),
    (eqopt.fromage, dict(learning_rate=1e-3, min_norm=-1.0), r"`fromage\(min_norm"),
]


@pytest.mark.parametrize(
    "factory, kwargs, match",
    OUT_OF_RANGE,
    ids=[
        f"{f.__name__}-{'-'.join(sorted(k.keys() - {'learning_rate'}) or ['lr'])}"
        for f, k, _ in OUT_OF_RANGE
    ],
)
def test_out_of_range_hyperparameters_raise_naming_argument_and_value(
    factory, kwargs, match
):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_range_checks_skip_traced_values():
    # Inside `vmap` values are not known: construction must not fail.
    steps = jnp.asarray([0.1, 0.2])
    opts = jax.vmap(lambda lr: eqopt.rprop(lr, min_step_size=lr))(steps)
    assert opts.min_step_size.shape == (2,)


@pytest.mark.parametrize(
    "transform",
    [
        eqopt.scale_by_trust_ratio(),
        eqopt.scale_by_param_block_norm(),
        eqopt.scale_by_param_block_rms(),
        eqopt.scale_by_distance_over_gradients(),
    ],
    ids=lambda t: type(t).__name__,
)
def test_transformations_needing_params_say_so(transform):
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="needs the parameters"):
        transform.update(params, transform.init(params))


def test_trust_ratio_is_one_where_a_norm_is_zero():
    """Optax's rule: zero parameters or zero updates leave the update unchanged (and
    the hypergradient through the zero norm is finite)."""
    params = {"zero": jnp.zeros(3), "w": jnp.asarray([3.0, 4.0])}
    updates = {"zero": jnp.asarray([1.0, 2.0, 2.0]), "w": jnp.zeros(2)}
    tx = eqopt.scale_by_trust_ratio(trust_coefficient=0.5)
    out, _ = tx.update(updates, tx.init(params), params)
    assert_trees_allclose(out, updates)

    def total(coefficient):
        t = eqopt.scale_by_trust_ratio(trust_coefficient=coefficient)
        u, _ = t.update(updates, t.init(params), params)
        return sum(jnp.sum(x) for x in jax.tree.leaves(u))

    assert tree_isfinite(jax.grad(total)(0.5))


def test_lion_modes_follow_optax_and_mu_dtype_is_kept():
    params = {"w": jnp.asarray([0.5, -2.0, 0.0, 1e-3])}
    grads = {"w": jnp.asarray([3.0, -0.2, 0.0, 0.5])}
    for mode in ("hard", "smooth", "refined"):
        ours = eqopt.scale_by_lion(mode=mode, smooth_beta=3.0)
        theirs = optax.scale_by_lion(mode=mode, smooth_beta=3.0)
        state, ref = ours.init(params), theirs.init(params)
        for _ in range(3):
            u, state = ours.update(grads, state, params)
            e, ref = theirs.update(grads, ref, params)
            assert_trees_allclose(u, e)
        assert int(state.count) == 3 == int(ref.count)
        assert_trees_allclose(state.mu, ref.mu)
    # A bfloat16 momentum is stored rounded, but computed in float32: its value is the
    # float32 one rounded (Optax multiplies `b2` into it in bfloat16, where 0.99 is
    # 0.98828125).
    low = eqopt.scale_by_lion(mu_dtype=jnp.bfloat16)
    state32 = eqopt.scale_by_lion().init(params)
    state = low.init(params)
    for _ in range(3):
        _, state = low.update(grads, state, params)
        _, state32 = eqopt.scale_by_lion().update(grads, state32, params)
        state32 = eqx.tree_at(
            lambda s: s.mu, state32, jax.tree.map(_round_to_bfloat16, state32.mu)
        )
    assert state.mu["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(state.mu["w"].astype(jnp.float32), state32.mu["w"])


def _round_to_bfloat16(x):
    return x.astype(jnp.bfloat16).astype(jnp.float32)


def test_rprop_first_update_is_zero_and_steps_grow_then_shrink():
    """Optax 0.2.8's Rprop emits the previous step: zero at first, then `eta_plus`
    times the step while the sign stays, and nothing when it flips."""
    params = {"w": jnp.zeros(2)}
    tx = eqopt.scale_by_rprop(0.1)
    state = tx.init(params)
    u, state = tx.update({"w": jnp.asarray([1.0, -1.0])}, state)
    np.testing.assert_array_equal(u["w"], [0.0, 0.0])
    np.testing.assert_allclose(state.step_sizes["w"], [0.1, 0.1])
    u, state = tx.update({"w": jnp.asarray([1.0, 1.0])}, state)
    np.testing.assert_allclose(u["w"], [0.1, 0.0])  # the second element flipped
    np.testing.assert_allclose(state.step_sizes["w"], [0.12, 0.05])


def test_dog_init_from_abstract_shapes_and_update_shapes():
    params = {"w": jnp.ones((2, 3)), "s": jnp.asarray(2.0), "i": jnp.arange(3)}
    tx = eqopt.scale_by_distance_over_gradients(param_dtype=jnp.bfloat16)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    shapes = eqx.filter_eval_shape(tx.init, abstract)
    assert shapes.max_dist["w"].shape == ()
    assert shapes.grad_sum_of_squares["s"].shape == ()  # Optax: (1,)
    assert shapes.init_params["w"].dtype == jnp.bfloat16
    assert shapes.max_dist["i"] is None  # integer leaves get no state
    state = tx.init(params)
    np.testing.assert_allclose(state.max_dist["s"], 1e-6 * 3.0, rtol=1e-6)
    grads = {"w": jnp.ones((2, 3)), "s": jnp.asarray(1.0), "i": None}
    updates, state = tx.update(grads, state, params)
    assert updates["s"].shape == () and updates["i"] is None


def test_dog_hypergradients_finite_at_the_first_step():
    """At the first step the distance from the initial parameters is zero: Optax's
    square root gives NaN hypergradients there, eqopt's does not."""
    params = {"w": jnp.asarray([1.0, 2.0])}
    grads = {"w": jnp.asarray([0.5, 0.0])}

    def first_update(reps_rel):
        tx = eqopt.scale_by_distance_over_gradients(reps_rel)
        u, _ = tx.update(grads, tx.init(params), params)
        return jnp.sum(u["w"])

    gradient = jax.grad(first_update)(1e-3)
    assert jnp.isfinite(gradient) and gradient != 0


def test_normalize_by_update_norm_of_zero_updates_is_zero_with_finite_hypergradients():
    zeros = {"a": jnp.zeros(3), "b": jnp.zeros(())}

    def total(scale):
        tx = eqopt.normalize_by_update_norm(scale)
        u, _ = tx.update(zeros, tx.init(zeros))
        return sum(jnp.sum(x) for x in jax.tree.leaves(u))

    assert total(1.0) == 0
    assert jnp.isfinite(jax.grad(total)(1.0))


def test_lars_masks_choose_where_trust_ratio_and_weight_decay_apply():
    params = {"w": jnp.asarray([[3.0, 4.0]]), "b": jnp.asarray([1.0])}
    grads = {"w": jnp.asarray([[1.0, 0.0]]), "b": jnp.asarray([2.0])}
    masks = {"w": True, "b": False}
    opt = eqopt.lars(1.0, 0.5, masks, 1.0, 0.0, masks, 0.0)
    updates, _ = opt.update(grads, opt.init(params), params)
    # `w`: decayed (g + 0.5 w) and rescaled by |w| / |g + 0.5 w|; `b`: plain `-g`.
    decayed = np.asarray([[2.5, 2.0]])
    expected_w = -decayed * 5.0 / np.linalg.norm(decayed)
    np.testing.assert_allclose(updates["w"], expected_w, rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-2.0])


def test_fromage_factors_match_optax_and_shrink_parameters():
    params = {"w": jnp.asarray([3.0, 4.0])}
    grads = {"w": jnp.asarray([0.0, 1.0])}
    lr = 0.5
    ours, theirs = eqopt.fromage(lr), optax.fromage(lr)
    u, _ = ours.update(grads, ours.init(params), params)
    e, _ = theirs.update(grads, theirs.init(params), params)
    assert_trees_allclose(u, e)
    # theta + u = (theta - lr * |theta| / |g| * g) / sqrt(1 + lr^2)
    expected = (np.asarray([3.0, 4.0]) - lr * 5.0 * np.asarray([0.0, 1.0])) / np.sqrt(
        1 + lr**2
    )
    np.testing.assert_allclose(params["w"] + u["w"], expected, rtol=1e-6)


def test_signum_equals_sign_of_the_moving_average():
    params = {"w": jnp.zeros(3)}
    opt = eqopt.signum(0.1, beta=0.5)
    state = opt.init(params)
    _, state = opt.update({"w": jnp.asarray([1.0, -1.0, 0.0])}, state)
    updates, state = opt.update({"w": jnp.asarray([-3.0, -1.0, 0.0])}, state)
    # Moving average: 0.5 * [-3, -1, 0] + 0.25 * [1, -1, 0] = [-1.25, -0.75, 0].
    np.testing.assert_allclose(updates["w"], [0.1, 0.1, 0.0])

"""ACProp, MADGRAD, GaLore and DP-SGD (`eqopt.contrib`): Optax parity on an Equinox
MLP, GaLore's projections and dimension numbers, DP-SGD's noise with Optax's key, the
promises Optax does not keep (abstract `init`, hyperparameters as leaves) and errors."""

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
from eqopt import contrib

from .helpers import assert_trees_allclose, tree_isfinite


def _mlp_problem():
    model = eqx.nn.MLP(3, 2, 16, 2, key=jr.key(0))
    x = jr.normal(jr.key(1), (32, 3))
    y = jnp.stack([jnp.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)

    def loss(m):
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    return model, loss


def _run_both(ours, theirs, steps=10):
    """Updates of eqopt on the model (no filtering), and of Optax on the list of its
    arrays (Optax's GaLore cannot take `None` leaves), both along Optax's trajectory."""
    model, loss = _mlp_problem()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(params)
    state, ref_state = ours.init(model), theirs.init(leaves)

    @jax.jit
    def step(leaves, state, ref_state):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        grads = eqx.filter_grad(loss)(model)
        updates, state = ours.update(grads, state, model)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            expected, ref_state = theirs.update(
                jax.tree.leaves(grads), ref_state, leaves
            )
        leaves = optax.apply_updates(leaves, expected)
        return leaves, state, ref_state, jax.tree.leaves(updates), expected

    start = loss(model)
    for _ in range(steps):
        leaves, state, ref_state, updates, expected = step(leaves, state, ref_state)
        assert_trees_allclose(updates, expected, rtol=2e-5, atol=1e-6)
    assert loss(eqx.combine(jax.tree.unflatten(treedef, leaves), static)) < start


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            # ACProp divides by the previous step's spread: a dead ReLU unit (zero
            # gradients) followed by a live one needs a larger `eps` than 1e-16.
            lambda: contrib.acprop(1e-2, eps=1e-4, weight_decay=1e-2),
            lambda: optax.contrib.acprop(1e-2, eps=1e-4, weight_decay=1e-2),
        ),
        (
            lambda: contrib.madgrad(1e-2, weight_decay=1e-3),
            lambda: optax.contrib.madgrad(1e-2, weight_decay=1e-3),
        ),
        (
            lambda: contrib.galore(1e-2, rank=4, update_proj_gap=3, weight_decay=1e-2),
            lambda: optax.contrib.galore(
                1e-2, rank=4, update_proj_gap=3, weight_decay=1e-2
            ),
        ),
    ],
    ids=["acprop", "madgrad", "galore"],
)
def test_parity_with_optax_on_an_equinox_mlp(ours, theirs):
    _run_both(ours(), theirs())


# GaLore.


def _shapes(tree):
    return [jnp.shape(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
    "shape, rank, left", [((32, 64), 8, False), ((64, 32), 8, True), ((8, 8), 3, True)]
)
def test_galore_projects_the_smaller_side_with_optax_shapes(shape, rank, left):
    params = {"w": jnp.zeros(shape)}
    ours = contrib.galore(0.1, rank=rank).init(params)[0]
    theirs = optax.contrib.galore(0.1, rank=rank).init(params)[0]
    assert isinstance(ours, contrib.GaLoreState)
    m, n = shape
    assert ours.projector["w"].shape == ((m, rank) if left else (n, rank))
    assert ours.base_optimizer_state.mu["w"].shape == ((rank, n) if left else (m, rank))
    assert _shapes(ours) == _shapes(theirs)


def test_galore_rank_is_clipped_and_vectors_are_not_projected():
    params = {"w": jnp.zeros((10, 3)), "b": jnp.zeros(3)}
    state = contrib.galore(0.1, rank=999).init(params)[0]
    assert state.projector["w"].shape == (10, 3)
    assert state.projector["b"].shape == (0, 0)
    assert state.base_optimizer_state.mu["b"].shape == (3,)


def _attention_problem():
    keys = jr.split(jr.key(3), 4)
    params = {
        "attn": jr.normal(keys[0], (12, 4, 5)),  # (embed, heads, head_dim)
        "out": jr.normal(keys[1], (4, 5, 12)),  # (heads, head_dim, embed)
        "bias": jr.normal(keys[2], (12,)),
    }
    targets = jax.tree.map(lambda p: jnp.cos(p), params)

    def loss(p):
        return sum(
            jnp.sum((a - t) ** 2 + jnp.sin(a) * a)
            for a, t in zip(jax.tree.leaves(p), jax.tree.leaves(targets))
        )

    return params, loss


@pytest.mark.parametrize("as_function", [False, True])
def test_galore_dimension_numbers_match_optax(as_function):
    params, loss = _attention_problem()

    def dims(module):
        return {
            "attn": module.GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2)),
            "out": module.GaLoreDimensionNumbers(reduction_axis=[0, 1], output_axis=-1),
            "bias": None,
        }

    ours_dims, their_dims = dims(contrib), dims(optax.contrib)
    if as_function:
        ours_dims = lambda p, d=ours_dims: d  # noqa: E731
        their_dims = lambda p, d=their_dims: d  # noqa: E731
    ours = contrib.galore(
        0.05, rank=3, update_proj_gap=2, weight_dimension_numbers=ours_dims
    )
    theirs = optax.contrib.galore(
        0.05, rank=3, update_proj_gap=2, weight_dimension_numbers=their_dims
    )
    state, ref_state = ours.init(params), theirs.init(params)
    # (12, 20): the 20 output columns are projected to rank 3 from the right; the
    # `out` weight is a (20, 12) matrix projected from the left.
    assert state[0].projector["attn"].shape == (20, 3)
    assert state[0].projector["out"].shape == (20, 3)
    assert _shapes(state) == _shapes(ref_state)
    for _ in range(5):
        grads = jax.grad(loss)(params)
        updates, state = ours.update(grads, state, params)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            expected, ref_state = theirs.update(grads, ref_state, params)
        assert_trees_allclose(updates, expected, rtol=2e-5, atol=1e-6)
        assert_trees_allclose(state[0].projector, ref_state[0].projector, rtol=1e-5)
        params = optax.apply_updates(params, expected)


def test_galore_projector_is_orthonormal_and_refreshed_every_gap():
    params = {"w": jr.normal(jr.key(0), (16, 32))}
    opt = contrib.scale_by_galore(rank=4, update_proj_gap=3)
    state = opt.init(params)
    projectors = []
    for i in range(7):
        grads = {"w": jr.normal(jr.key(10 + i), (16, 32))}
        _, state = opt.update(grads, state)
        projectors.append(state.projector["w"])
    p = projectors[0]
    np.testing.assert_allclose(p.T @ p, jnp.eye(4), atol=1e-5)
    for i in range(1, 7):
        same = bool(jnp.all(projectors[i] == projectors[i - 1]))
        assert same == (i % 3 != 0), i


def test_galore_under_jit_vmap_over_scale_and_learning_rate():
    params, loss = _attention_problem()
    params = {"w": params["attn"].reshape(12, 20), "b": params["bias"]}

    def run(opt):
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            u, s = opt.update(
                jax.grad(
                    lambda q: jnp.sum(jnp.sin(q["w"]) * q["w"]) + jnp.sum(q["b"] ** 2)
                )(p),
                s,
                p,
            )
            return (eqopt.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, state), length=4)[0][0]

    make = lambda lr, scale: contrib.galore(lr, rank=2, scale=scale)  # noqa: E731
    lrs, scales = jnp.array([0.01, 0.02]), jnp.array([1.0, 0.5])
    swept = eqx.filter_jit(jax.vmap(run))(jax.vmap(make)(lrs, scales))
    for i in range(2):
        assert_trees_allclose(
            jax.tree.map(lambda x: x[i], swept),
            eqx.filter_jit(run)(make(lrs[i], scales[i])),
            rtol=1e-5,
        )


def test_galore_accepts_an_eqopt_base_optimizer_with_leaves():
    params, loss = _attention_problem()
    params = {"w": params["attn"].reshape(12, 20)}
    opt = contrib.galore(1.0, rank=2, base_optimizer=eqopt.adam(0.1, b1=0.8))
    assert opt.base_optimizer.b1 == jnp.asarray(0.8, jnp.float32)
    theirs = optax.contrib.galore(1.0, rank=2, base_optimizer=optax.adam(0.1, b1=0.8))
    state, ref = opt.init(params), theirs.init(params)
    for _ in range(3):
        grads = {"w": jnp.cos(params["w"]) * 3}
        u, state = opt.update(grads, state, params)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            e, ref = theirs.update(grads, ref, params)
        assert_trees_allclose(u, e, rtol=2e-5, atol=1e-7)
        params = optax.apply_updates(params, e)
    # The default base optimiser is `scale_by_adam()`, a leaf-holding Module too.
    assert isinstance(contrib.galore(0.1).base_optimizer, eqopt.ScaleByAdam)


# MADGRAD.


def test_madgrad_init_reads_no_values_and_stores_x0_at_the_first_update():
    params = {"w": jr.normal(jr.key(0), (3, 4)), "b": jnp.ones(4)}
    opt = contrib.scale_by_madgrad(0.1)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    shapes = jax.eval_shape(opt.init, abstract)
    assert shapes.x0["w"].shape == (3, 4)
    state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = opt.update(grads, state, params)
    assert_trees_allclose(state.x0, params, rtol=0, atol=0)
    moved = jax.tree.map(lambda p: p + 1, params)
    _, state = opt.update(grads, state, moved)
    assert_trees_allclose(state.x0, params, rtol=0, atol=0)  # kept after the first


def test_madgrad_hypergradient_finite_where_gradients_were_always_zero():
    params = {"w": jnp.array([1.0, 2.0, 0.5])}

    def meta_loss(opt):
        p, state = params, opt.init(params)
        for _ in range(3):
            grads = {"w": p["w"] * jnp.array([1.0, 0.0, 1.0])}  # the middle is zero
            u, state = opt.update(grads, state, p)
            p = eqopt.apply_updates(p, u)
        return jnp.sum(p["w"] ** 2)

    hypergrads = eqx.filter_grad(meta_loss)(contrib.madgrad(0.1))
    assert tree_isfinite(hypergrads)
    assert hypergrads.learning_rate != 0


# DP-SGD.


def _per_example_problem():
    keys = jr.split(jr.key(7), 4)
    params = {"w": jr.normal(keys[0], (5, 3)), "b": jnp.zeros(3)}
    x = jr.normal(keys[1], (16, 5))
    y = jr.normal(keys[2], (16, 3))

    def loss(p, x, y):
        return jnp.sum((x @ p["w"] + p["b"] - y) ** 2)

    per_example = jax.vmap(jax.grad(loss), (None, 0, 0))
    return params, lambda p: per_example(p, x, y), loss


@pytest.mark.parametrize(
    "momentum, nesterov", [(None, False), (0.9, False), (0.9, True)]
)
def test_dpsgd_numbers_equal_optax_with_the_same_seed(momentum, nesterov):
    params, grads_of, _ = _per_example_problem()
    ours = contrib.dpsgd(0.05, 1.0, 0.7, 42, momentum, nesterov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Optax passes `seed=`
        theirs = optax.contrib.dpsgd(0.05, 1.0, 0.7, 42, momentum, nesterov)
    state, ref = ours.init(params), theirs.init(params)
    step = jax.jit(lambda g, s, r, p: (ours.update(g, s, p), theirs.update(g, r, p)))
    for _ in range(5):
        grads = grads_of(params)
        (u, state), (e, ref) = step(grads, state, ref, params)
        assert_trees_allclose(u, e, rtol=1e-5, atol=1e-7)
        params = optax.apply_updates(params, e)
    np.testing.assert_array_equal(state[0].rng_key, jr.key_data(ref[0].rng_key))


@pytest.mark.parametrize("key", [3, "typed", "raw"])
def test_differentially_private_aggregate_equals_optax(key):
    params, grads_of, _ = _per_example_problem()
    typed = jr.key(3)
    ours_key = {3: 3, "typed": typed, "raw": jr.key_data(typed)}[key]
    ours = contrib.differentially_private_aggregate(0.5, 1.3, ours_key)
    theirs = optax.contrib.differentially_private_aggregate(0.5, 1.3, typed)
    grads = grads_of(params)
    state, ref = ours.init(params), theirs.init(params)
    assert isinstance(state, contrib.DifferentiallyPrivateAggregateState)
    for _ in range(3):
        u, state = ours.update(grads, state)
        e, ref = theirs.update(grads, ref)
        assert_trees_allclose(u, e, rtol=1e-5, atol=1e-7)
        assert jax.tree.map(jnp.shape, u) == jax.tree.map(jnp.shape, params)


def test_dp_aggregate_clips_each_example_without_noise():
    grads = {"a": jnp.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])}
    opt = contrib.differentially_private_aggregate(1.0, 0.0, key=0)
    u, _ = opt.update(grads, opt.init(None))
    # Norms 5, 0.5, 0: the first is scaled to norm 1; mean over 3 examples.
    np.testing.assert_allclose(u["a"], (jnp.array([0.6, 0.8]) + grads["a"][1]) / 3)


def test_dpsgd_inits_from_abstract_shapes_and_checkpoints_exactly():
    params, grads_of, _ = _per_example_problem()
    opt = contrib.dpsgd(0.1, 1.0, 1.0, 0, momentum=0.5)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    shapes = eqx.filter_eval_shape(opt.init, abstract)
    concrete = opt.init(params)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(
        lambda x: (x.shape, x.dtype), concrete
    )
    step = eqx.filter_jit(lambda o, s, p: o.update(grads_of(p), s, p))
    _, state = step(opt, concrete, params)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (opt, state))
    buffer.seek(0)
    like = contrib.dpsgd(0.2, 2.0, 2.0, 5, momentum=0.1)
    restored = eqx.tree_deserialise_leaves(buffer, (like, like.init(params)))
    assert_trees_allclose(restored, (opt, state), rtol=0, atol=0)
    assert_trees_allclose(
        step(*restored, params), step(opt, state, params), rtol=0, atol=0
    )


def test_dpsgd_hyperparameters_are_leaves_vmapped_and_differentiated():
    params, grads_of, loss = _per_example_problem()

    def train(opt):
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            u, s = opt.update(grads_of(p), s, p)
            return (eqopt.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, state), length=4)[0][0]

    clips = jnp.array([0.5, 1.0, 2.0])
    seeds = jnp.array([0, 1, 2])
    make = lambda c, seed: contrib.dpsgd(0.01, c, 0.5, seed)  # noqa: E731
    swept = eqx.filter_jit(jax.vmap(train))(jax.vmap(make)(clips, seeds))
    for i in range(3):
        separate = eqx.filter_jit(train)(make(clips[i], int(seeds[i])))
        assert_trees_allclose(jax.tree.map(lambda x: x[i], swept), separate, rtol=1e-5)

    def meta_loss(opt):
        final = train(opt)
        x = jnp.ones((1, 5))
        return loss(final, x[0], jnp.zeros(3))

    hypergrads = eqx.filter_jit(eqx.filter_grad(meta_loss))(make(1.0, 0))
    assert tree_isfinite(hypergrads)
    assert hypergrads.learning_rate != 0 and hypergrads.l2_norm_clip != 0
    # No recompile when a hyperparameter changes.
    jitted = eqx.filter_jit(train)
    jitted(make(1.0, 0))
    n = jitted._cached._cache_size()
    jitted(make(0.3, 4))
    assert jitted._cached._cache_size() == n


def test_dp_aggregate_state_may_be_donated():
    opt = contrib.differentially_private_aggregate(1.0, 1.0, key=0)
    state = opt.init(None)
    assert state.rng_key is not opt.key


# Errors.


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: contrib.galore(0.1, rank=0), ValueError, r"`galore\(rank=...\)`"),
        (lambda: contrib.galore(0.1, rank=2.0), TypeError, r"rank"),
        (
            lambda: contrib.scale_by_galore(update_proj_gap=0),
            ValueError,
            r"`scale_by_galore\(update_proj_gap=...\)`",
        ),
        (
            lambda: contrib.galore(0.1, weight_dimension_numbers={"w": 3}),
            TypeError,
            r"weight_dimension_numbers",
        ),
        (lambda: contrib.acprop(0.1, b1=1.0), ValueError, r"`acprop\(b1=...\)`"),
        (
            lambda: contrib.scale_by_acprop(eps=-1.0),
            ValueError,
            r"`scale_by_acprop\(eps=...\)`",
        ),
        (lambda: contrib.madgrad(0.1, momentum=1.5), ValueError, r"momentum=1.5"),
        (lambda: contrib.scale_by_madgrad(0.1, eps=-1e-6), ValueError, r"eps="),
        (lambda: contrib.dpsgd(0.1, -1.0, 1.0, 0), ValueError, r"l2_norm_clip=-1.0"),
        (
            lambda: contrib.differentially_private_aggregate(1.0, -0.5, 0),
            ValueError,
            r"noise_multiplier=-0.5",
        ),
        (lambda: contrib.dpsgd(0.1, 1.0, 1.0, 0.5), TypeError, r"`dpsgd\(seed=...\)`"),
    ],
)
def test_bad_arguments_name_themselves(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_galore_dimension_number_errors():
    opt = contrib.galore(
        0.1,
        weight_dimension_numbers={"w": contrib.GaLoreDimensionNumbers(0, (0, 1))},
    )
    with pytest.raises(ValueError, match="must be disjoint"):
        opt.init({"w": jnp.zeros((2, 3))})
    opt = contrib.galore(
        0.1, weight_dimension_numbers={"w": contrib.GaLoreDimensionNumbers(0, 1)}
    )
    with pytest.raises(ValueError, match="must name every axis"):
        opt.init({"w": jnp.zeros((2, 3, 4))})
    with pytest.raises(ValueError, match="rank 2 or more"):
        opt.init({"w": jnp.zeros(3)})
    with pytest.raises(ValueError, match="different tree structures"):
        opt.init({"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)})


def test_madgrad_needs_params_and_dp_needs_a_batch_axis():
    opt = contrib.madgrad(0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(params, opt.init(params))
    dp = contrib.differentially_private_aggregate(1.0, 1.0, key=0)
    with pytest.raises(ValueError, match="per-example gradients"):
        dp.update({"a": jnp.ones((4, 2)), "s": jnp.ones(())}, dp.init(None))
    with pytest.raises(ValueError, match="per-example gradients"):
        dp.update({"a": jnp.ones((4, 2)), "b": jnp.ones((3, 2))}, dp.init(None))


def test_dp_key_and_seed_as_optax():
    with pytest.warns(DeprecationWarning, match="seed"):
        a = contrib.differentially_private_aggregate(1.0, 1.0, seed=4)
    np.testing.assert_array_equal(a.key, jr.key_data(jr.key(4)))
    with (
        pytest.raises(ValueError, match="only one of `seed` and `key`"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        contrib.differentially_private_aggregate(1.0, 1.0, key=1, seed=4)
    with pytest.warns(UserWarning, match="no `key`"):
        b = contrib.differentially_private_aggregate(1.0, 1.0)
    np.testing.assert_array_equal(b.key, jr.key_data(jr.key(0)))


def test_madgrad_state_never_holds_the_parameters_buffers():
    # Optax's `x0` is the parameters' own buffers, so donating parameters and state
    # together fails there; eqopt's state is separate arrays.
    params = {"w": jnp.ones(3)}
    theirs = optax.contrib.madgrad(0.1).init(params)
    assert theirs[1].x0["w"] is params["w"]
    ours = contrib.madgrad(0.1).init(params)
    assert all(x is not params["w"] for x in jax.tree.leaves(ours))
    step = jax.jit(
        lambda p, s: contrib.madgrad(0.1).update(p, s, p), donate_argnums=(0, 1)
    )
    updates, state = step({"w": jnp.ones(3)}, ours)
    assert tree_isfinite(updates)


def test_dp_aggregate_bfloat16_is_the_float32_result_rounded_once():
    params, grads_of, _ = _per_example_problem()
    g32 = jax.tree.map(
        lambda g: g.astype(jnp.bfloat16).astype(jnp.float32), grads_of(params)
    )
    g16 = jax.tree.map(lambda g: g.astype(jnp.bfloat16), g32)
    opt = contrib.differentially_private_aggregate(0.5, 1.0, key=2)
    u32, _ = opt.update(g32, opt.init(params))
    u16, _ = opt.update(g16, opt.init(params))
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(u16))
    assert_trees_allclose(
        u16, jax.tree.map(lambda u: u.astype(jnp.bfloat16), u32), rtol=0, atol=0
    )

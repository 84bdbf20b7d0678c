"""`eqopt.experimental.aggregating`: every name against Optax's on per-example
gradients, the realistic uses Optax's own tests show (aggregation and accumulation equal
plain training; tracked means and variances equal the true ones), and what eqopt adds
(Modules with leaves: abstract `init`, vmapped sweeps, Equinox models)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from optax.experimental import aggregating as optax_aggregating

import eqopt
from eqopt.experimental import aggregating

from .helpers import assert_trees_allclose, tree_isfinite


NUM_SAMPLES, DIM, NUM_CLASSES = 16, 4, 2


def _data():
    inputs_key, targets_key, param_key = jr.split(jr.key(0), 3)
    inputs = jr.normal(inputs_key, (NUM_SAMPLES, DIM))
    targets = jr.normal(targets_key, (NUM_SAMPLES, NUM_CLASSES))
    params = {"w": jr.normal(param_key, (DIM, NUM_CLASSES)), "b": jnp.zeros(2)}
    return inputs, targets, params


def _loss(params, inputs, targets):
    predictions = inputs @ params["w"] + params["b"][None, :]
    return jnp.mean(jnp.sum((predictions - targets) ** 2, -1))


def _per_example_grads(params, x, y):
    return jax.vmap(jax.grad(_loss), (None, 0, 0))(params, x[:, None], y[:, None])


def _train(opt, microbatch_size, per_example, steps=None, apply=eqopt.apply_updates):
    """Train on consecutive micro-batches; returns parameters and the states."""
    inputs, targets, params = _data()
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, y):
        if per_example:
            grads = _per_example_grads(params, x, y)
        else:
            grads = jax.grad(_loss)(params, x, y)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            updates, state = opt.update(grads, state, params)
        return apply(params, updates), state

    states = []
    for i in range(0, NUM_SAMPLES, microbatch_size):
        x, y = inputs[i : i + microbatch_size], targets[i : i + microbatch_size]
        params, state = step(params, state, x, y)
        states.append(state)
    return params, states


# Every aggregating name against Optax's, on per-example gradients.


def _pairs():
    """(id, eqopt transformation, Optax transformation, micro-batch, per-example)."""
    e, o = aggregating, optax_aggregating
    clip = lambda m: jax.vmap(m.projections.projection_l2_ball, (0, None))  # noqa: E731
    return [
        (
            "average_per_element_updates",
            e.process(
                eqopt.identity(), e.average_per_element_updates(), eqopt.sgd(0.1)
            ),
            o.process(
                optax.identity(), o.average_per_element_updates(), optax.sgd(0.1)
            ),
            4,
            True,
        ),
        (
            "accumulate_avg_updates",
            e.process(eqopt.identity(), e.accumulate_avg_updates(2), eqopt.adam(0.1)),
            o.process(optax.identity(), o.accumulate_avg_updates(2), optax.adam(0.1)),
            2,
            False,
        ),
        (
            "accumulate_avg_updates-1",
            e.accumulate_avg_updates(1),
            o.accumulate_avg_updates(1),
            4,
            False,
        ),
        (
            "average_incrementally_updates",
            e.process(
                eqopt.identity(), e.average_incrementally_updates(0, 2), eqopt.adam(0.1)
            ),
            o.process(
                optax.identity(), o.average_incrementally_updates(0, 2), optax.adam(0.1)
            ),
            2,
            True,
        ),
        (
            "average_incrementally_updates-None",
            e.process(
                eqopt.identity(),
                e.average_incrementally_updates(None, 3),
                eqopt.sgd(0.1, 0.9),
            ),
            o.process(
                optax.identity(),
                o.average_incrementally_updates(None, 3),
                optax.sgd(0.1, 0.9),
            ),
            2,
            False,
        ),
        (
            "process-clip",
            e.process(
                eqopt.stateless(lambda g, _: clip(eqopt)(g, 0.5)),
                e.average_per_element_updates(),
                eqopt.adam(0.1),
            ),
            o.process(
                optax.stateless(lambda g, _: clip(optax)(g, 0.5)),
                o.average_per_element_updates(),
                optax.adam(0.1),
            ),
            4,
            True,
        ),
        (
            "add_mean_variance_to_opt",
            e.add_mean_variance_to_opt(eqopt.sgd(0.1), 0.8),
            o.add_mean_variance_to_opt(optax.sgd(0.1), 0.8),
            4,
            True,
        ),
        (
            "add_mean_variance_to_opt-accumulation",
            e.add_mean_variance_to_opt(eqopt.adam(0.05), 0.5, 0, 2),
            o.add_mean_variance_to_opt(optax.adam(0.05), 0.5, 0, 2),
            2,
            True,
        ),
    ]


PAIRS = _pairs()


@pytest.mark.parametrize(
    "name, ours, theirs, size, per_example", PAIRS, ids=[p[0] for p in PAIRS]
)
def test_same_numbers_and_state_as_optax(name, ours, theirs, size, per_example):
    params, states = _train(ours, size, per_example)
    expected, their_states = _train(
        theirs, size, per_example, apply=optax.apply_updates
    )
    # Adam's own float32 hyperparameter leaves (Optax computes `1 - b2` in double)
    # move its parameters by up to ~5e-6 over these steps, aggregation or not.
    atol = 2e-5 if "adam" in repr(ours) or "Adam" in repr(ours) else 1e-6
    assert_trees_allclose(params, expected, rtol=1e-5, atol=atol)
    assert isinstance(ours, aggregating.Aggregator) == isinstance(
        theirs, optax_aggregating.Aggregator
    )
    for state, their_state in zip(states, their_states):
        ours_leaves = jax.tree.leaves(state)
        theirs_leaves = jax.tree.leaves(their_state)
        assert [jnp.shape(x) for x in ours_leaves] == [
            jnp.shape(x) for x in theirs_leaves
        ]
        for a, b in zip(ours_leaves, theirs_leaves):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)
    if name.startswith("add_mean_variance"):
        for state, their_state in zip(states, their_states):
            with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
                expected = optax_aggregating.get_unbiased_mean_and_variance_ema(
                    their_state
                )
            assert_trees_allclose(
                aggregating.get_unbiased_mean_and_variance_ema(state),
                expected,
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("axis", [0, (0, 1)])
def test_mean_and_sum_sq_diff_aggregator_equals_optax(steps, axis):
    grads = {"w": jr.normal(jr.key(1), (4, 3, 5)), "s": jr.normal(jr.key(2), (4, 3))}
    params = jax.tree.map(lambda g: g[0, 0] if axis == (0, 1) else g[0], grads)
    ours = aggregating.get_per_element_mean_and_sum_sq_diff_grads(axis, steps)
    theirs = optax_aggregating.get_per_element_mean_and_sum_sq_diff_grads(axis, steps)
    state, ref = ours.init(params), theirs.init(params)
    for i in range(2 * steps):
        g = jax.tree.map(lambda x: x * (1 + i) + i, grads)
        out, state = ours.update(g, state)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            expected, ref = theirs.update(g, ref, None)
        assert_trees_allclose(
            jax.tree.map(jnp.asarray, out),
            jax.tree.map(jnp.asarray, expected),
            rtol=1e-5,
            atol=1e-5,
            check_dtypes=False,  # Optax's sample size is weakly typed
        )
        assert [np.shape(x) for x in jax.tree.leaves(state)] == [
            np.shape(x) for x in jax.tree.leaves(ref)
        ]


def test_track_mean_and_variance_and_unbiased_statistics_equal_optax():
    params = {"w": jnp.zeros(3)}
    ours = aggregating.track_per_element_mean_and_variance_with_ema(0.7)
    theirs = optax_aggregating.track_per_element_mean_and_variance_with_ema(0.7)
    state, ref = ours.init(params), theirs.init(params)
    for i in range(4):
        g = {"w": jnp.arange(3.0) + i}
        s = {"w": jnp.arange(3.0) * (i + 1)}
        u, state = ours.update(g, state, sum_sq_diff_grads=s, sample_size=5)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            e, ref = theirs.update(g, ref, sum_sq_diff_grads=s, sample_size=5)
        assert_trees_allclose(u, e)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes dtypes
            expected = optax_aggregating.get_unbiased_mean_and_variance_ema(ref)
        assert_trees_allclose(
            aggregating.get_unbiased_mean_and_variance_ema(state), expected, rtol=1e-5
        )
    assert isinstance(state, aggregating.PerElementMeanAndVarianceEMAState)


def test_batch_size_and_aggregator_from_functions_as_optax():
    grads = {"a": jnp.zeros((6, 2)), "b": jnp.zeros((6, 3, 2)), "none": None}
    for axis in (0, [0, 1]):
        assert aggregating.get_batch_size_from_per_elt_updates(
            {"a": grads["a"], "b": grads["b"]} if axis == 0 else {"b": grads["b"]}, axis
        ) == optax_aggregating.get_batch_size_from_per_elt_updates(
            {"a": grads["a"], "b": grads["b"]} if axis == 0 else {"b": grads["b"]}, axis
        )
    assert aggregating.get_batch_size_from_per_elt_updates(grads, 0) == 6
    with pytest.raises(ValueError, match="same batch size"):
        aggregating.get_batch_size_from_per_elt_updates(grads, 1)

    # Optax's `process` example: clip per sample, average with a plain `Aggregator`.
    average = lambda gs: jax.tree.map(lambda g: jnp.mean(g, 0), gs)  # noqa: E731
    clip = jax.vmap(eqopt.projections.projection_l2_ball, 0)
    agg = aggregating.Aggregator(
        init=eqopt.init_empty_state, update=lambda gs, s, _: (average(gs), s)
    )
    assert isinstance(agg, aggregating.Aggregator)
    opt = aggregating.process(
        eqopt.stateless(lambda gs, _: clip(gs)), agg, eqopt.adam(learning_rate=1e-1)
    )
    assert isinstance(opt, aggregating.Aggregator)
    n, k, d = 8, 2, 4
    xs = jr.normal(jr.key(0), (n, d))
    ys = jr.normal(jr.key(1), (n, k))
    params = jr.normal(jr.key(2), (d, k))
    fun = lambda w, x, y: jnp.sum((x.dot(w) - y) ** 2)  # noqa: E731
    value_and_grads = jax.vmap(jax.value_and_grad(fun), (None, 0, 0))
    state = opt.init(params)
    losses = []
    for _ in range(3):
        batch_losses, grads = value_and_grads(params, xs, ys)
        updates, state = opt.update(grads, state)
        params = eqopt.apply_updates(params, updates)
        losses.append(float(jnp.mean(batch_losses)))
    # Optax's docstring prints 7.47e+00, 6.20e+00, 5.08e+00.
    np.testing.assert_allclose(losses, [7.47, 6.20, 5.08], rtol=5e-3)


# The realistic uses of Optax's tests.


def test_aggregation_and_accumulation_match_standard_training():
    sgd = eqopt.sgd(learning_rate=0.1)
    standard, _ = _train(sgd, 4, per_example=False)
    process = aggregating.process
    for axis, steps, per_example in ((0, 1, True), (None, 2, False), (0, 2, True)):
        opt = process(
            eqopt.identity(),
            aggregating.average_incrementally_updates(axis, steps),
            sgd,
        )
        params, _ = _train(opt, 4 // steps, per_example)
        assert_trees_allclose(params, standard, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_tracked_mean_and_variance_equal_the_true_ones(ema_decay):
    inputs, targets, _ = _data()
    opt = aggregating.add_mean_variance_to_opt(eqopt.sgd(0.1), ema_decay)
    standard, _ = _train(eqopt.sgd(0.1), 4, per_example=False)
    params, states = _train(opt, 4, per_example=True)
    assert_trees_allclose(params, standard, rtol=1e-5, atol=1e-6)
    # The true statistics, along the same trajectory.
    p = _data()[2]
    mean_ema = var_ema = jax.tree.map(jnp.zeros_like, p)
    for i, state in enumerate(states):
        x, y = inputs[4 * i : 4 * i + 4], targets[4 * i : 4 * i + 4]
        grads = _per_example_grads(p, x, y)
        mean = jax.tree.map(lambda g: jnp.mean(g, 0), grads)
        var = jax.tree.map(lambda g: jnp.var(g, 0, ddof=1), grads)
        mean_ema, var_ema = jax.tree.map(
            lambda new, old: (1 - ema_decay) * new + ema_decay * old,
            (mean, var),
            (mean_ema, var_ema),
        )
        debias = 1 - ema_decay ** (i + 1)
        expected = jax.tree.map(lambda t: t / debias, (mean_ema, var_ema))
        got = aggregating.get_unbiased_mean_and_variance_ema(state)
        assert_trees_allclose(got, expected, rtol=1e-4, atol=1e-5)
        p = jax.tree.map(lambda w, g: w - 0.1 * g, p, mean)


# What eqopt adds: Modules with leaves.


ALL = [
    aggregating.average_per_element_updates(),
    aggregating.accumulate_avg_updates(3),
    aggregating.average_incrementally_updates(0, 2),
    aggregating.average_incrementally_updates(None, 2),
    aggregating.get_per_element_mean_and_sum_sq_diff_grads(0, 2),
    aggregating.track_per_element_mean_and_variance_with_ema(0.5),
    aggregating.add_mean_variance_to_opt(eqopt.adam(0.1), 0.5, 0, 2),
    aggregating.process(
        eqopt.identity(),
        aggregating.average_incrementally_updates(0, 2),
        eqopt.sgd(0.1),
    ),
]


@pytest.mark.parametrize("opt", ALL, ids=lambda o: type(o).__name__)
def test_init_from_abstract_shapes_and_state_can_be_donated(opt):
    params = _data()[2]
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    shapes = eqx.filter_eval_shape(opt.init, abstract)
    concrete = opt.init(params)
    assert jax.tree.structure(shapes) == jax.tree.structure(concrete)
    for s, c in zip(jax.tree.leaves(shapes), jax.tree.leaves(concrete)):
        assert (s.shape, s.dtype) == (c.shape, c.dtype)
    arrays = [x for x in jax.tree.leaves((params, concrete, opt)) if eqx.is_array(x)]
    assert len({id(x) for x in arrays}) == len(arrays)


def _variance_run(opt, steps=4):
    inputs, targets, params = _data()
    state = opt.init(params)

    def step(carry, batch):
        params, state = carry
        grads = _per_example_grads(params, *batch)
        updates, state = opt.update(grads, state, params)
        return (eqopt.apply_updates(params, updates), state), None

    batches = (inputs.reshape(steps, -1, DIM), targets.reshape(steps, -1, NUM_CLASSES))
    (params, state), _ = jax.lax.scan(step, (params, state), batches)
    return params, aggregating.get_unbiased_mean_and_variance_ema(state)


def test_ema_decay_and_learning_rate_sweep_vmapped_and_differentiated():
    make = lambda lr, decay: aggregating.add_mean_variance_to_opt(  # noqa: E731
        eqopt.adam(lr), decay, accumulation_steps=1
    )
    lrs, decays = jnp.array([0.05, 0.1, 0.2]), jnp.array([0.3, 0.6, 0.9])
    run = eqx.filter_jit(_variance_run)
    swept = eqx.filter_jit(jax.vmap(_variance_run))(jax.vmap(make)(lrs, decays))
    for i in range(3):
        separate = run(make(lrs[i], decays[i]))
        assert_trees_allclose(jax.tree.map(lambda x: x[i], swept), separate, rtol=1e-5)
    # No recompile for a new value.
    n = run._cached._cache_size()
    run(make(lrs[0] / 2, decays[0] / 2))
    assert run._cached._cache_size() == n

    # The tracked variance is smooth in the decay: hypergradient vs finite differences.
    def tracked(decay):
        return jnp.sum(_variance_run(make(0.1, decay))[1][1]["w"])

    with jax.numpy_dtype_promotion("standard"):
        grad = jax.jit(jax.grad(tracked))(jnp.asarray(0.6))
        eps = 1e-2
        fd = (tracked(jnp.asarray(0.6 + eps)) - tracked(jnp.asarray(0.6 - eps))) / (
            2 * eps
        )
    assert tree_isfinite(grad)
    np.testing.assert_allclose(grad, fd, rtol=2e-2)


def test_equinox_model_needs_no_filtering():
    model = eqx.nn.MLP(DIM, NUM_CLASSES, 8, 1, key=jr.key(4))
    inputs, targets, _ = _data()
    opt = aggregating.add_mean_variance_to_opt(eqopt.adam(1e-2), 0.9, 0, 2)

    def loss(m, x, y):
        return jnp.sum((m(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, state, x, y):
        grads = eqx.filter_vmap(eqx.filter_grad(loss), in_axes=(None, 0, 0))(
            model, x, y
        )
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state

    state = opt.init(model)
    start = jnp.mean(jax.vmap(model)(inputs) - targets) ** 2
    for i in range(0, NUM_SAMPLES, 2):
        model, state = step(model, state, inputs[i : i + 2], targets[i : i + 2])
    assert model.activation is jax.nn.relu
    mean, var = aggregating.get_unbiased_mean_and_variance_ema(state)
    assert jax.tree.structure(mean) == jax.tree.structure(
        eqx.filter(model, eqx.is_inexact_array)
    )
    assert tree_isfinite(eqx.filter((mean, var), eqx.is_inexact_array))
    assert jnp.isfinite(start)


# Errors.


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"accumulate_avg_updates\(accumulation_steps"):
        aggregating.accumulate_avg_updates(0)
    with pytest.raises(ValueError, match=r"average_incrementally_updates\(accum"):
        aggregating.average_incrementally_updates(0, 0)
    with pytest.raises(ValueError, match=r"ema_decay=1.0"):
        aggregating.add_mean_variance_to_opt(eqopt.sgd(0.1), 1.0)
    with pytest.raises(ValueError, match=r"ema_decay=-0.5"):
        aggregating.track_per_element_mean_and_variance_with_ema(-0.5)
    track = aggregating.track_per_element_mean_and_variance_with_ema()
    params = {"w": jnp.zeros(2)}
    with pytest.raises(TypeError, match="sample_size"):
        track.update(params, track.init(params))
    with pytest.raises(ValueError, match="PerElementMeanAndVarianceEMAState"):
        aggregating.get_unbiased_mean_and_variance_ema(eqopt.adam(0.1).init(params))
    opt = aggregating.process(
        eqopt.identity(), aggregating.average_per_element_updates(), eqopt.sgd(0.1)
    )
    with pytest.raises(ValueError, match="does not match its 3"):
        opt.update(params, (1, 2))

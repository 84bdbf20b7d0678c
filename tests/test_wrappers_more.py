"""`stateless`, `stateless_with_tree_map`, `with_extra_args_support`, `snapshot`,
`measure_with_ema`, `monitor`, `incremental_update`, `periodic_update`,
`tree_map_params`: Optax parity, behaviour, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose
from .registry.wrappers import is_large


def _loss(x):
    return jnp.sum(x**2)


def _run(lib, steps=4):
    """Optax's `monitor` example, with a snapshot: measurements after each step."""
    solver = lib.chain(
        lib.sgd(0.1, momentum=0.9),
        lib.monitor(
            {
                "norm_before_clip": lib.tree.norm,
                "large_ema": lib.measure_with_ema(is_large, decay=0.9),
            }
        ),
        lib.snapshot("snap", lib.tree.norm),
        lib.clip_by_global_norm(1.0),
    )
    params = jnp.array([1.0, 2.0, 3.0])
    state = solver.init(params)
    out = []
    for _ in range(steps):
        updates, state = solver.update(jax.grad(_loss)(params), state)
        params = lib.apply_updates(params, updates)
        out.append(
            [lib.tree.get(state, k) for k in ("norm_before_clip", "large_ema", "snap")]
        )
    return params, out


def test_monitor_snapshot_measure_with_ema_match_optax():
    ours = _run(eqopt)
    with jax.numpy_dtype_promotion("standard"):  # Optax's code is written for it
        theirs = _run(optax)
    assert_trees_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    # The boolean measurement is averaged as a fraction of steps.
    assert 0 < ours[1][-1][1] < 1


def test_monitor_state_keeps_its_structure_and_scans():
    opt = eqopt.monitor(
        {"n": eqopt.tree.norm, "e": eqopt.measure_with_ema(is_large, 0.5)}
    )
    params = {"a": jnp.ones(3), "f": jax.nn.relu}
    state = opt.init(params)
    _, new = opt.update({"a": jnp.full(3, 2.0), "f": None}, state, params)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert jnp.allclose(new.measurements["n"], jnp.sqrt(12.0))
    assert new.measurements["e"] == 1.0  # one step, debiased
    # Decay is a leaf reached through the monitor.
    opt = eqx.tree_at(lambda m: m.measures["e"].decay, opt, jnp.asarray(0.7))
    assert opt.measures["e"].decay == jnp.float32(0.7)


def test_measure_with_ema_rejects_out_of_range_decay():
    with pytest.raises(ValueError, match=r"decay.*1\.5"):
        eqopt.measure_with_ema(is_large, 1.5)


def test_stateless_keeps_none_and_non_array_leaves():
    tx = eqopt.stateless_with_tree_map(lambda u, p: u * 3 if p is None else u - p)
    updates = {"a": jnp.ones(2), "b": None, "f": jax.nn.relu}
    params = {"a": jnp.full(2, 0.5), "b": jnp.ones(1), "f": jax.nn.relu}
    out, _ = tx.update(updates, tx.init(params), params)
    assert out["b"] is None and out["f"] is jax.nn.relu
    assert jnp.array_equal(out["a"], jnp.full(2, 0.5))
    out, _ = tx.update(updates, tx.init(params))
    assert jnp.array_equal(out["a"], jnp.full(2, 3.0))


def test_with_extra_args_support():
    adam = eqopt.adam(1e-3)
    assert eqopt.with_extra_args_support(adam) is adam
    wrapped = eqopt.with_extra_args_support(optax.sgd(0.5))
    params = jnp.ones(2)
    updates, _ = wrapped.update(jnp.ones(2), wrapped.init(params), params, value=1.0)
    assert jnp.array_equal(updates, jnp.full(2, -0.5))


def test_incremental_and_periodic_update_match_optax():
    new = {"a": jnp.arange(3.0), "b": jnp.ones((2, 2))}
    old = {"a": jnp.zeros(3), "b": jnp.full((2, 2), 4.0)}
    assert_trees_allclose(
        eqopt.incremental_update(new, old, 0.3),
        optax.incremental_update(new, old, 0.3),
        rtol=1e-6,
    )
    for steps in (0, 3, 4):
        assert_trees_allclose(
            eqopt.periodic_update(new, old, steps, 2),
            optax.periodic_update(new, old, steps, 2),
            rtol=0,
            atol=0,
        )


def test_incremental_and_periodic_update_on_an_equinox_model_and_bfloat16():
    model = eqx.nn.MLP(2, 2, 4, 1, key=jax.random.key(0))
    zero = jax.tree.map(lambda x: jnp.zeros_like(x) if eqx.is_array(x) else x, model)
    avg = eqopt.incremental_update(model, zero, 0.25)
    assert jnp.allclose(avg.layers[0].weight, model.layers[0].weight / 4)
    assert eqopt.periodic_update(model, zero, 2, 2).activation is model.activation
    assert jnp.all(eqopt.periodic_update(model, zero, 1, 2).layers[0].bias == 0)
    b16 = eqopt.incremental_update(
        jnp.ones(2, jnp.bfloat16), jnp.zeros(2, jnp.bfloat16), jnp.asarray(0.5)
    )
    assert b16.dtype == jnp.bfloat16 and jnp.all(b16 == 0.5)
    # A traced step size: it is differentiable.
    grad = jax.grad(lambda s: jnp.sum(eqopt.incremental_update(new_a, old_a, s)))
    new_a, old_a = jnp.ones(3), jnp.zeros(3)
    assert grad(0.5) == 3.0


def test_tree_map_params_is_at_the_top_level():
    assert eqopt.tree_map_params is eqopt.tree_utils.tree_map_params
    opt = eqopt.adam(1e-3)
    params = {"w": jnp.ones((2, 3))}
    specs = eqopt.tree_map_params(
        opt,
        lambda _, s: s,
        opt.init(params),
        {"w": "spec"},
        transform_non_params=lambda _: None,
    )
    assert specs[0].mu["w"] == "spec" and specs[0].count is None

"""`eqopt.interop`: eqopt transformations inside Optax code and Optax ones inside eqopt."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import eqopt
from eqopt.interop import from_optax, to_optax

from .helpers import assert_trees_allclose, random_tree


def _run(opt, params, steps=5):
    """Jitted steps of an Optax-style transformation (`jax.jit` of `opt.update`)."""
    state = opt.init(params)
    update = jax.jit(opt.update)
    for i in range(steps):
        grads = jax.tree.map(lambda p: jnp.sin(p * (i + 1)), params)
        with jax.numpy_dtype_promotion("standard"):
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
    return params


def test_to_optax_inside_optax_chain_under_jit():
    params = random_tree(jr.key(0))
    ours = optax.chain(optax.clip_by_global_norm(1.0), to_optax(eqopt.adamw(0.1)))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.1))
    assert isinstance(to_optax(eqopt.adam(0.1)), optax.GradientTransformationExtraArgs)
    # 1e-4: Optax computes `1 - b2` in double, eqopt from a float32 leaf (DESIGN.md).
    assert_trees_allclose(_run(ours, params), _run(theirs, params), rtol=1e-4)


def test_to_optax_takes_extra_arguments_and_keeps_eqopt_state():
    params = random_tree(jr.key(0))
    opt = to_optax(eqopt.adam(0.1))
    state = opt.init(params)
    assert isinstance(state[0], eqopt.ScaleByAdamState)
    updates, _ = opt.update(params, state, params, value=jnp.asarray(1.0))
    expected, _ = eqopt.adam(0.1).update(params, eqopt.adam(0.1).init(params), params)
    assert_trees_allclose(updates, expected)


def test_to_optax_in_an_optax_wrapper():
    params = random_tree(jr.key(0))
    ours = optax.MultiSteps(to_optax(eqopt.sgd(0.1, 0.9)), every_k_schedule=2)
    theirs = optax.MultiSteps(optax.sgd(0.1, 0.9), every_k_schedule=2)
    assert_trees_allclose(_run(ours, params, 4), _run(theirs, params, 4), rtol=1e-6)


def test_from_optax_inside_eqopt_chain():
    params = random_tree(jr.key(1))
    ours = eqopt.chain(eqopt.clip(0.5), from_optax(optax.adam(0.1)))
    theirs = optax.chain(optax.clip(0.5), optax.adam(0.1))
    assert_trees_allclose(_run(to_optax(ours), params), _run(theirs, params), rtol=1e-6)


def test_from_optax_passes_extra_arguments_only_to_those_that_take_them():
    seen = {}

    def update(updates, state, params=None, *, value):
        seen["value"] = value
        return updates, state

    takes = optax.GradientTransformationExtraArgs(lambda p: (), update)
    plain = optax.scale(2.0)  # its update takes no extra arguments
    params = {"x": jnp.ones(2)}
    opt = eqopt.chain(from_optax(takes), from_optax(plain))
    updates, _ = opt.update(params, opt.init(params), params, value=jnp.asarray(3.0))
    assert seen["value"] == 3.0
    assert_trees_allclose(updates, {"x": 2 * jnp.ones(2)})


class _Model(eqx.Module):
    linear: eqx.nn.Linear
    activation: object = jax.nn.relu
    steps: jax.Array = eqx.field(default_factory=lambda: jnp.arange(3))


def test_from_optax_takes_an_equinox_model_without_filtering():
    model = _Model(eqx.nn.Linear(2, 2, key=jr.key(0)))
    opt = from_optax(optax.adam(0.1))
    state = opt.init(model)  # Optax alone fails on the activation function
    grads = eqx.filter_grad(lambda m: jnp.sum(m.linear(jnp.ones(2)) ** 2))(model)
    updates, state = eqx.filter_jit(opt.update)(grads, state, model)
    new = eqopt.apply_updates(model, updates)
    assert new.activation is jax.nn.relu
    assert not jnp.allclose(new.linear.weight, model.linear.weight)


def test_round_trip_matches_eqopt():
    params = random_tree(jr.key(2))
    direct = eqopt.adam(0.1)
    round_trip = from_optax(to_optax(direct))
    assert_trees_allclose(
        _run(to_optax(round_trip), params), _run(to_optax(direct), params)
    )


def test_wrong_direction_is_a_type_error():
    with pytest.raises(TypeError, match="GradientTransformation"):
        to_optax(optax.adam(0.1))
    with pytest.raises(TypeError, match="Optax transformation"):
        from_optax(eqopt.adam(0.1))


def test_eqopt_imports_and_runs_without_optax():
    program = """
import sys
sys.modules["optax"] = None  # `import optax` now raises ImportError
import jax.numpy as jnp
import eqopt
opt = eqopt.adam(0.1)
params = {"x": jnp.ones(3)}
updates, _ = opt.update(params, opt.init(params), params)
print(float(updates["x"][0]))
import eqopt.interop
try:
    eqopt.interop.to_optax(opt)
except ImportError:
    print("to_optax needs optax")
"""
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout.split()
    assert float(out[0]) == pytest.approx(-0.1, rel=1e-5)
    assert " ".join(out[1:]) == "to_optax needs optax"


def test_inject_hyperparams_around_an_optax_factory():
    params = random_tree(jr.key(3))
    ours = eqopt.inject_hyperparams(
        lambda learning_rate: from_optax(optax.adam(learning_rate))
    )(0.1)
    assert ours.init(params).hyperparams["learning_rate"] == jnp.float32(0.1)
    # Only the learning rate is injected; Optax's other defaults stay Python floats.
    theirs = optax.adam(0.1)
    assert_trees_allclose(_run(to_optax(ours), params), _run(theirs, params), rtol=1e-6)

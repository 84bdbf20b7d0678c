"""`eqopt.reduce_learning_rate_on_plateau`: the learning-rate leaf itself is reduced."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose


VALUES = [5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0]
SETTINGS = [
    dict(factor=0.5, patience=2),
    dict(factor=0.1, patience=1, cooldown=2),
    dict(factor=0.5, patience=1, accumulation_size=2, min_scale=0.2),
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_equals_optax_scaling_for_an_optimiser_linear_in_the_learning_rate(settings):
    params = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.asarray(0.3)}
    grads = jax.tree.map(lambda x: 0.1 * x + 0.05, params)
    ours = eqopt.reduce_learning_rate_on_plateau(
        eqopt.adamw(0.1, weight_decay=0.01),
        eqopt.contrib.reduce_on_plateau(**settings),
    )
    theirs = optax.chain(
        optax.adamw(0.1, weight_decay=0.01), optax.contrib.reduce_on_plateau(**settings)
    )
    state, ref_state = ours.init(params), theirs.init(params)
    for value in VALUES:
        updates, state = ours.update(grads, state, params, value=jnp.asarray(value))
        with jax.numpy_dtype_promotion("standard"):  # Optax's own arithmetic
            expected, ref_state = theirs.update(
                grads, ref_state, params, value=jnp.asarray(value)
            )
        assert_trees_allclose(updates, expected, rtol=1e-6)
        np.testing.assert_allclose(
            state.hyperparams["learning_rate"], 0.1 * ref_state[1].scale, rtol=1e-6
        )


def test_the_learning_rate_is_readable_replaceable_and_reduced_from_there():
    params = jnp.ones(3)
    opt = eqopt.reduce_learning_rate_on_plateau(
        eqopt.sgd(1.0), eqopt.contrib.reduce_on_plateau(factor=0.5, patience=1)
    )
    state = opt.init(params)
    _, state = opt.update(params, state, params, value=1.0)  # best so far
    _, state = opt.update(params, state, params, value=1.0)  # plateau: halved
    assert float(state.hyperparams["learning_rate"]) == 0.5
    state = eqopt.tree_utils.tree_set_hyperparams(state, learning_rate=0.2)
    updates, state = opt.update(params, state, params, value=1.0)  # halved again
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    np.testing.assert_allclose(updates, -0.1 * params, rtol=1e-6)


def test_differs_from_scaling_where_the_learning_rate_enters_the_state():
    # Schedule-Free's averaging weights depend on the learning rate: reducing the
    # rate is not the same as scaling the updates.
    params = jnp.linspace(-1.0, 1.0, 4)
    grads = 0.3 * params + 0.1
    plateau = eqopt.contrib.reduce_on_plateau(factor=0.1, patience=1)
    ours = eqopt.reduce_learning_rate_on_plateau(
        eqopt.contrib.schedule_free_sgd(0.5), plateau
    )
    scaled = eqopt.chain(eqopt.contrib.schedule_free_sgd(0.5), plateau)
    s1, s2 = ours.init(params), scaled.init(params)
    for value in (1.0, 1.0, 1.0, 1.0):
        u1, s1 = ours.update(grads, s1, params, value=value)
        u2, s2 = scaled.update(grads, s2, params, value=value)
    assert not np.allclose(u1, u2)


def test_every_group_of_a_partition_is_reduced_and_it_jits_once():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    inner = eqopt.partition(
        {"a": eqopt.sgd(0.1), "b": eqopt.adam(0.01)}, {"a": "a", "b": "b"}
    )
    opt = eqopt.reduce_learning_rate_on_plateau(
        inner, eqopt.contrib.reduce_on_plateau(factor=0.5, patience=1)
    )

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(state, value):
        return opt.update(params, state, params, value=value)[1]

    state = opt.init(params)
    for value in (1.0, 1.0, 1.0):
        state = step(state, jnp.asarray(value))
    rates = sorted(float(v) for v in state.hyperparams.values())
    assert rates == pytest.approx([0.0025, 0.025])


def test_a_missing_value_names_it():
    opt = eqopt.reduce_learning_rate_on_plateau(eqopt.adam(1e-3))
    params = jnp.ones(2)
    with pytest.raises(ValueError, match="`value`"):
        opt.update(params, opt.init(params), params)
    with pytest.raises(ValueError, match="no hyperparameter named 'lr'"):
        eqopt.reduce_learning_rate_on_plateau(eqopt.adam(1e-3), fields=("lr",))

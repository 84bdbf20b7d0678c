"""The core's tree helpers (`eqopt._tree`) built on `eqopt.tree_utils` keep their rules."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from eqopt import _tree

from ..helpers import assert_trees_allclose


PARAMS = {
    "w": jnp.ones((2, 3), jnp.bfloat16),
    "i": jnp.arange(3),
    "f": jax.nn.relu,
    "n": None,
}


def test_state_only_for_inexact_arrays():
    for state in (
        _tree.zeros_like_params(PARAMS),
        _tree.full_like_params(PARAMS, 0.1, jnp.float32),
    ):
        assert state["i"] is None and state["f"] is None and state["n"] is None
    full = _tree.full_like_params(PARAMS, 0.1, jnp.float32)
    # A Python float goes through float32, as it always has.
    assert_trees_allclose(full["w"], jnp.full((2, 3), 0.1, jnp.float32))
    assert _tree.zeros_like_params(PARAMS)["w"].dtype == jnp.bfloat16


def test_global_norm_squared_in_float32_or_wider():
    big = jnp.full((300,), 20.0, jnp.bfloat16)  # 300 * 400 = 120000: not a bfloat16
    total = _tree.global_norm_squared({"a": big, "f": jax.nn.relu, "i": jnp.arange(3)})
    assert total.dtype == jnp.float32 and float(total) == 120000.0
    empty = _tree.global_norm_squared({"f": jax.nn.relu, "n": None})
    assert empty.dtype == jnp.float32 and float(empty) == 0.0


def test_global_norm_squared_on_filter_grad_output():
    model = eqx.nn.MLP(3, 2, 4, 1, key=jr.key(0))
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(jnp.ones(3)) ** 2)))(
        model
    )
    arrays = jax.tree.leaves(eqx.filter(grads, eqx.is_array))
    expected = sum(jnp.sum(g**2) for g in arrays)
    assert _tree.global_norm_squared(grads).dtype == jnp.float32
    assert_trees_allclose(_tree.global_norm_squared(grads), expected)

"""`add_decayed_weights`: a weight decay of 0 closed over costs no pass over the
parameters (as Optax's Python `0.0`), and a traced one still has its hypergradient."""

import jax
import jax.numpy as jnp
import optax

import eqopt


def test_closed_over_zero_weight_decay_is_skipped_like_optax():
    params = {"w": jnp.asarray([1.0, jnp.nan, jnp.inf])}
    grads = {"w": jnp.asarray([0.5, 0.5, 0.5])}
    ours = eqopt.add_decayed_weights(0.0)
    theirs = optax.add_decayed_weights(0.0)
    updates, _ = ours.update(grads, ours.init(params), params)
    expected, _ = theirs.update(grads, theirs.init(params), params)
    assert jnp.array_equal(updates["w"], expected["w"])  # no 0 * nan, 0 * inf
    assert jnp.array_equal(updates["w"], grads["w"])


def test_traced_zero_weight_decay_keeps_its_hypergradient():
    params = {"w": jnp.asarray([1.0, -2.0])}
    grads = {"w": jnp.asarray([0.5, 0.5])}

    def total(weight_decay):
        opt = eqopt.add_decayed_weights(weight_decay)
        updates, _ = opt.update(grads, opt.init(params), params)
        return jnp.sum(updates["w"])

    assert jax.grad(total)(jnp.asarray(0.0)) == -1.0  # the sum of the parameters

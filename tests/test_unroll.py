"""`eqopt.unroll` and `eqopt.unrolled_meta_grad`: training as a differentiable function."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqopt

from .helpers import assert_trees_allclose


def train_loss(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def make(length=10, dtype=jnp.float32):
    key = jr.key(0)
    params = {"w": jnp.zeros(3, dtype), "b": jnp.zeros((), dtype)}
    x = jr.normal(jr.fold_in(key, 1), (length, 8, 3), dtype)
    y = x @ jnp.asarray([1.0, -2.0, 0.5], dtype) + 0.3
    return params, (x, y)


def val_loss(params):
    x = jnp.linspace(-1, 1, 12, dtype=params["w"].dtype).reshape(4, 3)
    return jnp.mean(
        (
            x @ params["w"]
            + params["b"]
            - x @ jnp.asarray([1.0, -2.0, 0.5], x.dtype)
            - 0.3
        )
        ** 2
    )


@pytest.mark.parametrize("checkpoint", [True, False])
def test_unroll_is_a_loop_of_steps(checkpoint):
    opt = eqopt.adam(0.05)
    params, batches = make(10)  # 10 steps: three checkpointed blocks of 3, then 1
    final, state, losses = jax.jit(
        lambda p: eqopt.unroll(
            opt, train_loss, p, 10, batches=batches, checkpoint=checkpoint
        )
    )(params)
    expected, expected_state, values = params, opt.init(params), []
    for i in range(10):
        batch = jax.tree.map(lambda x: x[i], batches)
        value, grads = jax.value_and_grad(train_loss)(expected, batch)
        updates, expected_state = opt.update(grads, expected_state, expected)
        expected = eqopt.apply_updates(expected, updates)
        values.append(value)
    assert_trees_allclose((final, state), (expected, expected_state), rtol=1e-6)
    np.testing.assert_allclose(losses, values, rtol=1e-6)


def test_meta_gradient_matches_finite_differences_and_no_checkpointing():
    with jax.enable_x64(True):
        params, batches = make(10, jnp.float64)
        opt = eqopt.sgd(0.05, momentum=0.8)
        meta = jax.jit(
            lambda o, c: eqopt.unrolled_meta_grad(
                o, train_loss, val_loss, params, 10, batches=batches, checkpoint=c
            )[:2],
            static_argnums=1,
        )
        value, grads = meta(opt, True)
        _, plain = meta(opt, False)
        assert_trees_allclose(grads, plain, rtol=1e-10)
        eps = 1e-6
        for field in ("learning_rate", "momentum"):
            at = lambda v: eqx.tree_at(lambda o: getattr(o, field), opt, jnp.asarray(v))
            h = float(getattr(opt, field))
            fd = (meta(at(h + eps), True)[0] - meta(at(h - eps), True)[0]) / (2 * eps)
            np.testing.assert_allclose(getattr(grads, field), fd, rtol=1e-5)


def test_truncations_continue_from_the_returned_state_and_tune_the_optimiser():
    params, batches = make(8)
    opt, meta_opt = eqopt.sgd(1e-3, momentum=0.5), eqopt.adam(3e-3)
    meta_state, state = meta_opt.init(opt), None
    meta = eqx.filter_jit(
        lambda opt, params, state: eqopt.unrolled_meta_grad(
            opt, train_loss, val_loss, params, 8, state=state, batches=batches
        )
    )
    first = None
    state = opt.init(params)
    for _ in range(10):
        value, grads, (params, state) = meta(opt, params, state)
        first = value if first is None else first
        updates, meta_state = meta_opt.update(grads, meta_state, opt)
        opt = eqopt.apply_updates(opt, updates)
    assert value < 0.5 * first
    assert opt.learning_rate > 1e-3


def test_equinox_model_and_full_batch_loss():
    model = eqx.nn.MLP(2, 1, 8, 1, key=jr.key(0))
    x = jr.normal(jr.key(1), (16, 2))
    loss = lambda m: jnp.mean((jax.vmap(m)(x) - 1.0) ** 2)
    value, grads, (trained, _) = eqx.filter_jit(eqopt.unrolled_meta_grad)(
        eqopt.adam(1e-2), loss, loss, model, 7
    )
    assert trained.activation is jax.nn.relu
    assert jnp.isfinite(grads.learning_rate) and grads.learning_rate < 0


def _temp_bytes(length, checkpoint):
    params, batches = make(length)
    fn = jax.jit(
        lambda opt: eqopt.unrolled_meta_grad(
            opt,
            train_loss,
            val_loss,
            params,
            length,
            batches=batches,
            checkpoint=checkpoint,
        )[1]
    )
    return fn.lower(eqopt.adam(0.01)).compile().memory_analysis().temp_size_in_bytes


def test_checkpointing_makes_memory_grow_sublinearly():
    # Compiled programs' temporary buffers (deterministic, not a timing).
    plain = [_temp_bytes(n, False) for n in (16, 256)]
    blocked = [_temp_bytes(n, True) for n in (16, 256)]
    assert plain[1] > 8 * plain[0]  # linear in T: the residuals of every step
    assert blocked[1] < 6 * blocked[0]  # about sqrt(16) = 4x

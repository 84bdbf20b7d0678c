"""`eqopt.microbatching` (Optax's function-level microbatching) against Optax."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt
from eqopt.microbatching import AccumulationType as A

from .helpers import assert_trees_allclose


def per_example(w, x, y):
    return x * y, x / y * w


def summed(w, x, y):
    return jnp.sum(w + x + 2 * y, axis=0)


def averaged(w, x, y):
    return jnp.mean(w * x), {"key": jnp.mean(y)}


def everything(w, x, y):
    return {
        "concat": per_example(w, x, y),
        "sum": summed(w, x, y),
        "mean": averaged(w, x, y),
    }


CASES = {
    "concat": (per_example, "CONCAT"),
    "sum": (summed, "SUM"),
    "mean": (averaged, "MEAN"),
    "running_mean": (averaged, "RUNNING_MEAN"),
    "tree_of_types": (everything, {"concat": "CONCAT", "sum": "SUM", "mean": "MEAN"}),
}


def _types(spec, module):
    return jax.tree.map(lambda name: getattr(module.AccumulationType, name), spec)


def _data():
    key = jr.key(0)
    x = jr.normal(jr.fold_in(key, 1), (10, 3))
    return jnp.asarray(0.5), x, jr.uniform(jr.fold_in(key, 2), (10, 3)) + 1


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("size", [1, 2, 5, 10])
def test_microbatch_matches_optax_and_the_whole_batch(name, size):
    fun, spec = CASES[name]
    w, x, y = _data()
    ours = eqopt.microbatch(fun, (1, 2), size, _types(spec, eqopt.microbatching))
    theirs = optax.microbatch(fun, (1, 2), size, _types(spec, optax.microbatching))
    assert_trees_allclose(jax.jit(ours)(w, x, y), theirs(w, x, y), rtol=0, atol=0)
    if size == 10:  # one microbatch: the function itself
        assert_trees_allclose(ours(w, x, y), fun(w, x, y), rtol=1e-6)


def test_keyword_batch_arguments_in_axes_and_early_stop():
    w, x, y = _data()
    fun = lambda w, x, *, z: jnp.sum(w + x + 2 * z, axis=1)
    kwargs = dict(argnames="z", in_axes=1, num_real_microbatches=jnp.asarray(2))
    ours = eqopt.microbatch(fun, 1, 1, A.SUM, **kwargs)
    theirs = optax.microbatch(
        fun, 1, 1, optax.microbatching.AccumulationType.SUM, **kwargs
    )
    assert_trees_allclose(ours(w, x.T, z=y.T), theirs(w, x.T, z=y.T), rtol=0, atol=0)
    np.testing.assert_allclose(ours(w, x.T, z=y.T), fun(w, x.T[:, :2], z=y.T[:, :2]))


@pytest.mark.parametrize("accumulator", ["CONCAT", "SUM", "MEAN"])
def test_micro_vmap_matches_optax(accumulator):
    w, x, y = _data()
    fun = lambda x, w, y: (x * w + y, jnp.sum(x))
    ours = eqopt.microbatching.micro_vmap(
        fun, (0, None, 0), microbatch_size=5, accumulator=getattr(A, accumulator)
    )
    theirs = optax.microbatching.micro_vmap(
        fun,
        (0, None, 0),
        microbatch_size=5,
        accumulator=getattr(optax.microbatching.AccumulationType, accumulator),
    )
    assert_trees_allclose(ours(x, w, y), theirs(x, w, y), rtol=1e-6)


def _loss(params, features, targets):
    return 0.5 * jnp.mean((features @ params["w"] + params["b"] - targets) ** 2)


@pytest.mark.parametrize("keep_batch_dim", [True, False])
def test_micro_grad_matches_optax(keep_batch_dim):
    key = jr.key(3)
    params = {"w": jr.normal(key, (3,)), "b": jnp.asarray(0.1)}
    features, targets = jr.normal(jr.fold_in(key, 1), (8, 3)), jnp.arange(8.0)
    kwargs = dict(
        argnums=0,
        batch_argnums=(1, 2),
        keep_batch_dim=keep_batch_dim,
        microbatch_size=4,
        transform_fn=lambda g: (g, jax.tree.map(jnp.square, g)),
        metrics_fn=optax.tree.norm,
    )
    ours = eqopt.microbatching.micro_grad(_loss, accumulator=A.MEAN, **kwargs)
    theirs = optax.microbatching.micro_grad(
        _loss, accumulator=optax.microbatching.AccumulationType.MEAN, **kwargs
    )
    (g, sq), aux = ours(params, features, targets)
    (g_ref, sq_ref), aux_ref = theirs(params, features, targets)
    assert_trees_allclose((g, sq), (g_ref, sq_ref), rtol=1e-6)
    assert_trees_allclose(tuple(aux), tuple(aux_ref), rtol=1e-6)
    # The mean of per-example gradients is the gradient of the batch's mean loss.
    assert_trees_allclose(g, jax.grad(_loss)(params, features, targets), rtol=1e-5)


def test_micro_grad_takes_an_equinox_model_without_filtering():
    model = eqx.nn.MLP(3, 1, 8, 1, key=jr.key(0))  # has `jax.nn.relu` among its leaves
    x, y = jr.normal(jr.key(1), (12, 3)), jr.normal(jr.key(2), (12, 1))

    def loss(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    grad_fn = eqopt.microbatching.micro_grad(
        loss, batch_argnums=(1, 2), microbatch_size=4, accumulator=A.MEAN
    )
    grads, aux = eqx.filter_jit(grad_fn)(model, x, y)
    assert_trees_allclose(grads, eqx.filter_grad(loss)(model, x, y), rtol=1e-5)
    assert aux.values.shape == (12,)
    opt = eqopt.adam(1e-2)
    updates, _ = opt.update(grads, opt.init(model), model)
    assert eqopt.apply_updates(model, updates).activation is jax.nn.relu


def test_a_microbatched_gradient_is_the_big_batch_gradient_for_any_optimiser():
    key = jr.key(4)
    params = {"w": jr.normal(key, (3,)), "b": jnp.asarray(0.0)}
    features, targets = jr.normal(jr.fold_in(key, 1), (64, 3)), jr.normal(key, (64,))
    grad = eqopt.microbatch(jax.grad(_loss), (1, 2), 8, A.MEAN)
    opt = eqopt.adamw(1e-2)
    updates, _ = opt.update(grad(params, features, targets), opt.init(params), params)
    whole = jax.grad(_loss)(params, features, targets)
    expected, _ = opt.update(whole, opt.init(params), params)
    assert_trees_allclose(updates, expected, rtol=1e-5, atol=1e-7)


def test_reshape_batch_axis_matches_optax():
    x = jnp.arange(24.0).reshape(2, 12)
    ours = eqopt.microbatching.reshape_batch_axis({"x": x}, 3, axis=1)
    theirs = optax.microbatching.reshape_batch_axis({"x": x}, 3, axis=1)
    assert_trees_allclose(ours, theirs, rtol=0, atol=0)
    assert ours["x"].shape == (2, 4, 3)


def test_errors_name_the_problem():
    w, x, y = _data()
    with pytest.raises(ValueError, match="batch_size=10 must be divisible by"):
        eqopt.microbatch(summed, (1, 2), 3)(w, x, y)
    with pytest.raises(ValueError, match="of one size"):
        eqopt.microbatch(summed, (1, 2), 2)(w, x, y[:8])
    with pytest.raises(ValueError, match="need floating-point values"):
        eqopt.microbatch(lambda i: i, 0, 2, A.MEAN)(jnp.arange(4))
    with pytest.raises(ValueError, match="`accumulator` must be"):
        eqopt.microbatch(summed, (1, 2), 2, "sum")(w, x, y)
    with pytest.raises(NotImplementedError, match="out_axes"):
        eqopt.microbatching.micro_vmap(summed, out_axes=1)
    assert eqopt.microbatch(summed, 1, None) is summed

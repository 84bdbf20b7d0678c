"""Sharded parameters (eight CPU devices, see `conftest.py`), over the whole registry.

A jitted step on parameters laid out across a device mesh gives the numbers of the
unsharded step, and its parameters and optimiser state keep the parameters' layout;
inside `shard_map`, an elementwise optimiser updates each device's block on its own.
"""

import functools as ft

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import eqopt

from .helpers import assert_trees_allclose
from .registry import ids, REGISTRY


MESH = jax.make_mesh((4, 2), ("data", "model"))
SPECS = {"w": P("data", "model"), "b": P("model"), "s": P()}


def _params():
    keys = jr.split(jr.key(0), 3)
    return {
        "w": jr.normal(keys[0], (8, 6)),
        "b": jr.normal(keys[1], (6,)),
        "s": jr.normal(keys[2], ()),
    }


def _shard(tree):
    return {
        k: jax.device_put(v, NamedSharding(MESH, SPECS[k])) for k, v in tree.items()
    }


def _loss(p):
    return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum(p["b"] ** 2) + p["s"] ** 2


@ft.partial(jax.jit, static_argnums=0)
def _steps(case, opt, params, state):
    for _ in range(3):
        updates, state = case.update(opt, state, params, _loss)
        params = eqopt.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_sharded_step_keeps_layout_and_numbers(case):
    opt = case.make(case.h or 0.1)
    if not case.descends:
        # A transformation that is no descent method (a scaling, momentum alone) gets a
        # small step, so that three steps stay well-conditioned: growing parameters in
        # `sin` amplify the sharded reductions' other summation order.
        opt = eqopt.chain(opt, eqopt.scale(-0.01))
    params = _params()
    expected, _ = _steps(case, opt, params, opt.init(params))
    sharded = _shard(params)
    new, state = _steps(case, opt, sharded, opt.init(sharded))
    assert_trees_allclose(new, expected, rtol=1e-6, atol=1e-6)
    for name, leaf in new.items():
        assert leaf.sharding.is_equivalent_to(sharded[name].sharding, leaf.ndim), name
    # Moments (every floating state leaf that is not a scalar; not a PRNG key's data)
    # are laid out like their parameter. Factored or per-axis statistics have other
    # shapes: their numbers are checked through the parameters above.
    layout = {p.shape: p.sharding for p in sharded.values()}
    for leaf in jax.tree.leaves(state):
        inexact = jnp.issubdtype(leaf.dtype, jnp.inexact)
        if leaf.ndim and inexact and case.moments_like_params:
            assert leaf.sharding.is_equivalent_to(layout[leaf.shape], leaf.ndim)


def test_shard_map_updates_each_block_locally():
    opt = eqopt.adamw(1e-2, weight_decay=1e-3)
    params = _params()

    def local_steps(params, opt):
        state = opt.init(params)
        for _ in range(3):
            grads = jax.grad(_loss)(params)  # elementwise loss: local gradients
            updates, state = opt.update(grads, state, params)
            params = eqopt.apply_updates(params, updates)
        return params

    sharded_steps = jax.jit(
        jax.shard_map(local_steps, mesh=MESH, in_specs=(SPECS, P()), out_specs=SPECS)
    )
    new = sharded_steps(_shard(params), opt)
    expected = jax.jit(local_steps)(params, opt)
    assert_trees_allclose(new, expected, rtol=1e-6, atol=1e-6)

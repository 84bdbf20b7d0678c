"""Sharded leaves (eight CPU devices, see `tests/conftest.py`): results keep shardings."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import eqopt


tu = eqopt.tree_utils


def _tree(mesh):
    x = jnp.arange(16.0).reshape(8, 2) / 10
    y = jnp.cos(jnp.arange(8.0))
    return {
        "x": jax.device_put(x, NamedSharding(mesh, P("d", None))),
        "y": jax.device_put(y, NamedSharding(mesh, P("d"))),
    }


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit])
def test_reductions_on_sharded_leaves(axis_type):
    mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
    tree = _tree(mesh)
    expected = sum(float(np.sum(np.asarray(a) ** 2)) for a in jax.tree.leaves(tree))
    with jax.set_mesh(mesh):
        vdot = jax.jit(tu.tree_vdot)(tree, tree)
        norm = jax.jit(tu.tree_norm)(tree)
    # Compared as NumPy values: eager ops on explicitly sharded results need the mesh.
    np.testing.assert_allclose(np.asarray(vdot), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(norm), np.sqrt(expected), rtol=1e-6)


def test_random_like_keeps_sharding():
    mesh = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Explicit,))
    tree = _tree(mesh)
    with jax.set_mesh(mesh):
        noise = jax.jit(lambda k, t: tu.tree_random_like(k, t))(jr.key(0), tree)
    for leaf, ref in zip(jax.tree.leaves(noise), jax.tree.leaves(tree)):
        assert leaf.sharding.is_equivalent_to(ref.sharding, leaf.ndim)

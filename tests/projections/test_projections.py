"""eqopt.projections against optax.projections, plus edge inputs and error messages."""

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest
from jaxtyping import TypeCheckError

import eqopt
from eqopt import projections as P

from ..helpers import assert_trees_allclose, random_tree, tree_isfinite


def _key(name: str):
    return jr.key(sum(map(ord, name)))  # one fixed key per case


def _tree(key, scale=1.0):
    return jax.tree.map(lambda x: scale * x, random_tree(key))


def _positive_tree(key):
    return jax.tree.map(lambda x: jnp.abs(x) + 0.1, random_tree(key))


def _per_leaf(optax_fn):
    """An oracle applying a leafwise Optax projection to each leaf separately."""
    return lambda tree, *args, **kwargs: jax.tree.map(
        lambda x: optax_fn(x, *args, **kwargs), tree
    )


@dataclasses.dataclass(frozen=True)
class Case:
    eqopt_fn: Callable
    optax_fn: Callable
    build: Callable[[Any], tuple]  # key -> positional arguments
    kwargs: dict = dataclasses.field(default_factory=dict)


def _box_args(key):
    k1, k2, k3 = jr.split(key, 3)
    lower = jax.tree.map(lambda x: x - 0.5, random_tree(k2))
    upper = jax.tree.map(lambda lo, d: lo + jnp.abs(d), lower, random_tree(k3))
    return _tree(k1), lower, upper


def _pair(key, scale=1.0):
    k1, k2 = jr.split(key)
    return _tree(k1, scale), _tree(k2)


CASES = {
    "non_negative": Case(
        P.projection_non_negative,
        optax.projections.projection_non_negative,
        lambda k: (_tree(k),),
    ),
    "box": Case(P.projection_box, optax.projections.projection_box, _box_args),
    "hypercube_tree": Case(
        P.projection_hypercube,
        _per_leaf(optax.projections.projection_hypercube),
        lambda k: (_tree(k, 2.0),),
    ),
    "simplex": Case(
        P.projection_simplex,
        optax.projections.projection_simplex,
        lambda k: (_tree(k),),
    ),
    "l1_sphere": Case(
        P.projection_l1_sphere,
        optax.projections.projection_l1_sphere,
        lambda k: (_tree(k),),
        {"scale": 2.0},
    ),
    "l1_ball_outside": Case(
        P.projection_l1_ball,
        optax.projections.projection_l1_ball,
        lambda k: (_tree(k),),
    ),
    "l2_sphere": Case(
        P.projection_l2_sphere,
        optax.projections.projection_l2_sphere,
        lambda k: (_tree(k),),
        {"scale": 0.7},
    ),
    "l2_ball_outside": Case(
        P.projection_l2_ball,
        optax.projections.projection_l2_ball,
        lambda k: (_tree(k),),
        {"scale": 1.5},
    ),
    "linf_ball": Case(
        P.projection_linf_ball,
        optax.projections.projection_linf_ball,
        lambda k: (_tree(k),),
        {"scale": 0.5},
    ),
    "vector": Case(P.projection_vector, optax.projections.projection_vector, _pair),
    "hyperplane": Case(
        P.projection_hyperplane,
        optax.projections.projection_hyperplane,
        lambda k: (*_pair(k), 0.7),
    ),
    "halfspace_outside": Case(
        P.projection_halfspace,
        optax.projections.projection_halfspace,
        lambda k: (*_pair(k), -5.0),
    ),
}


def _tangent(x):
    """A fixed random direction shaped like `x`, made outside `jit`."""
    return jax.tree.map(lambda v: jr.normal(jr.key(1), jnp.shape(v)), x)


def _value_and_derivative(fn, case, args, tangent):
    """`fn`'s projection and its directional derivative along `tangent` (a JVP)."""
    x, *rest = args
    return jax.jvp(lambda x: fn(x, *rest, **case.kwargs), (x,), (tangent,))


@pytest.mark.parametrize("name", CASES)
def test_matches_optax(name):
    """Values and derivatives (the simplex's custom JVP included) agree with Optax."""
    case = CASES[name]
    args = case.build(_key(name))

    @jax.jit  # one compilation for both libraries: much faster than eager dispatch
    def both(args, tangent):
        ours = _value_and_derivative(case.eqopt_fn, case, args, tangent)
        with jax.numpy_dtype_promotion("standard"):
            return ours, _value_and_derivative(case.optax_fn, case, args, tangent)

    ours, expected = both(args, _tangent(args[0]))
    assert_trees_allclose(ours, expected)


def _bfloat16(x):
    return x.astype(jnp.bfloat16) if isinstance(x, jax.Array) else x


@pytest.mark.parametrize("name", CASES)
def test_keeps_structure_shapes_and_dtypes(name):
    """bfloat16 leaves stay bfloat16 (scalars are computed in float32)."""
    case = CASES[name]
    args = jax.tree.map(_bfloat16, case.build(_key(name)))
    out = jax.eval_shape(lambda *a: case.eqopt_fn(*a, **case.kwargs), *args)
    expected = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), args[0])
    assert out == expected


def _zeros(key):
    return jax.tree.map(jnp.zeros_like, random_tree(key))


def _norm(tree, ord):
    leaves = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])
    return jnp.linalg.norm(leaves, ord)


def _in_simplex(key):
    x = jax.tree.map(jnp.abs, random_tree(key))
    total = sum(jnp.sum(v) for v in jax.tree.leaves(x))
    return jax.tree.map(lambda v: v / total, x)


@dataclasses.dataclass(frozen=True)
class Edge:
    project: Callable  # x -> projection of x
    build: Callable  # key -> x
    fixed_point: bool  # whether x is already in the set
    on_set: Callable | None = None  # projection -> bool: does it satisfy the constraint


_ZERO_A = lambda k: _zeros(k)  # noqa: E731
EDGES = {
    "l2_sphere_at_zero": Edge(
        lambda x: P.projection_l2_sphere(x, 2.0),
        _zeros,
        False,
        lambda p: jnp.allclose(_norm(p, 2), 2.0),
    ),
    "l2_ball_at_zero": Edge(P.projection_l2_ball, _zeros, True),
    "l2_ball_radius_zero": Edge(
        lambda x: P.projection_l2_ball(x, 0.0),
        random_tree,
        False,
        lambda p: _norm(p, 2) == 0,
    ),
    "l1_sphere_with_zero_entries": Edge(
        P.projection_l1_sphere,
        lambda k: jax.tree.map(
            lambda x: jnp.where(x > 0, 0.01 * x, 0.0), random_tree(k)
        ),
        False,
        lambda p: jnp.allclose(_norm(p, 1), 1.0),
    ),
    "l1_ball_at_zero": Edge(P.projection_l1_ball, _zeros, True),
    "simplex_inside": Edge(P.projection_simplex, _in_simplex, True),
    "vector_zero_direction": Edge(
        lambda x: P.projection_vector(x, jax.tree.map(jnp.zeros_like, x)),
        random_tree,
        False,
        lambda p: _norm(p, 2) == 0,
    ),
    "halfspace_inside": Edge(
        lambda x: P.projection_halfspace(x, jax.tree.map(jnp.ones_like, x), 100.0),
        random_tree,
        True,
    ),
    "halfspace_zero_normal": Edge(
        lambda x: P.projection_halfspace(x, jax.tree.map(jnp.zeros_like, x), 1.0),
        random_tree,
        True,
    ),
}


@pytest.mark.parametrize("name", EDGES)
def test_edge_inputs_are_finite(name):
    """Values and gradients are finite at zero trees, inside the set, on its boundary."""
    edge = EDGES[name]
    x = edge.build(_key(name))

    def objective(x):
        out = edge.project(x)
        return sum(jnp.sum(v**2) for v in jax.tree.leaves(out)), out

    grad, out = jax.jit(jax.grad(objective, has_aux=True))(x)
    assert tree_isfinite(out)
    assert tree_isfinite(grad)
    if edge.fixed_point:
        assert_trees_allclose(out, x)
    if edge.on_set is not None:
        assert edge.on_set(out)


PUBLIC = [name for name in dir(optax.projections) if name.startswith("projection_")]


def test_covers_optax_namespace():
    assert set(PUBLIC) <= set(dir(P))
    assert {c.eqopt_fn.__name__ for c in CASES.values()} == set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_signature_matches_optax(name):
    ours = inspect.signature(getattr(P, name)).parameters
    theirs = inspect.signature(getattr(optax.projections, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


def test_mismatched_leaf_shape_names_the_argument():
    x = random_tree(jr.key(0))
    a = {**random_tree(jr.key(1)), "b": jnp.ones(4)}
    with pytest.raises(TypeCheckError, match="parameter 'a'"):
        P.projection_vector(x, a)


@pytest.mark.parametrize(
    "fn", [P.projection_simplex, P.projection_l1_ball, P.projection_l2_ball]
)
def test_negative_radius_raises(fn):
    with pytest.raises(ValueError, match=rf"`{fn.__name__}\(scale=...\)` must be in"):
        fn(random_tree(jr.key(0)), -1.0)


def test_reachable_from_the_top_level():
    assert eqopt.projections.projection_l2_ball is P.projection_l2_ball

"""eqopt.assignment against optax.assignment and against a brute-force search.

Random costs come from NumPy (`jax.random` would compile a sampler per shape), and each
shape is one batch of matrices run through one compiled function: compiling is what
costs time here, and the algorithm's code paths depend on the shape (square, wide,
tall), not on the values.
"""

import dataclasses
import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jaxtyping import TypeCheckError

import eqopt
from eqopt import assignment as A


FUNCTIONS = ["hungarian_algorithm", "base_hungarian_algorithm"]

OPTAX_EXAMPLE = np.array(  # from Optax's docstring: optimal cost 265
    [
        [90, 80, 75, 70],
        [35, 85, 55, 65],
        [125, 95, 90, 95],
        [45, 110, 95, 115],
        [50, 100, 90, 100],
    ],
    np.float32,
)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Cost matrices of one shape, by kind of values."""

    continuous: np.ndarray  # a unique optimum (almost surely)
    ties: np.ndarray  # small integers: many optimal assignments
    forbidden: np.ndarray  # some entries `inf`, a finite assignment exists


def _batch(shape, seed, extra_ties=()):
    rng = np.random.default_rng(seed)
    n, m = shape
    ties = rng.integers(0, 3, (12, n, m)).astype(np.float32)
    forbidden = rng.uniform(size=(8, n, m)).astype(np.float32)
    mask = (rng.uniform(size=forbidden.shape) < 0.35) & ~np.eye(n, m, dtype=bool)
    return Batch(
        continuous=rng.standard_normal((12, n, m)).astype(np.float32),
        ties=np.concatenate(
            [ties, np.asarray(extra_ties, np.float32).reshape(-1, n, m)]
        ),
        forbidden=np.where(mask, np.inf, forbidden).astype(np.float32),
    )


BATCHES = {
    "square_5x5": _batch((5, 5), 0),
    "wide_4x6": _batch((4, 6), 1),
    "tall_5x4": _batch((5, 4), 2, extra_ties=[OPTAX_EXAMPLE]),
}


def _brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(cost[range(n), c].sum() for c in itertools.permutations(range(m), n))
    return min(cost[r, range(m)].sum() for r in itertools.permutations(range(n), m))


def _costs(costs, pairs):
    """The cost of each assignment of a batch."""
    rows, cols = map(np.asarray, pairs)
    return np.array([c[i, j].sum() for c, i, j in zip(costs, rows, cols)])


def _run(fn, costs):
    """`fn` on each matrix of a batch (one compilation), results stacked."""
    pairs = [fn(c) for c in costs]
    return tuple(np.stack([np.asarray(p[k]) for p in pairs]) for k in range(2))


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("shape", BATCHES)
def test_optimal_and_matches_optax(shape, function):
    """Under `jit`: min(n, m) distinct pairs at the brute-force optimal cost, and
    Optax's pairs in Optax's order (for `hungarian_algorithm` even with ties)."""
    batch = BATCHES[shape]
    ours_fn = jax.jit(getattr(A, function))
    theirs_fn = jax.jit(getattr(optax.assignment, function))
    n, m = batch.continuous.shape[1:]
    ours = [_run(ours_fn, costs) for costs in dataclasses.astuple(batch)]
    for costs, (rows, cols) in zip(dataclasses.astuple(batch), ours):
        assert rows.shape == cols.shape == (len(costs), min(n, m))
        for i, j in zip(rows, cols):
            assert len(set(i)) == len(set(j)) == min(n, m)
            assert 0 <= i.min() and i.max() < n and 0 <= j.min() and j.max() < m
        expected = [_brute_force(c) for c in costs]
        np.testing.assert_allclose(_costs(costs, (rows, cols)), expected, rtol=1e-6)
    # Optax is not run on `inf` costs (its search is not guaranteed to end there).
    with jax.numpy_dtype_promotion("standard"):
        theirs = [_run(theirs_fn, costs) for costs in (batch.continuous, batch.ties)]
    for a, b in zip(ours[0], theirs[0]):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    if function == "hungarian_algorithm":
        for a, b in zip(ours[1], theirs[1]):
            np.testing.assert_array_equal(a, b)
    else:  # Optax's base version is Crouse's variant, which breaks ties its own way.
        np.testing.assert_array_equal(
            _costs(batch.ties, ours[1]), _costs(batch.ties, theirs[1])
        )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_vmap_matches_one_at_a_time(function):
    costs = BATCHES["wide_4x6"].ties
    batched = jax.jit(jax.vmap(getattr(A, function)))(costs)
    for a, b in zip(batched, _run(jax.jit(getattr(A, function)), costs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_empty_matches_optax(function):
    cost = jnp.zeros((0, 3))
    for a, b in zip(
        getattr(A, function)(cost), getattr(optax.assignment, function)(cost)
    ):
        assert a.shape == b.shape == (0,) and a.dtype == b.dtype


def test_covers_optax_namespace():
    public = {n for n in dir(optax.assignment) if not n.startswith("_")}
    assert public == set(FUNCTIONS) <= set(dir(A))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_signature_matches_optax(function):
    ours = inspect.signature(getattr(A, function)).parameters
    theirs = inspect.signature(getattr(optax.assignment, function)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_vector_cost_names_the_argument(function):
    with pytest.raises(TypeCheckError, match="parameter 'cost_matrix'"):
        getattr(A, function)(jnp.ones(4))


def test_reachable_from_the_top_level():
    assert eqopt.assignment.hungarian_algorithm is A.hungarian_algorithm

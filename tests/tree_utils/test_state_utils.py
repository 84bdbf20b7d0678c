"""`tree_get`, `tree_set`, `tree_get_all_with_path` and `tree_map_params` against Optax.

Each row holds a tree for eqopt and the matching tree for Optax: either the very same
pytree of dicts and `NamedTuple`s (Optax states), or an eqopt state of Modules beside
the Optax state of the same optimiser. Paths are compared as `keystr` strings, values by
their leaves.
"""

import dataclasses
import functools as ft
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import eqopt

from ..helpers import assert_trees_allclose, random_tree
from .test_parity import normalise


tu = eqopt.tree_utils
otu = optax.tree_utils
PARAMS = random_tree(jr.key(0))


class Inner(NamedTuple):
    a: Any
    d: Any


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    ours: Callable[[], Any]
    theirs: Callable[[], Any]

    def __post_init__(self):
        # Trees are never changed in place: build each once.
        object.__setattr__(self, "ours", ft.cache(self.ours))
        object.__setattr__(self, "theirs", ft.cache(self.theirs))


def _same(build):
    return build, build


def _nested():
    return {"a": {"a": 1.0, "b": 2.0}, "c": Inner(a=3.0, d={"a": jnp.ones(2)})}


ROWS = [
    Row("optax-adam", *_same(lambda: optax.adam(1e-3).init(PARAMS))),
    Row(
        "optax-noise-chain",
        *_same(
            lambda: optax.chain(
                optax.add_noise(1.0, 0.9, key=0), optax.scale_by_adam()
            ).init(PARAMS)
        ),
    ),
    Row(
        "optax-inject",
        *_same(
            lambda: optax.inject_hyperparams(optax.sgd)(
                learning_rate=lambda count: 1 / (count + 1)
            ).init(PARAMS)
        ),
    ),
    Row("nested-dicts", *_same(_nested)),
    Row(
        "eqopt-adam",
        lambda: eqopt.adam(1e-3).init(PARAMS),
        lambda: optax.adam(1e-3).init(PARAMS),
    ),
    Row(
        "eqopt-chain",
        lambda: eqopt.chain(
            eqopt.scale_by_adam(), eqopt.scale_by_rms(), eqopt.trace(0.9)
        ).init(PARAMS),
        lambda: optax.chain(
            optax.scale_by_adam(), optax.scale_by_rms(), optax.trace(0.9)
        ).init(PARAMS),
    ),
]
KEYS = ["count", "mu", "trace", "ScaleByAdamState", "learning_rate", "a", "missing"]


def by_state(name):
    """A filter keeping values that are fields of the state class `name`."""
    return lambda path, value: (
        bool(path) and (getattr(path[-1], "tuple_name", None) == name)
    )


FILTERS = {"none": None, "adam-only": by_state("ScaleByAdamState")}


def flat(found):
    return [(jtu.keystr(path), normalise(value)) for path, value in found]


def assert_found_equal(ours, theirs):
    assert [p for p, _ in flat(ours)] == [p for p, _ in flat(theirs)]
    for (_, a), (_, b) in zip(flat(ours), flat(theirs)):
        assert_trees_allclose(jax.tree.leaves(a), jax.tree.leaves(b))


def assert_trees_match(ours, theirs):
    """Same leaves at the same `keystr` paths (Modules and NamedTuples alike)."""
    a = jtu.tree_leaves_with_path(normalise(ours))
    b = jtu.tree_leaves_with_path(normalise(theirs))
    assert [jtu.keystr(p) for p, _ in a] == [jtu.keystr(p) for p, _ in b]
    assert_trees_allclose([x for _, x in a], [x for _, x in b])


GRID = [(r, k, f) for r in ROWS for k in KEYS for f in FILTERS]
GRID_IDS = [f"{r.id}-{k}-{f}" for r, k, f in GRID]


@pytest.mark.parametrize("row, key, filtering", GRID, ids=GRID_IDS)
def test_get_all_with_path(row, key, filtering):
    fil = FILTERS[filtering]
    ours = tu.tree_get_all_with_path(row.ours(), key, fil)
    theirs = otu.tree_get_all_with_path(row.theirs(), key, fil)
    assert_found_equal(ours, theirs)


DEFAULT = jnp.asarray(-1.0)


def _outcome(fn):
    try:
        return fn(), None
    except KeyError as e:
        return None, e


@pytest.mark.parametrize("row, key, filtering", GRID, ids=GRID_IDS)
def test_get(row, key, filtering):
    fil = FILTERS[filtering]
    ours, our_error = _outcome(lambda: tu.tree_get(row.ours(), key, DEFAULT, fil))
    theirs, their_error = _outcome(
        lambda: otu.tree_get(row.theirs(), key, DEFAULT, fil)
    )
    assert (our_error is None) == (their_error is None)
    if our_error is None:
        assert_trees_allclose(
            jax.tree.leaves(normalise(ours)), jax.tree.leaves(normalise(theirs))
        )


# Optax's `tree_set` does not descend into a dict below a matched node, though its
# `tree_get_all_with_path` finds the matches there: in `inject_hyperparams`' state the
# schedule's `count` (in `hyperparams_states`) is left unchanged. eqopt sets every
# value that `tree_get_all_with_path` finds.
OPTAX_SET_QUIRKS = {"optax-inject-count-none"}


def _all_set(tree, key, fil, value):
    found = otu.tree_get_all_with_path(tree, key, fil)
    return all(bool(np.all(np.asarray(v) == np.asarray(value))) for _, v in found)


@pytest.mark.parametrize("row, key, filtering", GRID, ids=GRID_IDS)
def test_set(row, key, filtering):
    fil = FILTERS[filtering]
    value = jnp.asarray(7.0)
    ours, our_error = _outcome(lambda: tu.tree_set(row.ours(), fil, **{key: value}))
    theirs, their_error = _outcome(
        lambda: otu.tree_set(row.theirs(), fil, **{key: value})
    )
    assert (our_error is None) == (their_error is None)
    if our_error is not None:
        return
    if f"{row.id}-{key}-{filtering}" in OPTAX_SET_QUIRKS:
        assert not _all_set(theirs, key, fil, value)
        assert _all_set(ours, key, fil, value)
        return
    assert_trees_match(ours, theirs)
    assert_found_equal(
        tu.tree_get_all_with_path(ours, key, fil),
        otu.tree_get_all_with_path(theirs, key, fil),
    )


def test_set_several_keys_and_a_whole_state():
    ours = tu.tree_set(
        eqopt.adam(1e-3).init(PARAMS), count=jnp.asarray(3), nu=None, mu=None
    )
    assert isinstance(ours[0], eqopt.ScaleByAdamState)
    assert int(ours[0].count) == 3 and ours[0].mu is None
    replaced = tu.tree_set(eqopt.adam(1e-3).init(PARAMS), ScaleByAdamState="x")
    assert replaced[0] == "x"


def test_set_reaches_matches_below_a_matched_node():
    """Optax leaves `count` inside the tuple unchanged, though `tree_get` finds it."""
    tree = {"count": 1, "inner": (Inner(a=2, d=()),)}
    assert len(tu.tree_get_all_with_path(tree, "a")) == 1
    new = tu.tree_set(tree, a=5, count=6)
    assert new == {"count": 6, "inner": (Inner(a=5, d=()),)}


def test_get_and_set_on_an_optimiser_module():
    """eqopt optimisers are pytrees: their hyperparameters can be found and set."""
    opt = eqopt.chain(eqopt.scale_by_adam(b1=0.8), eqopt.scale_by_rms())
    assert float(tu.tree_get(opt, "b1")) == pytest.approx(0.8)
    new = tu.tree_set(opt, b1=jnp.asarray(0.5))
    assert float(new.transforms[0].b1) == 0.5
    assert type(new) is type(opt)
    paths = [jtu.keystr(p) for p, _ in tu.tree_get_all_with_path(opt, "eps")]
    assert paths == [
        "Chain.transforms[0]ScaleByAdam.eps",
        "Chain.transforms[1]ScaleByRMS.eps",
    ]
    with pytest.raises(KeyError, match="multiple values for 'eps'"):
        tu.tree_get(opt, "eps")
    with pytest.raises(KeyError, match="Found no values matching 'nope'"):
        tu.tree_set(opt, nope=1.0)


def test_named_tuple_key():
    key = tu.NamedTupleKey("ScaleByAdamState", "count")
    assert str(key) == "ScaleByAdamState.count"
    assert key == tu.NamedTupleKey("ScaleByAdamState", "count")
    assert hash(key) == hash(tu.NamedTupleKey("ScaleByAdamState", "count"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.name = "mu"  # pyright: ignore


# tree_map_params


MAP_ROWS = [
    ("adam", lambda m: m.adam(1e-3)),
    ("sgd-momentum", lambda m: m.sgd(1e-3, momentum=0.9)),
    ("rmsprop", lambda m: m.rmsprop(1e-3)),
    ("chain", lambda m: m.chain(m.scale_by_adam(), m.trace(0.9), m.scale(-1.0))),
]


@pytest.mark.parametrize("name, make", MAP_ROWS, ids=[r[0] for r in MAP_ROWS])
@pytest.mark.parametrize("use_init", [True, False], ids=["initable", "init-fn"])
def test_map_params_matches_optax(name, make, use_init):
    scales = jax.tree.map(lambda x: jnp.full_like(x, 2.0), PARAMS)

    def run(lib, map_params):
        opt = make(lib)
        # Distinct non-zero moments, the same for both libraries.
        state = jax.tree.map(
            lambda x: x + 1.5 if eqx.is_inexact_array(x) else x, opt.init(PARAMS)
        )
        return map_params(
            opt if use_init else opt.init,
            lambda p, s: p * s + 1,
            state,
            scales,
            transform_non_params=lambda x: jnp.asarray(x) - 10,
        )

    ours = run(eqopt, tu.tree_map_params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = run(optax, otu.tree_map_params)
    assert_trees_match(ours, theirs)


def test_map_params_on_an_equinox_model():
    """The `None` state of an activation function stays `None`, whatever `rest` has."""
    model = eqx.nn.MLP(3, 2, 4, 2, key=jr.key(0))
    opt = eqopt.adam(1e-3)
    state = opt.init(model)
    specs = jax.tree.map(lambda _: "spec", model)
    out = tu.tree_map_params(
        opt, lambda _, spec: spec, state, specs, transform_non_params=lambda _: "rep"
    )
    adam = out[0]
    assert adam.count == "rep"
    assert adam.mu.activation is None and adam.nu.final_activation is None
    assert adam.mu.layers[0].weight == "spec"
    assert jax.tree.leaves(adam.nu) == ["spec"] * 6


def test_map_params_on_shapes():
    """A state of `ShapeDtypeStruct`s (from `jax.eval_shape`) maps like a real one."""
    opt = eqopt.adam(1e-3)
    shapes = jax.eval_shape(opt.init, PARAMS)
    out = tu.tree_map_params(
        opt, lambda s: s.shape, shapes, transform_non_params=lambda _: "count"
    )
    assert out[0].count == "count"
    assert out[0].mu["w"] == (4, 3) and out[0].nu["scalar"] == ()


def test_map_params_is_leaf():
    opt = eqopt.adam(1e-3)
    state = opt.init(PARAMS)
    out = tu.tree_map_params(
        opt, lambda x: "tuple", state, is_leaf=lambda x: isinstance(x, tuple)
    )
    assert out[0].mu["nested"] == "tuple"

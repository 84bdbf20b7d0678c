"""Every helper against its `optax.tree_utils` oracle, on the same random pytrees."""

import inspect
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from ..helpers import assert_trees_allclose
from .cases import CASES


def normalise(tree):
    """Keys as their raw data, dtypes and Python scalars as comparable values."""

    def leaf(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return jr.key_data(x)
        return x

    return jax.tree.map(leaf, tree)


def assert_same(actual, expected):
    if isinstance(expected, (np.dtype, type)) or isinstance(actual, np.dtype):
        assert jnp.dtype(actual) == jnp.dtype(expected)
    elif isinstance(expected, int) and not isinstance(expected, bool):
        assert type(actual) is int and actual == expected
    else:
        assert_trees_allclose(normalise(actual), normalise(expected))


def run_both(case, args, kwargs, oracle_args=None):
    """`(ours, Optax's)` results, computed in one `eqx.filter_jit`-compiled call.

    One compilation per case costs far less than compiling every eager operation of
    both libraries. Optax runs under standard dtype promotion, eqopt under the test
    suite's strict promotion. If either raises, both must raise the same type.
    """
    oracle_args = args if oracle_args is None else oracle_args

    def ours(args, kwargs):
        return case.fn(*args, **kwargs)

    def theirs(args, kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return case.oracle(*args, **kwargs)

    wrap = eqx.filter_jit if case.jit else lambda f: f
    try:
        return wrap(lambda a, o, k: (ours(a, k), theirs(o, k)))(
            args, oracle_args, kwargs
        )
    except Exception:
        try:
            wrap(theirs)(oracle_args, kwargs)
        except Exception as e:
            with pytest.raises(type(e)):
                wrap(ours)(args, kwargs)
            return None
        raise


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_optax(case):
    args, kwargs = case.build(0)
    result = run_both(case, args, kwargs)
    assert result is not None, "Optax raised"
    assert_same(*result)


# Eagerly, too (Python results, weak types), for a few rows. (Random rows and
# `tree_size` always run eagerly above.)
EAGER = ["add", "norm-ord=1-squared=True", "sum-empty", "dtype-promote", "cast"]


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.id in EAGER], ids=lambda c: c.id
)
def test_matches_optax_eagerly(case):
    args, kwargs = case.build(1)
    actual = case.fn(*args, **kwargs)
    with jax.numpy_dtype_promotion("standard"):
        expected = case.oracle(*args, **kwargs)
    assert_same(actual, expected)


def _optax_names(module):
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    )


#: eqopt's own additions to `tree_utils` (hyperparameters by name: Optax has none).
EQOPT_EXTRAS = ["tree_get_hyperparams", "tree_set_hyperparams"]


def test_public_names_match_optax():
    optax_names = _optax_names(optax.tree_utils)
    eqopt_names = _optax_names(eqopt.tree_utils)
    assert eqopt_names == sorted(optax_names + EQOPT_EXTRAS)


def test_tree_namespace_matches_optax():
    optax_names = _optax_names(optax.tree)
    assert _optax_names(eqopt.tree) == optax_names
    for name in optax_names:
        # One object at both paths.
        assert getattr(eqopt.tree, name) is getattr(eqopt.tree_utils, f"tree_{name}")


DEPRECATED = [
    "tree_scalar_mul",
    "tree_add_scalar_mul",
    "tree_l1_norm",
    "tree_l2_norm",
    "tree_linf_norm",
]


def _get(module, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(module, name)


@pytest.mark.parametrize("name", _optax_names(optax.tree_utils) + DEPRECATED)
def test_signature_matches_optax(name):
    def parameters(fn):
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(fn).parameters.values()
        ]

    ours, theirs = _get(eqopt.tree_utils, name), _get(optax.tree_utils, name)
    if inspect.isclass(theirs):
        assert [f.name for f in __import__("dataclasses").fields(ours)] == [
            f.name for f in __import__("dataclasses").fields(theirs)
        ]
    else:
        assert parameters(ours) == parameters(theirs)


@pytest.mark.parametrize("name", DEPRECATED)
def test_deprecated_names_warn_and_match(name, getkey):
    with pytest.warns(DeprecationWarning, match=name):
        ours = getattr(eqopt.tree_utils, name)
    theirs = _get(optax.tree_utils, name)
    x, y = (
        jax.tree.map(jnp.asarray, {"a": np.arange(3.0) - i, "b": 2.0}) for i in (0, 1)
    )
    args = {"tree_scalar_mul": (0.5, x), "tree_add_scalar_mul": (x, 0.5, y)}.get(
        name, (x,)
    )
    with jax.numpy_dtype_promotion("standard"):
        assert_trees_allclose(ours(*args), theirs(*args))
    with pytest.raises(AttributeError, match="no attribute 'tree_nope'"):
        eqopt.tree_utils.tree_nope  # noqa: B018


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_table_lists_every_tree_argument(case):
    """The Equinox and property tests replace exactly the `tree_args`: all of them."""
    args, _ = case.build(0)

    def is_tree(a):
        if isinstance(a, dict) and not a:  # the empty tree of some rows
            return True
        has_arrays = any(map(eqx.is_array, jax.tree.leaves(a)))
        return isinstance(a, (dict, list, tuple)) and has_arrays

    trees = [i for i, a in enumerate(args) if is_tree(a)]
    assert trees == list(case.tree_args)

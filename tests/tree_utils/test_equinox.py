"""Every helper on an Equinox model and on its `eqx.filter_grad` output, as they are.

The oracle is Optax's helper on the same trees with every non-array leaf replaced by
`None` (what a user of Optax has to do by hand with `eqx.filter`). The array leaves
must agree; each skipped leaf must follow the rule of its `Case` (`cases.py`).
"""

import functools as ft

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import eqopt

from ..helpers import assert_trees_allclose
from .cases import CASES
from .test_parity import assert_same, normalise, run_both


tu = eqopt.tree_utils


@ft.cache
def mlp(seed: int) -> eqx.nn.MLP:
    # Depth 0: one linear layer (two arrays) and two activation functions.
    return eqx.nn.MLP(3, 2, 4, 0, key=jr.key(seed))


@ft.cache
def grads_of(seed: int) -> eqx.nn.MLP:
    """The gradient of a loss with respect to `mlp(seed)`: `None` at activations."""
    x = jnp.linspace(-1.0, 1.0, 3) + seed
    return eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2)))(mlp(seed))


@ft.cache
def frozen_grads_of(seed: int) -> eqx.nn.MLP:
    """`grads_of(seed)` with the first layer frozen: `None` for its weight, too."""
    return eqx.tree_at(
        lambda g: g.layers[0].weight, grads_of(seed), None, is_leaf=lambda x: x is None
    )


def arrays_only(tree):
    return eqx.filter(tree, eqx.is_array)


# One case per helper (its first row), in each way of filling the tree arguments.
FIRST = list({case.fn: case for case in reversed(CASES)}.values())[::-1]


def _variants(case):
    """Every helper on models and on gradients (`None` at activations); helpers of
    several trees on a model with frozen gradients (`None` at some arrays, too)."""
    if len(case.tree_args) == 1 or case.fn is tu.tree_allclose:
        return ("model", "grads")
    return ("model", "model+frozen-grads")


VARIANTS = [(case, variant) for case in FIRST for variant in _variants(case)]


def _fill(case, variant, seed):
    args, kwargs = case.build(seed)
    args = list(args)
    for n, i in enumerate(case.tree_args):
        if variant == "grads":
            args[i] = grads_of(n)
        elif variant == "model+frozen-grads" and n > 0:
            args[i] = frozen_grads_of(n)
        else:
            args[i] = mlp(n)
    return args, kwargs


def check_on_trees(case, args, kwargs, expect_skipped=True):
    """Compare with Optax where every tree holds an array, then check the other leaves.

    Optax gets the trees with `None` wherever any of them lacks an array (what a user
    of Optax has to arrange by hand with `eqx.filter`); eqopt gets them as they are.
    """
    is_leaf = lambda x: x is None  # noqa: E731
    first = args[case.tree_args[0]]
    treedef = jax.tree.structure(first, is_leaf=is_leaf)
    columns = [treedef.flatten_up_to(args[i]) for i in case.tree_args]
    common = [all(eqx.is_array(c[k]) for c in columns) for k in range(len(columns[0]))]

    def on_common(tree):
        leaves = treedef.flatten_up_to(tree)
        return treedef.unflatten([x if c else None for x, c in zip(leaves, common)])

    oracle_args = list(args)
    for i in case.tree_args:
        oracle_args[i] = on_common(args[i])
    result = run_both(case, args, kwargs, oracle_args)
    if result is None:  # both refused (a sampler refusing a dtype)
        return
    actual, expected = result
    if case.skipped == "reduce":
        assert_same(actual, expected)
        return
    assert_trees_allclose(normalise(on_common(actual)), normalise(expected))

    reference = args[case.tree_args[1 if case.skipped == "moments" else 0]]
    ref_leaves = treedef.flatten_up_to(reference)
    out_leaves = treedef.flatten_up_to(actual)
    for out, ref, c in zip(out_leaves, ref_leaves, common):
        if c:
            continue
        if case.skipped == "none":
            assert out is None
        elif eqx.is_array(ref):  # kept, though a copy when it went through `jit`
            assert_trees_allclose(out, ref, rtol=0, atol=0)
        else:
            assert out is ref
    assert not all(common) or not expect_skipped


@pytest.mark.parametrize(
    "case, variant", VARIANTS, ids=[f"{c.id}-{v}" for c, v in VARIANTS]
)
def test_on_equinox_trees(case, variant):
    args, kwargs = _fill(case, variant, 0)
    # Every case has a skipped leaf here: the activation functions or their `None`s.
    check_on_trees(case, args, kwargs, expect_skipped=True)


def test_gradient_step_on_a_model():
    """`tree_add_scale(model, -lr, grads)` is plain gradient descent on a model."""
    model, grads = mlp(0), grads_of(0)
    stepped = tu.tree_add_scale(model, -0.1, grads)
    assert stepped.activation is model.activation
    assert_trees_allclose(
        stepped.layers[0].weight, model.layers[0].weight - 0.1 * grads.layers[0].weight
    )
    assert tu.tree_norm(tu.tree_sub(stepped, model)) > 0


def test_allclose_compares_non_array_leaves():
    model, grads = mlp(0), grads_of(0)
    assert bool(tu.tree_allclose(model, model))
    assert bool(tu.tree_allclose(grads, grads))
    # A `None` gradient is not an activation function.
    assert not bool(tu.tree_allclose(grads, model))
    other = eqx.tree_at(lambda m: m.activation, model, jax.nn.tanh)
    assert not bool(tu.tree_allclose(model, other))
    assert not bool(tu.tree_allclose({"a": 1.0}, {"a": None}))
    assert bool(tu.tree_allclose({"a": 1.0, "b": "x"}, {"a": 1.0 + 1e-9, "b": "x"}))

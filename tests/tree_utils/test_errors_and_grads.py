"""Readable errors for wrong inputs (one per module), and finite gradients at zero."""

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest
from jaxtyping import TypeCheckError

import eqopt

from ..helpers import assert_trees_allclose, random_tree, tree_isfinite


tu = eqopt.tree_utils
TREE = {"a": jnp.ones(3), "b": jnp.zeros(())}

# name -> (a call with one wrong argument, the name the error must give)
TYPE_ERRORS = {
    "arithmetic": (lambda: tu.tree_scale(jnp.ones(2), TREE), "scalar"),
    "reductions": (lambda: tu.tree_norm(TREE, ord=[1]), "ord"),
    "constructors": (lambda: tu.tree_full_like(TREE, "zero"), "fill_value"),
    "casting": (lambda: tu.tree_dtype(TREE, 3), "mixed_dtype_handler"),
    "moments": (lambda: tu.tree_update_moment(TREE, TREE, jnp.ones(2), 2), "decay"),
    "random": (lambda: tu.tree_split_key_like(jnp.ones(3), TREE), "rng_key"),
    "state_utils": (lambda: tu.tree_get(TREE, "a", None, "not callable"), "filtering"),
    "map_params": (lambda: tu.tree_map_params(eqopt.sgd(0.1), 3, TREE), "f"),
}


@pytest.mark.parametrize("module", list(TYPE_ERRORS))
def test_wrong_argument_names_the_parameter(module):
    call, name = TYPE_ERRORS[module]
    with pytest.raises(TypeCheckError, match=f"parameter '{name}'"):
        call()


VALUE_ERRORS = {
    "norm-ord": (lambda: tu.tree_norm(TREE, ord=3), "Unsupported ord: 3"),
    "dtype-mixed": (
        lambda: tu.tree_dtype({"a": jnp.ones(2), "b": jnp.ones(2, "bfloat16")}),
        r"Expected dtype=dtype\('float32'\) for \['b'\] but got bfloat16",
    ),
    "dtype-handler": (
        lambda: tu.tree_dtype(TREE, "median"),
        "Invalid value for mixed_dtype_handler='median'",
    ),
    "dtype-incomparable": (
        lambda: tu.tree_dtype(
            {"a": jnp.ones(2, "int8"), "b": jnp.ones(2, "uint8")}, "highest"
        ),
        "Cannot compare dtype",
    ),
    "vdot-shapes": (
        lambda: tu.tree_vdot(TREE, {"a": jnp.ones(2), "b": jnp.zeros(())}),
        r"leaves at `\['a'\]` have shapes \(3,\) in `tree_x` and \(2,\)",
    ),
}


@pytest.mark.parametrize("name", list(VALUE_ERRORS))
def test_value_errors(name):
    call, message = VALUE_ERRORS[name]
    with pytest.raises(ValueError, match=message):
        call()


NORMS = [None, 1, 2, jnp.inf]


@pytest.mark.parametrize("ord", NORMS, ids=str)
def test_norm_gradient_is_finite_at_zero(ord):
    zeros = jax.tree.map(jnp.zeros_like, random_tree(jr.key(0)))

    def optax_norm(t, ord, squared):
        with jax.numpy_dtype_promotion("standard"):
            return optax.tree_utils.tree_norm(t, ord, squared)

    @jax.jit
    def grads(t):
        return [
            jax.grad(lambda t: norm(t, ord, squared))(t)
            for norm in (tu.tree_norm, optax_norm)
            for squared in (False, True)
        ]

    ours, ours_squared, theirs, theirs_squared = grads(zeros)
    assert tree_isfinite(ours) and tree_isfinite(ours_squared)
    # Where Optax's square root gives NaN, the test would fail without `safe_sqrt`.
    assert tree_isfinite(theirs) == (ord not in (None, 2))


@pytest.mark.parametrize("ord", NORMS, ids=str)
def test_norm_gradient_matches_optax_away_from_zero(ord):
    tree = random_tree(jr.key(1))
    ours = jax.jit(jax.grad(lambda t: tu.tree_norm(t, ord)))(tree)
    with jax.numpy_dtype_promotion("standard"):
        theirs = jax.jit(jax.grad(lambda t: optax.tree_utils.tree_norm(t, ord)))(tree)
    assert_trees_allclose(ours, theirs)


def test_hypergradient_through_moments_is_finite():
    """d/dβ of a debiased second moment with exactly-zero gradients is finite."""
    grads = jax.tree.map(jnp.zeros_like, random_tree(jr.key(2)))

    def f(decay):
        nu = tu.tree_update_moment(grads, tu.tree_zeros_like(grads), decay, 2)
        nu_hat = tu.tree_bias_correction(nu, decay, jnp.asarray(1))
        return tu.tree_norm(nu_hat)

    assert jnp.isfinite(jax.jit(jax.grad(f))(jnp.asarray(0.9)))

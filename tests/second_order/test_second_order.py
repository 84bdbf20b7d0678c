"""eqopt.second_order against optax.second_order and against `jax.hessian`."""

import dataclasses
import inspect
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest
from jax.flatten_util import ravel_pytree
from jaxtyping import TypeCheckError

import eqopt
from eqopt import second_order as S

from ..helpers import assert_trees_allclose


def mlp_params(key):
    k1, k2, k3, k4 = jr.split(key, 4)
    return {
        "w1": jr.normal(k1, (3, 4)) / 2,
        "b1": jr.normal(k2, (4,)) / 2,
        "w2": jr.normal(k3, (4, 2)) / 2,
        "b2": jr.normal(k4, (2,)) / 2,
    }


def mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["w1"] + params["b1"][None])
    return hidden @ params["w2"] + params["b2"][None]


def squared_error(params, inputs, targets):
    return jnp.mean((mlp(params, inputs) - targets) ** 2)


def cross_entropy(params, inputs, targets):
    logits = mlp(params, inputs)
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))


def data(key):
    k1, k2 = jr.split(key)
    inputs = jr.normal(k1, (5, 3))
    return inputs, jax.nn.one_hot(jr.randint(k2, (5,), 0, 2), 2)


def equinox_mlp(key):
    return eqx.nn.MLP(3, 2, 4, 1, activation=jax.nn.tanh, key=key)


def equinox_loss(model, inputs, targets):
    return jnp.mean((jax.vmap(model)(inputs) - targets) ** 2)


def _filtered(loss, model):
    """Optax's view of an Equinox model: its array leaves and a loss over them."""
    diff, static = eqx.partition(model, eqx.is_inexact_array)
    return (lambda p, *a: loss(eqx.combine(p, static), *a)), diff


def _hessian(loss, params, inputs, targets):
    flat, unravel = ravel_pytree(eqx.filter(params, eqx.is_inexact_array))
    static = eqx.filter(params, eqx.is_inexact_array, inverse=True)
    return jax.hessian(
        lambda f: loss(eqx.combine(unravel(f), static), inputs, targets)
    )(flat)


def _gradient(loss, params, inputs, targets):
    flat, unravel = ravel_pytree(eqx.filter(params, eqx.is_inexact_array))
    static = eqx.filter(params, eqx.is_inexact_array, inverse=True)
    return jax.jacrev(lambda f: loss(eqx.combine(unravel(f), static), inputs, targets))(
        flat
    )


def _optax(fn, loss, params, *rest, v=None):
    """Optax's function (deprecated there since 0.2.7) on the array part of `params`."""
    loss, params = _filtered(loss, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if v is None:
            return ravel_pytree(fn(loss, params, *rest))[0]
        return ravel_pytree(fn(loss, v, params, *rest))[0]


@dataclasses.dataclass(frozen=True)
class Case:
    """`ours(params, inputs, targets, v)`, Optax's, and an independent reference."""

    ours: Callable
    theirs: Callable
    reference: Callable
    params: Callable = mlp_params
    loss: Callable = squared_error


def _v(params):
    size = ravel_pytree(eqx.filter(params, eqx.is_inexact_array))[0].size
    return jr.normal(jr.key(7), (size,))


def _hvp_case(**kwargs):
    return Case(
        ours=lambda loss, p, x, y, v: ravel_pytree(S.hvp(loss, v, p, x, y))[0],
        theirs=lambda loss, p, x, y, v: _optax(
            optax.second_order.hvp, loss, p, x, y, v=v
        ),
        reference=lambda loss, p, x, y, v: _hessian(loss, p, x, y) @ v,
        **kwargs,
    )


def _hessian_diag_case(**kwargs):
    return Case(
        ours=lambda loss, p, x, y, v: S.hessian_diag(loss, p, x, y),
        theirs=lambda loss, p, x, y, v: _optax(
            optax.second_order.hessian_diag, loss, p, x, y
        ),
        reference=lambda loss, p, x, y, v: jnp.diag(_hessian(loss, p, x, y)),
        **kwargs,
    )


def _fisher_diag_case(**kwargs):
    return Case(
        ours=lambda loss, p, x, y, v: S.fisher_diag(loss, p, x, y),
        theirs=lambda loss, p, x, y, v: _optax(
            optax.second_order.fisher_diag, loss, p, x, y
        ),
        # The diagonal of the outer product of the gradient with itself.
        reference=lambda loss, p, x, y, v: jnp.diag(
            jnp.outer(*[_gradient(loss, p, x, y)] * 2)
        ),
        **kwargs,
    )


CASES = {
    "hvp": _hvp_case(),
    "hessian_diag_cross_entropy": _hessian_diag_case(loss=cross_entropy),
    "fisher_diag": _fisher_diag_case(loss=cross_entropy),
    # An Equinox model with non-array leaves (its activation functions): eqopt
    # differentiates its array leaves; Optax needs them partitioned out by hand.
    "hvp_equinox_model": _hvp_case(params=equinox_mlp, loss=equinox_loss),
    "hessian_diag_equinox_model": _hessian_diag_case(
        params=equinox_mlp, loss=equinox_loss
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_optax_and_jax_hessian(name):
    case = CASES[name]
    params = case.params(jr.key(0))
    inputs, targets = data(jr.key(1))
    if "equinox" in name:
        targets = targets.astype(jnp.float32)
    v = _v(params)

    @eqx.filter_jit
    def compute(params, inputs, targets, v):
        args = (case.loss, params, inputs, targets, v)
        with jax.numpy_dtype_promotion("standard"):
            theirs = case.theirs(*args)
        return case.ours(*args), theirs, case.reference(*args)

    ours, theirs, reference = compute(params, inputs, targets, v)
    assert_trees_allclose(ours, theirs)
    # The reference sums in a different order: float32 round-off, not a 1e-5 match.
    assert_trees_allclose(ours, reference, rtol=1e-4, atol=1e-6)


def test_hvp_keeps_the_structure_of_params():
    model = equinox_mlp(jr.key(0))
    inputs, targets = data(jr.key(1))
    out = eqx.filter_eval_shape(S.hvp, equinox_loss, _v(model), model, inputs, targets)
    expected = eqx.filter(model, eqx.is_inexact_array)
    assert jax.tree.structure(out) == jax.tree.structure(expected)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), out) == jax.tree.map(
        lambda x: (x.shape, x.dtype), expected
    )


PUBLIC = [name for name in dir(optax.second_order) if not name.startswith("_")]


def test_covers_optax_namespace():
    assert set(PUBLIC) == {"hvp", "hessian_diag", "fisher_diag"} <= set(dir(S))


@pytest.mark.parametrize("name", PUBLIC)
def test_signature_matches_optax(name):
    ours = inspect.signature(getattr(S, name)).parameters
    theirs = inspect.signature(getattr(optax.second_order, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


def test_wrong_vector_size_names_the_argument():
    params = mlp_params(jr.key(0))
    inputs, targets = data(jr.key(1))
    with pytest.raises(ValueError, match=r"`hvp\(v=...\)` must be a vector with one"):
        S.hvp(squared_error, jnp.ones(3), params, inputs, targets)
    with pytest.raises(TypeCheckError, match="parameter 'v'"):
        S.hvp(squared_error, jnp.ones((26, 1)), params, inputs, targets)


def test_reachable_from_the_top_level():
    assert eqopt.second_order.hvp is S.hvp

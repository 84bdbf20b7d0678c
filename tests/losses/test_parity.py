"""Every loss against Optax: names, signatures, values and gradients on realistic inputs."""

import inspect

import jax
import jax.numpy as jnp
import optax
import pytest
from jax.scipy.special import logsumexp

import eqopt

from ..helpers import assert_trees_allclose, tree_isfinite
from .cases import (
    call_optax,
    CASES,
    first_output,
    Programs,
    quiet_deprecation,
)


OPTAX_NAMES = sorted(n for n in dir(optax.losses) if not n.startswith("_"))
# The names Optax also re-exports at its top level (`optax.l2_loss`...).
TOP_LEVEL_NAMES = [
    n for n in OPTAX_NAMES if getattr(optax, n, None) is getattr(optax.losses, n)
]


def _parameters(fn):
    return [
        (p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()
    ]


def test_every_optax_loss_is_covered():
    missing = [n for n in OPTAX_NAMES if not hasattr(eqopt.losses, n)]
    assert not missing, f"eqopt.losses lacks {missing}"
    assert {c.name for c in CASES} == set(OPTAX_NAMES), "a loss has no parity case"


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_signature_matches_optax(name):
    assert _parameters(getattr(eqopt.losses, name)) == _parameters(
        getattr(optax.losses, name)
    )


def test_fenchel_young_loss_call_signature_matches_optax():
    ours = eqopt.losses.make_fenchel_young_loss(logsumexp)
    theirs = optax.losses.make_fenchel_young_loss(logsumexp)
    assert _parameters(ours.__call__) == _parameters(theirs)
    assert isinstance(ours, eqopt.losses.FenchelYoungLoss)


@pytest.mark.parametrize("name", TOP_LEVEL_NAMES)
def test_top_level_reexports_are_the_same_objects(name):
    assert getattr(eqopt, name) is getattr(eqopt.losses, name)


def _value_and_grad(fn, args, kwargs):
    """The loss, and `jax.grad` of its mean with respect to the first argument."""
    first, rest = args[0], args[1:]

    def mean_loss(x):
        value = fn(x, *rest, **kwargs)
        return jnp.mean(first_output(value)), value

    grad, value = jax.grad(mean_loss, has_aux=True)(first)
    return value, grad


def _program(case):
    """eqopt's and Optax's values and gradients, as one function of the arrays."""
    args, kwargs = case.inputs()
    eqopt_fn = quiet_deprecation(case.eqopt_fn())
    optax_fn = case.optax_fn()

    def both(args):
        ours = _value_and_grad(eqopt_fn, args, kwargs)
        if not case.optax_differentiable:
            return ours, None
        return ours, call_optax(_value_and_grad, optax_fn, args, kwargs)

    return both, args


PROGRAMS = Programs({case.id: _program(case) for case in CASES})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_and_gradient_match_optax(case):
    (value, grad), expected = PROGRAMS.run(case.id)
    assert tree_isfinite(value)
    assert tree_isfinite(grad)
    if expected is None:
        # Optax branches on the values: it runs only eagerly, and has no gradient.
        args, kwargs = case.inputs()
        assert_trees_allclose(value, call_optax(case.optax_fn(), *args, **kwargs))
    else:
        assert_trees_allclose((value, grad), expected)

"""Generic tests run over the whole registry of optimisers (`tests/registry.py`)."""

import io
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, random_tree, tree_isfinite
from .registry import (
    Case,
    DESCENDING,
    ids,
    REGISTRY,
    SMOOTH,
    WITH_HYPERPARAMETER,
    WITH_REFERENCE,
)


#: The default for a bare optimiser in the helpers below: no extra arguments.
PLAIN = Case("plain", eqopt.sgd, None)


class Loss(eqx.Module):
    """A smooth loss whose data are leaves, so that one compiled function serves any
    data of the same shapes (passed as a jit argument)."""

    targets: Any
    curvature: Any

    def __call__(self, params):
        terms = jax.tree.map(
            lambda x, t, c: jnp.sum(c * ((x - t) ** 2 / 2 + jnp.cos(x - t) / 10)),
            params,
            self.targets,
            self.curvature,
        )
        return sum(jax.tree.leaves(terms))


def make_problem(dtype=jnp.float32, zero_fraction=0.0):
    """Parameters and a smooth loss; `zero_fraction` of the entries get zero gradient."""
    key = jr.key(0)
    params = random_tree(jr.fold_in(key, 1), dtype)
    targets = random_tree(jr.fold_in(key, 2), dtype)
    curvature = jax.tree.map(
        lambda t: (
            (jr.uniform(jr.fold_in(key, t.size), t.shape) >= zero_fraction).astype(
                dtype
            )
            * (1 + jnp.arange(t.size, dtype=dtype).reshape(t.shape) / t.size)
        ),
        targets,
    )
    return params, Loss(targets, curvature)


def train(opt, params, loss, steps, case=PLAIN):
    """Run `steps` optimiser steps (a `lax.scan`); return parameters, state, updates."""

    def step(carry, _):
        params, state = carry
        updates, state = case.update(opt, state, params, loss)
        return (eqopt.apply_updates(params, updates), state), updates

    (params, state), history = jax.lax.scan(
        step, (params, opt.init(params)), length=steps
    )
    return params, state, history


@pytest.mark.parametrize("case", WITH_REFERENCE, ids=ids)
def test_parity_with_optax(case):
    """Same gradients, parameters and number of steps in: same updates out, each step.

    Both optimisers see Optax's parameter trajectory, so the comparison measures the
    numbers each one computes from the same inputs (with its own state), not how a
    chaotic trajectory amplifies rounding. The remaining difference is float32 rounding
    of hyperparameters: Optax computes `1 - b2` from a Python float in double precision;
    eqopt stores `b2` as a float32 leaf (for `b2=0.999` about 6e-6 relative in Adam).
    """
    params, loss = make_problem()
    h = 0.1 if case.h is None else case.h
    ours, theirs = case.make(h), case.reference(h)

    def step(carry, _):
        params, state, ref_state = carry
        grads = jax.grad(loss)(params)
        updates, state = case.update(ours, state, params, loss, grads)
        with jax.numpy_dtype_promotion("standard"):
            expected, ref_state = case.update(theirs, ref_state, params, loss, grads)
            params = optax.apply_updates(params, expected)
        return (params, state, ref_state), (updates, expected)

    carry = (params, ours.init(params), theirs.init(params))
    _, (updates, expected) = jax.jit(
        lambda carry: jax.lax.scan(step, carry, length=12)
    )(carry)
    # Stacked over the 12 steps: every step of every leaf within the tolerance.
    assert_trees_allclose(updates, expected, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", WITH_HYPERPARAMETER, ids=ids)
def test_vmap_sweep_equals_separate_runs(case):
    params, loss = make_problem()
    hs = jnp.asarray([case.h * f for f in case.factors])
    batched_opt = jax.vmap(case.make)(hs)

    @eqx.filter_jit  # one compile for the separate runs: `opt` is an argument
    def run(opt):
        return train(opt, params, loss, 5, case)[0]

    swept = eqx.filter_jit(jax.vmap(run))(batched_opt)
    for i, h in enumerate(hs):
        separate = run(case.make(h))
        # Batched and unbatched programs compile differently (fusion, reassociation);
        # ill-conditioned cases (scale_by_stddev's variance) amplify that to ~2e-5.
        assert_trees_allclose(jax.tree.map(lambda x: x[i], swept), separate, rtol=1e-4)


def _meta_loss(loss, params, steps, case=PLAIN):
    def meta_loss(opt):
        final, _, _ = train(opt, params, loss, steps, case)
        return loss(final)

    return meta_loss


@eqx.filter_jit
def _hypergradients(opt, loss, params, case):
    return eqx.filter_grad(_meta_loss(loss, params, 4, case))(opt)


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_hypergradients_finite_with_zero_gradients_and_drive_a_meta_optimiser(case):
    """Finite hypergradients when some and when all gradient entries are exactly zero
    (one compile: the loss's data are arguments); with some zero, an eqopt optimiser
    takes a meta-step on the optimiser's hyperparameters."""
    opt = case.make(case.h or 0.1)
    for zero_fraction in (0.5, 1.0):
        params, loss = make_problem(zero_fraction=zero_fraction)
        hypergrads = _hypergradients(opt, loss, params, case)
        assert jax.tree.structure(hypergrads) == jax.tree.structure(
            eqx.filter(opt, eqx.is_inexact_array)
        )
        assert tree_isfinite(hypergrads), zero_fraction
        if case.hypergradients_vanish:
            assert not any(jnp.any(x != 0) for x in jax.tree.leaves(hypergrads))
            continue
        if zero_fraction == 1.0 or case.h is None:
            continue
        meta_opt = eqopt.sgd(1e-4)
        updates, _ = meta_opt.update(hypergrads, meta_opt.init(opt), opt)
        moved = eqopt.apply_updates(opt, updates)
        assert jax.tree.structure(moved) == jax.tree.structure(opt)
        changed = jax.tree.map(
            lambda a, b: bool(jnp.any(a != b)),
            eqx.filter(moved, eqx.is_inexact_array),
            eqx.filter(opt, eqx.is_inexact_array),
        )
        assert any(jax.tree.leaves(changed)), "the meta-step changed nothing"


@pytest.mark.parametrize("case", SMOOTH, ids=ids)
def test_hypergradient_matches_finite_differences(case):
    with jax.enable_x64(True):
        params, loss = make_problem(jnp.float64, zero_fraction=0.25)
        meta_loss = _meta_loss(loss, params, 10, case)
        # A transformation that is no descent method (momentum or weight decay alone)
        # gets a small step, so that ten steps stay well-conditioned.
        make = (
            case.make
            if case.descends
            else lambda h: eqopt.chain(case.make(h), eqopt.scale(-0.01))
        )
        f = lambda h: meta_loss(make(h))

        @jax.jit  # one compile: both sides of the difference (vmapped) and the gradient
        def finite_difference_and_gradient(h, eps):
            ahead, behind = jax.vmap(f)(jnp.stack([h + eps, h - eps]))
            return (ahead - behind) / (2 * eps), jax.grad(f)(h)

        h = jnp.asarray(case.h, jnp.float64)
        eps = jnp.asarray(1e-5 * max(1.0, abs(case.h)), jnp.float64)
        finite_difference, gradient = finite_difference_and_gradient(h, eps)
        np.testing.assert_allclose(gradient, finite_difference, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", WITH_HYPERPARAMETER, ids=ids)
def test_filter_jit_does_not_retrace_when_hyperparameters_change(case):
    params, loss = make_problem()

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(opt, state, params):
        updates, state = case.update(opt, state, params, loss)
        return eqopt.apply_updates(params, updates), state

    state = case.make(case.h).init(params)
    for f in case.factors:
        opt = case.make(case.h * f)
        # Change every float hyperparameter (betas, eps...), not only the swept one.
        opt = jax.tree.map(lambda x: x * f if eqx.is_inexact_array(x) else x, opt)
        params, state = step(opt, state, params)


class WithStatics(eqx.Module):
    mlp: eqx.nn.MLP
    steps: jax.Array  # an integer array: not trainable
    name: str
    nothing: None


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_equinox_model_needs_no_filtering(case):
    key = jr.key(1)
    model = WithStatics(eqx.nn.MLP(2, 1, 8, 2, key=key), jnp.arange(3), "model", None)
    x = jr.normal(jr.key(2), (32, 2))
    y = jnp.sin(x[:, :1]) + x[:, 1:] ** 2

    def loss(m):
        return jnp.mean((jax.vmap(m.mlp)(x) - y) ** 2)

    @eqx.filter_jit
    def step(opt, model, state):
        updates, state = case.update(opt, state, model, loss)
        return eqopt.apply_updates(model, updates), state

    opt = case.make(case.h or 0.1)
    state = opt.init(model)
    start = loss(model)
    for _ in range(20):
        model, state = step(opt, model, state)
    assert model.mlp.activation is jax.nn.relu
    assert model.name == "model" and model.nothing is None
    np.testing.assert_array_equal(model.steps, jnp.arange(3))
    assert jax.tree.structure(model) == jax.tree.structure(
        WithStatics(eqx.nn.MLP(2, 1, 8, 2, key=key), jnp.arange(3), "model", None)
    )
    if case in DESCENDING:
        assert loss(model) < start


def test_meta_learning_the_learning_rate_reduces_the_meta_loss():
    params, loss = make_problem()
    meta_loss = eqx.filter_jit(eqx.filter_value_and_grad(_meta_loss(loss, params, 5)))
    inner = eqopt.sgd(eqopt.warmup_cosine_decay_schedule(0.0, 0.01, 2, 5))
    meta_opt = eqopt.adam(3e-3)
    meta_state = meta_opt.init(inner)
    first, _ = meta_loss(inner)
    for _ in range(25):
        value, grads = meta_loss(inner)
        updates, meta_state = meta_opt.update(grads, meta_state, inner)
        inner = eqopt.apply_updates(inner, updates)
    last, _ = meta_loss(inner)
    assert last < 0.9 * first
    assert inner.learning_rate.peak_value > 0.01


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_checkpoint_round_trip_and_bitwise_resume(case):
    params, loss = make_problem()
    opt = case.make(case.h or 0.1)
    step = eqx.filter_jit(lambda o, s, p: _step(o, s, p, loss, case))

    state = opt.init(params)
    for _ in range(3):
        params, state = step(opt, state, params)

    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (opt, state, params))
    buffer.seek(0)
    like = case.make(0.0 if case.h is None else case.h * 0.5)
    template = (like, like.init(params), jax.tree.map(jnp.zeros_like, params))
    restored = eqx.tree_deserialise_leaves(buffer, template)
    assert_trees_allclose(restored, (opt, state, params), rtol=0, atol=0)

    uninterrupted = (params, state)
    resumed = restored[2], restored[1]
    for _ in range(3):
        uninterrupted = step(opt, *uninterrupted[::-1])[::1]
        resumed = step(restored[0], *resumed[::-1])
    assert_trees_allclose(resumed, uninterrupted, rtol=0, atol=0)


def _step(opt, state, params, loss, case):
    updates, state = case.update(opt, state, params, loss)
    return eqopt.apply_updates(params, updates), state


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_bfloat16_keeps_dtype_and_equals_float32_cast_at_the_end(case):
    params, loss = make_problem()
    grads = jax.grad(loss)(params)
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    g16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), grads)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p16)
    g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g16)
    opt = case.make(case.h or 0.1)

    state16 = opt.init(p16)
    # The float32 computation starts from the same state values (an `initial_scale`
    # stored in bfloat16 is already rounded).
    state32 = jax.tree.map(
        lambda x: x.astype(jnp.float32) if x.dtype == jnp.bfloat16 else x, state16
    )
    u16, state16 = case.update(opt, state16, p16, loss, g16)
    u32, _ = case.update(opt, state32, p32, loss, g32)
    assert_trees_allclose(
        u16, jax.tree.map(lambda u: u.astype(jnp.bfloat16), u32), rtol=0, atol=0
    )
    new16 = eqopt.apply_updates(p16, u16)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(new16))
    # Later steps too keep bfloat16 (state and parameters).
    u16, state16 = case.update(opt, state16, new16, loss, g16)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u16))


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_init_from_abstract_shapes(case):
    """`init` reads only shapes and dtypes: it runs under `jax.eval_shape` on
    `ShapeDtypeStruct`s (Optax's `dadapt_adamw`, `dog`, `prodigy` cannot), and the
    abstract state has the shapes and dtypes of the concrete one."""
    params, _ = make_problem()
    opt = case.make(case.h or 0.1)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    shapes = eqx.filter_eval_shape(opt.init, abstract)
    concrete = opt.init(params)
    assert jax.tree.structure(shapes) == jax.tree.structure(concrete)
    for s, c in zip(jax.tree.leaves(shapes), jax.tree.leaves(concrete)):
        assert (s.shape, s.dtype) == (c.shape, c.dtype)


@pytest.mark.parametrize("case", REGISTRY, ids=ids)
def test_state_can_be_donated(case):
    """No two state arrays are one buffer, and none is a parameter: a training step
    that donates parameters and state (`donate_argnums`) would otherwise fail."""
    params, _ = make_problem()
    state = case.make(case.h or 0.1).init(params)
    arrays = [x for x in jax.tree.leaves((params, state)) if eqx.is_array(x)]
    assert len({id(x) for x in arrays}) == len(arrays)

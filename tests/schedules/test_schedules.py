"""Schedules: Optax parity, vmap over values, finite derivatives, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqopt

from ..helpers import assert_trees_allclose, tree_isfinite
from ..registry import SCHEDULES


COUNTS = jnp.arange(0, 25, dtype=jnp.int32)

# Schedules beyond the registry's, covering the Optax special cases.
EXTRA = {
    "linear-no-transition": (
        lambda h: eqopt.linear_schedule(h, 0.0, 0),
        lambda h: optax.linear_schedule(h, 0.0, 0),
    ),
    "polynomial-late-begin": (
        lambda h: eqopt.polynomial_schedule(h, 0.0, 0.5, 10, 5),
        lambda h: optax.polynomial_schedule(h, 0.0, 0.5, 10, 5),
    ),
    "cosine-alpha-zero": (
        lambda h: eqopt.cosine_decay_schedule(h, 10),
        lambda h: optax.cosine_decay_schedule(h, 10),
    ),
    "exponential-smooth-growth": (
        lambda h: eqopt.exponential_decay(h, 4, 1.5, 0, False, 3 * h),
        lambda h: optax.exponential_decay(h, 4, 1.5, 0, False, 3 * h),
    ),
    "exponential-zero-rate": (
        lambda h: eqopt.exponential_decay(h, 4, 0.0),
        lambda h: optax.exponential_decay(h, 4, 0.0),
    ),
    "piecewise-none": (
        lambda h: eqopt.piecewise_constant_schedule(h),
        lambda h: optax.piecewise_constant_schedule(h),
    ),
    "piecewise-interpolate-linear": (
        lambda h: eqopt.piecewise_interpolate_schedule("linear", h, {4: 0.1, 8: 0.01}),
        lambda h: optax.piecewise_interpolate_schedule("linear", h, {4: 0.1, 8: 0.01}),
    ),
    "piecewise-interpolate-none": (
        lambda h: eqopt.piecewise_interpolate_schedule("cosine", h),
        lambda h: optax.piecewise_interpolate_schedule("cosine", h),
    ),
    "piecewise-interpolate-zero-boundary": (
        lambda h: eqopt.piecewise_interpolate_schedule("cosine", h, {0: 2.0, 5: 0.0}),
        lambda h: optax.piecewise_interpolate_schedule("cosine", h, {0: 2.0, 5: 0.0}),
    ),
    "linear-onecycle-defaults": (
        lambda h: eqopt.linear_onecycle_schedule(20, h),
        lambda h: optax.linear_onecycle_schedule(20, h),
    ),
    # pct_start * 2 and pct_final * 2 both round down to 0: a repeated boundary.
    "linear-onecycle-repeated-boundary": (
        lambda h: eqopt.linear_onecycle_schedule(2, h, 0.2, 0.4),
        lambda h: optax.linear_onecycle_schedule(2, h, 0.2, 0.4),
    ),
    "cosine-onecycle-defaults": (
        lambda h: eqopt.cosine_onecycle_schedule(20, h),
        lambda h: optax.cosine_onecycle_schedule(20, h),
    ),
    "warmup-constant-no-warmup": (
        lambda h: eqopt.warmup_constant_schedule(h / 2, h, 0),
        lambda h: optax.warmup_constant_schedule(h / 2, h, 0),
    ),
    "warmup-exponential-staircase-growth": (
        lambda h: eqopt.warmup_exponential_decay_schedule(
            0.0, h, 2, 3, 1.5, 0, True, 2 * h
        ),
        lambda h: optax.warmup_exponential_decay_schedule(
            0.0, h, 2, 3, 1.5, 0, True, 2 * h
        ),
    ),
    "sgdr-one-cycle": (
        lambda h: eqopt.sgdr_schedule(
            [dict(init_value=0.0, peak_value=h, warmup_steps=0, decay_steps=10)]
        ),
        lambda h: optax.sgdr_schedule(
            [dict(init_value=0.0, peak_value=h, warmup_steps=0, decay_steps=10)]
        ),
    ),
    "warmup-cosine-zero-peak": (
        lambda h: eqopt.warmup_cosine_decay_schedule(0.0, 0.0, 2, 10),
        lambda h: optax.warmup_cosine_decay_schedule(0.0, 0.0, 2, 10),
    ),
}
ALL = {**SCHEDULES, **EXTRA}


@pytest.mark.parametrize("name", ALL)
def test_parity_with_optax(name):
    ours, theirs = ALL[name]
    with jax.numpy_dtype_promotion("standard"):
        # One count at a time: Optax's piecewise-interpolated schedules take no arrays.
        expected = jax.vmap(theirs(0.3))(COUNTS).astype(jnp.float32)
    # Arrays of counts (for plotting) and single counts (in a step) agree.
    assert_trees_allclose(ours(0.3)(COUNTS).astype(jnp.float32), expected)
    for c in (0, 3, 24):
        assert_trees_allclose(ours(0.3)(COUNTS[c]).astype(jnp.float32), expected[c])


@pytest.mark.parametrize("name", ALL)
def test_vmap_over_values_and_finite_derivatives(name):
    make = ALL[name][0]
    hs = jnp.asarray([0.1, 0.2, 0.4])
    batched = jax.vmap(make)(hs)
    values = jax.vmap(lambda s: jax.vmap(s)(COUNTS))(batched)
    for i, h in enumerate(hs):
        assert_trees_allclose(values[i], make(h)(COUNTS))
    grads = jax.vmap(jax.grad(lambda h, c: make(h)(c)), in_axes=(None, 0))(0.2, COUNTS)
    assert tree_isfinite(grads)
    # Derivatives with respect to every float field of the schedule Module.
    field_grads = eqx.filter_grad(lambda s: jnp.sum(jax.vmap(s)(COUNTS)))(make(0.2))
    assert tree_isfinite(field_grads)


def test_schedule_is_a_hyperparameter_leaf_container():
    s = eqopt.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)
    leaves = jax.tree.leaves(s)
    assert len(leaves) == 4  # init, peak, end, exponent; step counts are static
    assert all(eqx.is_inexact_array(x) for x in leaves)
    moved = eqx.tree_at(lambda s: s.peak_value, s, jnp.asarray(2e-3))
    np.testing.assert_allclose(moved(10), 2e-3, rtol=1e-6)


def test_plain_function_schedules_are_wrapped():
    opt = eqopt.sgd(lambda count: 0.1 / (1 + count.astype(jnp.float32)))
    assert isinstance(opt.learning_rate, eqopt.schedules.FunctionSchedule)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    for expected in (0.1, 0.05):
        updates, state = jax.jit(opt.update)(params, state, params)
        np.testing.assert_allclose(updates["w"], -expected, rtol=1e-6)


BAD = [
    (eqopt.cosine_decay_schedule, dict(init_value=1.0, decay_steps=0), "decay_steps"),
    (
        eqopt.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=5),
        "decay_steps",
    ),
    (
        eqopt.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=-1, decay_steps=5),
        "warmup_steps=-1",
    ),
    (
        eqopt.linear_schedule,
        dict(init_value=1.0, end_value=0.0, transition_steps=5, transition_begin=-2),
        "transition_begin=-2",
    ),
    (
        eqopt.piecewise_constant_schedule,
        dict(init_value=1.0, boundaries_and_scales={5: -0.5}),
        r"boundaries_and_scales\[5\]",
    ),
    (
        eqopt.exponential_decay,
        dict(init_value=1.0, transition_steps=5, decay_rate=-0.5),
        "decay_rate=-0.5",
    ),
    (eqopt.join_schedules, dict(schedules=[lambda c: c], boundaries=[3]), "boundar"),
    (
        eqopt.piecewise_interpolate_schedule,
        dict(interpolate_type="quadratic", init_value=1.0),
        "interpolate_type='quadratic'",
    ),
    (
        eqopt.piecewise_interpolate_schedule,
        dict(interpolate_type="linear", init_value=1.0, boundaries_and_scales={2: -1}),
        r"boundaries_and_scales\[2\]",
    ),
    (
        eqopt.linear_onecycle_schedule,
        dict(transition_steps=0, peak_value=1.0),
        "transition_steps=0",
    ),
    (
        eqopt.cosine_onecycle_schedule,
        dict(transition_steps=-3, peak_value=1.0),
        "transition_steps=-3",
    ),
    (
        eqopt.cosine_onecycle_schedule,
        dict(transition_steps=10, peak_value=1.0, pct_start=1.5),
        "pct_start=1.5",
    ),
    (
        eqopt.linear_onecycle_schedule,
        dict(transition_steps=10, peak_value=1.0, pct_start=0.5, pct_final=0.4),
        "pct_final=0.4",
    ),
    (
        eqopt.linear_onecycle_schedule,
        dict(transition_steps=10, peak_value=1.0, div_factor=0.0),
        "div_factor=0.0",
    ),
    (
        eqopt.cosine_onecycle_schedule,
        dict(transition_steps=10, peak_value=1.0, final_div_factor=-1.0),
        "final_div_factor=-1.0",
    ),
    (
        eqopt.warmup_constant_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=-1),
        "warmup_steps=-1",
    ),
    (
        eqopt.warmup_exponential_decay_schedule,
        dict(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=2,
            transition_steps=3,
            decay_rate=-0.1,
        ),
        "decay_rate=-0.1",
    ),
    (
        eqopt.warmup_exponential_decay_schedule,
        dict(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=2,
            transition_steps=3,
            decay_rate=0.5,
            transition_begin=-1,
        ),
        "transition_begin=-1",
    ),
    (eqopt.sgdr_schedule, dict(cosine_kwargs=[]), "cosine_kwargs"),
    (
        eqopt.sgdr_schedule,
        dict(
            cosine_kwargs=[
                dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=5)
            ]
        ),
        "decay_steps",
    ),
]


@pytest.mark.parametrize(
    "factory, kwargs, match", BAD, ids=lambda x: getattr(x, "__name__", "")
)
def test_bad_arguments_raise_value_error_naming_them(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_onecycle_fields_are_leaves_and_fractions_static():
    s = eqopt.linear_onecycle_schedule(10, 1.0)
    # peak_value, div_factor, final_div_factor; transition_steps and fractions static.
    assert len(jax.tree.leaves(s)) == 3
    grads = eqx.filter_grad(lambda s: s(8))(s)
    # At step 8 (pct_final = 0.85 of 10, back at peak / div): d/d peak = 1 / div.
    np.testing.assert_allclose(grads.peak_value, 1 / 25, rtol=1e-6)


def test_sgdr_cycles_are_reachable_with_tree_at():
    s = eqopt.sgdr_schedule(
        [
            dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=5),
            dict(init_value=0.0, peak_value=0.5, warmup_steps=2, decay_steps=5),
        ]
    )
    assert isinstance(s.cycles[1], eqopt.schedules.WarmupCosineDecaySchedule)
    moved = eqx.tree_at(lambda s: s.cycles[1].peak_value, s, jnp.asarray(0.25))
    np.testing.assert_allclose(moved(7), 0.25, rtol=1e-6)  # step 2 of the 2nd cycle
    np.testing.assert_allclose(moved(2), 1.0, rtol=1e-6)  # the first is unchanged

"""`warmup_stable_decay_schedule` (not in Optax): values against a NumPy formula written
from its definition, boundaries, vmap and derivatives over `peak_value`, use as a
learning rate, and errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqopt

from ..helpers import assert_trees_allclose


DECAY_TYPES = ["linear", "cosine", "sqrt", "square"]
COUNTS = np.arange(0, 40)


def np_wsd(t, init, peak, warmup, total, decay, end, decay_type):
    """The schedule at step `t` (a Python int), in float64, phase by phase."""
    start = total - decay
    if t < warmup:
        return init + (peak - init) * t / warmup
    if t < start:
        return peak
    s = min((t - start) / decay, 1.0)
    f = {
        "linear": 1 - s,
        "cosine": 0.5 * (1 + np.cos(np.pi * s)),
        "sqrt": 1 - np.sqrt(s),
        "square": 1 - s**2,
    }[decay_type]
    return end + (peak - end) * f


ARGS = dict(init_value=0.01, peak_value=0.3, warmup_steps=5, total_steps=30)


@pytest.mark.parametrize("decay_type", DECAY_TYPES)
@pytest.mark.parametrize("decay_steps, end_value", [(8, 0.003), (25, 0.0), (1, 0.1)])
def test_matches_numpy_formula(decay_type, decay_steps, end_value):
    schedule = eqopt.schedules.warmup_stable_decay_schedule(
        **ARGS, decay_steps=decay_steps, end_value=end_value, decay_type=decay_type
    )
    expected = np.asarray(
        [
            np_wsd(int(t), 0.01, 0.3, 5, 30, decay_steps, end_value, decay_type)
            for t in COUNTS
        ]
    )
    values = np.asarray(schedule(jnp.asarray(COUNTS)), np.float64)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)
    # One count at a time (in a step), in jit, agrees with the array of counts.
    one = jax.jit(lambda s, c: s(c))
    for t in (0, 4, 5, 21, 22, 29, 30, 39):
        np.testing.assert_allclose(one(schedule, t), values[t], rtol=1e-6, atol=1e-7)
    with jax.enable_x64(True):
        schedule64 = eqopt.schedules.warmup_stable_decay_schedule(
            **{
                k: jnp.asarray(v, jnp.float64) if isinstance(v, float) else v
                for k, v in ARGS.items()
            },
            decay_steps=decay_steps,
            end_value=jnp.asarray(end_value, jnp.float64),
            decay_type=decay_type,
        )
        values64 = schedule64(jnp.asarray(COUNTS))
        assert values64.dtype == jnp.float64
        np.testing.assert_allclose(values64, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("decay_type", DECAY_TYPES)
def test_values_at_the_boundaries(decay_type):
    s = eqopt.warmup_stable_decay_schedule(
        0.01, 0.3, 5, 30, 8, end_value=0.003, decay_type=decay_type
    )
    at = lambda t: float(s(t))
    assert at(0) == pytest.approx(0.01)  # init_value
    assert at(5) == pytest.approx(0.3)  # the plateau begins after the warmup
    assert at(4) == pytest.approx(0.01 + 0.29 * 4 / 5)
    assert at(21) == pytest.approx(0.3)  # last step of the plateau
    assert at(22) == pytest.approx(0.3)  # decay starts at T - D with f(0) = 1
    assert at(23) < 0.3
    assert at(30) == pytest.approx(0.003)  # end_value at T
    assert at(1000) == pytest.approx(0.003)  # and afterwards
    # Monotone: rising, then flat, then falling.
    values = np.asarray(s(jnp.arange(40)))
    assert np.all(np.diff(values[:6]) > 0)
    assert np.all(np.diff(values[5:23]) == 0)
    assert np.all(np.diff(values[22:31]) < 0)


def test_no_warmup_and_no_plateau():
    # W = 0: starts at the peak; W + D = T: no plateau.
    s = eqopt.warmup_stable_decay_schedule(0.5, 1.0, 0, 10, 10)
    np.testing.assert_allclose(
        s(jnp.arange(12)), [1 - t / 10 for t in range(11)] + [0.0], atol=1e-7
    )
    s = eqopt.warmup_stable_decay_schedule(0.0, 1.0, 4, 10, 6, decay_type="cosine")
    assert float(s(4)) == pytest.approx(1.0)
    assert float(s(5)) < 1.0


def test_exported_at_both_paths_and_fields_are_leaves():
    assert (
        eqopt.warmup_stable_decay_schedule
        is eqopt.schedules.warmup_stable_decay_schedule
        is eqopt.schedules.WarmupStableDecaySchedule
    )
    s = eqopt.warmup_stable_decay_schedule(0.0, 1e-3, 10, 100, 20)
    leaves = jax.tree.leaves(s)
    assert len(leaves) == 3  # init, peak, end; step counts and decay_type are static
    assert all(eqx.is_inexact_array(x) for x in leaves)
    moved = eqx.tree_at(lambda s: s.peak_value, s, jnp.asarray(2e-3))
    np.testing.assert_allclose(moved(50), 2e-3, rtol=1e-6)


@pytest.mark.parametrize("decay_type", DECAY_TYPES)
def test_jit_vmap_and_gradient_over_peak_value(decay_type):
    make = lambda peak: eqopt.warmup_stable_decay_schedule(
        0.01, peak, 5, 30, 8, end_value=0.003, decay_type=decay_type
    )
    peaks = jnp.asarray([0.1, 0.2, 0.4])
    counts = jnp.asarray(COUNTS)
    values = jax.jit(jax.vmap(lambda p: make(p)(counts)))(peaks)
    for i, p in enumerate(peaks):
        assert_trees_allclose(values[i], make(p)(counts))
    # d alpha / d peak_value: t / W in the warmup, 1 on the plateau, f(s) in the decay,
    # 0 after the end; by autodiff and by central differences in float64.
    grads = jax.jit(jax.vmap(jax.grad(lambda p, c: make(p)(c)), in_axes=(None, 0)))(
        0.2, counts
    )
    start = 22
    for t in COUNTS:
        expected = (
            t / 5
            if t < 5
            else 1.0
            if t < start
            else np_wsd(int(t), 0.0, 1.0, 0, 30, 8, 0.0, decay_type)
        )
        np.testing.assert_allclose(grads[t], expected, rtol=1e-6, atol=1e-7)
    with jax.enable_x64(True):
        f = lambda p: jnp.sum(make(p)(counts) ** 2)
        p, eps = jnp.asarray(0.2, jnp.float64), 1e-6
        fd = (f(p + eps) - f(p - eps)) / (2 * eps)
        np.testing.assert_allclose(jax.grad(f)(p), fd, rtol=1e-7)
    # Every float field of the Module at once.
    field_grads = eqx.filter_grad(lambda s: jnp.sum(s(counts)))(make(0.2))
    assert all(bool(jnp.isfinite(g)) for g in jax.tree.leaves(field_grads))


def test_learning_rate_of_adamw():
    schedule = eqopt.warmup_stable_decay_schedule(
        0.0, 1e-2, 3, 12, 4, decay_type="sqrt"
    )
    opt = eqopt.adamw(schedule, weight_decay=0.1)
    reference = eqopt.adamw(1.0, weight_decay=0.1)  # unit step, scaled by hand
    params = {"w": jnp.linspace(-1.0, 1.0, 6), "s": jnp.asarray(0.5)}
    grads = {"w": jnp.linspace(0.5, -0.2, 6), "s": jnp.asarray(-1.0)}
    step = jax.jit(lambda o, s, p: o.update(grads, s, p))
    state, ref_state = opt.init(params), reference.init(params)
    p = params
    for t in range(14):
        u, state = step(opt, state, p)
        unit, ref_state = step(reference, ref_state, p)
        expected = jax.tree.map(lambda x: schedule(t) * x, unit)
        assert_trees_allclose(u, expected, rtol=1e-6, atol=1e-9)
        p = eqopt.apply_updates(p, u)

    # The schedule's values are leaves of the optimiser: a meta-gradient reaches them.
    def meta_loss(opt):
        q, s = params, opt.init(params)
        for _ in range(6):
            u, s = opt.update(grads, s, q)
            q = eqopt.apply_updates(q, u)
        return sum(jnp.sum(x**2) for x in jax.tree.leaves(q))

    hyper = eqx.filter_grad(meta_loss)(opt)
    assert float(hyper.learning_rate.peak_value) != 0.0


BAD = [
    (dict(warmup_steps=-1, total_steps=10, decay_steps=2), "warmup_steps=-1"),
    (
        dict(warmup_steps=2, total_steps=10, decay_steps=0),
        r"`warmup_stable_decay_schedule\(decay_steps=...\)`.*decay_steps=0",
    ),
    (
        dict(warmup_steps=5, total_steps=10, decay_steps=6),
        r"`warmup_stable_decay_schedule\(total_steps=...\)`.*total_steps=10, warmup_steps=5, decay_steps=6",
    ),
    (
        dict(warmup_steps=2, total_steps=10, decay_steps=2, decay_type="exp"),
        r"decay_type=...\)` must be one of 'linear', 'cosine', 'sqrt', 'square'; got decay_type='exp'",
    ),
]


@pytest.mark.parametrize("kwargs, match", BAD)
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        eqopt.warmup_stable_decay_schedule(0.0, 1.0, **kwargs)

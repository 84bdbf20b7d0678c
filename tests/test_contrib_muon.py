"""Muon, AdEMAMix, ADOPT, `normalize` and `split_real_and_imaginary` (`eqopt.contrib`):
what the registry's generic tests do not cover (Equinox models against Optax, batched
and reshaped weights, sharding, errors, sweeps over the Newton–Schulz coefficients)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import eqopt
import eqopt.contrib as contrib

from .helpers import assert_trees_allclose, tree_isfinite


#: The absolute tolerance of Muon's numbers against another contraction order (Optax's,
#: or a sharded run's): float32 rounding amplified by the Newton-Schulz coefficients.
_NS_ATOL = 3e-5


def _run(opt, params, loss, steps, apply):
    state = opt.init(params)
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        with jax.numpy_dtype_promotion("standard"):
            updates, state = opt.update(grads, state, params)
        params = apply(params, updates)
    return params, state


def _quadratic(params):
    return sum(jnp.sum(jnp.sin(x) ** 2 + x**2 / 2) for x in jax.tree.leaves(params))


# Muon.


def test_muon_on_an_equinox_mlp_matches_optax():
    """Matrices get Muon, biases Adam; the model's non-array leaves are left alone
    without filtering (Optax needs `eqx.filter`)."""
    model = eqx.nn.MLP(3, 2, 16, 2, key=jr.key(0))
    x = jr.normal(jr.key(1), (32, 3))
    y = jr.normal(jr.key(2), (32, 2))

    def loss(params, static):
        m = eqx.combine(params, static)
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    ours = contrib.muon(0.02, weight_decay=0.1, adam_learning_rate=0.01)
    theirs = optax.contrib.muon(0.02, weight_decay=0.1, adam_learning_rate=0.01)

    @eqx.filter_jit
    def our_step(model, state):
        grads = eqx.filter_grad(lambda m: loss(*eqx.partition(m, eqx.is_array)))(model)
        updates, state = ours.update(grads, state, model)
        return eqx.apply_updates(model, updates), state

    state = ours.init(model)  # the whole model: activation functions and all
    expected = params
    theirs_state = theirs.init(params)
    for _ in range(5):
        model, state = our_step(model, state)
        grads = jax.grad(loss)(expected, static)
        with jax.numpy_dtype_promotion("standard"):
            updates, theirs_state = theirs.update(grads, theirs_state, expected)
        expected = optax.apply_updates(expected, updates)
    assert model.activation is jax.nn.relu
    assert_trees_allclose(
        eqx.filter(model, eqx.is_inexact_array), expected, rtol=1e-5, atol=1e-6
    )
    # The state has Optax's structure: a partition into Muon's and Adam's groups.
    muon_state = state.inner_states["muon"].inner_state[0]
    assert isinstance(muon_state, contrib.MuonState)
    assert muon_state.mu.layers[0].weight.shape == (16, 3)
    assert isinstance(muon_state.mu.layers[0].bias, eqopt.MaskedNode)


def test_muon_batched_and_reshaped_weights_match_optax():
    """A stack of matrices (batch axis first), a convolution kernel whose input axes
    merge into one reduction axis, negative axes, and leaves left to Adam."""
    keys = jr.split(jr.key(3), 4)
    params = {
        "heads": jr.normal(keys[0], (3, 8, 4)),
        "conv": jr.normal(keys[1], (3, 3, 2, 5)),
        "tall": jr.normal(keys[2], (9, 4)),
        "bias": jr.normal(keys[3], (5,)),
    }

    def dims(module):
        d = module.MuonDimensionNumbers
        return {
            "heads": d(reduction_axis=-2, output_axis=-1),
            "conv": d(reduction_axis=(0, 1, 2), output_axis=3),
            "tall": d(1, 0),
            "bias": None,
        }

    for kwargs in (
        {},
        dict(nesterov=False, adaptive=True),
        dict(preconditioning="spectral"),
        dict(preconditioning="aol", ns_coeffs="dion"),
        dict(preconditioning="schatten", consistent_rms=0.2),
    ):
        ours = contrib.muon(0.05, muon_weight_dimension_numbers=dims(contrib), **kwargs)
        theirs = optax.contrib.muon(
            0.05, muon_weight_dimension_numbers=dims(optax.contrib), **kwargs
        )
        got, state = _run(ours, params, _quadratic, 4, eqopt.apply_updates)
        expected, _ = _run(theirs, params, _quadratic, 4, optax.apply_updates)
        # The same polynomial, contracted over the weight's own axes where Optax
        # transposes and reshapes first: float32 rounding, amplified by the iteration's
        # coefficients (|b| = 4.8), differs by up to ~2e-5 on entries of size ~1.
        assert_trees_allclose(got, expected, rtol=1e-5, atol=_NS_ATOL)
        assert jax.tree.map(jnp.shape, got) == jax.tree.map(jnp.shape, params)


def test_scale_by_muon_per_step_coefficients_and_orthogonality():
    """One coefficient triple per step (`ns_coeffs` of shape `(n, 3)`) against Optax;
    and the update of a square matrix is nearly orthogonal."""
    w = {"w": jr.normal(jr.key(4), (6, 6))}
    coeffs = np.array(contrib._muon._DION_NS_COEFFS)
    ours = contrib.scale_by_muon(coeffs, ns_steps=6)
    theirs = optax.contrib.scale_by_muon(
        tuple(map(tuple, coeffs)),
        ns_steps=6,
        weight_dimension_numbers={"w": optax.contrib.MuonDimensionNumbers()},
    )
    u, state = ours.update(w, ours.init(w))
    with jax.numpy_dtype_promotion("standard"):
        expected, _ = theirs.update(w, theirs.init(w))
    assert_trees_allclose(u, expected, rtol=1e-5, atol=1e-6)
    assert state.ns_coeffs.shape == (5, 3)
    singular_values = jnp.linalg.svd(u["w"], compute_uv=False)
    assert jnp.all((singular_values > 0.5) & (singular_values < 1.5))


def test_muon_sweeps_and_differentiates_its_coefficients():
    """`ns_coeffs` and `beta` are leaves: a vmapped sweep equals separate runs, and
    their hypergradients are finite."""
    params = {"w": jr.normal(jr.key(5), (5, 3)), "b": jnp.ones(3)}
    scales = jnp.array([0.9, 1.0, 1.1])

    def make(s):
        return contrib.muon(
            0.05,
            ns_coeffs=jnp.array(contrib._muon._DEFAULT_NS_COEFFS) * s,
            beta=0.9 * s,
        )

    def train(opt):
        return _run(opt, params, _quadratic, 3, eqopt.apply_updates)[0]

    swept = eqx.filter_vmap(lambda s: train(make(s)))(scales)
    for i, s in enumerate(scales):
        assert_trees_allclose(
            jax.tree.map(lambda x: x[i], swept), train(make(s)), rtol=1e-5, atol=1e-6
        )
    grads = eqx.filter_grad(lambda opt: _quadratic(train(opt)))(make(1.0))
    assert grads.ns_coeffs.shape == (3,)
    assert tree_isfinite(grads) and jnp.any(grads.ns_coeffs != 0)


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto])
@pytest.mark.parametrize("preconditioning", ["frobenius", "aol"])
def test_muon_step_keeps_the_parameters_sharding(axis_type, preconditioning):
    """optax#1660: under `jax.jit` with `NamedSharding` on the 8-device CPU mesh, the
    step's parameters and Muon's momentum keep the parameters' shardings, and the
    numbers are those of the unsharded step. (With explicit axes, `jax.make_mesh`'s
    default, Optax's Newton–Schulz `x @ x.T` is an error.)"""
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(axis_type,) * 2)
    keys = jr.split(jr.key(6), 4)
    params = {
        "w": jr.normal(keys[0], (8, 6)),
        "v": jr.normal(keys[1], (6, 16)),
        "heads": jr.normal(keys[2], (4, 8, 6)),
        "b": jr.normal(keys[3], (6,)),
    }
    specs = {
        "w": P("data", "model"),
        "v": P("model", "data"),
        "heads": P("data", None, "model"),
        "b": P("model"),
    }
    d = contrib.MuonDimensionNumbers
    opt = contrib.muon(
        0.05,
        adaptive=True,
        preconditioning=preconditioning,
        weight_decay=0.01,
        muon_weight_dimension_numbers={"w": d(), "v": d(), "heads": d(1, 2), "b": None},
    )

    @jax.jit
    def steps(params, state):
        for _ in range(2):
            updates, state = opt.update(jax.grad(_quadratic)(params), state, params)
            params = eqopt.apply_updates(params, updates)
        return params, state

    expected, _ = steps(params, opt.init(params))
    sharded = {
        k: jax.device_put(x, NamedSharding(mesh, specs[k])) for k, x in params.items()
    }
    new, state = steps(sharded, opt.init(sharded))
    assert_trees_allclose(new, expected, rtol=1e-5, atol=_NS_ATOL)
    for k in params:
        assert new[k].sharding.is_equivalent_to(sharded[k].sharding, new[k].ndim), k
    mu = state.inner_states["muon"].inner_state[0].mu
    for k in ("w", "v", "heads"):
        assert mu[k].sharding.is_equivalent_to(sharded[k].sharding, mu[k].ndim), k


def test_muon_errors_name_the_argument_or_path():
    with pytest.raises(ValueError, match="beta"):
        contrib.muon(0.1, beta=1.5)
    with pytest.raises(ValueError, match="ns_coeffs"):
        contrib.muon(0.1, ns_coeffs=(1.0, 2.0))
    with pytest.raises(ValueError, match="ns_coeffs"):
        contrib.muon(0.1, ns_coeffs="nonsense")
    with pytest.raises(ValueError, match="ns_steps"):
        contrib.muon(0.1, ns_coeffs="dion", ns_steps=3)
    with pytest.raises(ValueError, match="preconditioning"):
        contrib.scale_by_muon(preconditioning="qr")
    with pytest.raises(ValueError, match="adam_b2"):
        contrib.muon(0.1, adam_b2=1.0)
    with pytest.raises(ValueError, match="eps"):
        contrib.scale_by_muon(eps=-1.0)
    params = {"w": jnp.ones((2, 3)), "cube": jnp.ones((2, 2, 2))}
    opt = contrib.scale_by_muon()
    with pytest.raises(ValueError, match=r"\['cube'\]"):
        opt.update(params, opt.init(params))
    bad = contrib.scale_by_muon(
        weight_dimension_numbers={
            "w": contrib.MuonDimensionNumbers(0, 0),
            "cube": contrib.MuonDimensionNumbers(0, 1),
        }
    )
    with pytest.raises(ValueError, match=r"\['w'\].*disjoint"):
        bad.update(params, bad.init(params))
    with pytest.raises(ValueError, match="MuonDimensionNumbers"):
        contrib.muon(0.1, muon_weight_dimension_numbers={"w": 3})


# AdEMAMix, ADOPT, normalize, complex parameters.


def test_ademamix_hypergradients_through_schedules_are_finite():
    params = {"w": jr.normal(jr.key(7), (4, 3)), "b": jnp.zeros(3)}
    opt = contrib.ademamix(
        0.01,
        b3=eqopt.linear_schedule(0.9, 0.999, 10),
        alpha=eqopt.linear_schedule(0.0, 5.0, 10),
    )

    def meta_loss(opt):
        return _quadratic(_run(opt, params, _quadratic, 4, eqopt.apply_updates)[0])

    grads = eqx.filter_grad(meta_loss)(opt)
    assert tree_isfinite(grads)
    assert grads.alpha.end_value != 0 and grads.b3.init_value != 0


def test_contrib_errors_name_the_argument():
    with pytest.raises(ValueError, match="b3"):
        contrib.ademamix(0.1, b3=1.0)
    with pytest.raises(ValueError, match="b1"):
        contrib.scale_by_ademamix(b1=-0.1)
    with pytest.raises(ValueError, match="b2"):
        contrib.simplified_ademamix(0.1, b2=2.0)
    with pytest.raises(ValueError, match="eps"):
        contrib.adopt(0.1, eps=-1e-6)
    with pytest.raises(ValueError, match="b2"):
        contrib.scale_by_adopt(b2=1.0)


def test_adopt_first_update_is_zero_and_custom_clipping_matches_optax():
    params = {"w": jr.normal(jr.key(8), (4, 3)), "s": jnp.array(2.0)}
    clip = lambda count: 0.1 + count / 10  # noqa: E731
    ours = contrib.adopt(0.05, clip_value_fn=clip)
    theirs = optax.contrib.adopt(0.05, clip_value_fn=clip)
    updates, _ = ours.update(params, ours.init(params))
    assert all(jnp.all(u == 0) for u in jax.tree.leaves(updates))
    got, _ = _run(ours, params, _quadratic, 6, eqopt.apply_updates)
    expected, _ = _run(theirs, params, _quadratic, 6, optax.apply_updates)
    assert_trees_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_normalize_gives_unit_global_norm_in_the_parameters_dtype():
    grads = {"a": jnp.array([3.0, 0.0], jnp.bfloat16), "b": jnp.array(4.0)}
    updates, _ = contrib.normalize().update(grads, contrib.NormalizeState())
    assert updates["a"].dtype == jnp.bfloat16
    np.testing.assert_allclose(updates["a"].astype(jnp.float32), [0.6, 0.0], rtol=1e-2)
    np.testing.assert_allclose(updates["b"], 0.8)


def test_split_real_and_imaginary_on_complex_parameters_matches_optax():
    keys = jr.split(jr.key(9), 3)
    params = {
        "z": jax.lax.complex(jr.normal(keys[0], (3, 2)), jr.normal(keys[1], (3, 2))),
        "x": jr.normal(keys[2], (4,)),
    }

    def loss(p):
        target = jnp.asarray(1j, p["z"].dtype)
        return jnp.sum(jnp.abs(p["z"] - target) ** 2) + jnp.sum(p["x"] ** 2)

    def run(opt, apply):
        state = opt.init(params)
        p = params
        for _ in range(5):
            grads = jax.tree.map(jnp.conj, jax.grad(loss)(p))
            with jax.numpy_dtype_promotion("standard"):
                updates, state = opt.update(grads, state, p)
            p = apply(p, updates)
        return p, state

    got, state = run(
        contrib.split_real_and_imaginary(eqopt.adam(0.1)), eqopt.apply_updates
    )
    expected, _ = run(
        optax.contrib.split_real_and_imaginary(optax.adam(0.1)), optax.apply_updates
    )
    # (`x` heads for 0, where Adam's steps of size ~0.1 leave rounding of ~1e-6.)
    assert_trees_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert got["z"].dtype == params["z"].dtype
    assert isinstance(state, contrib.SplitRealAndImaginaryState)
    assert loss(got) < loss(params)

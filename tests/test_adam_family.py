"""Adam's family beyond the generic registry tests: range checks, `nu_dtype`, NAdam(W)
as Adam(W) Modules, AMSGrad's running maximum, Yogi's initial value, and RAdam against
Optax at the default `b2`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, tree_isfinite


# (factory, kwargs, message fragment): every range check names argument and value.
OUT_OF_RANGE = [
    (eqopt.scale_by_adamax, dict(b1=1.0), r"`scale_by_adamax\(b1=...\)` must be in"),
    (eqopt.scale_by_adamax, dict(b2=-0.5), r"`scale_by_adamax\(b2=...\)`.*b2=-0.5"),
    (eqopt.scale_by_adamax, dict(eps=-1.0), r"`scale_by_adamax\(eps=...\)`.*eps=-1.0"),
    (eqopt.scale_by_amsgrad, dict(b1=1.5), r"`scale_by_amsgrad\(b1=...\)`.*b1=1.5"),
    (eqopt.scale_by_amsgrad, dict(b2=1.0), r"`scale_by_amsgrad\(b2=...\)`.*b2=1.0"),
    (eqopt.scale_by_amsgrad, dict(eps=-1e-8), r"`scale_by_amsgrad\(eps=...\)`"),
    (
        eqopt.scale_by_amsgrad,
        dict(eps_root=-1.0),
        r"`scale_by_amsgrad\(eps_root=...\)` must be in \[0, inf\); got eps_root=-1.0",
    ),
    (eqopt.scale_by_belief, dict(b1=-0.1), r"`scale_by_belief\(b1=...\)`.*b1=-0.1"),
    (eqopt.scale_by_belief, dict(b2=2.0), r"`scale_by_belief\(b2=...\)`.*b2=2.0"),
    (eqopt.scale_by_belief, dict(eps=-1.0), r"`scale_by_belief\(eps=...\)`"),
    (eqopt.scale_by_belief, dict(eps_root=-1.0), r"`scale_by_belief\(eps_root=...\)`"),
    (eqopt.scale_by_yogi, dict(b1=1.0), r"`scale_by_yogi\(b1=...\)`.*b1=1.0"),
    (eqopt.scale_by_yogi, dict(b2=1.0), r"`scale_by_yogi\(b2=...\)`.*b2=1.0"),
    (eqopt.scale_by_yogi, dict(eps=-1.0), r"`scale_by_yogi\(eps=...\)`.*eps=-1.0"),
    (eqopt.scale_by_yogi, dict(eps_root=-1.0), r"`scale_by_yogi\(eps_root=...\)`"),
    (
        eqopt.scale_by_yogi,
        dict(initial_accumulator_value=0.0),
        r"`scale_by_yogi\(initial_accumulator_value=...\)` must be in \(0, inf\); "
        r"got initial_accumulator_value=0.0",
    ),
    (eqopt.scale_by_radam, dict(b1=1.0), r"`scale_by_radam\(b1=...\)`.*b1=1.0"),
    (eqopt.scale_by_radam, dict(b2=1.0), r"`scale_by_radam\(b2=...\)`.*b2=1.0"),
    (eqopt.scale_by_radam, dict(eps=-1.0), r"`scale_by_radam\(eps=...\)`"),
    (eqopt.scale_by_radam, dict(eps_root=-1.0), r"`scale_by_radam\(eps_root=...\)`"),
    (eqopt.adamax, dict(learning_rate=0.1, b1=1.0), r"`adamax\(b1=...\)`.*b1=1.0"),
    (eqopt.adamax, dict(learning_rate=0.1, b2=1.0), r"`adamax\(b2=...\)`.*b2=1.0"),
    (eqopt.adamax, dict(learning_rate=0.1, eps=-1.0), r"`adamax\(eps=...\)`"),
    (eqopt.adamaxw, dict(learning_rate=0.1, b1=1.0), r"`adamaxw\(b1=...\)`"),
    (eqopt.adamaxw, dict(learning_rate=0.1, b2=-1.0), r"`adamaxw\(b2=...\)`"),
    (eqopt.adamaxw, dict(learning_rate=0.1, eps=-1.0), r"`adamaxw\(eps=...\)`"),
    (eqopt.amsgrad, dict(learning_rate=0.1, b1=1.0), r"`amsgrad\(b1=...\)`"),
    (eqopt.amsgrad, dict(learning_rate=0.1, b2=1.0), r"`amsgrad\(b2=...\)`"),
    (eqopt.amsgrad, dict(learning_rate=0.1, eps=-1.0), r"`amsgrad\(eps=...\)`"),
    (eqopt.amsgrad, dict(learning_rate=0.1, eps_root=-1.0), r"`amsgrad\(eps_root"),
    (eqopt.adabelief, dict(learning_rate=0.1, b1=1.0), r"`adabelief\(b1=...\)`"),
    (eqopt.adabelief, dict(learning_rate=0.1, b2=1.0), r"`adabelief\(b2=...\)`"),
    (eqopt.adabelief, dict(learning_rate=0.1, eps=-1.0), r"`adabelief\(eps=...\)`"),
    (eqopt.adabelief, dict(learning_rate=0.1, eps_root=-1.0), r"`adabelief\(eps_r"),
    (eqopt.yogi, dict(learning_rate=0.1, b1=1.0), r"`yogi\(b1=...\)`.*b1=1.0"),
    (eqopt.yogi, dict(learning_rate=0.1, b2=1.0), r"`yogi\(b2=...\)`.*b2=1.0"),
    (eqopt.yogi, dict(learning_rate=0.1, eps=-1.0), r"`yogi\(eps=...\)`.*eps=-1.0"),
    (eqopt.radam, dict(learning_rate=0.1, b1=1.0), r"`radam\(b1=...\)`.*b1=1.0"),
    (eqopt.radam, dict(learning_rate=0.1, b2=1.0), r"`radam\(b2=...\)`.*b2=1.0"),
    (eqopt.radam, dict(learning_rate=0.1, eps=-1.0), r"`radam\(eps=...\)`"),
    (eqopt.radam, dict(learning_rate=0.1, eps_root=-1.0), r"`radam\(eps_root=...\)`"),
    # NAdam(W) are Adam(W) Modules: the message names the Module's factory.
    (eqopt.nadam, dict(learning_rate=0.1, b1=1.0), r"`adam\(b1=...\)`.*b1=1.0"),
    (eqopt.nadam, dict(learning_rate=0.1, eps_root=-1.0), r"eps_root=-1.0"),
    (eqopt.nadamw, dict(learning_rate=0.1, b2=1.0), r"`adamw\(b2=...\)`.*b2=1.0"),
    (eqopt.nadamw, dict(learning_rate=0.1, eps=-1.0), r"`adamw\(eps=...\)`"),
]


@pytest.mark.parametrize(
    "factory, kwargs, message",
    OUT_OF_RANGE,
    ids=[f"{f.__name__}-{'-'.join(k)}" for f, k, _ in OUT_OF_RANGE],
)
def test_out_of_range_hyperparameters_raise(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_traced_hyperparameters_are_not_checked():
    # Inside `vmap` the values are tracers: out-of-range ones are not an error there.
    opt = jax.vmap(lambda b2: eqopt.radam(0.1, b2=b2))(jnp.asarray([0.9, 1.5]))
    assert opt.b2.shape == (2,)


# --- `nu_dtype` (optax#1552) ---------------------------------------------------------


def _params(dtype):
    keys = jr.split(jr.key(0), 2)
    return {
        "w": jr.normal(keys[0], (4, 3)).astype(dtype),
        "b": jr.normal(keys[1], (3,)).astype(dtype),
    }


def _grads(step, dtype):
    # Gradients of changing size, so that the second moment keeps moving.
    keys = jr.split(jr.fold_in(jr.key(1), step), 2)
    scale = 1 + step % 3
    return {
        "w": (scale * jr.normal(keys[0], (4, 3))).astype(dtype),
        "b": (scale * jr.normal(keys[1], (3,))).astype(dtype),
    }


WITH_FLOAT32_MOMENTS = {
    "scale_by_adam": lambda: eqopt.scale_by_adam(
        mu_dtype=jnp.float32, nu_dtype=jnp.float32
    ),
    "adam": lambda: eqopt.adam(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "adamw": lambda: eqopt.adamw(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "nadam": lambda: eqopt.nadam(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "nadamw": lambda: eqopt.nadamw(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "scale_by_amsgrad": lambda: eqopt.scale_by_amsgrad(
        mu_dtype=jnp.float32, nu_dtype=jnp.float32
    ),
    "amsgrad": lambda: eqopt.amsgrad(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
}


def _moments(state):
    """The moment trees of a state, by field name (`mu`, `nu`, `nu_max`)."""
    inner = state[0] if isinstance(state, tuple) else state
    return {k: getattr(inner, k) for k in ("mu", "nu", "nu_max") if hasattr(inner, k)}


@pytest.mark.parametrize("name", WITH_FLOAT32_MOMENTS)
def test_nu_dtype_float32_with_bfloat16_params_is_float32_cast_at_the_end(name):
    """bfloat16 parameters and gradients with float32 moments: the state stays float32
    and every update is, bit for bit, the float32 computation cast to bfloat16."""
    opt = WITH_FLOAT32_MOMENTS[name]()
    p16 = _params(jnp.bfloat16)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p16)
    state16, state32 = opt.init(p16), opt.init(p32)
    for moments in _moments(state16).values():
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(moments))

    @jax.jit
    def step(state16, state32, p16, p32, g16):
        g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g16)
        u16, state16 = opt.update(g16, state16, p16)
        u32, state32 = opt.update(g32, state32, p32)
        return u16, u32, state16, state32

    for i in range(6):
        u16, u32, state16, state32 = step(
            state16, state32, p16, p32, _grads(i, jnp.bfloat16)
        )
        assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u16))
        cast = jax.tree.map(lambda u: u.astype(jnp.bfloat16), u32)
        assert_trees_allclose(u16, cast, rtol=0, atol=0)
        assert_trees_allclose(_moments(state16), _moments(state32), rtol=0, atol=0)
        # Both runs see the same (bfloat16) parameters.
        p16 = eqopt.apply_updates(p16, u16)
        p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p16)


@pytest.mark.parametrize(
    "make",
    [
        lambda: eqopt.adam(0.1, nu_dtype=jnp.float32),
        lambda: eqopt.nadamw(0.1, nu_dtype=jnp.float32),
        lambda: eqopt.amsgrad(0.1, nu_dtype=jnp.float32),
    ],
    ids=["adam", "nadamw", "amsgrad"],
)
def test_nu_dtype_alone_leaves_mu_in_the_parameter_dtype(make):
    moments = _moments(make().init(_params(jnp.bfloat16)))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(moments.pop("mu")))
    for tree in moments.values():
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(tree))


def test_nu_dtype_float32_keeps_following_gradients_where_bfloat16_stalls():
    """The reason for `nu_dtype`: with `b2=0.999` and gradients of 1, v_t = 1 - b2^t.
    Kept in bfloat16, v stops growing once a step's change (1e-3 (1 - v)) is under half
    a bfloat16 spacing; in float32 it follows the formula."""
    params = jnp.zeros(8, jnp.bfloat16)
    grads = jnp.ones(8, jnp.bfloat16)
    steps = 2000

    def final_nu(opt):
        def step(state, _):
            return opt.update(grads, state)[1], None

        return jax.lax.scan(step, opt.init(params), length=steps)[0].nu

    exact = 1 - 0.999**steps
    stalled = final_nu(eqopt.scale_by_adam())
    followed = final_nu(eqopt.scale_by_adam(nu_dtype=jnp.float32))
    assert stalled.dtype == jnp.bfloat16 and followed.dtype == jnp.float32
    np.testing.assert_allclose(followed, exact, rtol=1e-4)
    assert float(stalled[0]) < 0.5 * exact


def test_nu_dtype_is_keyword_only():
    # Optax's positional signature is unchanged: a seventh positional argument of
    # `adam` does not exist, and `nu_dtype` is accepted by keyword only.
    with pytest.raises(TypeError):
        eqopt.adam(0.1, 0.9, 0.999, 1e-8, 0.0, None, jnp.float32)
    assert eqopt.adam(0.1, nu_dtype=jnp.float32).nu_dtype == jnp.float32


# --- NAdam(W) -------------------------------------------------------------------------


def test_nadam_and_nadamw_are_adam_modules_with_nesterov():
    nadam = eqopt.nadam(0.1, 0.8)
    assert isinstance(nadam, eqopt.Adam) and nadam.nesterov
    assert float(nadam.b1) == pytest.approx(0.8)
    nadamw = eqopt.nadamw(0.1, weight_decay=0.3, mask={"w": True, "b": False})
    assert isinstance(nadamw, eqopt.AdamW) and nadamw.nesterov
    assert float(nadamw.weight_decay) == pytest.approx(0.3)
    # As in Optax's `partial`, `nesterov` can be switched off again.
    assert not eqopt.nadam(0.1, nesterov=False).nesterov
    # And a hyperparameter is changed as on any eqopt optimiser.
    moved = eqx.tree_at(lambda o: o.learning_rate, nadam, jnp.asarray(0.01))
    assert float(moved.learning_rate) == pytest.approx(0.01)


def test_nadamw_mask_decays_only_masked_parameters():
    params = _params(jnp.float32)
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = eqopt.nadamw(1.0, weight_decay=0.5, mask={"w": True, "b": False})
    updates, _ = opt.update(zeros, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5 * params["w"], rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], jnp.zeros(3))


# --- Behaviour of the variants --------------------------------------------------------


def test_amsgrad_nu_max_never_decreases():
    opt = eqopt.scale_by_amsgrad()
    state = opt.init(jnp.zeros(3))
    previous = state.nu_max
    for g in (10.0, 1.0, 0.0, 0.1):
        _, state = opt.update(jnp.full(3, g), state)
        assert bool(jnp.all(state.nu_max >= previous))
        assert bool(jnp.all(state.nu_max >= state.nu / (1 - 0.999**state.count)))
        previous = state.nu_max
    # After the large gradient, the step shrinks although gradients become small.
    assert float(previous[0]) > 10.0


def test_yogi_moments_start_at_initial_accumulator_value():
    state = eqopt.scale_by_yogi(initial_accumulator_value=0.25).init(
        _params(jnp.bfloat16)
    )
    for x in jax.tree.leaves((state.mu, state.nu)):
        assert x.dtype == jnp.bfloat16
        np.testing.assert_array_equal(x, jnp.full(x.shape, 0.25, jnp.bfloat16))


def test_adamax_infinity_moment_is_at_least_eps():
    opt = eqopt.scale_by_adamax(eps=1e-3)
    updates, state = opt.update(jnp.zeros(2), opt.init(jnp.zeros(2)))
    np.testing.assert_allclose(state.nu, jnp.full(2, 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(updates, jnp.zeros(2))


def _run(opt, steps, params, loss):
    state, out = opt.init(params), []
    for _ in range(steps):
        u, state = opt.update(jax.grad(loss)(params), state, params)
        out.append(u)
    return out


def test_radam_default_b2_matches_optax_up_to_the_documented_difference():
    """With `b2=0.999` Optax's rho_inf (from the double 0.999) and eqopt's (from
    float32(0.999)) differ by 0.026: identical momentum steps before the threshold,
    within 2% after it (in float32-exact `b2` the generic parity test holds)."""
    params = _params(jnp.float32)

    def loss(p):
        return sum(jnp.sum(jnp.cos(x) + x**2) for x in jax.tree.leaves(p))

    ours = _run(eqopt.scale_by_radam(), 10, params, loss)
    with jax.numpy_dtype_promotion("standard"):
        theirs = _run(optax.scale_by_radam(), 10, params, loss)
    # rho_t < 5 for the first five steps: both take the momentum step.
    assert_trees_allclose(ours[:5], theirs[:5], rtol=1e-5, atol=1e-7)
    assert_trees_allclose(ours[5:], theirs[5:], rtol=2e-2, atol=0)


def test_radam_hypergradient_in_b2_is_finite_before_the_threshold():
    # For 2 < rho_t < 4 RAdam's radicand is negative in the branch `jnp.where` does not
    # select; its derivative must not leak a NaN into the hypergradient.
    params = jnp.asarray([1.0, -2.0, 0.0])

    def meta_loss(b2):
        opt = eqopt.radam(0.1, b2=b2)
        state, p = opt.init(params), params
        for _ in range(4):
            u, state = opt.update(2 * p, state, p)
            p = eqopt.apply_updates(p, u)
        return jnp.sum(p**2)

    assert tree_isfinite(jax.grad(meta_loss)(jnp.asarray(0.999)))

"""Learning-rate-free optimisers of `eqopt.contrib` (Prodigy, D-Adaptation, DoG, DoWG,
Mechanic, COCOB, MoMo): Optax parity on an Equinox MLP and on a dict with a scalar
leaf, `init` from abstract shapes, hyperparameters as leaves, and error messages.

The generic promises (parity on the registry's problem, vmapped sweeps,
hypergradients, bfloat16, checkpoints, sharding) come from the registry cases in
`tests/registry/contrib_adaptive.py`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt
from eqopt import contrib

from .helpers import assert_trees_allclose, tree_isfinite


# name -> (eqopt optimiser, Optax optimiser, whether `update` needs `value`).
OPTIMISERS = {
    "prodigy": (
        lambda: contrib.prodigy(estim_lr0=1e-3, weight_decay=0.01),
        lambda: optax.contrib.prodigy(estim_lr0=1e-3, weight_decay=0.01),
        False,
    ),
    "dadapt_adamw": (
        lambda: contrib.dadapt_adamw(estim_lr0=1e-3),
        lambda: optax.contrib.dadapt_adamw(estim_lr0=1e-3),
        False,
    ),
    "dog": (
        lambda: contrib.dog(init_step=("heuristic", 1e-3)),
        lambda: optax.contrib.dog(init_step=("heuristic", 1e-3)),
        False,
    ),
    "dowg": (contrib.dowg, optax.contrib.dowg, False),
    "mechanize": (
        lambda: contrib.mechanize(eqopt.adam(1e-2)),
        lambda: optax.contrib.mechanize(optax.adam(1e-2)),
        False,
    ),
    "cocob": (contrib.cocob, optax.contrib.cocob, False),
    "scale_by_cocob": (contrib.scale_by_cocob, optax.contrib.scale_by_cocob, False),
    "momo": (contrib.momo, optax.contrib.momo, True),
    "momo_adam": (contrib.momo_adam, optax.contrib.momo_adam, True),
}
NAMES = list(OPTIMISERS)


def _run_both(name, params, loss, steps):
    """`steps` steps of eqopt's and Optax's optimiser along Optax's trajectory; the
    updates of both, stacked. Optax sees only the array leaves (`eqx.filter`)."""
    make_ours, make_theirs, needs_value = OPTIMISERS[name]
    ours, theirs = make_ours(), make_theirs()
    arrays = lambda tree: eqx.filter(tree, eqx.is_array)  # noqa: E731

    @eqx.filter_jit
    def run(params):
        state, ref_state = ours.init(params), theirs.init(arrays(params))
        out = []
        for _ in range(steps):
            value, grads = eqx.filter_value_and_grad(loss)(params)
            extra = dict(value=value) if needs_value else {}
            updates, state = ours.update(grads, state, params, **extra)
            with jax.numpy_dtype_promotion("standard"):
                expected, ref_state = theirs.update(
                    arrays(grads), ref_state, arrays(params), **extra
                )
            out.append((arrays(updates), expected))
            params = eqx.apply_updates(params, expected)
        return out

    return run(params)


@pytest.mark.parametrize("name", NAMES)
def test_parity_on_an_equinox_mlp(name):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.key(0))
    x = jr.normal(jr.key(1), (16, 3))
    y = jr.normal(jr.key(2), (16, 2))

    def loss(m):
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    for updates, expected in _run_both(name, model, loss, 6):
        assert_trees_allclose(updates, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_parity_on_a_dict_with_a_scalar_leaf(name):
    params = {"w": jr.normal(jr.key(3), (5, 2)), "scale": jnp.asarray(0.7)}

    def loss(p):
        return jnp.sum((p["scale"] * p["w"] - 1.0) ** 2) + p["scale"] ** 2

    for updates, expected in _run_both(name, params, loss, 8):
        assert_trees_allclose(updates, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_init_reads_only_shapes(name):
    """`init` runs on `ShapeDtypeStruct`s (under `jax.eval_shape`), and its state
    does not depend on the parameters' values at all: the first `update` stores what
    Optax's `init` reads from them."""
    opt = OPTIMISERS[name][0]()
    params = {
        "w": jr.normal(jr.key(4), (3, 2)),
        "b": jnp.ones(2),
        "s": jnp.asarray(2.0),
    }
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    shapes = jax.eval_shape(opt.init, abstract)
    state = opt.init(params)
    assert jax.tree.structure(shapes) == jax.tree.structure(state)
    for s, c in zip(jax.tree.leaves(shapes), jax.tree.leaves(state)):
        assert (s.shape, s.dtype) == (c.shape, c.dtype)
    zeros = jax.tree.map(jnp.zeros_like, params)
    assert_trees_allclose(state, opt.init(zeros), rtol=0, atol=0)


def test_optax_inits_read_values_where_eqopt_does_not():
    """What the issue is about: Optax's DoG heuristic needs parameter values."""
    abstract = {"w": jax.ShapeDtypeStruct((3,), jnp.float32)}
    with pytest.raises(Exception):
        optax.contrib.dog().init(abstract)
    jax.eval_shape(contrib.dog().init, abstract)  # and eqopt's needs none


@pytest.mark.parametrize("name", ["prodigy", "dog", "dowg", "mechanize", "cocob"])
def test_first_update_stores_the_initial_parameters(name):
    """Initialised from other values than the first `update` sees, eqopt still takes
    the parameters of the first `update` as the starting point: it matches Optax
    initialised with those."""
    make_ours, make_theirs, _ = OPTIMISERS[name]
    ours, theirs = make_ours(), make_theirs()
    params = {"w": jr.normal(jr.key(5), (4,)), "s": jnp.asarray(-0.5)}
    grads = jax.tree.map(lambda p: jnp.cos(p) + 0.1, params)
    state = ours.init(jax.tree.map(jnp.zeros_like, params))
    ref_state = theirs.init(params)
    for _ in range(3):
        updates, state = ours.update(grads, state, params)
        with jax.numpy_dtype_promotion("standard"):
            expected, ref_state = theirs.update(grads, ref_state, params)
        assert_trees_allclose(updates, expected, rtol=1e-5, atol=1e-8)
        params = optax.apply_updates(params, expected)


@pytest.mark.parametrize("name", ["momo", "momo_adam"])
def test_momo_needs_the_loss_value(name):
    opt = OPTIMISERS[name][0]()
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="value="):
        opt.update(params, opt.init(params), params)


@pytest.mark.parametrize("name", NAMES)
def test_update_needs_the_parameters(name):
    make, _, needs_value = OPTIMISERS[name]
    opt = make()
    params = {"w": jnp.ones(3)}
    extra = dict(value=1.0) if needs_value else {}
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params), **extra)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: contrib.prodigy(betas=(0.9, 1.5)), r"betas\[1\]"),
        (lambda: contrib.prodigy(estim_lr0=0.0), "estim_lr0"),
        (lambda: contrib.dadapt_adamw(betas=(-0.1, 0.9)), r"betas\[0\]"),
        (lambda: contrib.dog(init_step=("guess", 1.0)), "init_step"),
        (lambda: contrib.dog(init_step=("distance", -1.0)), "value"),
        (lambda: contrib.dowg(eps=-1.0), "eps"),
        (lambda: contrib.mechanize(eqopt.sgd(0.1), num_betas=0), "num_betas"),
        (lambda: contrib.mechanize(eqopt.sgd(0.1), weight_decay=-1.0), "weight_decay"),
        (lambda: contrib.cocob(alpha=-1.0), "alpha"),
        (lambda: contrib.momo(beta=2.0), "beta"),
        (lambda: contrib.momo_adam(b2=1.0), "b2"),
    ],
)
def test_bad_hyperparameters_are_named(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_mechanize_needs_an_eqopt_transformation():
    with pytest.raises(TypeError, match="base_optimizer"):
        contrib.mechanize(optax.sgd(0.1))


def test_dog_init_step_unpacks_like_optax_and_its_value_is_a_leaf():
    opt = contrib.dog(init_step=("distance", 0.5))
    kind, value = opt.init_step
    assert kind == "distance" and float(value) == 0.5
    changed = eqx.tree_at(lambda o: o.init_step.value, opt, jnp.asarray(0.25))
    assert float(changed.init_step.value) == 0.25


def _meta_loss(opt, params, loss, steps=5, needs_value=False):
    state = opt.init(params)
    for _ in range(steps):
        value, grads = jax.value_and_grad(loss)(params)
        extra = dict(value=value) if needs_value else {}
        updates, state = opt.update(grads, state, params, **extra)
        params = eqopt.apply_updates(params, updates)
    return loss(params)


@pytest.mark.parametrize(
    "make, where, h",
    [
        # Estimates below d0 leave d (and the coefficient) out: a coefficient above 1.
        (
            lambda h: contrib.prodigy(estim_lr0=1e-3, estim_lr_coef=h),
            "estim_lr_coef",
            1.0,
        ),
        (lambda h: contrib.dog(init_step=("heuristic", h)), "init_step.value", 0.1),
        (
            lambda h: contrib.mechanize(eqopt.sgd(0.1), weight_decay=h),
            "weight_decay",
            0.1,
        ),
        (
            lambda h: contrib.mechanize(eqopt.sgd(h)),
            "base_optimizer.learning_rate",
            0.1,
        ),
    ],
)
def test_adaptive_hyperparameters_are_leaves(make, where, h):
    """A vmapped sweep equals separate runs, and the hypergradient is finite and
    nonzero, for the hyperparameters that set the adaptive step."""
    params = {"w": jr.normal(jr.key(6), (6,)), "s": jnp.asarray(1.5)}

    def loss(p):
        return jnp.sum((p["w"] - 1) ** 2) + jnp.cos(p["s"])

    hs = jnp.asarray([h, 1.5 * h, 2 * h])
    run = eqx.filter_jit(lambda opt: _meta_loss(opt, params, loss))
    swept = eqx.filter_jit(jax.vmap(lambda h: run(make(h))))(hs)
    separate = jnp.stack([run(make(h)) for h in hs])
    np.testing.assert_allclose(swept, separate, rtol=1e-5)
    grads = eqx.filter_jit(eqx.filter_grad(run))(make(jnp.asarray(h)))
    hypergradient = grads
    for part in where.split("."):
        hypergradient = getattr(hypergradient, part)
    assert tree_isfinite(grads)
    assert float(jnp.abs(hypergradient)) > 0


@pytest.mark.parametrize("name", NAMES)
def test_all_zero_gradients_give_finite_updates(name):
    """No NaN where Optax's Prodigy and D-Adaptation estimates are 0/0."""
    make, _, needs_value = OPTIMISERS[name]
    opt = make()
    params = {"w": jnp.ones(3), "s": jnp.asarray(0.5)}
    grads = jax.tree.map(jnp.zeros_like, params)
    state = opt.init(params)
    extra = dict(value=1.0) if needs_value else {}
    for _ in range(3):
        updates, state = opt.update(grads, state, params, **extra)
        assert tree_isfinite((updates, state))

"""`ema_params`: the averaged parameters against float64 NumPy loops written from the
equations of each `debias` mode, the inner optimiser untouched, Equinox models, sweeps
over `decay`, checkpoints, and errors. The generic tests run on its registry cases
(`tests/registry/ema.py`)."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqopt

from .helpers import assert_trees_allclose, random_tree
from .test_beyond import _inputs, _max_rel_err, SHAPES


LR = 0.05


def np_ema_params(params, grads, decay, debias):
    r"""The parameters of plain SGD ($\theta_t = \theta_{t-1} - \eta g_t$) and their
    average after each step, in float64, from the equations of `EmaParams`."""
    theta = {k: v.copy() for k, v in params.items()}
    if debias == "bias_correction":
        m = {k: np.zeros(s) for k, s in SHAPES.items()}  # started at zero
    else:
        m = {k: v.copy() for k, v in params.items()}  # started at theta_0
    out = []
    for t, g in enumerate(grads, start=1):
        for k in SHAPES:
            theta[k] = theta[k] - LR * g[k]
        if debias == "warmup":
            d = min(decay, (1 + (t - 1)) / (10 + (t - 1)))
        else:
            d = decay
        for k in SHAPES:
            m[k] = d * m[k] + (1 - d) * theta[k]
        if debias == "bias_correction":
            out.append({k: m[k] / (1 - decay**t) for k in SHAPES})
        else:
            out.append({k: m[k].copy() for k in SHAPES})
    return out


def run_ema_params(opt, params, grads, dtype):
    """`ema_params_of` after each step of `opt` on `grads`, in float64 NumPy."""
    cast = lambda tree: {k: jnp.asarray(v, dtype) for k, v in tree.items()}
    params = cast(params)
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    state, out = opt.init(params), []
    for g in grads:
        u, state = step(params, state, cast(g))
        params = eqopt.apply_updates(params, u)
        ema = eqopt.ema_params_of(state, params)
        out.append({k: np.asarray(v, np.float64) for k, v in ema.items()})
    return out


@pytest.mark.parametrize("debias", ["bias_correction", "warmup", None])
@pytest.mark.parametrize("decay", [0.9, 0.5])
def test_matches_numpy_reference(debias, decay):
    params, grads = _inputs()
    expected = np_ema_params(params, grads, decay, debias)
    make = lambda: eqopt.ema_params(eqopt.sgd(LR), decay=decay, debias=debias)
    with jax.enable_x64(True):
        err64 = _max_rel_err(
            run_ema_params(make(), params, grads, jnp.float64), expected
        )
    err32 = _max_rel_err(run_ema_params(make(), params, grads, jnp.float32), expected)
    print(f"max rel err: float64 {err64:.2e}, float32 {err32:.2e}")
    assert err64 < 1e-12 and err32 < 1e-4, (err64, err32)


def test_debias_true_and_false_are_bias_correction_and_none():
    assert eqopt.ema_params(eqopt.sgd(0.1), debias=True).debias == "bias_correction"
    assert eqopt.ema_params(eqopt.sgd(0.1), debias=False).debias is None
    assert eqopt.ema_params(eqopt.sgd(0.1)).debias == "bias_correction"


def test_bias_correction_first_step_and_decay_one_running_mean():
    r"""At the first step the debiased average is the new parameters; with `decay=1` it
    is the mean of all iterates so far (the limit of $(1 - d)/(1 - d^t)$, $1/t$)."""
    params, grads = _inputs()
    with jax.enable_x64(True):
        opt = eqopt.ema_params(eqopt.sgd(LR), decay=1.0)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        state = opt.init(p)
        iterates = []
        for t, g in enumerate(grads, start=1):
            u, state = opt.update({k: jnp.asarray(v) for k, v in g.items()}, state, p)
            p = eqopt.apply_updates(p, u)
            iterates.append(p)
            mean = jax.tree.map(lambda *xs: sum(xs) / len(xs), *iterates)
            assert_trees_allclose(eqopt.ema_params_of(state, p), mean, rtol=1e-13)
            if t == 1:
                assert_trees_allclose(eqopt.ema_params_of(state, p), p, rtol=0, atol=0)
        assert int(state.count) == len(grads)


@pytest.mark.parametrize("debias", ["bias_correction", "warmup", None])
def test_inner_updates_and_state_are_the_inner_optimisers_bitwise(debias):
    params = random_tree(jr.key(0))
    grads = [random_tree(jr.key(i + 1)) for i in range(5)]
    inner = eqopt.adam(1e-2)
    opt = eqopt.ema_params(inner, decay=0.9, debias=debias)
    step = jax.jit(lambda o, s, g, p: o.update(g, s, p))
    p, s = params, opt.init(params)
    q, r = params, inner.init(params)
    for g in grads:
        u, s = step(opt, s, g, p)
        v, r = step(inner, r, g, q)
        assert_trees_allclose(u, v, rtol=0, atol=0)
        p, q = eqopt.apply_updates(p, u), eqopt.apply_updates(q, v)
    assert_trees_allclose(s.inner_state, r, rtol=0, atol=0)


class Model(eqx.Module):
    mlp: eqx.nn.MLP
    steps: jax.Array  # an integer array: not averaged
    name: str
    nothing: None


def _model(dtype=jnp.float32):
    mlp = eqx.nn.MLP(2, 1, 8, 2, key=jr.key(1))
    mlp = jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, mlp)
    return Model(mlp, jnp.arange(3), "model", None)


def _data():
    x = jr.normal(jr.key(2), (32, 2))
    return x, jnp.sin(x[:, :1]) + x[:, 1:] ** 2


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model.mlp)(x) - y) ** 2)


@pytest.mark.parametrize("debias", ["bias_correction", "warmup"])
def test_equinox_model_in_and_callable_model_out(debias):
    model = _model()
    x, y = _data()
    opt = eqopt.ema_params(eqopt.adamw(1e-2), decay=0.9, debias=debias)

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(_loss)(model, x, y)
        updates, state = opt.update(grads, state, model)
        return eqopt.apply_updates(model, updates), state

    state = opt.init(model)
    # Before any step the average is the initial model.
    assert_trees_allclose(
        eqx.filter(eqopt.ema_params_of(state, model), eqx.is_array),
        eqx.filter(model, eqx.is_array),
        rtol=0,
        atol=0,
    )
    iterates = []
    for _ in range(30):
        model, state = step(model, state)
        iterates.append(model)
    model_eval = eqopt.ema_params_of(state, model)
    assert isinstance(model_eval, Model)
    assert model_eval.mlp.activation is jax.nn.relu
    assert model_eval.name == "model" and model_eval.nothing is None
    assert model_eval.steps is model.steps
    assert jax.tree.structure(model_eval) == jax.tree.structure(model)
    # The state holds averages of the floating leaves only.
    assert state.ema.steps is None and state.ema.nothing is None
    # Callable for inference, and not simply the last iterate.
    prediction = jax.vmap(model_eval.mlp)(x)
    assert prediction.shape == (32, 1) and bool(jnp.all(jnp.isfinite(prediction)))
    weight = lambda m: m.mlp.layers[0].weight
    assert not jnp.allclose(weight(model_eval), weight(model))
    # The average lies within the range of the iterates it averages (convex weights).
    stacked = jnp.stack([weight(m) for m in iterates] + [weight(_model())])
    low, high = stacked.min(0), stacked.max(0)
    assert bool(
        jnp.all(
            (weight(model_eval) >= low - 1e-6) & (weight(model_eval) <= high + 1e-6)
        )
    )
    # Without a model: the stored averages, `None` at the leaves not averaged, which
    # `eqx.combine` fills from the model.
    averages = eqopt.ema_params_of(state)
    assert averages.steps is None
    combined = eqx.combine(averages, model)
    assert_trees_allclose(
        eqx.filter(combined, eqx.is_array),
        eqx.filter(model_eval, eqx.is_array),
        rtol=0,
        atol=0,
    )


def test_ema_dtype_float32_averages_of_bfloat16_parameters():
    model = _model(jnp.bfloat16)
    x, y = _data()
    opt = eqopt.ema_params(eqopt.sgd(0.1), decay=0.99, ema_dtype=jnp.float32)

    def loss(m):
        m = jax.tree.map(
            lambda p: p.astype(jnp.float32) if eqx.is_inexact_array(p) else p, m
        )
        return _loss(m, x, y)

    # Eager, not jitted: XLA allows excess precision by default, so a compiled step may
    # average the new bfloat16 parameters before they are rounded to bfloat16 (about
    # 1e-3 away from this hand loop, which averages the rounded ones).
    def step(model, state):
        updates, state = opt.update(eqx.filter_grad(loss)(model), state, model)
        return eqopt.apply_updates(model, updates), state

    state = opt.init(model)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(state.ema))
    # The float32 average, computed by hand from the bfloat16 iterates.
    by_hand = jax.tree.map(
        lambda p: p.astype(jnp.float32) if eqx.is_inexact_array(p) else None, model
    )
    for t in range(1, 11):
        model, state = step(model, state)
        w = (1 - 0.99) / (1 - 0.99**t)
        by_hand = jax.tree.map(
            lambda a, p: (1 - w) * a + w * p.astype(jnp.float32),
            by_hand,
            eqx.filter(model, eqx.is_inexact_array),
        )
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(state.ema))
    assert_trees_allclose(state.ema.mlp, by_hand.mlp, rtol=1e-5, atol=1e-6)
    model_eval = eqopt.ema_params_of(state, model)
    assert all(
        p.dtype == jnp.bfloat16
        for p in jax.tree.leaves(eqx.filter(model_eval, eqx.is_inexact_array))
    )
    assert model_eval.steps.dtype == jnp.int32


def test_vmap_over_decay_equals_separate_runs():
    params = random_tree(jr.key(0))
    grads = [random_tree(jr.key(i + 1)) for i in range(6)]
    decays = jnp.asarray([0.5, 0.9, 0.99])

    @jax.jit
    def run(decay):
        opt = eqopt.ema_params(eqopt.adam(1e-2), decay=decay)
        p, s = params, opt.init(params)
        for g in grads:
            u, s = opt.update(g, s, p)
            p = eqopt.apply_updates(p, u)
        return eqopt.ema_params_of(s, p)

    swept = jax.vmap(run)(decays)
    for i, d in enumerate(decays):
        separate = run(d)
        assert_trees_allclose(jax.tree.map(lambda x: x[i], swept), separate, rtol=1e-6)
    # The optimiser itself vmapped: the batched Module is a pytree argument.
    batched = jax.vmap(lambda d: eqopt.ema_params(eqopt.adam(1e-2), decay=d))(decays)
    assert batched.decay.shape == (3,)


@pytest.mark.parametrize("debias", ["bias_correction", "warmup", None])
def test_hypergradient_wrt_decay_matches_finite_differences(debias):
    """`decay` is a leaf: the loss of the averaged parameters is differentiable in it."""
    with jax.enable_x64(True):
        params = random_tree(jr.key(0), jnp.float64)
        grads = [random_tree(jr.key(i + 1), jnp.float64) for i in range(6)]

        def eval_loss(decay):
            opt = eqopt.ema_params(eqopt.sgd(0.1), decay=decay, debias=debias)
            p, s = params, opt.init(params)
            for g in grads:
                u, s = opt.update(g, s, p)
                p = eqopt.apply_updates(p, u)
            return eqopt.tree.norm(eqopt.ema_params_of(s, p), squared=True)

        for decay in (0.05, 0.5):  # below and above the first warm-up decays
            d = jnp.asarray(decay, jnp.float64)
            eps = 1e-6
            fd = (eval_loss(d + eps) - eval_loss(d - eps)) / (2 * eps)
            grad = jax.grad(eval_loss)(d)
            np.testing.assert_allclose(grad, fd, rtol=1e-6)
            # With "warmup", 0.5 exceeds the first six warm-up decays (0.1 ... 0.4),
            # so it is never used: a zero derivative, as the differences confirm.
            if debias == "warmup" and decay == 0.5:
                assert grad == 0
            else:
                assert abs(grad) > 1e-3


def test_checkpoint_round_trip_and_bitwise_resume():
    model = _model()
    x, y = _data()
    opt = eqopt.ema_params(eqopt.adamw(1e-2), decay=0.95, debias="warmup")

    @eqx.filter_jit
    def step(opt, model, state):
        updates, state = opt.update(eqx.filter_grad(_loss)(model, x, y), state, model)
        return eqopt.apply_updates(model, updates), state

    state = opt.init(model)
    for _ in range(3):
        model, state = step(opt, model, state)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (opt, state, model))
    buffer.seek(0)
    like = eqopt.ema_params(eqopt.adamw(0.0), decay=0.0, debias="warmup")
    template = (like, like.init(_model()), _model())
    restored_opt, restored_state, restored_model = eqx.tree_deserialise_leaves(
        buffer, template
    )
    assert float(restored_opt.decay) == pytest.approx(0.95)
    assert_trees_allclose(
        eqx.filter((restored_opt, restored_state, restored_model), eqx.is_array),
        eqx.filter((opt, state, model), eqx.is_array),
        rtol=0,
        atol=0,
    )
    a = (model, state)
    b = (restored_model, restored_state)
    for _ in range(3):
        a = step(opt, *a)
        b = step(restored_opt, *b)
    assert_trees_allclose(
        eqx.filter(eqopt.ema_params_of(b[1], b[0]), eqx.is_array),
        eqx.filter(eqopt.ema_params_of(a[1], a[0]), eqx.is_array),
        rtol=0,
        atol=0,
    )


def test_accessor_finds_the_state_inside_other_states():
    params = random_tree(jr.key(0))
    grads = random_tree(jr.key(1))
    opt = eqopt.MultiSteps(eqopt.ema_params(eqopt.sgd(0.1), decay=0.5), 1)
    state = opt.init(params)
    u, state = opt.update(grads, state, params)
    inner = state.inner_opt_state
    assert isinstance(inner, eqopt.EmaParamsState)
    assert_trees_allclose(
        eqopt.ema_params_of(state, params), eqopt.ema_params_of(inner, params)
    )


def test_init_from_abstract_shapes_and_no_aliasing():
    params = random_tree(jr.key(0))
    for dtype in (None, jnp.float64):
        with jax.enable_x64(True):
            opt = eqopt.ema_params(eqopt.adam(0.1), ema_dtype=dtype)
            abstract = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params
            )
            shapes = eqx.filter_eval_shape(opt.init, abstract)
            state = opt.init(params)
            assert jax.tree.structure(shapes) == jax.tree.structure(state)
            for s, c in zip(jax.tree.leaves(shapes), jax.tree.leaves(state)):
                assert (s.shape, s.dtype) == (c.shape, c.dtype)
            expected = jnp.float32 if dtype is None else dtype
            assert all(e.dtype == expected for e in jax.tree.leaves(state.ema))
            ids = {id(x) for x in jax.tree.leaves(params)}
            assert not ids & {id(x) for x in jax.tree.leaves(state.ema)}


# ---------------------------------------------------------------------------------------
# Errors.


def test_update_without_params_names_params():
    opt = eqopt.ema_params(eqopt.sgd(0.1))
    params = random_tree(jr.key(0))
    with pytest.raises(ValueError, match="`params`"):
        opt.update(params, opt.init(params))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(decay=1.5),
            r"`ema_params\(decay=...\)` must be in \[0, 1\]; got decay=1.5",
        ),
        (dict(decay=-0.1), r"must be in \[0, 1\]; got decay=-0.1"),
        (
            dict(debias="adam"),
            r"`ema_params\(debias=...\)` must be .*got debias='adam'",
        ),
        (
            dict(ema_dtype=jnp.int32),
            r"`ema_params\(ema_dtype=...\)` must be a floating",
        ),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        eqopt.ema_params(eqopt.sgd(0.1), **kwargs)


def test_traced_decay_is_not_checked():
    jax.jit(lambda d: eqopt.ema_params(eqopt.sgd(0.1), decay=d).decay)(2.0)


def test_accessor_errors_name_state_and_params():
    params = random_tree(jr.key(0))
    with pytest.raises(ValueError, match=r"`state` holds 0"):
        eqopt.ema_params_of(eqopt.adam(0.1).init(params), params)
    opt = eqopt.ema_params(eqopt.sgd(0.1))
    two = (opt.init(params), opt.init(params))
    with pytest.raises(ValueError, match=r"`state` holds 2"):
        eqopt.ema_params_of(two, params)
    other = dict(params, extra=jnp.zeros(2))
    with pytest.raises(ValueError, match=r"`state.ema` and `params`"):
        eqopt.ema_params_of(opt.init(params), other)
    with pytest.raises(ValueError, match=r"and `params` have different tree"):
        opt.update(params, opt.init(params), other)

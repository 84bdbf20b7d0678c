"""L-BFGS and the zoom line search: Optax's iterates, Equinox models, data as jit
arguments, compile-once, vmap over problems, non-finite objectives, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _logistic_data(key, n=200, d=10, dtype=jnp.float32):
    kx, kw = jr.split(key)
    x = jr.normal(kx, (n, d), dtype)
    w = jr.normal(kw, (d,), dtype)
    y = jnp.where(x @ w + 0.3 * jr.normal(kw, (n,), dtype) > 0, 1.0, -1.0).astype(dtype)
    return x, y


def logistic_loss(params, x, y):
    margins = y * (x @ params["w"] + params["b"])
    return jnp.mean(jax.nn.softplus(-margins)) + 1e-3 * jnp.sum(params["w"] ** 2)


def _problem(name, dtype):
    """(objective of the parameters, initial parameters)."""
    if name == "rosenbrock":
        return rosenbrock, -jnp.ones(10, dtype)
    if name == "logistic":
        x, y = _logistic_data(jr.key(0), dtype=dtype)
        params = {"w": jnp.zeros(10, dtype), "b": jnp.zeros((), dtype)}
        return (lambda p: logistic_loss(p, x, y)), params
    # An ill-conditioned quadratic: condition number 1e4.
    scales = jnp.logspace(0, 4, 20, dtype=dtype)
    target = jnp.linspace(-1, 1, 20, dtype=dtype)
    return (lambda z: 0.5 * jnp.sum(scales * (z - target) ** 2)), jnp.zeros(20, dtype)


def solve(lib, opt, f, params, steps):
    """`steps` iterations of Optax's documented loop; the stacked iterates and values."""

    value_and_grad = lib.value_and_grad_from_state(f)

    def step(carry, _):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = lib.apply_updates(params, updates)
        return (params, state), (params, value)

    (_, state), history = jax.lax.scan(step, (params, opt.init(params)), length=steps)
    return history, state


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["rosenbrock", "logistic", "quadratic"])
def test_every_iterate_matches_optax(name, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        f, params = _problem(name, dtype)
        ours = jax.jit(lambda p: solve(eqopt, eqopt.lbfgs(), f, p, 30))(params)
        with jax.numpy_dtype_promotion("standard"):
            theirs = jax.jit(lambda p: solve(optax, optax.lbfgs(), f, p, 30))(params)
        (iterates, values), state = ours
        (their_iterates, their_values), their_state = theirs
        assert_trees_allclose(iterates, their_iterates)
        assert_trees_allclose(values, their_values)
        ls, their_ls = state[2], their_state[2]
        assert_trees_allclose(ls.learning_rate, their_ls.learning_rate)
        np.testing.assert_array_equal(
            ls.info.num_linesearch_steps, their_ls.info.num_linesearch_steps
        )
        assert values[-1] < (0.5 if name == "logistic" else 0.01) * values[0]


def test_zoom_after_sgd_matches_optax_with_data_as_extra_arguments():
    """Optax's docstring example: extra keyword arguments go on to `value_fn`."""
    x, y = _logistic_data(jr.key(1))
    params = {"w": jnp.zeros(10), "b": jnp.zeros(())}
    results = []
    for lib in (eqopt, optax):
        opt = lib.chain(lib.sgd(1.0), lib.scale_by_zoom_linesearch(15))
        state, p = opt.init(params), params
        for _ in range(5):
            value, grad = jax.value_and_grad(logistic_loss)(p, x, y)
            updates, state = opt.update(
                grad, state, p, value=value, grad=grad, value_fn=logistic_loss, x=x, y=y
            )
            p = lib.apply_updates(p, updates)
        results.append((p, state[-1].learning_rate))
    assert_trees_allclose(results[0], results[1])


class WithStatics(eqx.Module):
    mlp: eqx.nn.MLP
    steps: jax.Array
    name: str


def test_equinox_model_as_parameters():
    key = jr.key(2)
    model = WithStatics(eqx.nn.MLP(2, 1, 8, 2, key=key), jnp.arange(3), "model")
    x = jr.normal(jr.key(3), (64, 2))
    y = jnp.sin(x[:, :1]) + x[:, 1:] ** 2

    def loss(m):
        return jnp.mean((jax.vmap(m.mlp)(x) - y) ** 2)

    opt = eqopt.lbfgs()

    @eqx.filter_jit
    def step(model, state):
        value, grad = eqopt.value_and_grad_from_state(loss)(model, state=state)
        updates, state = opt.update(
            grad, state, model, value=value, grad=grad, value_fn=loss
        )
        return eqopt.apply_updates(model, updates), state, value

    # Optax on the floating arrays only (Optax needs the model filtered).
    arrays, static = eqx.partition(model, eqx.is_inexact_array)

    def their_loss(a):
        return loss(eqx.combine(a, static))

    their_opt = optax.lbfgs()

    @jax.jit
    def their_update(a, s):
        value, grad = optax.value_and_grad_from_state(their_loss)(a, state=s)
        updates, s = their_opt.update(
            grad, s, a, value=value, grad=grad, value_fn=their_loss
        )
        return optax.apply_updates(a, updates), s

    state, their_state, theirs = opt.init(model), their_opt.init(arrays), arrays
    start = loss(model)
    for _ in range(15):
        model, state, _ = step(model, state)
        theirs, their_state = their_update(theirs, their_state)
    assert model.mlp.activation is jax.nn.relu and model.name == "model"
    np.testing.assert_array_equal(model.steps, jnp.arange(3))
    assert loss(model) < 0.5 * start
    assert_trees_allclose(eqx.filter(model, eqx.is_inexact_array), theirs, rtol=1e-4)


def test_value_fn_closing_over_jit_arguments_compiles_once():
    """Data as jit arguments, a `value_fn` closing over them: one trace, whatever the
    data and however many steps; each run equals Optax's."""
    opt = eqopt.lbfgs()
    traces = []

    @jax.jit
    def step(params, state, x, y):
        traces.append(None)

        def f(p):
            return logistic_loss(p, x, y)

        value, grad = eqopt.value_and_grad_from_state(f)(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        return eqopt.apply_updates(params, updates), state

    params = {"w": jnp.zeros(10), "b": jnp.zeros(())}
    for seed in (4, 5):
        x, y = _logistic_data(jr.key(seed))
        p, state = params, opt.init(params)
        for _ in range(8):
            p, state = step(p, state, x, y)
        (their_iterates, _), _ = jax.jit(
            lambda q: solve(
                optax, optax.lbfgs(), lambda r: logistic_loss(r, x, y), q, 8
            )
        )(params)
        assert_trees_allclose(p, jax.tree.map(lambda t: t[-1], their_iterates))
    assert len(traces) == 1


def test_eager_updates_do_not_retrace_the_line_search():
    """optax#1171: Optax's line search builds a new `while_loop` body at each `update`,
    so each eager call re-traces and recompiles it. Here the body is traced once."""
    traces = []

    def f(x):
        traces.append(None)
        return rosenbrock(x)

    opt = eqopt.lbfgs()
    x = -jnp.ones(10)
    state = opt.init(x)
    for _ in range(4):
        value, grad = jax.value_and_grad(rosenbrock)(x)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        x = eqopt.apply_updates(x, updates)
    assert len(traces) == 1
    assert rosenbrock(x) < rosenbrock(-jnp.ones(10))


def test_jitted_step_traces_once_with_the_optimiser_as_an_argument():
    f, params = _problem("quadratic", jnp.float32)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(opt, params, state):
        value, grad = eqopt.value_and_grad_from_state(f)(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        return eqopt.apply_updates(params, updates), state

    opt = eqopt.lbfgs()
    state = opt.init(params)
    for i in range(6):
        # A changed line-search setting is a new leaf value, not a new program.
        opt = eqx.tree_at(
            lambda o: o.linesearch.curv_rtol, opt, jnp.asarray(0.9 - i / 100)
        )
        params, state = step(opt, params, state)


def test_vmap_over_problems_matches_separate_solves():
    keys = jr.split(jr.key(6), 4)
    xs, ys = jax.vmap(_logistic_data)(keys)
    params = {"w": jnp.zeros(10), "b": jnp.zeros(())}

    @jax.jit
    def run(x, y):
        f = lambda p: logistic_loss(p, x, y)  # noqa: E731
        (iterates, values), _ = solve(eqopt, eqopt.lbfgs(), f, params, 12)
        return iterates, values

    batched = jax.jit(jax.vmap(run))(xs, ys)
    for i in range(len(keys)):
        separate = run(xs[i], ys[i])
        assert_trees_allclose(
            jax.tree.map(lambda t: t[i], batched), separate, rtol=1e-4
        )


def _nan_beyond(radius):
    def f(x):
        value = jnp.sum((x - 3.0) ** 2)
        return jnp.where(jnp.max(jnp.abs(x)) > radius, jnp.nan, value)

    return f


@pytest.mark.parametrize("radius", [1.5, 0.0], ids=["partly", "everywhere"])
def test_non_finite_values_stop_the_search_without_corrupting_the_state(radius):
    """Where the objective is NaN the search backs off; where it is NaN at every step
    it takes a zero step and keeps the value and gradient it started from (as Optax)."""
    f = _nan_beyond(radius)
    x = jnp.zeros(3)
    results = []
    for lib in (eqopt, optax):
        opt = lib.chain(lib.sgd(1.0), lib.scale_by_zoom_linesearch(10))
        state = opt.init(x)
        value, grad = jax.value_and_grad(lambda z: jnp.sum((z - 3.0) ** 2))(x)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        results.append(
            (updates, state[-1].learning_rate, state[-1].value, state[-1].grad)
        )
    (updates, lr, value_after, grad_after), theirs = results
    assert_trees_allclose(results[0], theirs)
    assert all(
        bool(jnp.all(jnp.isfinite(t))) for t in (updates, lr, value_after, grad_after)
    )
    if radius == 0.0:
        np.testing.assert_array_equal(updates, jnp.zeros(3))
        assert lr == 0.0 and value_after == value
        np.testing.assert_array_equal(grad_after, grad)
    else:
        assert f(x + updates) < value


@pytest.mark.parametrize("missing", ["value", "grad", "value_fn"])
def test_missing_line_search_argument_is_named(missing):
    f, x = _problem("quadratic", jnp.float32)
    value, grad = jax.value_and_grad(f)(x)
    kwargs = dict(value=value, grad=grad, value_fn=f)
    del kwargs[missing]
    for opt in (eqopt.lbfgs(), eqopt.scale_by_zoom_linesearch(10)):
        with pytest.raises(TypeError, match=f"`{missing}`") as info:
            opt.update(grad, opt.init(x), x, **kwargs)
        assert "value=value, grad=grad, value_fn=fn" in str(info.value)


def test_missing_params_and_unexpected_arguments():
    f, x = _problem("quadratic", jnp.float32)
    value, grad = jax.value_and_grad(f)(x)
    opt = eqopt.scale_by_zoom_linesearch(10)
    with pytest.raises(TypeError, match="`params`"):
        opt.update(grad, opt.init(x), value=value, grad=grad, value_fn=f)
    with pytest.raises(ValueError, match="needs the parameters"):
        eqopt.scale_by_lbfgs().update(grad, eqopt.scale_by_lbfgs().init(x))
    with pytest.raises(TypeError, match=r"\['data'\]"):
        opt.update(grad, opt.init(x), x, value=value, grad=grad, value_fn=f, data=1.0)


def test_lbfgs_default_line_search_is_optaxs():
    default = eqopt.lbfgs().linesearch
    expected = eqopt.scale_by_zoom_linesearch(20, initial_guess_strategy="one")
    assert_trees_allclose(default, expected, rtol=0, atol=0)
    assert eqopt.lbfgs().linesearch is not default  # one per optimiser


def test_bad_settings_raise_naming_the_argument():
    with pytest.raises(ValueError, match="initial_guess_strategy"):
        eqopt.scale_by_zoom_linesearch(10, initial_guess_strategy="two")
    with pytest.raises(ValueError, match="memory_size"):
        eqopt.scale_by_lbfgs(memory_size=0)
    with pytest.raises(ValueError, match="memory_size"):
        eqopt.lbfgs(memory_size=0)
    with pytest.raises(ValueError, match="increase_factor"):
        eqopt.scale_by_zoom_linesearch(10, increase_factor=-1.0)
    eqopt.scale_by_zoom_linesearch(10, curv_rtol=jnp.inf)  # documented: no curvature


def test_value_and_grad_from_state_without_a_line_search_raises():
    f, x = _problem("quadratic", jnp.float32)
    state = eqopt.adam(1e-3).init(x)
    with pytest.raises(ValueError, match="Value or gradient not found"):
        eqopt.value_and_grad_from_state(f)(x, state=state)


def test_verbose_prints_diagnostics_when_the_search_fails(capfd):
    f, x = _problem("quadratic", jnp.float32)
    value, grad = jax.value_and_grad(f)(x)
    # Not a descent direction: the search cannot succeed.
    opt = eqopt.scale_by_zoom_linesearch(3, verbose=True)
    updates, state = opt.update(
        grad, opt.init(x), x, value=value, grad=grad, value_fn=f
    )
    jax.effects_barrier()
    out = capfd.readouterr().out
    assert "INFO: optax.scale_by_zoom_linesearch" in out
    assert "not a descent direction" in out
    assert state.info.decrease_error > 0

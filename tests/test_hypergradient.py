"""`eqopt.hypergradient_descent`: the paper's closed forms, learning a learning rate,
any wrapped optimiser, errors. (The registry runs the generic promises on it.)"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqopt


A = np.diag(np.linspace(0.5, 3.0, 6))
B = np.linspace(-1.0, 1.0, 6)


def quadratic(x):
    return 0.5 * x @ A @ x - B @ x


def run(opt, x0, steps):
    x, state = jnp.asarray(x0), opt.init(jnp.asarray(x0))
    step = jax.jit(lambda x, s: opt.update(jax.grad(quadratic)(x), s, x))
    for _ in range(steps):
        u, state = step(x, state)
        x = x + u
    return x, state


def test_sgd_hd_matches_the_closed_form():
    """Baydin et al. (2018), SGD-HD: alpha_t = alpha_{t-1} + beta g_t . g_{t-1}."""
    with jax.enable_x64(True):
        alpha, beta, x = 0.01, 0.05, np.ones(6)
        opt = eqopt.hypergradient_descent(eqopt.sgd(alpha), beta, mode="additive")
        ours, state = run(opt, x, 15)
        previous = np.zeros(6)
        for _ in range(15):
            g = A @ x - B
            alpha = alpha + beta * g @ previous
            x, previous = x - alpha * g, g
        np.testing.assert_allclose(ours, x, rtol=1e-12)
        np.testing.assert_allclose(
            state.hyperparams["learning_rate"], alpha, rtol=1e-12
        )


def test_adam_hd_matches_the_closed_form():
    """Adam-HD: alpha_t = alpha_{t-1} - beta g_t . (-mhat_{t-1} / (sqrt(vhat_{t-1}) + eps))."""
    with jax.enable_x64(True):
        alpha, beta, b1, b2, eps, x = 1e-3, 1e-4, 0.9, 0.999, 1e-8, np.ones(6)
        opt = eqopt.hypergradient_descent(
            eqopt.adam(alpha, b1, b2, eps), beta, mode="additive"
        )
        ours, state = run(opt, x, 15)
        m = v = d = np.zeros(6)
        for t in range(1, 16):
            g = A @ x - B
            alpha = alpha - beta * g @ d
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
            direction = -(m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            x, d = x + alpha * direction, direction
        np.testing.assert_allclose(ours, x, rtol=1e-10)
        np.testing.assert_allclose(
            state.hyperparams["learning_rate"], alpha, rtol=1e-10
        )


@pytest.mark.parametrize("mode, beta", [("multiplicative", 0.05), ("additive", 0.02)])
def test_learns_a_larger_learning_rate_from_a_100x_too_small_start(mode, beta):
    good = 1.0 / 3.0  # 1/L for the largest curvature, 3
    x0 = np.ones(6, np.float32)
    fixed, _ = run(eqopt.sgd(good / 100), x0, 100)
    opt = eqopt.hypergradient_descent(eqopt.sgd(good / 100), beta, mode=mode)
    adapted, state = run(opt, x0, 100)
    best = quadratic(np.linalg.solve(A, B))
    assert state.hyperparams["learning_rate"] > 10 * good / 100
    assert quadratic(adapted) - best < 1e-3 * (quadratic(fixed) - best)


def test_stable_on_an_mlp_and_adapts_each_group_of_a_partition():
    model = eqx.nn.MLP(2, 1, 32, 2, key=jr.key(0))
    x = jr.normal(jr.key(1), (128, 2))
    y = jnp.sin(2 * x[:, :1]) * x[:, 1:]

    def loss(m):
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    def labels(m):
        last = lambda t: t.layers[-1]
        return eqx.tree_at(last, jax.tree.map(lambda _: "body", m), "head")

    inner = eqopt.partition(
        {"body": eqopt.adam(1e-4), "head": eqopt.sgd(1e-3, momentum=0.9)}, labels
    )
    opt = eqopt.hypergradient_descent(inner, 0.02)

    @eqx.filter_jit
    def step(model, state):
        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(grads, state, model)
        return eqopt.apply_updates(model, updates), state, value

    state = opt.init(model)
    assert len(state.hyperparams) == 2  # one learning rate per group, by path
    values = []
    for _ in range(300):
        model, state, value = step(model, state)
        values.append(float(value))
    assert np.all(np.isfinite(values)) and values[-1] < 0.2 * values[0]
    rates = np.asarray(list(state.hyperparams.values()))
    assert np.all(np.isfinite(rates)) and np.all(rates > 0)
    assert np.all(rates > np.asarray([1e-4, 1e-3]))  # both started too small


@pytest.mark.parametrize(
    "inner",
    [
        eqopt.lion(1e-3),
        eqopt.chain(eqopt.clip_by_global_norm(1.0), eqopt.adamw(1e-2)),
        eqopt.MultiSteps(eqopt.adam(1e-2), 2),
        eqopt.masked(eqopt.sgd(1e-2), lambda p: jax.tree.map(lambda _: True, p)),
    ],
    ids=["lion", "chain", "MultiSteps", "masked"],
)
def test_wraps_any_optimiser(inner):
    opt = eqopt.hypergradient_descent(inner, 0.01)
    x, state = run(opt, np.ones(6, np.float32), 6)
    assert np.all(np.isfinite(x))
    assert state.hyperparams["learning_rate"] != tree_value(inner)


def tree_value(opt):
    ((_, value),) = eqopt.tree_utils.tree_get_hyperparams(opt, "learning_rate")
    return value


def test_vmap_over_the_hyper_learning_rate_equals_separate_runs():
    betas = jnp.asarray([0.0, 0.01, 0.05])
    make = lambda beta: eqopt.hypergradient_descent(eqopt.sgd(0.01), beta)
    x0 = jnp.ones(6)

    def final(opt):
        return run_scan(opt, x0)

    swept = jax.vmap(final)(jax.vmap(make)(betas))
    for i, beta in enumerate(betas):
        np.testing.assert_allclose(swept[i], final(make(beta)), rtol=1e-5)


@jax.jit
def run_scan(opt, x0):
    def step(carry, _):
        x, state = carry
        u, state = opt.update(jax.grad(quadratic)(x), state, x)
        return (x + u, state), None

    return jax.lax.scan(step, (x0, opt.init(x0)), length=20)[0][0]


def test_errors_name_the_field():
    with pytest.raises(ValueError, match="no hyperparameter named 'momentum_rate'"):
        eqopt.hypergradient_descent(eqopt.sgd(0.1), 0.01, fields=("momentum_rate",))
    with pytest.raises(TypeError, match="A schedule cannot be adapted"):
        eqopt.hypergradient_descent(
            eqopt.sgd(eqopt.linear_schedule(0.1, 0.0, 10)), 0.01
        )
    with pytest.raises(ValueError, match="mode"):
        eqopt.hypergradient_descent(eqopt.sgd(0.1), 0.01, mode="log")
    with pytest.raises(ValueError, match="hyper_learning_rate"):
        eqopt.hypergradient_descent(eqopt.sgd(0.1), 1.5)

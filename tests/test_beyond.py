"""MARS, Adam-mini and cautious masking against float64 NumPy implementations written
from the papers' equations, and their edge cases and errors.

Each reference takes a fixed sequence of gradients (exact zeros included) and the
initial parameters, and returns the update of every step; eqopt gets the same inputs
(in float64, then in float32), step by step.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqopt


STEPS = 8
SHAPES = {"b": (4,), "s": (), "w": (6, 4)}  # sorted: the order of `jax.tree.leaves`


def _inputs(shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    grads = []
    for t in range(STEPS):
        g = {k: rng.normal(size=s) * (1 + t) for k, s in shapes.items()}
        g["w"][0, :2] = 0.0  # exact zeros
        grads.append(g)
    return params, grads


def _run_eqopt(opt, params, grads, dtype):
    """eqopt's updates for `grads`, the parameters moving by them, in `dtype`."""
    cast = lambda tree: {k: jnp.asarray(v, dtype) for k, v in tree.items()}
    params = cast(params)
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    state, out = opt.init(params), []
    for g in grads:
        u, state = step(params, state, cast(g))
        params = eqopt.apply_updates(params, u)
        out.append({k: np.asarray(v, np.float64) for k, v in u.items()})
    return out


def _max_rel_err(actual, expected):
    worst = 0.0
    for a, e in zip(actual, expected):
        for k in e:
            scale = np.maximum(np.abs(e[k]), 1e-3 * np.max(np.abs(e[k])) + 1e-30)
            worst = max(worst, float(np.max(np.abs(a[k] - e[k]) / scale)))
    return worst


def _compare(make, reference, f64_rtol=1e-10, f32_rtol=2e-4, shapes=SHAPES):
    """`make()` builds the optimiser: inside float64 mode, its hyperparameters are
    float64 leaves (a float32 `b2=0.99` alone would be 1e-6 away)."""
    params, grads = _inputs(shapes)
    expected = reference(params, grads)
    with jax.enable_x64(True):
        err64 = _max_rel_err(_run_eqopt(make(), params, grads, jnp.float64), expected)
    err32 = _max_rel_err(_run_eqopt(make(), params, grads, jnp.float32), expected)
    print(f"max rel err: float64 {err64:.2e}, float32 {err32:.2e}")
    assert err64 < f64_rtol and err32 < f32_rtol, (err64, err32)


# ---------------------------------------------------------------------------------------
# MARS (Yuan et al. 2024, Algorithm 2, approximate variant).


def np_mars(params, grads, lr, b1, b2, eps, gamma, weight_decay):
    theta = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    v = {k: np.zeros(s) for k, s in SHAPES.items()}
    prev, out = None, []
    for t, g in enumerate(grads, start=1):
        u = {}
        for k in SHAPES:
            g_prev = g[k] if prev is None else prev[k]  # x_0 = x_1: no correction
            c = g[k] + gamma * b1 / (1 - b1) * (g[k] - g_prev)
            norm = np.sqrt(np.sum(c**2))
            if norm > 1:
                c = c / norm
            m[k] = b1 * m[k] + (1 - b1) * c
            v[k] = b2 * v[k] + (1 - b2) * c**2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            u[k] = -lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * theta[k])
            theta[k] = theta[k] + u[k]
        prev = g
        out.append(u)
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.025, 0.5])
def test_mars_matches_float64_reference(gamma):
    hyper = dict(lr=0.01, b1=0.9, b2=0.99, eps=1e-8, gamma=gamma, weight_decay=0.1)
    make = lambda: eqopt.mars(
        hyper["lr"],
        b1=hyper["b1"],
        b2=hyper["b2"],
        eps=hyper["eps"],
        gamma=gamma,
        weight_decay=hyper["weight_decay"],
    )
    _compare(make, lambda p, g: np_mars(p, g, **hyper))


def test_mars_clips_large_corrected_gradients_and_keeps_small_ones():
    small = {"x": jnp.full((4,), 0.1)}
    opt = eqopt.scale_by_mars(gamma=0.0, b1=0.0, b2=0.0, eps=0.0)
    u, state = opt.update(small, opt.init(small))
    np.testing.assert_allclose(u["x"], jnp.ones(4), rtol=1e-6)  # Adam's sign step
    np.testing.assert_allclose(state.mu["x"], small["x"], rtol=1e-6)
    large = {"x": jnp.full((4,), 10.0)}  # norm 20: clipped to norm 1
    _, state = opt.update(large, opt.init(large))
    np.testing.assert_allclose(state.mu["x"], jnp.full(4, 0.5), rtol=1e-6)
    np.testing.assert_array_equal(state.prev_grad["x"], large["x"])


@pytest.mark.parametrize(
    "kwargs, name", [({"b1": 1.0}, "b1"), ({"gamma": -0.1}, "gamma")]
)
def test_mars_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        eqopt.mars(1e-3, **kwargs)


def test_mars_state_dtypes():
    params = {"w": jnp.zeros((3, 2), jnp.bfloat16)}
    state = eqopt.scale_by_mars(
        mu_dtype=jnp.float32, nu_dtype=jnp.float32, grad_dtype=jnp.float32
    ).init(params)
    assert state.mu["w"].dtype == state.nu["w"].dtype == jnp.float32
    assert state.prev_grad["w"].dtype == jnp.float32
    assert eqopt.scale_by_mars().init(params).nu["w"].dtype == jnp.bfloat16


# ---------------------------------------------------------------------------------------
# Adam-mini (Zhang et al. 2024, Algorithm 1).


def np_adam_mini(params, grads, lr, b1, b2, eps, weight_decay, blocks):
    theta = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    v = {k: np.zeros(blocks[k]) for k in SHAPES}
    out = []
    for t, g in enumerate(grads, start=1):
        u = {}
        for k, shape in SHAPES.items():
            n = blocks[k]
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            u_k = np.empty(shape)
            rows = shape[0] // n if shape else 1
            for b in range(n):  # block b: rows [b * rows, (b + 1) * rows) of axis 0
                piece = g[k][b * rows : (b + 1) * rows] if shape else g[k]
                v[k][b] = b2 * v[k][b] + (1 - b2) * np.mean(piece**2)
                v_hat = v[k][b] / (1 - b2**t)
                m_hat = (m[k][b * rows : (b + 1) * rows] if shape else m[k]) / (
                    1 - b1**t
                )
                step = m_hat / (np.sqrt(v_hat) + eps)
                if shape:
                    u_k[b * rows : (b + 1) * rows] = step
                else:
                    u_k = step
            u[k] = -lr * (u_k + weight_decay * theta[k])
            theta[k] = theta[k] + u[k]
        out.append(u)
    return out


@pytest.mark.parametrize(
    "blocks",
    [{"b": 1, "s": 1, "w": 1}, {"b": 2, "s": 1, "w": 3}, {"b": 4, "s": 1, "w": 6}],
)
def test_adam_mini_matches_float64_reference(blocks):
    hyper = dict(lr=0.01, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1)
    block_fn = lambda path, leaf: blocks[path[2:-2]]  # "['w']" -> "w"
    make = lambda: eqopt.adam_mini(
        hyper["lr"],
        b1=hyper["b1"],
        b2=hyper["b2"],
        eps=hyper["eps"],
        weight_decay=hyper["weight_decay"],
        block_fn=block_fn,
    )
    _compare(make, lambda p, g: np_adam_mini(p, g, blocks=blocks, **hyper))


def test_adam_mini_blocks_by_head_on_an_equinox_attention_model():
    heads, qk = 4, 8
    model = eqx.nn.MultiheadAttention(heads, 16, qk_size=qk, key=jax.random.key(0))

    def block_fn(path, leaf):
        if path.endswith(("query_proj.weight", "key_proj.weight")):
            return heads
        return 1

    opt = eqopt.adam_mini(1e-3, block_fn=block_fn)
    state = opt.init(model)
    nu = state[0].nu
    assert nu.query_proj.weight.shape == nu.key_proj.weight.shape == (heads,)
    assert nu.value_proj.weight.shape == (1,)
    # Abstract init gives the same shapes.
    abstract = eqx.filter_eval_shape(opt.init, model)
    assert abstract[0].nu.query_proj.weight.shape == (heads,)
    # One step: each head of the query weight is scaled by its own second moment.
    x = jax.random.normal(jax.random.key(1), (5, 16))
    loss = lambda m: jnp.sum(m(x, x, x) ** 2)
    grads = eqx.filter_grad(loss)(model)
    updates, state = opt.update(grads, state, model)
    g = grads.query_proj.weight.reshape(heads, -1)
    expected_nu = (1 - 0.999) * jnp.mean(g**2, axis=1)
    np.testing.assert_allclose(state[0].nu.query_proj.weight, expected_nu, rtol=1e-4)
    # Adam-mini keeps ~half of Adam's state.
    size = lambda tree: sum(x.size for x in jax.tree.leaves(tree) if eqx.is_array(x))
    assert size(state) < 0.51 * size(eqopt.adam(1e-3).init(model))


def test_adam_mini_rejects_bad_blocks_naming_the_path():
    params = {"w": jnp.zeros((6, 4)), "s": jnp.zeros(())}
    with pytest.raises(
        ValueError, match=r"3 blocks.*\['s'\]` of shape \(\): a 0-d leaf is one"
    ):
        eqopt.adam_mini(1e-3, block_fn=lambda path, leaf: 3).init(params)
    with pytest.raises(
        ValueError, match=r"4 blocks.*\['w'\]` of shape \(6, 4\): its axis 0 must split"
    ):
        eqopt.adam_mini(1e-3, block_fn=lambda path, leaf: 4 if leaf.ndim else 1).init(
            params
        )
    with pytest.raises(ValueError, match="positive int"):
        eqopt.adam_mini(1e-3, block_fn=lambda path, leaf: 0).init(params)
    with pytest.raises(ValueError, match="b2"):
        eqopt.adam_mini(1e-3, b2=1.5)


def test_adam_mini_second_moments_stay_float32_for_bfloat16_parameters():
    params = {"w": jnp.zeros((4, 2), jnp.bfloat16)}
    state = eqopt.scale_by_adam_mini().init(params)
    assert state.nu["w"].dtype == jnp.float32 and state.mu["w"].dtype == jnp.bfloat16


# ---------------------------------------------------------------------------------------
# Cautious optimisers (Liang et al. 2024, Algorithm 1 around AdamW).


def np_adamw_direction(m, v, g, t, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    return m, v, (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


def np_cautious_adamw(params, grads, lr, b1, b2, eps, weight_decay, mask_decay):
    """`mask_decay`: the decay is part of the masked update (`cautious(adamw)`), or
    applied after the mask (the paper's C-AdamW)."""
    theta = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    v = {k: np.zeros(s) for k, s in SHAPES.items()}
    out = []
    for t, g in enumerate(grads, start=1):
        u = {}
        for k in SHAPES:
            m[k], v[k], direction = np_adamw_direction(m[k], v[k], g[k], t, b1, b2, eps)
            if mask_decay:
                step = direction + weight_decay * theta[k]  # theta <- theta - lr * step
                phi = step * g[k] > 0
                u[k] = -lr * step * phi * np.size(phi) / (np.sum(phi) + 1)
            else:
                phi = direction * g[k] > 0
                scale = np.size(phi) / (np.sum(phi) + 1)
                u[k] = -lr * (direction * phi * scale + weight_decay * theta[k])
            theta[k] = theta[k] + u[k]
        out.append(u)
    return out


def test_cautious_adamw_matches_float64_reference():
    hyper = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1)
    make = lambda: eqopt.cautious(eqopt.adamw(0.01, 0.9, 0.999, 1e-8, weight_decay=0.1))
    _compare(make, lambda p, g: np_cautious_adamw(p, g, mask_decay=True, **hyper))


def test_c_adamw_matches_float64_reference():
    hyper = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1)
    make = lambda: eqopt.chain(
        eqopt.cautious(eqopt.scale_by_adam(0.9, 0.999, 1e-8), descent=False),
        eqopt.add_decayed_weights(0.1),
        eqopt.scale_by_learning_rate(0.01),
    )
    _compare(make, lambda p, g: np_cautious_adamw(p, g, mask_decay=False, **hyper))


def test_cautious_sign_convention_keeps_descent_steps():
    g = {"x": jnp.asarray([1.0, -2.0, 0.0, 3.0])}
    # Plain SGD steps against every nonzero gradient entry: all three kept, the zero
    # masked, and the kept ones scaled by d / (nnz + 1) = 4 / 4.
    u, _ = eqopt.cautious(eqopt.sgd(0.1)).update(
        g, eqopt.cautious(eqopt.sgd(0.1)).init(g)
    )
    np.testing.assert_allclose(u["x"], jnp.asarray([-0.1, 0.2, 0.0, -0.3]), rtol=1e-6)
    # Gradient ascent (a negative learning rate) disagrees everywhere: nothing kept.
    ascent = eqopt.cautious(eqopt.chain(eqopt.scale(0.1)))
    u, _ = ascent.update(g, ascent.init(g))
    np.testing.assert_array_equal(u["x"], jnp.zeros(4))
    # `descent=False` for an un-negated direction keeps the same components.
    direction = eqopt.cautious(eqopt.scale(0.1), descent=False)
    u, _ = direction.update(g, direction.init(g))
    np.testing.assert_allclose(u["x"], jnp.asarray([0.1, -0.2, 0.0, 0.3]), rtol=1e-6)


def test_cautious_state_is_the_inner_state_and_hyperparameters_are_reachable():
    params = {"w": jnp.ones(3)}
    opt = eqopt.cautious(eqopt.adam(1e-3))
    state = opt.init(params)
    assert jax.tree.structure(state) == jax.tree.structure(
        eqopt.adam(1e-3).init(params)
    )
    faster = eqx.tree_at(lambda c: c.opt.learning_rate, opt, jnp.asarray(1e-2))
    g = {"w": jnp.asarray([1.0, -1.0, 2.0])}
    slow, _ = opt.update(g, state, params)
    fast, _ = faster.update(g, state, params)
    np.testing.assert_allclose(fast["w"], 10 * slow["w"], rtol=1e-5)


# ---------------------------------------------------------------------------------------
# SOAP (Vyas et al. 2024, Algorithms 3 and 4), written for matrices as in the paper.
# Statistics of full rank after the first step (square, or one side only), so that
# every eigenbasis is unique up to signs, to which SOAP's update is invariant.

SOAP_SHAPES = {"b": (4,), "s": (), "v": (3, 12), "w": (4, 4)}


def _descending_eigenvectors(matrix):
    _, q = np.linalg.eigh(matrix)
    return q[:, ::-1]


def np_soap(
    params,
    grads,
    lr,
    b1,
    b2,
    shampoo_beta,
    eps,
    weight_decay,
    freq,
    max_dim,
    one_sided=False,
):
    theta = {k: v.copy() for k, v in params.items()}
    state = {}
    for k, p in params.items():
        left = p.ndim == 2 and p.shape[0] <= max_dim
        right = p.ndim == 2 and p.shape[1] <= max_dim
        if one_sided and left and right:  # the shorter side only (left if tied)
            left, right = p.shape[0] <= p.shape[1], p.shape[0] > p.shape[1]
        rows, cols = (p.shape + (1, 1))[:2] if p.ndim == 2 else (1, 1)
        state[k] = dict(
            m=np.zeros(p.shape),
            v=np.zeros(p.shape),
            left=left,
            right=right,
            L=np.zeros((rows, rows)),
            R=np.zeros((cols, cols)),
            QL=np.eye(rows),
            QR=np.eye(cols),
        )
    out = []
    for call, g in enumerate(grads, start=1):
        u = {}
        for k in params:
            s, G = state[k], g[k]
            if call == 1:  # initialise the preconditioner; no step
                if s["left"]:
                    s["L"] = (1 - shampoo_beta) * G @ G.T
                    s["QL"] = _descending_eigenvectors(s["L"])
                if s["right"]:
                    s["R"] = (1 - shampoo_beta) * G.T @ G
                    s["QR"] = _descending_eigenvectors(s["R"])
                u[k] = -lr * weight_decay * theta[k]
                theta[k] = theta[k] + u[k]
                continue
            t = call - 1
            rotated = s["left"] or s["right"]
            QL = s["QL"] if s["left"] else np.eye(G.shape[0] if G.ndim else 1)
            QR = s["QR"] if s["right"] else np.eye(G.shape[1] if G.ndim == 2 else 1)
            rotate = (lambda X: QL.T @ X @ QR) if rotated else (lambda X: X)
            back = (lambda X: QL @ X @ QR.T) if rotated else (lambda X: X)
            s["m"] = b1 * s["m"] + (1 - b1) * G
            s["v"] = b2 * s["v"] + (1 - b2) * rotate(G) ** 2
            m_hat = rotate(s["m"]) / (1 - b1**t)
            v_hat = s["v"] / (1 - b2**t)
            u[k] = -lr * (
                back(m_hat / (np.sqrt(v_hat) + eps)) + weight_decay * theta[k]
            )
            theta[k] = theta[k] + u[k]
            if s["left"]:
                s["L"] = shampoo_beta * s["L"] + (1 - shampoo_beta) * G @ G.T
            if s["right"]:
                s["R"] = shampoo_beta * s["R"] + (1 - shampoo_beta) * G.T @ G
            if t % freq == 0:  # Algorithm 4: order, then one power iteration + QR
                if s["left"]:
                    order = np.argsort(-np.diag(s["QL"].T @ s["L"] @ s["QL"]))
                    s["v"] = s["v"][order, :]
                    s["QL"] = np.linalg.qr(s["L"] @ s["QL"][:, order])[0]
                if s["right"]:
                    order = np.argsort(-np.diag(s["QR"].T @ s["R"] @ s["QR"]))
                    s["v"] = s["v"][:, order]
                    s["QR"] = np.linalg.qr(s["R"] @ s["QR"][:, order])[0]
        out.append(u)
    return out


@pytest.mark.parametrize(
    "freq, one_sided", [(1, False), (3, False), (100, False), (3, True)]
)
def test_soap_matches_float64_reference(freq, one_sided):
    hyper = dict(lr=0.01, b1=0.9, b2=0.95, shampoo_beta=0.9, eps=1e-8, weight_decay=0.1)
    make = lambda: eqopt.soap(
        hyper["lr"],
        hyper["b1"],
        hyper["b2"],
        hyper["shampoo_beta"],
        hyper["eps"],
        hyper["weight_decay"],
        precondition_frequency=freq,
        max_precond_dim=10,
        one_sided=one_sided,
    )
    reference = lambda p, g: np_soap(
        p, g, freq=freq, max_dim=10, one_sided=one_sided, **hyper
    )
    # One-sided, a tall matrix too: only its 3 x 3 side is rotated (full rank).
    shapes = {**SOAP_SHAPES, "x": (6, 3)} if one_sided else SOAP_SHAPES
    _compare(make, reference, f64_rtol=1e-10, f32_rtol=1e-3, shapes=shapes)


def test_soap_state_layout_and_fallbacks():
    params = {
        "w": jnp.zeros((4, 3)),
        "wide": jnp.zeros((2, 50)),
        "huge": jnp.zeros((40, 50)),
        "b": jnp.zeros(3),
        "t": jnp.zeros((2, 3, 4), jnp.bfloat16),
    }
    state = eqopt.scale_by_soap(max_precond_dim=32).init(params)
    shapes = jax.tree.map(lambda x: x.shape, state.stats)
    assert shapes["w"] == ((4, 4), (3, 3))
    assert shapes["wide"] == ((2, 2), None)  # the long axis is not rotated
    assert state.stats["huge"] == () and state.stats["b"] == ()  # plain Adam
    assert shapes["t"] == ((2, 2), (3, 3), (4, 4))
    assert state.bases["t"][0].dtype == jnp.float32  # at least float32 for eigh
    np.testing.assert_array_equal(state.bases["w"][1], jnp.eye(3))
    # The first call sets the preconditioner and returns a zero update.
    grads = jax.tree.map(lambda x: jnp.ones_like(x), params)
    u, state = eqopt.scale_by_soap(max_precond_dim=32).update(grads, state)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    assert int(state.count) == 1 and bool(jnp.all(state.mu["w"] == 0))
    q = state.bases["w"][0]
    np.testing.assert_allclose(q.T @ q, jnp.eye(4), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"precondition_frequency": 0}, "precondition_frequency"),
        ({"shampoo_beta": 1.0}, "shampoo_beta"),
        ({"max_precond_dim": -1}, "max_precond_dim"),
    ],
)
def test_soap_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        eqopt.soap(1e-3, **kwargs)

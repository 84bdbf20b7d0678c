"""Shampoo (blocked and grafted, as Distributed Shampoo) against a float64 NumPy
implementation written from the papers' equations, and its state, options and errors.

The reference keeps, for every block of every leaf, one statistic per preconditioned
axis ($L_k \\leftarrow \\beta_2 L_k + (1 - \\beta_2) G_{(k)} G_{(k)}^\\top$), takes their
inverse roots by a NumPy eigendecomposition, and applies them to the debiased first
moment one axis at a time, rescaled to the norm of the block's graft direction. Blocks
are sliced out of the leaf (no padding), so that eqopt's padded, stacked blocks are
checked too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqopt

from .test_beyond import _compare, _inputs, _max_rel_err, _run_eqopt


SHAPES = {
    "b": (4,),
    "s": (),
    "t": (2, 3, 4),
    "v": (3, 12),
    "w": (6, 4),
    "x": (7, 5),
}


def _np_root(stat, p, eps, relative):
    w, q = np.linalg.eigh(stat)
    w = np.maximum(w, 0.0)
    ridge = eps * max(w[-1], 1e-16) if relative else eps
    return (q * (w + ridge) ** (-1.0 / p)) @ q.T


def _np_splits(d, block_size):
    n = -(-d // block_size)
    s = -(-d // n)
    return [slice(i * s, min((i + 1) * s, d)) for i in range(n)]


def _np_blocks(shape, block_size):
    blocks = [()]
    for d in shape:
        blocks = [b + (s,) for b in blocks for s in _np_splits(d, block_size)]
    return blocks


def np_shampoo(
    params,
    grads,
    lr,
    b1,
    b2,
    eps,
    graft_b2,
    graft_eps,
    weight_decay,
    block_size,
    freq,
    start,
    graft,
    relative=True,
    max_dim=None,
):
    theta = {k: v.copy() for k, v in params.items()}
    state = {}
    for k, p in params.items():
        axes = [p.ndim >= 2 and 1 < d <= (max_dim or np.inf) for d in p.shape]
        blocks = _np_blocks(p.shape, block_size) if any(axes) else []
        state[k] = dict(
            m=np.zeros(p.shape),
            v=np.zeros(p.shape),
            axes=axes,
            blocks=blocks,
            L={
                (i, a): np.zeros((n, n))
                for i, b in enumerate(blocks)
                for a, on in enumerate(axes)
                if on
                for n in [len(range(*b[a].indices(p.shape[a])))]
            },
            P={},
        )
    out = []
    for t, g in enumerate(grads, start=1):
        c = t - 1  # the count before the step
        u = {}
        for k in params:
            s, G = state[k], g[k]
            s["m"] = b1 * s["m"] + (1 - b1) * G
            m_hat = s["m"] / (1 - b1**t)
            if graft == "adam":
                s["v"] = graft_b2 * s["v"] + (1 - graft_b2) * G**2
                D = m_hat / (np.sqrt(s["v"] / (1 - graft_b2**t)) + graft_eps)
            elif graft == "adagrad":
                s["v"] = s["v"] + G**2
                D = m_hat / (np.sqrt(s["v"]) + graft_eps)
            else:
                D = m_hat
            U = D.copy()
            order = sum(s["axes"])
            for i, idx in enumerate(s["blocks"]):
                Gb, X = G[idx], m_hat[idx]
                for a, on in enumerate(s["axes"]):
                    if not on:
                        continue
                    unfolded = np.moveaxis(Gb, a, 0).reshape(Gb.shape[a], -1)
                    weight = 1.0 if b2 == 1 else 1 - b2
                    s["L"][i, a] = b2 * s["L"][i, a] + weight * unfolded @ unfolded.T
                    if c >= start and (c - start) % freq == 0:
                        s["P"][i, a] = _np_root(s["L"][i, a], 2 * order, eps, relative)
                    if c >= start:
                        X = np.moveaxis(np.tensordot(s["P"][i, a], X, ([1], [a])), 0, a)
                if c >= start:
                    norm = np.linalg.norm(X)
                    U[idx] = X * np.linalg.norm(D[idx]) / norm if norm > 0 else 0.0
            u[k] = -lr * (U + weight_decay * theta[k])
            theta[k] = theta[k] + u[k]
        out.append(u)
    return out


# `eps=1e-3` (relative): with roots from earlier steps (`precondition_frequency > 1`),
# the first moment has components outside the statistics' range, scaled by the ridge's
# root alone; float32 resolves a statistic's eigenvalues to ~1e-7 * d of the largest,
# so a ridge near that (the default 1e-6) makes those components rounding-dependent
# (measured: 0.5 relative in float32, 6e-10 in float64, with `eps=1e-6`). "small_eps"
# keeps 1e-6 where the roots are recomputed every step from statistics that contain
# the gradient.
HYPER = dict(
    lr=0.01, b1=0.9, b2=0.95, eps=1e-3, graft_b2=0.99, graft_eps=1e-8, weight_decay=0.1
)


def _make(hyper, block_size, freq, start, graft, relative=True, max_dim=None, **kw):
    return lambda: eqopt.shampoo(
        hyper["lr"],
        hyper["b1"],
        hyper["b2"],
        hyper["eps"],
        hyper["graft_b2"],
        hyper["graft_eps"],
        hyper["weight_decay"],
        block_size=block_size,
        precondition_frequency=freq,
        start_preconditioning_step=start,
        graft=graft,
        relative_eps=relative,
        max_precond_dim=max_dim,
        **kw,
    )


CONFIGS = {
    # name: (options, hyperparameter overrides)
    "plain": (dict(block_size=1024, freq=1, start=0, graft="adam"), {}),
    "small_eps": (dict(block_size=3, freq=1, start=0, graft="adam"), {"eps": 1e-6}),
    "blocked": (dict(block_size=3, freq=1, start=0, graft="adam"), {}),
    "frequency": (dict(block_size=1024, freq=3, start=1, graft="adam"), {}),
    "blocked-frequency": (dict(block_size=4, freq=2, start=0, graft="adam"), {}),
    "graft_sgd": (dict(block_size=3, freq=2, start=2, graft="sgd"), {}),
    "graft_adagrad": (dict(block_size=1024, freq=1, start=1, graft="adagrad"), {}),
    "start": (dict(block_size=1024, freq=2, start=5, graft="adam"), {}),
    "absolute_eps": (
        dict(block_size=1024, freq=1, start=0, graft="adam", relative=False),
        {"eps": 1e-3},
    ),
    "sums": (dict(block_size=4, freq=1, start=0, graft="adam"), {"b2": 1.0}),
    "max_precond_dim": (
        dict(block_size=1024, freq=1, start=0, graft="adam", max_dim=5),
        {},
    ),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_shampoo_matches_float64_reference(config):
    options, overrides = CONFIGS[config]
    hyper = {**HYPER, **overrides}
    reference = lambda p, g: np_shampoo(
        p,
        g,
        **hyper,
        block_size=options["block_size"],
        freq=options["freq"],
        start=options["start"],
        graft=options["graft"],
        relative=options.get("relative", True),
        max_dim=options.get("max_dim"),
    )
    # float32 with `eps=1e-6`: the first roots come from one gradient's statistics,
    # whose small eigenvalues float32 resolves to ~1e-7 of the largest; the polar-like
    # direction $L^{-1/4} G R^{-1/4}$ of a 3 x 3 block amplifies that by its condition
    # number (5e-3 relative on its small entries, measured).
    f32_rtol = 1e-2 if hyper["eps"] < 1e-4 else 1e-3
    _compare(
        _make(hyper, **options),
        reference,
        f64_rtol=1e-10,
        f32_rtol=f32_rtol,
        shapes=SHAPES,
    )


@pytest.mark.parametrize("relative", [True, False])
def test_newton_roots_agree_with_eigh(relative):
    """Newton's iteration (tolerance 1e-6 on `max |M - I|`) for the matrices, `eigh`
    for the three-axis leaf `t` (exponent -1/6): close to the float64 reference."""
    hyper = HYPER
    options = dict(block_size=4, freq=2, start=0, graft="adam", relative=relative)
    params, grads = _inputs(SHAPES)
    expected = np_shampoo(
        params, grads, **hyper, block_size=4, freq=2, start=0, graft="adam",
        relative=relative,
    )  # fmt: skip
    errors = {}
    for root in ("eigh", "newton"):
        make = _make(hyper, **options, matrix_root=root)
        with jax.enable_x64(True):
            err64 = _max_rel_err(
                _run_eqopt(make(), params, grads, jnp.float64), expected
            )
        err32 = _max_rel_err(_run_eqopt(make(), params, grads, jnp.float32), expected)
        errors[root] = (err64, err32)
    print(f"max rel err (float64, float32): {errors}")
    assert errors["eigh"][0] < 1e-10 and errors["eigh"][1] < 1e-3
    assert errors["newton"][0] < 1e-4 and errors["newton"][1] < 2e-3
    # Newton's error is its stopping tolerance's, not rounding: it differs from eigh.
    assert errors["newton"][0] > 1e3 * errors["eigh"][0]


def test_shampoo_state_layout_and_fallbacks():
    params = {
        "w": jnp.zeros((4, 3)),
        "long": jnp.zeros((10, 3)),  # 10 rows in blocks of at most 4: 4, 4, 2
        "row": jnp.zeros((1, 5)),  # an axis of length one is not preconditioned
        "huge": jnp.zeros((40, 50)),  # beyond max_precond_dim on both axes
        "wide": jnp.zeros((2, 50)),  # one axis beyond max_precond_dim
        "b": jnp.zeros(3),
        "s": jnp.zeros(()),
        "t": jnp.zeros((2, 3, 4), jnp.bfloat16),
    }
    opt = eqopt.scale_by_shampoo(block_size=4, max_precond_dim=32)
    state = opt.init(params)
    shapes = jax.tree.map(lambda x: x.shape, state.stats)
    assert shapes["w"] == ((1, 1, 4, 4), (1, 1, 3, 3))
    assert shapes["long"] == ((3, 1, 4, 4), (3, 1, 3, 3))
    assert shapes["row"] == (None, (1, 2, 3, 3))  # 5 columns: blocks of 3 and 2
    assert shapes["wide"] == ((1, 13, 2, 2), None)  # 50 columns: 13 blocks of 4
    assert state.stats["huge"] == state.stats["b"] == state.stats["s"] == ()
    assert shapes["t"] == ((1, 1, 1, 2, 2), (1, 1, 1, 3, 3), (1, 1, 1, 4, 4))
    assert state.stats["t"][0].dtype == jnp.float32  # at least float32
    assert state.mu["t"].dtype == state.nu["t"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(state.roots["long"][0][2, 0], jnp.eye(4))
    assert jax.tree.structure(state.roots) == jax.tree.structure(state.stats)
    # dtype options; no second moment for the SGD graft.
    with jax.enable_x64(True):
        state = eqopt.scale_by_shampoo(
            graft="sgd", mu_dtype=jnp.float32, precond_dtype=jnp.float64
        ).init(params)
    assert state.nu is None and state.mu["t"].dtype == jnp.float32
    assert state.stats["w"][0].dtype == state.roots["t"][2].dtype == jnp.float64
    nu = eqopt.scale_by_shampoo(nu_dtype=jnp.float32).init(params).nu
    assert nu["t"].dtype == jnp.float32


def test_roots_are_recomputed_only_on_refresh_steps_and_graft_before_start():
    params = {"w": jnp.zeros((4, 3))}
    opt = eqopt.scale_by_shampoo(
        b1=0.0, precondition_frequency=3, start_preconditioning_step=2, graft="sgd"
    )
    state = opt.init(params)
    step = jax.jit(lambda g, s: opt.update(g, s))
    key = jax.random.key(0)
    roots = [state.roots["w"][0]]
    updates, grads = [], []
    for i in range(7):
        g = {"w": jax.random.normal(jax.random.fold_in(key, i), (4, 3))}
        u, state = step(g, state)
        roots.append(state.roots["w"][0])
        updates.append(u["w"])
        grads.append(g["w"])
    changed = [not bool(jnp.all(a == b)) for a, b in zip(roots, roots[1:])]
    # Counts 0..6: roots at 2 and 5 (start 2, every 3 steps).
    assert changed == [False, False, True, False, False, True, False]
    # Before the start, the graft direction (here the gradient itself, b1 = 0).
    np.testing.assert_allclose(updates[0], grads[0], rtol=1e-6)
    np.testing.assert_allclose(updates[1], grads[1], rtol=1e-6)
    # Afterwards a preconditioned direction with the gradient's norm.
    assert not np.allclose(updates[3], grads[3], rtol=1e-2)
    np.testing.assert_allclose(
        jnp.linalg.norm(updates[3]), jnp.linalg.norm(grads[3]), rtol=1e-5
    )


@pytest.mark.parametrize("matrix_root", ["eigh", "newton"])
def test_zero_gradients_give_finite_zero_updates(matrix_root):
    """All-zero statistics (power iteration has no answer for them) and a zero
    preconditioned direction: a zero update, finite state."""
    params = {"w": jnp.zeros((4, 3)), "t": jnp.zeros((2, 2, 2))}
    opt = eqopt.shampoo(0.1, start_preconditioning_step=0, matrix_root=matrix_root)
    state = opt.init(params)
    for _ in range(2):
        u, state = opt.update(jax.tree.map(jnp.zeros_like, params), state, params)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"b1": 1.0}, "b1"),
        ({"b2": 1.5}, "b2"),
        ({"eps": 0.0}, "eps"),
        ({"graft_b2": 1.0}, "graft_b2"),
        ({"graft_eps": -1.0}, "graft_eps"),
        ({"block_size": 0}, "block_size"),
        ({"precondition_frequency": 0}, "precondition_frequency"),
        ({"start_preconditioning_step": -1}, "start_preconditioning_step"),
        ({"max_precond_dim": -1}, "max_precond_dim"),
        ({"graft": "lion"}, "graft"),
        ({"matrix_root": "cholesky"}, "matrix_root"),
        ({"precond_dtype": jnp.bfloat16}, "precond_dtype"),
    ],
)
def test_shampoo_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=rf"`shampoo\({name}=\.\.\.\)`"):
        eqopt.shampoo(1e-3, **kwargs)
    with pytest.raises(ValueError, match=rf"`scale_by_shampoo\({name}=\.\.\.\)`"):
        eqopt.scale_by_shampoo(**kwargs)


def test_padded_blocks_of_an_explicitly_sharded_leaf():
    """Blocks that pad the leaf (8 rows in blocks of 3: 3, 3, 2) on parameters laid
    out across the 8-device mesh: the numbers of the unsharded step, and the moments
    laid out like the parameter."""
    from jax.sharding import NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((4, 2), ("data", "model"))
    params = {"w": jax.random.normal(jax.random.key(0), (8, 6))}
    opt = eqopt.shampoo(0.1, block_size=3, start_preconditioning_step=0)

    @jax.jit
    def steps(params, state):
        for _ in range(3):
            grads = jax.grad(lambda p: jnp.sum(jnp.sin(p["w"]) ** 2))(params)
            updates, state = opt.update(grads, state, params)
            params = eqopt.apply_updates(params, updates)
        return params, state

    expected, _ = steps(params, opt.init(params))
    sharding = NamedSharding(mesh, P("data", "model"))
    sharded = {"w": jax.device_put(params["w"], sharding)}
    new, state = steps(sharded, opt.init(sharded))
    np.testing.assert_allclose(new["w"], expected["w"], rtol=1e-6, atol=1e-6)
    assert new["w"].sharding.is_equivalent_to(sharding, 2)
    assert state[0].mu["w"].sharding.is_equivalent_to(sharding, 2)
    assert state[0].nu["w"].sharding.is_equivalent_to(sharding, 2)
    assert state[0].stats["w"][0].shape == (3, 2, 3, 3)

"""PSGD-Kron against a float64 NumPy implementation written from Li's equations, and its
edge cases and errors.

The reference builds the whole Kronecker product $Q = Q_1 \\otimes \\cdots \\otimes Q_n$
of each leaf (diagonal factors as diagonal matrices) and applies it to the flattened
leaf, where eqopt works axis by axis; it bounds the spectral norm with both branches
of `psgd_jax`'s `norm_lower_bound`. The random numbers (each step's update decision
and probes $V$) are inputs, not the algorithm: the reference draws them with
`jax.random` from the key eqopt starts from, with eqopt's documented splits.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqopt

from .test_beyond import _compare, _inputs, _run_eqopt, STEPS


KRON_SHAPES = {"b": (4,), "s": (), "v": (3, 12), "w": (6, 4)}  # sorted leaf order
TINY = np.finfo(np.float64).tiny


def kron_randomness(seed, shapes, steps):
    """Per step: the uniform number deciding the factor update, and one probe per
    leaf (in leaf order), as `ScaleByKron` draws them, in float64."""
    key = jr.key_data(jr.key(seed))
    out = []
    for _ in range(steps):
        next_key, decide, probe = jr.split(jr.wrap_key_data(key), 3)
        u = float(jr.uniform(decide, (), jnp.float32))
        keys = jr.split(probe, len(shapes))
        probes = {
            name: np.asarray(jr.normal(k, shape, jnp.float32), np.float64)
            for k, (name, shape) in zip(keys, sorted(shapes.items()))
        }
        out.append((u, probes))
        key = jr.key_data(next_key)
    return out


def np_norm_lower_bound(s):
    """`psgd_jax`'s `_norm_lower_bound`, both branches."""
    scale = np.max(np.abs(s))
    if scale == 0:
        return 0.0
    b = s / scale
    cols, rows = np.sum(b * b, axis=0), np.sum(b * b, axis=1)
    i, j = np.argmax(cols), np.argmax(rows)
    if cols[i] > rows[j]:
        x = b[:, i] @ b
        return scale * np.linalg.norm((x / np.linalg.norm(x)) @ b.T)
    x = b @ b[j, :]
    return scale * np.linalg.norm(b.T @ (x / np.linalg.norm(x)))


def _gram(x, k):
    """$X_{(k)} X_{(k)}^\\top$: `x` unfolded along axis `k`, times its transpose."""
    m = np.moveaxis(x, k, 0).reshape(x.shape[k], -1)
    return m @ m.T


def _full(factors):
    """$Q_1 \\otimes \\cdots \\otimes Q_n$ (row-major flattening)."""
    q = np.ones((1, 1))
    for f in factors:
        q = np.kron(q, f if f.ndim == 2 else np.diag(np.atleast_1d(f)))
    return q


def np_kron(
    params,
    grads,
    lr,
    b1,
    weight_decay,
    precond_lr,
    probability,
    max_size,
    min_ndim=2,
    one_diag=False,
    seed=0,
    decisions=None,
    max_update_rms=1.1,
    capped=None,
):
    """PSGD-Kron (`probability(t)` for steps t = 1, 2, ...); `decisions` collects
    whether each step refitted the factors, `capped` whether the RMS cap bound."""
    shapes = {k: v.shape for k, v in params.items()}
    randomness = kron_randomness(seed, shapes, len(grads))
    theta = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros(s) for k, s in shapes.items()}
    qs = {}
    for k, shape in shapes.items():
        # The longest axis, the last if tied (`psgd_jax`).
        longest = len(shape) - 1 - int(np.argmax(shape[::-1])) if shape else None
        qs[k] = [
            np.eye(d)
            if (d > 1 and d <= max_size and len(shape) >= min_ndim)
            and not (one_diag and axis == longest)
            else np.ones(d)
            for axis, d in enumerate(shape)
        ] or [np.ones(())]
    out = []
    for t, g in enumerate(grads, start=1):
        u_draw, probes = randomness[t - 1]
        refit = u_draw < probability(t)
        if decisions is not None:
            decisions.append(refit)
        u = {}
        for k, shape in shapes.items():
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            m_hat = m[k] / (1 - b1**t)
            if refit:
                q = _full(qs[k])
                a = (q @ m_hat.reshape(-1)).reshape(shape)
                conj_b = (np.linalg.inv(q).T @ probes[k].reshape(-1)).reshape(shape)
                new = []
                for axis, f in enumerate(qs[k]):
                    if not shape:  # a scalar
                        t1, t2 = a**2, conj_b**2
                    else:
                        t1, t2 = _gram(a, axis), _gram(conj_b, axis)
                    if f.ndim == 2:
                        bound = np_norm_lower_bound(t1 + t2)
                        new.append(
                            f - precond_lr / (bound + TINY) * np.triu(t1 - t2) @ f
                        )
                    else:
                        t1, t2 = (t1, t2) if not shape else (np.diag(t1), np.diag(t2))
                        scale = np.max(np.abs(t1 + t2)) + TINY
                        new.append(f - precond_lr * (t1 - t2) * f / scale)
                qs[k] = new
            q = _full(qs[k])
            direction = (q.T @ q @ m_hat.reshape(-1)).reshape(shape)
            if max_update_rms is not None:
                rms = np.sqrt(np.mean(direction**2))
                if capped is not None:
                    capped.append(rms > max_update_rms)
                direction = direction * min(1.0, max_update_rms / rms)
            u[k] = -lr * (direction + weight_decay * theta[k])
            theta[k] = theta[k] + u[k]
        out.append(u)
    return out


CASES = {
    # Triangular factors, the diagonal fallback (`v`'s axis of 12 > 10), a 1-D leaf
    # (diagonal: fewer than `min_ndim_triangular` dimensions) and a scalar.
    "always": dict(probability=1.0),
    "half": dict(probability=0.5),
    "schedule": dict(probability="linear"),
    # A 3-D leaf, a triangular factor for the 1-D leaf, the longest axes diagonal.
    "one_diag": dict(probability=1.0, min_ndim=1, one_diag=True),
    # The RMS cap: binding on some leaves and steps (0.3), or none.
    "tight_cap": dict(probability=1.0, max_update_rms=0.3),
    "uncapped": dict(probability=1.0, max_update_rms=None),
}


@pytest.mark.parametrize("name", CASES)
def test_kron_matches_float64_reference(name):
    spec = CASES[name]
    hyper = dict(lr=0.02, b1=0.9, weight_decay=0.1, precond_lr=0.3)
    p = spec["probability"]
    if p == "linear":
        eqopt_p = eqopt.linear_schedule(1.0, 0.0, STEPS)
        probability = lambda t: np.float32(1.0 - t / STEPS)  # evaluated at step t
    else:
        eqopt_p, probability = p, lambda t: p
    min_ndim, one_diag = spec.get("min_ndim", 2), spec.get("one_diag", False)
    cap = spec.get("max_update_rms", 1.1)
    shapes = {**KRON_SHAPES, "t": (2, 3, 4)} if one_diag else KRON_SHAPES
    make = lambda: eqopt.kron(
        hyper["lr"],
        hyper["b1"],
        hyper["weight_decay"],
        preconditioner_update_probability=eqopt_p,
        max_size_triangular=10,
        min_ndim_triangular=min_ndim,
        memory_save_mode="one_diag" if one_diag else None,
        precond_lr=hyper["precond_lr"],
        key=7,
        max_update_rms=cap,
    )
    decisions, capped = [], []
    reference = lambda params, grads: np_kron(
        params,
        grads,
        probability=probability,
        max_size=10,
        min_ndim=min_ndim,
        one_diag=one_diag,
        seed=7,
        decisions=decisions,
        max_update_rms=cap,
        capped=capped,
        **hyper,
    )
    _compare(make, reference, f64_rtol=1e-10, f32_rtol=1e-3, shapes=shapes)
    if p == 1.0:
        assert all(decisions)
    else:  # the runs took and skipped factor updates
        assert any(decisions) and not all(decisions), decisions
    if name == "tight_cap":  # the cap bound on some leaves and steps, not all
        assert any(capped) and not all(capped), capped


def test_kron_preconditioner_whitens_the_gradients():
    """Li's criterion: with gradients $h \\sim N(0, C)$ the fitted $P$ solves
    $P C P = I$, that is $P = C^{-1/2}$ (a dense factor for a vector: one triangular
    $Q$). A check of the algorithm itself, independent of the reference above."""
    d = 5
    rng = np.random.default_rng(0)
    root = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    cov = root @ root.T
    opt = eqopt.scale_by_kron(
        b1=0.0,
        preconditioner_update_probability=1.0,
        min_ndim_triangular=1,
        precond_lr=0.05,
        key=3,
    )
    samples = jr.normal(jr.key(1), (4000, d)) @ jnp.asarray(root.T, jnp.float32)

    @eqx.filter_jit
    def fit(samples):
        def step(state, h):
            return opt.update({"x": h}, state)[1], None

        return jax.lax.scan(step, opt.init({"x": samples[0]}), samples)[0]

    (q,) = fit(samples).preconditioners["x"]
    q = np.asarray(q, np.float64)
    p = q.T @ q
    vals, vecs = np.linalg.eigh(cov)
    expected = vecs @ np.diag(vals**-0.5) @ vecs.T
    assert np.allclose(np.triu(q), q)  # the factor stays upper-triangular
    error = np.linalg.norm(p - expected) / np.linalg.norm(expected)
    print(f"relative error of P against C^(-1/2): {error:.3f}")
    assert error < 0.1, error


def test_kron_state_layout_dtypes_and_key():
    params = {
        "w": jnp.zeros((4, 3)),
        "wide": jnp.zeros((2, 50)),
        "b": jnp.zeros(3),
        "s": jnp.zeros(()),
        "t": jnp.zeros((2, 3, 4), jnp.bfloat16),
        "one": jnp.zeros((1, 5)),
    }
    opt = eqopt.scale_by_kron(max_size_triangular=32, key=5)
    state = opt.init(params)
    shapes = jax.tree.map(lambda x: x.shape, state.preconditioners)
    assert shapes["w"] == ((4, 4), (3, 3))
    assert shapes["wide"] == ((2, 2), (50,))  # the long axis: diagonal
    assert shapes["b"] == ((3,),) and shapes["s"] == ((),)  # 1-D and scalar: diagonal
    assert shapes["t"] == ((2, 2), (3, 3), (4, 4))
    assert shapes["one"] == ((1,), (5, 5))  # an axis of length 1: diagonal
    np.testing.assert_array_equal(state.preconditioners["w"][0], jnp.eye(4))
    np.testing.assert_array_equal(state.preconditioners["wide"][1], jnp.ones(50))
    assert state.preconditioners["t"][0].dtype == jnp.float32  # at least float32
    assert state.mu["t"].dtype == jnp.bfloat16  # the parameter's dtype by default
    np.testing.assert_array_equal(state.key, jr.key_data(jr.key(5)))
    diag = eqopt.scale_by_kron(memory_save_mode="all_diag").init(params)
    assert jax.tree.map(lambda x: x.ndim, diag.preconditioners)["w"] == (1, 1)
    one = eqopt.scale_by_kron(memory_save_mode="one_diag")
    square = one.init({"square": jnp.zeros((3, 3))}).preconditioners["square"]
    assert jax.tree.map(lambda x: x.shape, square) == ((3, 3), (3,))  # the last
    one = one.init(params)
    assert jax.tree.map(lambda x: x.shape, one.preconditioners)["t"] == (
        (2, 2),
        (3, 3),
        (4,),
    )
    with jax.enable_x64(True):
        typed = eqopt.scale_by_kron(mu_dtype=jnp.float32, precond_dtype=jnp.float64)
        typed_state = typed.init(params)
        assert typed_state.mu["t"].dtype == jnp.float32
        assert typed_state.preconditioners["w"][0].dtype == jnp.float64
        u, _ = typed.update(jax.tree.map(jnp.ones_like, params), typed_state)
        assert u["w"].dtype == jnp.float32 and u["t"].dtype == jnp.bfloat16
    # A step moves the key and keeps the factors' structure; probability 0 keeps them.
    grads = jax.tree.map(lambda x: jnp.ones_like(x), params)
    _, new = opt.update(grads, state)
    assert not np.array_equal(new.key, state.key) and int(new.count) == 1
    assert jax.tree.structure(new.preconditioners) == jax.tree.structure(
        state.preconditioners
    )
    frozen = eqopt.scale_by_kron(preconditioner_update_probability=0.0)
    u, kept = frozen.update(grads, frozen.init(params))
    assert eqx.tree_equal(kept.preconditioners, frozen.init(params).preconditioners)
    # With identity factors the update is the bias-corrected momentum: the gradient.
    np.testing.assert_allclose(u["w"], grads["w"], rtol=1e-6)


def test_kron_same_key_same_run_other_key_other_run():
    params, grads = _inputs(KRON_SHAPES)
    run = lambda key, p: _run_eqopt(
        eqopt.kron(
            0.01, preconditioner_update_probability=p, max_size_triangular=10, key=key
        ),
        params,
        grads,
        jnp.float32,
    )
    first, again, other = run(1, 0.5), run(1, 0.5), run(2, 0.5)
    assert all(eqx.tree_equal(a, b) for a, b in zip(first, again))
    assert not all(
        np.array_equal(a["w"], b["w"]) for a, b in zip(first, other)
    )  # other probes, other factors
    typed = run(jr.key(1), 0.5)
    assert all(eqx.tree_equal(a, b) for a, b in zip(first, typed))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"b1": 1.0}, "b1"),
        ({"precond_lr": 1.5}, "precond_lr"),
        ({"precond_lr": -0.1}, "precond_lr"),
        (
            {"preconditioner_update_probability": 1.2},
            "preconditioner_update_probability",
        ),
        (
            {"preconditioner_update_probability": -0.1},
            "preconditioner_update_probability",
        ),
        ({"max_size_triangular": -1}, "max_size_triangular"),
        ({"min_ndim_triangular": -2}, "min_ndim_triangular"),
        ({"memory_save_mode": "some_diag"}, "memory_save_mode"),
        ({"max_update_rms": 0.0}, "max_update_rms"),
    ],
)
def test_kron_rejects_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        eqopt.kron(1e-3, **kwargs)
    with pytest.raises(ValueError, match=name):
        eqopt.scale_by_kron(**kwargs)


def test_kron_default_update_probability_is_psgd_jax_anneal():
    p = eqopt.kron().preconditioner_update_probability
    steps = np.asarray([1, 250, 251, 1000, 5000])
    expected = np.minimum(np.maximum(np.exp(-0.001 * (steps - 250)), 0.03), 1.0)
    values = jnp.stack([p(jnp.asarray(s, jnp.int32)) for s in steps])
    # The rate e^-0.001 is a float32 leaf: rounded, then raised to the 750th power.
    np.testing.assert_allclose(values, expected, rtol=2e-5)


def test_kron_mismatched_state_names_the_path():
    params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros(3)}
    opt = eqopt.scale_by_kron()
    state = opt.init({"a": jnp.zeros((2, 2))})
    with pytest.raises(ValueError, match="state.mu"):
        opt.update(params, state)

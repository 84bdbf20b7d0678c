"""Shared test helpers: keys, random pytrees, and one tolerance-aware tree comparison."""

import dataclasses
import os
import random

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np


@dataclasses.dataclass
class GetKey:
    """Fresh PRNG keys; the seed is shown in failure reports (set `EQOPT_TEST_SEED`)."""

    seed: int = dataclasses.field(
        default_factory=lambda: int(
            os.environ.get("EQOPT_TEST_SEED", random.randint(0, 2**31 - 1))
        )
    )
    calls: int = 0

    def __call__(self):
        self.calls += 1
        return jr.fold_in(jr.key(self.seed), self.calls)


# Default (rtol, atol) by dtype.
TOLERANCES = {
    jnp.dtype(jnp.float64): (1e-10, 1e-12),
    jnp.dtype(jnp.float32): (1e-5, 1e-6),
    jnp.dtype(jnp.bfloat16): (1e-2, 1e-2),
    jnp.dtype(jnp.float16): (1e-3, 1e-3),
    jnp.dtype(jnp.complex64): (1e-5, 1e-6),
    jnp.dtype(jnp.complex128): (1e-10, 1e-12),
}


def assert_trees_allclose(actual, expected, *, rtol=None, atol=None, check_dtypes=True):
    """Assert two pytrees have the same structure, dtypes and (close) values.

    Tolerances default by dtype (`TOLERANCES`). A failure names the first differing leaf
    path, with the maximum absolute and relative error and the tolerances used.
    """
    actual_leaves, actual_def = jtu.tree_flatten_with_path(actual)
    expected_leaves, expected_def = jtu.tree_flatten_with_path(expected)
    assert actual_def == expected_def, (
        f"tree structures differ:\n  actual:   {actual_def}\n  expected: {expected_def}"
    )
    for (path, a), (_, e) in zip(actual_leaves, expected_leaves):
        where = jtu.keystr(path) or "<root>"
        a, e = jnp.asarray(a), jnp.asarray(e)
        if check_dtypes:
            assert a.dtype == e.dtype, f"dtype at {where}: {a.dtype} != {e.dtype}"
        assert a.shape == e.shape, f"shape at {where}: {a.shape} != {e.shape}"
        default_rtol, default_atol = TOLERANCES.get(jnp.dtype(e.dtype), (0.0, 0.0))
        r = default_rtol if rtol is None else rtol
        t = default_atol if atol is None else atol
        a64 = np.asarray(a.astype(jnp.float32) if a.dtype == jnp.bfloat16 else a)
        e64 = np.asarray(e.astype(jnp.float32) if e.dtype == jnp.bfloat16 else e)
        if not np.allclose(a64, e64, rtol=r, atol=t, equal_nan=True):
            err = np.abs(a64 - e64)
            rel = err / np.maximum(np.abs(e64), np.finfo(np.float64).tiny)
            raise AssertionError(
                f"values differ at {where}: max abs err {err.max():.3g}, max rel err "
                f"{rel.max():.3g} (rtol={r}, atol={t})"
            )


def random_tree(key, dtype=jnp.float32):
    """A pytree of several leaves of different shapes, a scalar included."""
    k1, k2, k3, k4 = jr.split(key, 4)
    return {
        "w": jr.normal(k1, (4, 3), dtype),
        "b": jr.normal(k2, (3,), dtype),
        "scalar": jr.normal(k3, (), dtype),
        "nested": (jr.normal(k4, (2, 2, 2), dtype),),
    }


def is_float_array(x):
    return eqx.is_inexact_array(x)


def tree_isfinite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))

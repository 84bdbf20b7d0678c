"""Optax's top-level utilities, state aliases and typing names: parity and behaviour."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from beartype import beartype
from jaxtyping import jaxtyped

import eqopt

from .helpers import assert_trees_allclose, tree_isfinite


KEY = jr.key(0)


def _spd(n, seed=0):
    a = jr.normal(jr.fold_in(KEY, seed), (n, n))
    return a @ a.T / n + 0.1 * jnp.eye(n)


def _optax(fn, *args, **kwargs):
    # Optax's numerics are written for standard promotion (a float32 identity meets
    # the matrix's dtype, an int64 bound meets an int32 count...).
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args, **kwargs)


# --- global_norm ------------------------------------------------------------------


def test_global_norm_is_optax_deprecated_and_skips_non_arrays():
    tree = {"a": jnp.arange(3.0), "b": (jnp.ones((2, 2)), None)}
    with pytest.warns(DeprecationWarning, match="eqopt.tree.norm"):
        ours = eqopt.global_norm({**tree, "act": jax.nn.relu, "n": 3})
    with pytest.warns(DeprecationWarning):
        theirs = optax.global_norm(tree)
    assert_trees_allclose(ours, theirs)
    with pytest.warns(DeprecationWarning):
        grad = jax.grad(eqopt.global_norm)({"a": jnp.zeros(3)})
    assert tree_isfinite(grad)


# --- safe_norm, safe_root_mean_squares --------------------------------------------

NORM_ARGS = [
    dict(),
    dict(ord=1),
    dict(ord=jnp.inf),
    dict(axis=1),
    dict(axis=0, keepdims=True),
    dict(ord="fro", axis=(0, 1)),
    dict(ord=2, axis=1, keepdims=True),
]


@pytest.mark.parametrize("kwargs", NORM_ARGS, ids=str)
@pytest.mark.parametrize("min_norm", [0.0, 0.5, 10.0])
def test_safe_norm_parity_and_gradients(kwargs, min_norm):
    x = jr.normal(KEY, (3, 4)).at[0].set(0.0)
    for value in (x, jnp.zeros_like(x)):
        ours = eqopt.safe_norm(value, min_norm, **kwargs)
        assert_trees_allclose(ours, _optax(optax.safe_norm, value, min_norm, **kwargs))
        grad = jax.grad(lambda v: jnp.sum(eqopt.safe_norm(v, min_norm, **kwargs)))
        their_grad = jax.grad(lambda v: jnp.sum(optax.safe_norm(v, min_norm, **kwargs)))
        assert tree_isfinite(grad(value))
        assert_trees_allclose(grad(value), _optax(their_grad, value))
    # The lower bound is a hyperparameter: its derivative is finite too.
    d_min = jax.grad(lambda m: jnp.sum(eqopt.safe_norm(jnp.zeros((3, 4)), m)))(0.5)
    assert d_min == 1.0


@pytest.mark.parametrize("min_rms", [0.0, 0.5, 10.0])
def test_safe_root_mean_squares_parity_and_gradients(min_rms):
    x = jr.normal(KEY, (5,))
    for value in (x, jnp.zeros_like(x)):
        ours = eqopt.safe_root_mean_squares(value, min_rms)
        assert_trees_allclose(ours, optax.safe_root_mean_squares(value, min_rms))
        grad = jax.grad(eqopt.safe_root_mean_squares)(value, min_rms)
        assert tree_isfinite(grad)
        if min_rms > 0:
            their_grad = jax.grad(optax.safe_root_mean_squares)(value, min_rms)
            assert_trees_allclose(grad, their_grad)
    # At zero with a zero bound, Optax's derivative is NaN; eqopt's is zero.
    grad = jax.grad(eqopt.safe_root_mean_squares)(jnp.zeros(3), 0.0)
    assert_trees_allclose(grad, jnp.zeros(3))


# --- counters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "count",
    [
        jnp.asarray(5, jnp.int32),
        jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32),
        jnp.asarray(255, jnp.uint8),
        jnp.asarray(2.5, jnp.float32),
        jnp.asarray(jnp.finfo(jnp.float32).max, jnp.float32),
        jnp.asarray([1, 2, jnp.iinfo(jnp.int32).max], jnp.int32),
    ],
    ids=str,
)
def test_safe_increment_parity(count):
    assert_trees_allclose(eqopt.safe_increment(count), optax.safe_increment(count))
    assert eqopt.safe_int32_increment is eqopt.safe_increment


def test_safe_increment_rejects_other_dtypes():
    with pytest.raises(ValueError, match="count of dtype bool"):
        eqopt.safe_increment(jnp.asarray(True))


# --- moments ----------------------------------------------------------------------


def test_moment_helpers_are_the_tree_utils_ones_with_optax_numbers():
    assert eqopt.bias_correction is eqopt.tree_utils.tree_bias_correction
    assert eqopt.update_moment is eqopt.tree_utils.tree_update_moment
    assert eqopt.update_infinity_moment is eqopt.tree_utils.tree_update_infinity_moment
    assert (
        eqopt.update_moment_per_elem_norm
        is eqopt.tree_utils.tree_update_moment_per_elem_norm
    )
    g = {"a": jr.normal(KEY, (3,)), "b": jnp.ones((2,))}
    m = {"a": jnp.full((3,), 0.5), "b": jnp.zeros((2,))}
    for ours, theirs, args in (
        (eqopt.update_moment, optax.update_moment, (g, m, 0.9, 2)),
        (
            eqopt.update_moment_per_elem_norm,
            optax.update_moment_per_elem_norm,
            (g, m, 0.9, 3),
        ),
        (eqopt.update_infinity_moment, optax.update_infinity_moment, (g, m, 0.9, 1e-8)),
        (eqopt.bias_correction, optax.bias_correction, (m, 0.9, jnp.asarray(3))),
    ):
        assert_trees_allclose(ours(*args), _optax(theirs, *args))


# --- power iteration, inverse p-th roots ------------------------------------------


def test_power_iteration_parity_with_default_and_given_keys():
    a = _spd(6)
    assert_trees_allclose(eqopt.power_iteration(a), optax.power_iteration(a))
    key = jr.PRNGKey(3)
    assert_trees_allclose(
        eqopt.power_iteration(a, key=key, num_iters=5),
        optax.power_iteration(a, key=key, num_iters=5),
    )
    eigenvalue, _ = eqopt.power_iteration(a, num_iters=1000, error_tolerance=1e-7)
    np.testing.assert_allclose(eigenvalue, jnp.linalg.eigvalsh(a)[-1], rtol=1e-4)


def test_power_iteration_on_a_function_of_a_pytree():
    a, b = _spd(3, 1), _spd(2, 2)
    v0 = {"x": jnp.ones(3), "y": jnp.ones(2)}

    def multiply(v):
        return {"x": a @ v["x"], "y": b @ v["y"]}

    assert_trees_allclose(
        eqopt.power_iteration(multiply, v0=v0), optax.power_iteration(multiply, v0=v0)
    )
    with pytest.raises(ValueError, match="v0"):
        eqopt.power_iteration(multiply)


@pytest.mark.parametrize("p", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 5])
def test_matrix_inverse_pth_root_parity(p, n):
    a = _spd(n, p)
    root, error = eqopt.matrix_inverse_pth_root(a, p)
    their_root, their_error = _optax(optax.matrix_inverse_pth_root, a, p)
    assert_trees_allclose(root, their_root, rtol=1e-4, atol=1e-6)
    assert_trees_allclose(error, jnp.asarray(their_error, jnp.float32), atol=1e-5)
    if p <= 2:  # well converged: the root is the root
        expected = jnp.linalg.matrix_power(jnp.linalg.inv(root), p)
        np.testing.assert_allclose(expected, a, rtol=1e-3, atol=1e-3)


def test_matrix_inverse_pth_root_under_jit_with_a_traced_power():
    a = _spd(4)
    root, _ = jax.jit(eqopt.matrix_inverse_pth_root)(a, jnp.asarray(4.0))
    assert_trees_allclose(root, _optax(optax.matrix_inverse_pth_root, a, 4)[0])


def test_matrix_inverse_pth_root_with_a_python_power_inside_a_callers_jit():
    a = _spd(4)
    root, _ = jax.jit(lambda a: eqopt.matrix_inverse_pth_root(a, 4))(a)
    assert_trees_allclose(root, _optax(optax.matrix_inverse_pth_root, a, 4)[0])


def test_matrix_inverse_pth_root_in_float64():
    """A float64 matrix stays float64 (strict promotion has no float64-float32 path)."""
    with jax.enable_x64(True):
        a = jnp.asarray(_spd(4), jnp.float64)
        root, _ = eqopt.matrix_inverse_pth_root(a, 4, ridge_epsilon=0.0)
        w, q = jnp.linalg.eigh(a)
        expected = (q * (w**-0.25)[None, :]) @ q.T
    assert root.dtype == jnp.float64
    np.testing.assert_allclose(root, expected, rtol=1e-5)


@pytest.mark.parametrize("p", [0, 3, 16])
def test_matrix_inverse_pth_root_rejects_other_powers(p):
    with pytest.raises(ValueError, match=f"p={p}"):
        eqopt.matrix_inverse_pth_root(_spd(3), p)


# --- init_empty_state, multi_normal, state aliases --------------------------------


def test_init_empty_state_and_multi_normal():
    assert eqopt.init_empty_state({"w": jnp.ones(2)}) == eqopt.EmptyState()
    assert eqopt.multi_normal is eqopt.utils.multi_normal


EMPTY_STATE_ALIASES = [
    "AddDecayedWeightsState",
    "ClipByGlobalNormState",
    "ClipState",
    "ScaleState",
]


@pytest.mark.parametrize("name", EMPTY_STATE_ALIASES)
def test_optax_empty_state_aliases(name):
    assert getattr(optax, name) is optax.EmptyState
    assert getattr(eqopt, name) is eqopt.EmptyState


# --- typing names -----------------------------------------------------------------


def test_typing_names_import_and_annotate():
    from eqopt import (  # noqa: F401
        GradientTransformationExtraArgs,
        MaskOrFn,
        OptState,
        Params,
        ScalarOrSchedule,
        Schedule,
        TransformInitFn,
        TransformUpdateExtraArgsFn,
        TransformUpdateFn,
        Updates,
    )

    assert GradientTransformationExtraArgs is eqopt.GradientTransformation
    assert eqopt.schedules.Schedule is Schedule
    assert isinstance(eqopt.adam(1e-3), GradientTransformationExtraArgs)

    @jaxtyped(typechecker=beartype)
    def step(
        tx: GradientTransformationExtraArgs,
        learning_rate: ScalarOrSchedule,
        schedule: Schedule,
        mask: MaskOrFn,
        params: Params,
        updates: Updates,
        state: OptState,
        init: TransformInitFn,
        update: TransformUpdateExtraArgsFn,
        plain_update: TransformUpdateFn,
    ) -> tuple[Updates, OptState]:
        return update(updates, state, params)

    tx = eqopt.sgd(0.1)
    params = {"w": jnp.ones(2)}
    for learning_rate in (0.1, jnp.asarray(0.1), eqopt.constant_schedule(0.1)):
        updates, _ = step(
            tx,
            learning_rate,
            eqopt.linear_schedule(1.0, 0.0, 10),
            lambda p: jax.tree.map(eqx.is_array, p),
            params,
            params,
            tx.init(params),
            tx.init,
            tx.update,
            tx.update,
        )
        assert_trees_allclose(updates, {"w": jnp.full(2, -0.1)})
    with pytest.raises(Exception, match="learning_rate"):
        step(tx, "fast", *(None,) * 8)

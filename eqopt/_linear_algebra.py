"""Linear algebra used by optimisers: global norms, power iteration, inverse p-th roots.

Optax: `optax.global_norm`, `optax.power_iteration`, `optax.matrix_inverse_pth_root`.
Same algorithms and numbers as Optax's; pytrees go through `eqopt.tree_utils`, so
`None` and non-array leaves are skipped.
"""

import warnings
from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Inexact, PRNGKeyArray, PyTree, Real

from .tree_utils import tree_norm, tree_scale, tree_sub, tree_vdot


def global_norm(updates: PyTree) -> Array:
    r"""The L2 norm of a pytree, seen as one long vector: $\sqrt{\sum_i \|g_i\|^2}$.

    Deprecated in Optax in favour of `optax.tree.norm`, and so here (with the same
    `DeprecationWarning`) in favour of `eqopt.tree.norm`, which it calls. Its derivative
    is finite (zero) at an all-zero pytree.

    Optax: `optax.global_norm`.

    **Arguments:**

    - `updates`: a pytree; `None` and non-array leaves are skipped.

    **Returns:**

    The norm, a scalar array.
    """
    warnings.warn(
        "eqopt.global_norm is deprecated in favour of eqopt.tree.norm (as in Optax)",
        DeprecationWarning,
        stacklevel=2,
    )
    return tree_norm(updates)


@no_type_check
def _normalise(tree: Any) -> Any:
    return tree_scale(1.0 / tree_norm(tree), tree)


def power_iteration(
    matrix: Inexact[ArrayLike, "n n"] | Callable[[PyTree], PyTree],
    *,
    v0: PyTree | None = None,
    num_iters: Real[ArrayLike, ""] = 100,
    error_tolerance: Real[ArrayLike, ""] = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
    key: PRNGKeyArray | None = None,
) -> tuple[Array, PyTree]:
    r"""The dominant eigenvalue and eigenvector of a matrix, by power iteration.

    From a unit vector $v_0$, repeat $z_k = A v_{k-1}$, $v_k = z_k / \|z_k\|$,
    $\lambda_k = \langle v_{k-1}, z_k \rangle$ until
    $\|z_k - \lambda_k v_{k-1}\| < \epsilon |\lambda_k|$ or `num_iters` iterations.

    Optax: `optax.power_iteration`.

    **Arguments:**

    - `matrix`: a square matrix $A$, or a function computing $v \mapsto A v$ on a
        pytree $v$.
    - `v0`: the starting vector (required when `matrix` is a function, a pytree then).
        By default, uniform in $[-1, 1]$ drawn with `key`.
    - `num_iters`: the most iterations.
    - `error_tolerance`: $\epsilon$, the relative residual at which to stop.
    - `precision`: the precision of the matrix-vector products.
    - `key`: the key drawing `v0`; `jax.random.PRNGKey(0)` by default, as in Optax.

    **Returns:**

    `(eigenvalue, eigenvector)`, the eigenvector normalised to unit norm.

    **Raises:**

    `ValueError` when `matrix` is a function and `v0` is not given.
    """
    if callable(matrix):
        multiply = matrix
        if v0 is None:
            raise ValueError(
                "`power_iteration(v0=...)` is needed when `matrix` is a function: the "
                "structure of its input is unknown."
            )
    else:
        matrix = jnp.asarray(matrix)
        multiply = _matrix_product(matrix, precision)
        if v0 is None:
            key = jax.random.PRNGKey(0) if key is None else key
            v0 = jax.random.uniform(
                key, matrix.shape[-1:], matrix.dtype, minval=-1.0, maxval=1.0
            )
    v0 = _normalise(v0)
    z0 = multiply(v0)
    eigenvalue0 = jnp.zeros_like(jnp.asarray(tree_vdot(v0, z0)))

    @no_type_check
    def not_converged(carry):
        eigenvector, z, eigenvalue, k = carry
        residual = tree_norm(tree_sub(z, tree_scale(eigenvalue, eigenvector)))
        converged = jnp.abs(residual / eigenvalue) < error_tolerance
        return ~converged & (k < num_iters)

    @no_type_check
    def step(carry):
        _, z, _, k = carry
        eigenvector = _normalise(z)
        z = multiply(eigenvector)
        return eigenvector, z, jnp.asarray(tree_vdot(eigenvector, z)), k + 1

    carry = (v0, z0, eigenvalue0, jnp.asarray(0))
    _, z, eigenvalue, _ = lax.while_loop(not_converged, step, carry)
    return eigenvalue, _normalise(z)


@no_type_check
def _matrix_product(matrix: Array, precision: lax.Precision) -> Callable:
    return lambda v: jnp.matmul(matrix, v, precision=precision)


@no_type_check
def _power_of_two(matrix: Array, p: Any, precision: lax.Precision) -> Array:
    r"""$M^{2^k}$ with $k = \mathrm{round}(\log_2 p)$ clipped to $0..3$, by squaring."""

    @no_type_check
    def squared(times):
        @no_type_check
        def power(m):
            for _ in range(times):
                m = jnp.matmul(m, m, precision=precision)
            return m

        return power

    k = jnp.round(jnp.log2(p)).astype(jnp.int32)
    return lax.switch(k, [squared(times) for times in range(4)], matrix)


def _check_power_of_two(p: Any) -> None:
    if isinstance(p, jax.core.Tracer):
        return
    # Not `jnp.asarray(p)`: under a trace (a caller's `jit`) that is a tracer too.
    value = float(p)
    if value not in (1.0, 2.0, 4.0, 8.0):
        raise ValueError(
            "`matrix_inverse_pth_root(p=...)` must be 1, 2, 4 or 8 (its iteration "
            f"raises matrices to these powers only); got p={p!r}."
        )


def matrix_inverse_pth_root(
    matrix: Inexact[ArrayLike, "n n"],
    p: Real[ArrayLike, ""],
    num_iters: Real[ArrayLike, ""] = 100,
    ridge_epsilon: Real[ArrayLike, ""] = 1e-6,
    error_tolerance: Real[ArrayLike, ""] = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
) -> tuple[Array, Array]:
    r"""$(A + \epsilon \lambda_{\max} I)^{-1/p}$ for a symmetric positive semi-definite $A$.

    By coupled Newton iterations (Higham, eq. 7.18): with $\alpha = -1/p$,
    $z = (1 + p) / (2 \|A_\epsilon\|_F)$, $M_0 = z A_\epsilon$, $H_0 = z^{1/p} I$,

    $$
    N_k = (1 - \alpha) I + \alpha M_k, \quad M_{k+1} = N_k^p M_k, \quad
    H_{k+1} = H_k N_k,
    $$

    until $\max |M_k - I| \le$ `error_tolerance`, `num_iters` iterations, or the error
    grows by more than a factor $1.2$ (then the previous $H$ is returned). The ridge is
    relative to the largest eigenvalue $\lambda_{\max}$, found by
    [`eqopt.power_iteration`][]. Computed in float32 or wider, returned in the dtype of
    `matrix`.

    Optax: `optax.matrix_inverse_pth_root`. Unlike Optax, a concrete `p` other than
    1, 2, 4 or 8 is an error (Optax silently raises $N_k$ to the nearest power of two).

    **Arguments:**

    - `matrix`: $A$, symmetric positive semi-definite.
    - `p`: 1, 2, 4 or 8.
    - `num_iters`: the most iterations.
    - `ridge_epsilon`: $\epsilon$.
    - `error_tolerance`: the error at which to stop.
    - `precision`: the precision of the matrix products.

    **Returns:**

    `(root, error)`: $A_\epsilon^{-1/p}$ and $\max |M - I|$ at the end (a zero array
    for a $1 \times 1$ matrix, where Optax returns the Python int `0`).

    ??? cite "References"

        Higham, *Functions of Matrices: Theory and Computation*, SIAM 2008, p. 184,
        eq. 7.18.
    """
    _check_power_of_two(p)
    matrix = jnp.asarray(matrix)
    # float32 or wider (not `promote_types`, which strict promotion refuses for float64).
    wide = jnp.finfo(matrix.dtype).bits >= 32
    dtype = matrix.dtype if wide else jnp.dtype(jnp.float32)
    a = matrix.astype(dtype)
    n = a.shape[0]
    alpha = jnp.asarray(-1.0 / p, jnp.float32).astype(dtype)
    identity = jnp.eye(n, dtype=dtype)
    max_eigenvalue, _ = power_iteration(
        a, num_iters=100, error_tolerance=1e-6, precision=precision
    )
    ridge = ridge_epsilon * jnp.maximum(max_eigenvalue, 1e-16)
    if n == 1:
        return ((a + ridge) ** alpha).astype(matrix.dtype), jnp.zeros((), dtype)

    damped = a + ridge * identity
    z = (1 + p) / (2 * jnp.linalg.norm(damped))
    m0 = damped * z
    h0 = identity * jnp.power(z, 1.0 / p)

    @no_type_check
    def keep_going(carry):
        k, _, _, _, error, improving = carry
        return (k < num_iters) & (error > error_tolerance) & improving

    @no_type_check
    def step(carry):
        k, m, h, _, error, _ = carry
        n_k = (1 - alpha) * identity + alpha * m
        m_next = jnp.matmul(_power_of_two(n_k, p, precision), m, precision=precision)
        h_next = jnp.matmul(h, n_k, precision=precision)
        error_next = jnp.max(jnp.abs(m_next - identity))
        # The error may rise once before it falls: allow a rise of at most 1.2x.
        return k + 1, m_next, h_next, h, error_next, error_next < 1.2 * error

    error0 = jnp.max(jnp.abs(m0 - identity))
    carry = (0, m0, h0, h0, error0, jnp.asarray(True))
    _, m, h, h_previous, _, improving = lax.while_loop(keep_going, step, carry)
    root = jnp.where(improving, h, h_previous).astype(matrix.dtype)
    return root, jnp.max(jnp.abs(m - identity))

r"""Non-negative least squares by Polyak's fast projected gradient method."""

from typing import no_type_check

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Inexact, Real


def nnls(
    A: Inexact[Array, "m n"],
    b: Inexact[Array, "m ..."],
    iters: int,
    unroll: int | bool = 1,
    L: Real[ArrayLike, ""] | None = None,
) -> Inexact[Array, "n ..."]:
    r"""Solve $\min_{x \ge 0} \|A x - b\|_2$ by `iters` steps of the fast projected
    gradient method.

    With $Q = A^\top A$, $q = A^\top b$ and $L \ge \lambda_{\max}(Q)$, starting from
    $x_0 = p_0 = 0$, $c_0 = 0$:

    $$
    \begin{aligned}
    x_{k+1} &= \max\big(p_k - (Q p_k - q)/L,\ 0\big), \qquad
    c_{k+1} = \tfrac{1}{2}\big(1 + \sqrt{1 + 4 c_k^2}\big), \\
    p_{k+1} &= x_{k+1} + \frac{c_k - 1}{c_{k+1}}\,(x_{k+1} - x_k).
    \end{aligned}
    $$

    Without `L`, the bound $\min(\|Q\|_F, \|Q\|_1)$ is used. A matrix `b` of shape
    `(m, k)` solves `k` problems at once (one per column). The result is differentiable
    in `A`, `b` and `L` (through the `iters` steps).

    Optax: `optax.nnls` (same arguments and numbers; malformed shapes are a
    `ValueError` here, an `assert` there).

    **Arguments:**

    - `A`: the matrix, of shape `(m, n)`.
    - `b`: the right-hand side, of shape `(m,)` or `(m, k)`.
    - `iters`: the number of iterations (static).
    - `unroll`: passed to `lax.scan`.
    - `L`: an upper bound on the largest eigenvalue of $A^\top A$, or `None`.

    **Returns:**

    The solution, of shape `(n,)` or `(n, k)`.

    !!! example

        ```python
        A = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        b = jnp.array([5.0, 6.0])
        eqopt.nnls(A, b, 1000)  # [0.0, 1.7]
        ```

    ??? cite "References"

        Polyak, *Projected gradient method for non-negative least square*,
        Contemporary Mathematics 636, 2015.
    """
    _check_shapes(A, b)
    Q = A.mT @ A
    q = A.mT @ b
    if L is None:
        L = _spectral_radius_bound(Q)
    L = jnp.where(L == 0, 1, L)  # an all-zero `A`: no division by zero

    @no_type_check
    def step(carry, _):
        x, p, c = carry
        c_next = (1 + jnp.sqrt(1 + 4 * c**2)) / 2
        x_next = jnp.clip(p - (Q @ p - q) / L, 0)
        p_next = x_next + (c - 1) / c_next * (x_next - x)
        return (x_next, p_next, c_next), None

    x = jnp.zeros(A.shape[-1:] + b.shape[1:], b.dtype)
    # `c` starts as a weakly typed float, as in Optax, so that it is computed in the
    # default float precision whatever the dtype of `A` and `b`.
    (x, _, _), _ = lax.scan(step, (x, x, 0.0), length=iters, unroll=unroll)
    return x


@no_type_check
def _check_shapes(A: Array, b: Array) -> None:
    if A.ndim != 2:
        raise ValueError(f"`nnls(A, ...)`: `A` must be a matrix; got shape {A.shape}.")
    if b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
        raise ValueError(
            f"`nnls(A, b, ...)`: `b` must have shape ({A.shape[0]},) or "
            f"({A.shape[0]}, k) to match `A` of shape {A.shape}; got {b.shape}."
        )


@no_type_check
def _spectral_radius_bound(Q: Array) -> Array:
    r"""$\min(\|Q\|_F, \|Q\|_1) \ge \lambda_{\max}(Q)$ (the 1-norm of an empty matrix
    taken as 0)."""
    frobenius = jnp.linalg.matrix_norm(Q, ord="fro")
    one = jnp.linalg.matrix_norm(Q, ord=1) if Q.size else 0
    return jnp.minimum(frobenius, one)

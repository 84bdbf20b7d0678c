"""Numerics whose derivatives stay finite where the textbook formula's do not.

Optax's defaults (`eps_root=0.0`, a global norm of exactly-zero gradients, a schedule
that reaches zero) put `sqrt`, `x ** p` or a division at a point where its derivative is
infinite. In a hypergradient that infinity meets a zero tangent and gives `0 * inf = NaN`.
The functions here return the textbook value in the forward pass and, at those points,
use the one-sided limit that makes the chain rule come out right: the zero tangent wins.

The private ones run once per leaf while tracing, so they are `@no_type_check` (see
`_tree.py`); `safe_norm` and `safe_root_mean_squares` are public (Optax's names) and
checked like every public function.
"""

from typing import no_type_check

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, ArrayLike, Inexact, Int, Real


# `safe_sqrt` is a primitive rather than a `jax.custom_jvp` function: it is applied to
# every leaf of Adam-like updates, and a custom_jvp call costs about five times a
# primitive's trace time, again under `vmap` (which re-traces it). Its forward pass and
# shape rules are `sqrt`'s; only its derivative differs.
_safe_sqrt_p = Primitive("eqopt_safe_sqrt")
_safe_sqrt_p.def_impl(lax.sqrt)
_safe_sqrt_p.def_effectful_abstract_eval(lax.sqrt_p.abstract_eval)
mlir.register_lowering(_safe_sqrt_p, mlir.lower_fun(lax.sqrt, multiple_results=False))
batching.defvectorized(_safe_sqrt_p)


def _safe_sqrt_derivative(tangent, x):
    positive = x > 0
    return tangent * jnp.where(positive, 0.5 * lax.rsqrt(jnp.where(positive, x, 1)), 0)


ad.defjvp(_safe_sqrt_p, _safe_sqrt_derivative)


@no_type_check
def safe_sqrt(x: Inexact[ArrayLike, "*shape"]) -> Inexact[Array, "*shape"]:
    r"""$\sqrt{x}$, with derivative $\frac{1}{2\sqrt{x}}$ for $x > 0$ and $0$ at $x = 0$."""
    return _safe_sqrt_p.bind(jnp.asarray(x))


@jax.custom_jvp
@no_type_check
def safe_pow(x: Inexact[ArrayLike, "*shape"], p: Inexact[ArrayLike, ""]) -> Array:
    r"""$x^p$ for $x \ge 0$, whose derivative in $p$ ($x^p \log x$) is $0$ at $x = 0$."""
    return x**p


@safe_pow.defjvp
def _safe_pow_jvp(primals, tangents):
    (x, p), (tx, tp) = primals, tangents
    y = x**p
    positive = x > 0
    safe_x = jnp.where(positive, x, 1)
    dx = jnp.where(positive, p * safe_x ** (p - 1), jnp.where(p == 1, 1, 0))
    dp = jnp.where(positive, y * jnp.log(safe_x), 0)
    return y, dx * tx + dp * tp


@no_type_check
def abs_sq(x: Inexact[Array, "*shape"]) -> Inexact[Array, "*shape"]:
    """$|x|^2$, real for complex `x`."""
    return (x * x.conj()).real if jnp.iscomplexobj(x) else x * x


@no_type_check
def safe_increment(count: Real[ArrayLike, "*shape"]) -> Real[Array, "*shape"]:
    """`count + 1`, saturating at the largest value of its dtype instead of overflowing.

    Optax: `optax.safe_increment` (also `optax.safe_int32_increment`).

    **Arguments:**

    - `count`: a counter, of an integer or floating dtype.

    **Returns:**

    `count + 1`, or `count` itself where it is already the largest value of its dtype
    (an integer counter would otherwise wrap round to the smallest).

    **Raises:**

    `ValueError` for any other dtype (bool, complex).
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        max_value = jnp.iinfo(count.dtype).max
    elif jnp.issubdtype(count.dtype, jnp.floating):
        max_value = jnp.finfo(count.dtype).max
    else:
        raise ValueError(
            "`safe_increment(count=...)` needs an integer or floating counter; got "
            f"count of dtype {count.dtype}."
        )
    max_value = jnp.asarray(max_value, count.dtype)
    return jnp.where(count < max_value, count + jnp.ones((), count.dtype), max_value)


safe_int32_increment = safe_increment


def safe_norm(
    x: Inexact[ArrayLike, "..."],
    min_norm: Real[ArrayLike, ""],
    ord: int | float | str | None = None,
    axis: None | tuple[int, ...] | int = None,
    keepdims: bool = False,
) -> Real[Array, "..."]:
    r"""$\max(\|x\|, \nu)$, whose derivative is finite (zero) where $\|x\| \le \nu$.

    The plain `jnp.maximum(jnp.linalg.norm(x), min_norm)` has a NaN derivative at
    $x = 0$: both branches are differentiated, and the norm's derivative there is
    $0/0$. Here the norm is taken of $x$ with its small entries (those whose norm is at
    most $\nu$) replaced by ones, so that branch is smooth where it is not used.

    Optax: `optax.safe_norm`.

    **Arguments:**

    - `x`: an array.
    - `min_norm`: $\nu$, the lower bound of the result.
    - `ord`, `axis`, `keepdims`: as in `jnp.linalg.norm`.

    **Returns:**

    The norm, at least `min_norm`, with the shape `jnp.linalg.norm` gives.
    """
    x = jnp.asarray(x)
    norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    min_norm = jnp.asarray(min_norm).astype(norm.dtype)
    small = norm <= min_norm
    masked = jnp.where(small, jnp.ones_like(x), x)
    masked_norm = jnp.linalg.norm(masked, ord=ord, axis=axis, keepdims=keepdims)
    if not keepdims:
        small = jnp.squeeze(small, axis=axis)
    return jnp.where(small, min_norm, masked_norm)


def safe_root_mean_squares(
    x: Inexact[ArrayLike, "..."], min_rms: Real[ArrayLike, ""]
) -> Real[Array, ""]:
    r"""$\max\left(\sqrt{\operatorname{mean}|x|^2}, \nu\right)$, with a finite derivative.

    The square root is eqopt's safe square root, whose derivative at
    $0$ is $0$, so the derivative is finite at $x = 0$ (where Optax's is too).

    Optax: `optax.safe_root_mean_squares`.

    **Arguments:**

    - `x`: an array.
    - `min_rms`: $\nu$, the lower bound of the result.

    **Returns:**

    The root mean square of `x`, at least `min_rms`: a scalar.
    """
    rms = safe_sqrt(jnp.mean(abs_sq(jnp.asarray(x))))
    min_rms = jnp.asarray(min_rms).astype(rms.dtype)
    return jnp.where(rms <= min_rms, min_rms, rms)


@no_type_check
def bias_correction(decay: Array, count: Int[Array, ""]) -> Array:
    r"""$1 - \beta^t$, the factor that debiases an exponential moving average.

    The integer count is cast to the decay's dtype first: XLA computes an integer power
    that way too (so the numbers are Optax's), and the derivative then needs no mixing
    of integer and float dtypes, which strict dtype promotion rejects. The count, an
    integer, has no tangent, so $\log\beta$ never enters the derivative.
    """
    return 1 - lax.pow(decay, count.astype(decay.dtype))


@jax.custom_jvp
@no_type_check
def div_sqrt(x: Inexact[ArrayLike, "*shape"], v: Inexact[ArrayLike, "*shape"]) -> Array:
    r"""$u = x / \sqrt{v}$ for $v > 0$, with the derivative in $v$ written as $-u / (2v)$.

    The textbook derivative $-x / (2 v^{3/2})$ overflows for a tiny $v$ (Adafactor's
    $v \ge \varepsilon = 10^{-30}$), and where $x = 0$ the chain rule then gives
    $0 \cdot \infty = \text{NaN}$. Written through $u$, it is exactly $0$ wherever
    $x = 0$, and finite wherever $u$ is. `x` and `v` broadcast against each other.
    """
    return x * lax.rsqrt(v)


@div_sqrt.defjvp
def _div_sqrt_jvp(primals, tangents):
    (x, v), (tx, tv) = primals, tangents
    r = lax.rsqrt(v)
    u = x * r
    return u, tx * r - u / v * tv / 2

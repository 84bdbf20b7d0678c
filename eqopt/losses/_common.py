"""Helpers shared by the loss families: Optax's dtypes, and logs that stay finite."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, DTypeLike, Inexact, Real


def result_dtype(*xs: ArrayLike | DTypeLike) -> jnp.dtype:
    """The dtype that JAX's standard promotion gives `xs` together.

    This is the dtype Optax's losses compute in. Asking for it explicitly keeps eqopt's
    numbers equal to Optax's whatever `jax_numpy_dtype_promotion` is set to (the strict
    setting would otherwise refuse to mix, say, float32 logits with integer labels).
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*xs)


def default_float() -> jnp.dtype:
    """JAX's default floating dtype: float32, or float64 with `jax_enable_x64`.

    Optax builds one-hot matrices and constants in it, so some of its losses return at
    least this precision; eqopt's do the same.
    """
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def promote(*xs: ArrayLike) -> tuple[Array, ...]:
    """`xs` as arrays of their common dtype (see `result_dtype`)."""
    dtype = result_dtype(*xs)
    return tuple(jnp.asarray(x).astype(dtype) for x in xs)


def weighted_log(
    weights: Real[Array, "*#shape"], log_p: Inexact[Array, "*#shape"]
) -> Inexact[Array, "*#shape"]:
    r"""$w \log p$ with the convention $0 \log 0 = 0$.

    Where $w = 0$ and $\log p = -\infty$ the product is $0$ rather than NaN, and so are
    its derivatives with respect to $\log p$ (and $w$'s derivative is finite). Elsewhere it
    is the plain product.
    """
    zero_times_inf = (weights == 0) & jnp.isneginf(log_p)
    return weights * jnp.where(zero_times_inf, 0, log_p)


def safe_log(x: Inexact[Array, "*shape"]) -> Inexact[Array, "*shape"]:
    r"""$\log x$ for $x > 0$ and $0$ at $x = 0$, with a finite derivative there.

    This is the "double `where`": the logarithm never sees a zero, so its infinite
    derivative never meets a zero tangent.
    """
    zero = x == 0
    return jnp.where(zero, 0, jnp.log(jnp.where(zero, 1, x)))


def where_axis(
    where: Bool[ArrayLike, "..."] | None, ndim: int, axis: int | tuple[int, ...] | None
) -> Bool[Array, "..."] | None:
    """Optax's convention: a `where` of the batch shape gains the reduced axes back."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.ndim != ndim:
        where = jnp.expand_dims(where, axis)
    return where


def validate_choice(
    owner: str, name: str, value: str, choices: tuple[str, ...]
) -> None:
    """Raise `ValueError` if the string option `name` is not one of `choices`."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"`{owner}({name}=...)` must be one of {options}; got {name}={value!r}."
        )

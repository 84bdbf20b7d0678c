"""Trace-time checks of what an estimator is given: the function and the distribution.

Every check here runs while JAX traces the estimator (on shapes and jaxprs, never on
values), so it costs nothing inside a compiled step and works under `jit`, `vmap` and
`grad` alike.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, no_type_check

import jax
import jax.extend.core as jex
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from .._checks import check_value, Interval


AT_LEAST_ONE = Interval(1.0, math.inf)

_MSG_TRACING = (
    "`{owner}` calls `function` on JAX-traced samples (inside `jax.vmap`), so it must "
    "be written with `jax.numpy` and must not convert its argument to NumPy or branch "
    "in Python on its values."
)

_MSG_ZERO_DERIVATIVE = (
    "`{owner}` differentiates {what}, but its derivative is identically zero although "
    "its value depends on {wrt} (it is piecewise constant, uses `stop_gradient`, or "
    "goes through integers). The estimate would be biased. {fix}"
)


def check_num_samples(owner: str, num_samples: int) -> None:
    """Raise `ValueError` unless at least one sample is asked for."""
    check_value(owner, "num_samples", num_samples, AT_LEAST_ONE)


def check_distribution(owner: str, dist: Any, methods: Sequence[str]) -> None:
    """Raise `TypeError` if the distribution lacks a method the estimator calls."""
    missing = [m for m in methods if not callable(getattr(dist, m, None))]
    if missing:
        raise TypeError(
            f"`{owner}` needs a distribution with "
            + " and ".join(f"`{m}`" for m in methods)
            + f"; `dist_builder(*params)` returned a {type(dist).__name__}, which has "
            f"no `{missing[0]}`."
        )


def one_sample(dist: Any, key: PRNGKeyArray) -> jax.ShapeDtypeStruct:
    """The shape and dtype of one sample of `dist` (nothing is drawn)."""
    return jax.eval_shape(lambda k: dist.sample((1,), k)[0], key)


def check_function(
    owner: str, function: Callable, sample: jax.ShapeDtypeStruct, floating: bool
) -> jax.ShapeDtypeStruct:
    """Check that `function` maps one sample to a real scalar (floating if `floating`)."""
    try:
        out = jax.eval_shape(function, sample)
    except (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
    ) as e:
        e.add_note(_MSG_TRACING.format(owner=owner))
        raise
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None:
        raise ValueError(
            f"`{owner}(function=...)` must map one sample (of shape {sample.shape}) to a "
            f"scalar; got {_describe(out)}."
        )
    if floating and not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`{owner}` differentiates `function`, so it must return a floating "
            f"scalar; got {_describe(out)}. Use `score_function_jacobians` or "
            "`measure_valued_jacobians` for a function that is not differentiable."
        )
    if not (
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or jnp.issubdtype(dtype, jnp.bool_)
    ):
        raise ValueError(
            f"`{owner}(function=...)` must return a real scalar; got {_describe(out)}."
        )
    return out


def check_differentiable(
    owner: str, fn: Callable, args: Sequence[Any], what: str, wrt: str, fix: str
) -> None:
    """Raise `ValueError` if `fn(*args)` depends on `args` but its JVP is zero.

    The dependency is read from the jaxpr of the JVP: a primal output computed from the
    inputs while the tangent output is computed from no input tangent. A constant `fn`
    passes (its zero derivative is right).
    """
    args = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in args]

    @no_type_check
    def jvp(primals, tangents):
        return jax.jvp(fn, tuple(primals), tuple(tangents))

    closed = jax.make_jaxpr(jvp)(args, args)
    jaxpr = closed.jaxpr
    n = len(args)
    primal_in, tangent_in = jaxpr.invars[:n], jaxpr.invars[n:]
    m = len(jaxpr.outvars) // 2
    primal_out, tangent_out = jaxpr.outvars[:m], jaxpr.outvars[m:]
    if _depends(jaxpr, primal_in, primal_out) and not _depends(
        jaxpr, tangent_in, tangent_out
    ):
        raise ValueError(
            _MSG_ZERO_DERIVATIVE.format(owner=owner, what=what, wrt=wrt, fix=fix)
        )


def _depends(jaxpr: jex.Jaxpr, inputs: Sequence[Any], outputs: Sequence[Any]) -> bool:
    """Whether any of `outputs` is computed from any of `inputs` (conservatively)."""
    reached = {v for v in inputs if not isinstance(v, jex.Literal)}
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, jex.Literal) and v in reached for v in eqn.invars):
            reached.update(eqn.outvars)
    return any(not isinstance(v, jex.Literal) and v in reached for v in outputs)


def _describe(out: Any) -> str:
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape is None or dtype is None:
        return f"an output of type {type(out).__name__}"
    return f"{jnp.dtype(dtype).name}{list(shape)}"


def as_real_scalar(value: Any, dtype: Any) -> jax.Array:
    """A function value as a scalar of `dtype` (or wider), for use in a surrogate."""
    value = jnp.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.inexact):
        dtype = jnp.promote_types(value.dtype, dtype)
    return value.astype(dtype)

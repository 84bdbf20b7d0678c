"""What the Kronecker-factored optimisers (SOAP, Shampoo, PSGD-Kron) share: which axes
of a leaf get a factor, the per-axis outer products, and computing on leaves gathered
from an explicit sharding."""

from typing import Any, no_type_check

import jax
import jax.numpy as jnp
from jaxtyping import Array


@no_type_check
def preconditioned_axes(
    shape: tuple[int, ...], max_precond_dim: int, one_sided: bool
) -> tuple:
    """For each axis, whether it gets a preconditioner: leaves of two or more
    dimensions, on their axes of at most `max_precond_dim` entries (with `one_sided`,
    only the shortest of those, the first if tied)."""
    if len(shape) < 2:
        return ()
    axes = tuple(d <= max_precond_dim for d in shape)
    if not any(axes):
        return ()
    if one_sided:
        shortest = min((d, k) for k, d in enumerate(shape) if axes[k])[1]
        axes = tuple(k == shortest for k in range(len(shape)))
    return axes


@no_type_check
def spec(x: Array) -> Any:
    """The explicit sharding spec in `x`'s type, or `None` if it has none."""
    spec = getattr(jax.typeof(x).sharding, "spec", ())
    return spec if any(s is not None for s in spec) else None


@no_type_check
def replicated(x: Array) -> Array:
    """`x` replicated, if its type carries an explicit sharding: the rotations
    contract every axis with a replicated basis."""
    if spec(x) is None:
        return x
    return jax.sharding.reshard(x, jax.typeof(x).sharding.update(spec=jax.P()))


@no_type_check
def laid_out_like(x: Array, like: Array) -> Array:
    """`x`, resharded to `like`'s explicit sharding, if it has one."""
    if spec(like) is None:
        return x
    return jax.sharding.reshard(x, jax.typeof(like).sharding)


@no_type_check
def outer(x: Array, k: int) -> Array:
    r"""$G_{(k)} G_{(k)}^\top$: `x` contracted with itself over every axis but `k`."""
    others = [i for i in range(x.ndim) if i != k]
    return jnp.tensordot(x, x, axes=[others, others])

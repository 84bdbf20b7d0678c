"""How the results of the microbatches of `microbatch` are combined: `Accumulator`s."""

import dataclasses
import enum
import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How to combine a function's results over microbatches $x_0, \\dots, x_{n-1}$.

    The combined result is `finalize(carry)` after `carry = init(shape of x_0)` and
    `carry = update(carry, x_i, i)` for each `i`; `aggregate` reduces values that carry
    their microbatch on a leading axis in one go (as `micro_vmap` needs).

    Like Optax's, it is a frozen dataclass of four functions, and so a leaf of the
    pytree of accumulators that `microbatch` takes (a prefix of the function's output).

    Optax: `optax.microbatching.Accumulator`.

    **Arguments:**

    - `init`: `ShapeDtypeStruct` (of one microbatch's value) `-> carry`.
    - `update`: `(carry, value, index) -> carry`.
    - `finalize`: `carry -> result`.
    - `aggregate`: `values` (stacked on axis 0) `-> result`.
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


class AccumulationType(enum.Enum):
    """The built-in ways to combine microbatch results.

    `MEAN` averages them over the microbatches, `SUM` adds them, `RUNNING_MEAN`
    averages them over those actually run (see `num_real_microbatches`), `CONCAT`
    concatenates them along the batch axis, in the original order of the examples.

    Optax: `optax.microbatching.AccumulationType`.
    """

    MEAN = enum.auto()
    SUM = enum.auto()
    RUNNING_MEAN = enum.auto()
    CONCAT = enum.auto()


@no_type_check
def _floating_zeros(value):
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(
            "MEAN and RUNNING_MEAN accumulators need floating-point values; got a "
            f"value of dtype {value.dtype}."
        )
    return jnp.zeros(value.shape, value.dtype)


@no_type_check
def _zeros(value):
    return jnp.zeros(value.shape, value.dtype)


@no_type_check
def _sum() -> Accumulator:
    return Accumulator(
        _zeros, lambda c, v, _: c + v, lambda c: c, ft.partial(jnp.sum, axis=0)
    )


@no_type_check
def _mean(num_microbatches: int) -> Accumulator:
    return Accumulator(
        _floating_zeros,
        lambda c, v, _: c + v,
        lambda c: c / num_microbatches,
        ft.partial(jnp.mean, axis=0),
    )


@no_type_check
def _running_mean() -> Accumulator:
    # mean_i = mean_{i-1} * i / (i + 1) + x_i / (i + 1): stops correctly at any i.
    def update(carry, value, index):
        kept = index / (index + 1)
        return carry * kept + value * (1 - kept)

    return Accumulator(
        _floating_zeros, update, lambda c: c, ft.partial(jnp.mean, axis=0)
    )


@no_type_check
def _concat(num_microbatches: int) -> Accumulator:
    # Microbatch i holds examples i, i + n, i + 2n... (see `reshape_batch_axis`): the
    # carry is (n, microbatch_size, ...), read back in column-major order.
    def init(value):
        return jnp.zeros((num_microbatches, *value.shape), value.dtype)

    def finalize(carry):
        shape = (-1, *carry.shape[2:])
        sharding = jax.typeof(carry).sharding
        if not sharding.mesh.are_all_axes_explicit:
            return carry.reshape(shape, order="F")
        spec = jax.P(*sharding.spec[1:])  # the microbatch axis is never sharded
        out = jax.sharding.NamedSharding(sharding.mesh, spec)
        return carry.reshape(shape, order="F", out_sharding=out)

    return Accumulator(init, lambda c, v, i: c.at[i].set(v), finalize, lambda x: x)


@no_type_check
def _per_leaf(accumulator: Accumulator) -> Accumulator:
    """`accumulator`, applied to every leaf of a subtree of the function's output."""
    return Accumulator(
        lambda value: jax.tree.map(accumulator.init, value),
        lambda carry, value, i: jax.tree.map(
            lambda c, v: accumulator.update(c, v, i), carry, value
        ),
        lambda carry: jax.tree.map(accumulator.finalize, carry),
        lambda values: jax.tree.map(accumulator.aggregate, values),
    )


@no_type_check
def _built_in(kind: AccumulationType, num_microbatches: int | None) -> Accumulator:
    if kind in (AccumulationType.MEAN, AccumulationType.CONCAT) and (
        num_microbatches is None or num_microbatches <= 0
    ):
        raise ValueError(f"num_microbatches={num_microbatches} must be positive.")
    match kind:
        case AccumulationType.SUM:
            return _per_leaf(_sum())
        case AccumulationType.MEAN:
            return _per_leaf(_mean(num_microbatches))
        case AccumulationType.RUNNING_MEAN:
            return _per_leaf(_running_mean())
        case AccumulationType.CONCAT:
            return _per_leaf(_concat(num_microbatches))


@no_type_check
def as_accumulator(tree: Any, num_microbatches: int | None) -> Accumulator:
    """One `Accumulator` for the whole output, from a pytree prefix of `Accumulator`s
    and `AccumulationType`s (a user-written `Accumulator` acts on its whole subtree)."""

    def one(acc):
        if isinstance(acc, Accumulator):
            return acc
        if isinstance(acc, AccumulationType):
            return _built_in(acc, num_microbatches)
        raise ValueError(
            "`accumulator` must be a pytree (prefix) of `Accumulator`s or "
            f"`AccumulationType`s; found {acc!r}."
        )

    accumulators = jax.tree.map(one, tree)  # an `Accumulator` is a leaf

    def over(method, *trees):
        return jax.tree.map(
            lambda acc, *xs: getattr(acc, method)(*xs), accumulators, *trees
        )

    return Accumulator(
        lambda values: over("init", values),
        lambda carry, values, i: jax.tree.map(
            lambda acc, c, v: acc.update(c, v, i), accumulators, carry, values
        ),
        lambda carry: over("finalize", carry),
        lambda values: over("aggregate", values),
    )

"""Function-level microbatching: evaluate a function over a batch one slice at a time."""

import functools as ft
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp

from ._accumulators import AccumulationType, Accumulator, as_accumulator


class IndividualOutputs(NamedTuple):
    """What `micro_grad` returns besides the combined gradients, each per example:
    the loss `values`, the `metrics` (of `metrics_fn`) and the function's `aux`."""

    values: Any
    metrics: Any
    aux: Any


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, int | str) else tuple(x)


@no_type_check
def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
    """Split the batch axis of every leaf into `(num_microbatches, microbatch_size)`.

    The split is column-major: microbatch $i$ holds examples $i, i + n, i + 2n, \\dots$
    (with $n$ microbatches), so that a batch axis sharded in contiguous blocks keeps
    its sharding on the new `microbatch_size` axis, and the `num_microbatches` axis,
    which the microbatching loop indexes, is not sharded.

    Optax: `optax.microbatching.reshape_batch_axis`.

    **Arguments:**

    - `tree`: a pytree of arrays, each with a batch axis at `axis`.
    - `microbatch_size`: the size of each microbatch; it must divide the batch size.
    - `axis`: the batch axis.

    **Returns:**

    The pytree, each leaf of shape `(..., num_microbatches, microbatch_size, ...)`.
    """

    def split(x):
        shape = (*x.shape[:axis], -1, microbatch_size, *x.shape[axis + 1 :])
        sharding = jax.typeof(x).sharding
        if not sharding.mesh.are_all_axes_explicit:
            return x.reshape(shape, order="F")
        spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
        new_spec = jax.P(*spec[:axis], None, spec[axis], *spec[axis + 1 :])
        shards = x.shape[axis] // sharding.shard_shape(x.shape)[axis]
        if microbatch_size % shards:
            raise ValueError(
                f"microbatch_size={microbatch_size} must be a multiple of the "
                f"{shards} shards of the batch axis."
            )
        out = jax.sharding.NamedSharding(sharding.mesh, new_spec)
        return x.reshape(shape, order="F", out_sharding=out)

    return jax.tree.map(split, tree)


@no_type_check
def microbatch(
    fun: Callable,
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable:
    """Evaluate `fun` on a batch one microbatch at a time, and combine the results.

    `microbatch(fun, argnums, m, SUM)(*args)` is $\\sum_i$ `fun` of the $i$-th slice of
    size $m$ of the batch arguments, computed in a `lax.fori_loop`: the peak memory is
    that of one microbatch. It is how a gradient over a batch too large for the device
    is computed: microbatch `jax.grad(loss)` with `MEAN` (for a mean loss) and pass the
    result to any optimiser. [`eqopt.MultiSteps`][] instead accumulates over
    optimiser steps.

    Optax: `optax.microbatch` (`optax.microbatching.microbatch`).

    **Arguments:**

    - `fun`: any function.
    - `argnums`: the positions of the arguments that have a batch axis.
    - `microbatch_size`: the examples per microbatch (it must divide the batch size);
        `None` returns `fun` itself.
    - `accumulator`: how results combine: an [`eqopt.microbatching.AccumulationType`][]
        (`SUM`, `MEAN`, `RUNNING_MEAN`, `CONCAT`), an
        [`eqopt.microbatching.Accumulator`][], or a pytree prefix of `fun`'s output with
        those at its leaves.
    - `argnames`: the names of keyword arguments that have a batch axis.
    - `in_axes`: the batch axis of each of `argnums + argnames` (one int for all).
    - `num_real_microbatches`: if given (an int or a traced array), only the first
        this many microbatches run: variable batch sizes without recompiling.

    **Returns:**

    A function with `fun`'s arguments, returning the combined result.
    """
    if microbatch_size is None:
        return fun
    argnums, argnames = _as_tuple(argnums), _as_tuple(argnames)
    if isinstance(in_axes, int):
        in_axes = (in_axes,) * (len(argnums) + len(argnames))
    axes = dict(zip((*argnums, *argnames), in_axes))

    def microbatched(*args, **kwargs):
        args, kwargs = list(args), dict(kwargs)
        batched = {k: (args if isinstance(k, int) else kwargs)[k] for k in axes}
        sizes = {
            x.shape[axes[k]]
            for k, tree in batched.items()
            for x in jax.tree.leaves(tree)
        }
        if len(sizes) != 1:
            raise ValueError(
                f"the batch arguments {tuple(axes)} must have batch axes of one size; "
                f"found sizes {sorted(sizes)}."
            )
        (batch_size,) = sizes
        if batch_size % microbatch_size:
            raise ValueError(
                f"batch_size={batch_size} must be divisible by "
                f"microbatch_size={microbatch_size}."
            )
        split = {
            k: reshape_batch_axis(tree, microbatch_size, axes[k])
            for k, tree in batched.items()
        }
        num_microbatches = batch_size // microbatch_size
        combine = as_accumulator(accumulator, num_microbatches)

        def evaluate(i):
            for k, tree in split.items():
                take = ft.partial(jnp.take, indices=i, axis=axes[k])
                (args if isinstance(k, int) else kwargs)[k] = jax.tree.map(take, tree)
            return fun(*args, **kwargs)

        carry = combine.init(jax.eval_shape(evaluate, 0))
        stop = (
            num_microbatches if num_real_microbatches is None else num_real_microbatches
        )
        carry = jax.lax.fori_loop(
            0, stop, lambda i, c: combine.update(c, evaluate(i), i), carry
        )
        return combine.finalize(carry)

    return microbatched


@no_type_check
def micro_vmap(
    fun: Callable,
    in_axes: int | Sequence[int] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable = jax.vmap,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable:
    """`jax.vmap`, one microbatch at a time, with an optional reduction over the batch.

    With the default `CONCAT` it is `jax.vmap(fun, in_axes)` computed in microbatches
    of `microbatch_size` examples (a batch axis far larger than fits in memory at
    once); with `SUM` or `MEAN` the outputs are reduced over the batch as they come,
    so the per-example outputs never exist all at once.

    Optax: `optax.microbatching.micro_vmap`.

    **Arguments:**

    - `fun`: the function to map.
    - `in_axes`: the mapped axis of each positional argument (`None`: not mapped);
        keyword arguments are mapped along axis 0.
    - `out_axes`: must be 0.
    - `microbatch_size`, `accumulator`, `num_real_microbatches`: as in
        [`eqopt.microbatch`][].
    - `vmap_fn`: the vectorising map, with `jax.vmap`'s signature.

    **Returns:**

    The mapped (and reduced) function.
    """
    if out_axes != 0:
        raise NotImplementedError(f"out_axes must be 0; got out_axes={out_axes!r}.")
    in_axes = _as_tuple(in_axes)

    # vmap maps keyword arguments along axis 0: they travel as one batched argument.
    def map_and_reduce(*args, kwargs):
        outputs = vmap_fn(fun, in_axes, out_axes)(*args, **kwargs)
        size = jax.tree.leaves(outputs)[0].shape[0]
        return as_accumulator(accumulator, size).aggregate(outputs)

    mapped = [i for i, axis in enumerate(in_axes) if axis is not None]
    in_microbatches = microbatch(
        map_and_reduce,
        argnums=mapped,
        microbatch_size=microbatch_size,
        accumulator=accumulator,
        argnames="kwargs",
        in_axes=(*(in_axes[i] for i in mapped), 0),
        num_real_microbatches=num_real_microbatches,
    )
    return lambda *args, **kwargs: in_microbatches(*args, kwargs=kwargs)


@no_type_check
def micro_grad(
    fun: Callable,
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.SUM,
    transform_fn: Callable = lambda x: x,
    metrics_fn: Callable = lambda x: None,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable:
    """Per-example gradients, transformed and combined over the batch in microbatches.

    For each example $j$ of the batch arguments, $g_j = \\nabla$ `fun(params, batch_j)`;
    the result is the combination (by `accumulator`: a sum by default) of
    `transform_fn(g_j)` over the batch, and per-example values and `metrics_fn(g_j)`.
    Per-example clipping (differential privacy), gradient moments and per-example
    gradient norms are all one call.

    Unlike Optax's, the differentiated arguments may be Equinox models with non-array
    leaves (activation functions...): their floating arrays are differentiated, as
    `eqx.filter_grad` does, and the other leaves of the gradient are `None`.

    Optax: `optax.microbatching.micro_grad`.

    **Arguments:**

    - `fun`: the loss of one example (or of a batch of one, see `keep_batch_dim`).
    - `has_aux`: whether `fun` returns `(value, aux)`.
    - `argnums`: the argument(s) to differentiate.
    - `batch_argnums`: the argument(s) with a batch axis (axis 0).
    - `keep_batch_dim`: whether `fun` expects its batch arguments to keep a batch
        axis (of size 1).
    - `microbatch_size`, `num_real_microbatches`: as in [`eqopt.microbatch`][].
    - `accumulator`: how the transformed gradients combine over the batch.
    - `transform_fn`: applied to each example's gradient before combining.
    - `metrics_fn`: applied to each example's gradient; returned per example.

    **Returns:**

    A function of `fun`'s arguments returning `(combined, IndividualOutputs(values,
    metrics, aux))`, the last three per example.
    """
    batch_argnums, wrt = _as_tuple(batch_argnums), _as_tuple(argnums)
    single = isinstance(argnums, int)

    def grad_one(*args, **kwargs):
        # Differentiate the floating arrays of the `argnums` arguments only, so that
        # an Equinox model (with functions among its leaves) needs no filtering.
        diff = [eqx.filter(args[i], eqx.is_inexact_array) for i in wrt]
        rest = [eqx.filter(args[i], eqx.is_inexact_array, inverse=True) for i in wrt]

        def value(diff):
            full = list(args)
            for i, d, r in zip(wrt, diff, rest):
                full[i] = eqx.combine(d, r)
            out = fun(*full, **kwargs)
            return out if has_aux else (out, None)

        (val, aux), grads = jax.value_and_grad(value, has_aux=True)(diff)
        grads = grads[0] if single else tuple(grads)
        return transform_fn(grads), IndividualOutputs(val, metrics_fn(grads), aux)

    if keep_batch_dim:
        per_example = grad_one

        def grad_one(*args, **kwargs):
            args = list(args)
            for i in batch_argnums:
                args[i] = jax.tree.map(lambda x: jnp.expand_dims(x, 0), args[i])
            return per_example(*args, **kwargs)

    def split_statics(*args, **kwargs):
        # `jax.vmap` takes arrays only: other leaves of unbatched arguments (an Equinox
        # model's functions) are closed over.
        arrays, statics = zip(*(eqx.partition(a, eqx.is_array) for a in args))
        in_axes = [0 if i in batch_argnums else None for i in range(len(args))]
        mapped = micro_vmap(
            lambda *a, **kw: grad_one(*map(eqx.combine, a, statics), **kw),
            in_axes=in_axes,
            accumulator=(accumulator, AccumulationType.CONCAT),
            microbatch_size=microbatch_size,
            num_real_microbatches=num_real_microbatches,
        )
        return mapped(*arrays, **kwargs)

    return split_statics

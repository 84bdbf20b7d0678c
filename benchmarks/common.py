"""Timing helpers shared by the benchmarks: median of repeats, warm-up excluded."""

import statistics
import time

import jax


def interleaved_times(fns, repeats):
    """The wall times (seconds) of each `fns[k]()`, blocked until its result is ready,
    one per round. The functions take turns in each of the `repeats` rounds, so that a
    slow spell of a shared machine falls on all of them alike, and the order of the
    turns rotates from round to round, so that none always runs after the same other
    (on 2 CPU cores, a memory-bound step right after another runs ~12% slower)."""
    keys = list(fns)
    times = {k: [] for k in keys}
    for r in range(repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.perf_counter()
            jax.block_until_ready(fns[k]())
            times[k].append(time.perf_counter() - start)
    return times


def interleaved_medians(fns, repeats):
    """The median of `interleaved_times` for each function."""
    times = interleaved_times(fns, repeats)
    return {k: statistics.median(v) for k, v in times.items()}


def paired_ratios(times, baseline):
    """For each `k`, the median over rounds of `times[k] / times[baseline]`: each ratio
    compares two runs of the same round, so a slow spell cancels out of it."""
    return {
        k: statistics.median(a / b for a, b in zip(v, times[baseline]))
        for k, v in times.items()
    }


def half_squared_norm(params):
    """A stand-in objective for optimisers that read one (`value`, `value_fn`)."""
    return sum(jax.numpy.sum(p**2) for p in jax.tree.leaves(params)) / 2


def update_step(opt, apply_updates, extra_args=None):
    """`step(params, state, grads) -> (params, state)`: `opt.update`, then
    `apply_updates`, for eqopt and Optax alike. `extra_args(loss, params, grads)`, if
    given (a registry case's), makes `update`'s extra keyword arguments, with
    `half_squared_norm` as the objective."""

    def step(params, state, grads):
        extra = (
            {} if extra_args is None else extra_args(half_squared_norm, params, grads)
        )
        updates, state = opt.update(grads, state, params, **extra)
        return apply_updates(params, updates), state

    return step


def header():
    import optax

    print(
        f"jax {jax.__version__}, optax {optax.__version__}, device {jax.devices()[0]}"
    )

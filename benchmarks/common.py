"""Timing helpers shared by the benchmarks: median of repeats, warm-up excluded."""

import statistics
import time

import jax


def median_time(fn, repeats):
    """The median wall time of `fn()` (blocked until its result is ready), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def header():
    import optax

    print(
        f"jax {jax.__version__}, optax {optax.__version__}, device {jax.devices()[0]}"
    )

"""Memory: Adam's step against the machine's bandwidth, and optimiser state sizes.

Run with `python3 dev.py bench` (or `python benchmarks/bench_memory.py [--quick]`).

1. **Bandwidth.** A jitted, donated `update` + `apply_updates` Adam step on 32M float32
   parameters (8 leaves) reads the parameters, gradients and two moments and writes the
   parameters and moments: 7 x 4 bytes per parameter. The roof is the bandwidth of a
   jitted, donated `a + s * b` (3 x 4 bytes per element) over the same number of
   bytes. Printed: the bandwidth each achieves and Adam's fraction of the roof, for
   eqopt and Optax.
2. **State memory.** The bytes of `opt.init(params)` for each optimiser, eqopt and
   Optax, on the 10M-parameter, 100-leaf tree of `bench_step.py`; and the temporary
   bytes XLA allocates for the jitted step (`compiled.memory_analysis()`).
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from bench_step import large_params, OPTIMISERS
from common import header, interleaved_medians, update_step

import eqopt


def state_bytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes"))


def bench_bandwidth(total, repeats):
    n_leaves = 8
    keys = jr.split(jr.key(0), n_leaves)
    params = [jr.normal(k, (total // n_leaves,)) for k in keys]
    grads = [jnp.full_like(p, 1e-3) for p in params]
    n = sum(p.size for p in params)
    print(f"\n1. Adam step on {n / 1e6:.0f}M float32 parameters ({n_leaves} leaves)")

    # The roof: a + s * b over 7/3 as many elements moves the same bytes as Adam.
    m = n * 7 // 3
    b = jnp.ones(m)
    axpy = jax.jit(lambda a, b: a + 0.5 * b, donate_argnums=0)
    runs, moved = {}, {"roof (jitted a + s*b)": 3 * 4 * m}
    box = [axpy(jnp.ones(m), b)]

    def roof_once(box=box):
        box[0] = axpy(box[0], b)
        return box[0]

    runs["roof (jitted a + s*b)"] = roof_once
    for label, opt, apply in (
        ("optax adam", optax.adam(1e-3), optax.apply_updates),
        ("eqopt adam", eqopt.adam(1e-3), eqopt.apply_updates),
    ):
        step = update_step(opt, apply)
        jitted = jax.jit(
            lambda p, s, step=step: step(p, s, grads), donate_argnums=(0, 1)
        )
        box = list(jitted([p.copy() for p in params], opt.init(params)))

        def once(jitted=jitted, box=box):
            box[0], box[1] = jitted(box[0], box[1])
            return box[0]

        runs[label], moved[label] = once, 7 * 4 * n
    interleaved_medians(runs, 3)  # warm-up: clocks up, buffers allocated
    seconds = interleaved_medians(runs, repeats)
    bandwidth = {k: moved[k] / t for k, t in seconds.items()}
    roof = bandwidth["roof (jitted a + s*b)"]
    for label, value in bandwidth.items():
        print(
            f"   {label:22s} {value / 1e9:8.1f} GB/s = {value / roof:6.1%} of the roof"
        )


def bench_state_memory():
    params = large_params()
    grads = [jnp.full_like(p, 1e-3) for p in params]
    print(f"\n2. optimiser state and step temporaries, {len(params)} leaves, MB")
    print(
        f"   {'optimiser':14s} {'optax state':>11s} {'eqopt state':>11s} "
        f"{'optax temp':>10s} {'eqopt temp':>10s}"
    )
    for name, (make_ours, make_theirs) in OPTIMISERS.items():
        row = []
        for opt, apply in (
            (make_theirs(), optax.apply_updates),
            (make_ours(), eqopt.apply_updates),
        ):
            state = opt.init(params)
            step = update_step(opt, apply)
            step = jax.jit(
                lambda p, s, step=step: step(p, s, grads), donate_argnums=(0, 1)
            )
            compiled = step.lower(params, state).compile()
            analysis = compiled.memory_analysis()
            temp = analysis.temp_size_in_bytes if analysis is not None else float("nan")
            row.append((state_bytes(state), temp))
        (s_theirs, t_theirs), (s_ours, t_ours) = row
        print(
            f"   {name:14s} {s_theirs / 1e6:11.1f} {s_ours / 1e6:11.1f} "
            f"{t_theirs / 1e6:10.1f} {t_ours / 1e6:10.1f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    args = parser.parse_args()
    header()
    bench_bandwidth(32 * 2**20, 10 if args.quick else 50)
    bench_state_memory()


if __name__ == "__main__":
    main()

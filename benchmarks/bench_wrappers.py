"""Wrappers: `flatten` on many small leaves, and `MultiSteps`' memory and time.

Run with `python3 dev.py bench` (or `python benchmarks/bench_wrappers.py [--quick]`).

1. **flatten.** A jitted, donated `update` + `apply_updates` step on 1,000 small
   float32 leaves (shapes 3 to 48 entries, ~25k parameters): eqopt's `adam`,
   eqopt's `flatten(adam)` and Optax's `flatten(adam)` (and Optax's `adam`). Printed:
   the median step time of each and the paired ratios to eqopt's unflattened `adam`
   (below 1.00: faster).
2. **MultiSteps(adam, 4).** On the 10M-parameter, 100-leaf tree of `bench_step.py`:
   the bytes of each library's state, the temporary bytes XLA allocates for the jitted,
   donated mini-step (`compiled.memory_analysis()`), and the median time per
   mini-step (four mini-steps, one inner step, per round), with the eqopt / Optax
   ratio.

Nothing is asserted.
"""

import argparse
import statistics

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from bench_memory import state_bytes
from bench_step import large_params
from common import header, interleaved_times, paired_ratios, update_step

import eqopt


def small_leaves(n=1000):
    keys = jr.split(jr.key(0), n)
    return [jr.normal(k, (3 + i % 46,)) for i, k in enumerate(keys)]


def _donated_step(opt, apply, grads):
    step = update_step(opt, apply)
    return jax.jit(lambda p, s: step(p, s, grads), donate_argnums=(0, 1))


def _runner(opt, apply, params, grads, repeats_per_call=1):
    """A function running `repeats_per_call` donated steps, and its compiled step."""
    jitted = _donated_step(opt, apply, grads)
    box = [jax.tree.map(jnp.copy, params), opt.init(params)]
    compiled = jitted.lower(*box).compile()

    def once():
        for _ in range(repeats_per_call):
            box[0], box[1] = jitted(box[0], box[1])
        return box[0]

    return once, compiled


def bench_flatten(repeats):
    params = small_leaves()
    grads = [jnp.full_like(p, 1e-3) for p in params]
    n = sum(p.size for p in params)
    print(f"\n1. flatten: Adam step on {len(params)} small leaves ({n} parameters)")
    variants = {
        "eqopt adam": (eqopt.adam(1e-3), eqopt.apply_updates),
        "eqopt flatten(adam)": (eqopt.flatten(eqopt.adam(1e-3)), eqopt.apply_updates),
        "optax adam": (optax.adam(1e-3), optax.apply_updates),
        "optax flatten(adam)": (optax.flatten(optax.adam(1e-3)), optax.apply_updates),
    }
    runs = {k: _runner(o, a, params, grads)[0] for k, (o, a) in variants.items()}
    interleaved_times(runs, 3)  # warm-up
    times = interleaved_times(runs, repeats)
    ratios = paired_ratios(times, "eqopt adam")
    flat = paired_ratios(times, "optax flatten(adam)")
    for k, v in times.items():
        print(
            f"   {k:22s} {statistics.median(v) * 1e6:9.1f} us/step   "
            f"x{ratios[k]:5.2f} of eqopt adam   x{flat[k]:5.2f} of optax flatten(adam)"
        )


def bench_multi_steps(repeats, k=4):
    params = large_params()
    grads = [jnp.full_like(p, 1e-3) for p in params]
    n = sum(p.size for p in params)
    print(
        f"\n2. MultiSteps(adam, {k}) on {n / 1e6:.0f}M float32 parameters "
        f"({len(params)} leaves)"
    )
    variants = {
        "optax": (optax.MultiSteps(optax.adam(1e-3), k), optax.apply_updates),
        "eqopt": (eqopt.MultiSteps(eqopt.adam(1e-3), k), eqopt.apply_updates),
    }
    runs = {}
    for name, (opt, apply) in variants.items():
        runs[name], compiled = _runner(opt, apply, params, grads, repeats_per_call=k)
        analysis = compiled.memory_analysis()
        temp = analysis.temp_size_in_bytes if analysis is not None else float("nan")
        print(
            f"   {name:6s} state {state_bytes(opt.init(params)) / 1e6:8.1f} MB   "
            f"step temporaries {temp / 1e6:8.1f} MB"
        )
    interleaved_times(runs, 2)  # warm-up
    times = interleaved_times(runs, repeats)
    ratio = paired_ratios(times, "optax")["eqopt"]
    for name, v in times.items():
        print(f"   {name:6s} {statistics.median(v) / k * 1e3:8.2f} ms per mini-step")
    print(f"   eqopt / optax time per mini-step: x{ratio:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    args = parser.parse_args()
    header()
    bench_flatten(5 if args.quick else 30)
    bench_multi_steps(3 if args.quick else 10)


if __name__ == "__main__":
    main()

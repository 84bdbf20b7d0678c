"""Optimisers Optax lacks (MARS, Adam-mini, SOAP, Shampoo, PSGD-Kron...) against AdamW.

There is no Optax reference for these, so each row is compared with `eqopt.adamw` on
the same tree (`bench_step.py`'s: ~10M float32 parameters in 100 square leaves of
316 x 316), with the same `jax.jit` wrapping (parameters and state donated). A "step"
is the mean over `precondition_frequency` (10) consecutive steps, so SOAP's basis
refresh (a QR per side every 10 steps) is amortised as the paper intends; its first
step (an `eigh` per side) is excluded with the warm-up. Shampoo's inverse roots (an
`eigh` or Newton's iteration per side) are likewise computed once in each 10 steps;
PSGD-Kron refits its factors with a probability (1 and 0.1 here).
Medians of repeats; the variants take turns in every round. Nothing is asserted.

    python benchmarks/bench_beyond.py [--quick] [--only soap mars]
"""

import argparse
import statistics

import jax
import jax.numpy as jnp
import jax.random as jr
from common import interleaved_times

import eqopt


K = 10  # steps per timed call: one SOAP refresh among them

OPTIMISERS = {
    "adamw": lambda: eqopt.adamw(1e-3, weight_decay=1e-2),
    "mars": lambda: eqopt.mars(1e-3, weight_decay=1e-2),
    "adam_mini": lambda: eqopt.adam_mini(1e-3, weight_decay=1e-2),
    "adam_mini (per row)": lambda: eqopt.adam_mini(
        1e-3, weight_decay=1e-2, block_fn=lambda path, leaf: leaf.shape[0]
    ),
    "cautious(adamw)": lambda: eqopt.cautious(eqopt.adamw(1e-3, weight_decay=1e-2)),
    "soap": lambda: eqopt.soap(1e-3, precondition_frequency=K),
    "soap (one-sided)": lambda: eqopt.soap(
        1e-3, precondition_frequency=K, one_sided=True
    ),
    "shampoo": lambda: eqopt.shampoo(
        1e-3, precondition_frequency=K, start_preconditioning_step=0
    ),
    "shampoo (newton)": lambda: eqopt.shampoo(
        1e-3,
        precondition_frequency=K,
        start_preconditioning_step=0,
        matrix_root="newton",
    ),
    # PSGD-Kron refits its factors with a probability: every step (1.0), and at 0.1,
    # where `kron`'s default anneal has brought it after ~2,300 steps (it ends at 0.03).
    "psgd_kron (p=1)": lambda: eqopt.kron(
        1e-3, weight_decay=1e-2, preconditioner_update_probability=1.0
    ),
    "psgd_kron (p=0.1)": lambda: eqopt.kron(
        1e-3, weight_decay=1e-2, preconditioner_update_probability=0.1
    ),
}


def large_params(n_leaves=100, total=10_000_000):
    side = int((total / n_leaves) ** 0.5)
    keys = jr.split(jr.key(0), n_leaves)
    return [jr.normal(k, (side, side)) for k in keys]


def state_megabytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes")) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats")
    parser.add_argument("--only", nargs="*", help="names containing these strings")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    names = [
        n
        for n in OPTIMISERS
        if n == "adamw" or not args.only or any(s in n for s in args.only)
    ]

    params = large_params()
    grads = [jnp.full_like(p, 1e-3) + 1e-4 * jnp.sin(p) for p in params]
    n = sum(p.size for p in params)
    print(f"jax {jax.__version__}, device {jax.devices()[0]}")
    print(
        f"{n / 1e6:.1f}M float32 parameters in {len(params)} leaves; {K} steps a call"
    )

    runs, megabytes = {}, {}
    for name in names:
        opt = OPTIMISERS[name]()

        def steps(params, state, grads, opt=opt):
            # `grads` an argument, not a constant: XLA would fold SOAP's statistics.
            def body(carry, _):
                params, state = carry
                updates, state = opt.update(grads, state, params)
                return (eqopt.apply_updates(params, updates), state), None

            return jax.lax.scan(body, (params, state), length=K)[0]

        steps = jax.jit(steps, donate_argnums=(0, 1))
        state = opt.init(params)
        megabytes[name] = state_megabytes(state)
        box = list(steps([x.copy() for x in params], state, grads))  # compile, warm

        def once(steps=steps, box=box):
            box[0], box[1] = steps(box[0], box[1], grads)
            return box[0]

        runs[name] = once
    times = interleaved_times(runs, repeats)
    base = statistics.median(times["adamw"]) / K
    print(f"   {'optimiser':22s} {'ms/step':>10s} {'vs adamw':>9s} {'state MB':>9s}")
    for name, values in times.items():
        ms = statistics.median(values) / K
        print(f"   {name:22s} {ms * 1e3:10.2f} {ms / base:9.2f} {megabytes[name]:9.1f}")


if __name__ == "__main__":
    main()

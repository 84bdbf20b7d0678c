"""Gradient descent with a backtracking line search on a logistic regression: eqopt
versus Optax, side by side in one process.

Run with `python benchmarks/bench_backtracking.py [--quick]`.

`chain(sgd(1.0), scale_by_backtracking_linesearch(15))` on a full-batch logistic
regression (20,000 examples, 100 features), measured three ways, warm-up excluded,
median of interleaved repeats:

1. a jitted step (`value_and_grad`, `update`, `apply_updates`), plain and with
   `store_grad=True` (the value and gradient at the accepted point reused at the next
   step, as `value_and_grad_from_state` does);
2. the same step called eagerly, `update` outside any `jax.jit` (Optax's documented
   loop): Optax builds a new `while_loop` body at every call and so re-traces and
   recompiles it (optax#1171); eqopt's search is compiled once;
3. the trace + compile time of the jitted step.

It also prints the largest difference between the two libraries' iterates after the
timed steps. Ratios are eqopt / Optax: below 1.00 means eqopt is faster.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from common import header, interleaved_times, paired_ratios

import eqopt


def problem(n=20_000, d=100):
    key = jr.key(0)
    X = jr.normal(jr.fold_in(key, 1), (n, d))
    w = jr.normal(jr.fold_in(key, 2), (d,))
    y = jnp.sign(X @ w + jr.normal(jr.fold_in(key, 3), (n,)))

    def loss(params):
        margins = y * (X @ params["w"] + params["b"])
        return jnp.mean(jax.nn.softplus(-margins)) + 1e-4 * jnp.sum(params["w"] ** 2)

    return loss, {"w": jnp.zeros(d), "b": jnp.zeros(())}


def solver(lib, store_grad):
    search = lib.scale_by_backtracking_linesearch(15, store_grad=store_grad)
    return lib.chain(lib.sgd(1.0), search)


def make_step(opt, apply_updates, loss, store_grad):
    def step(params, state):
        if store_grad:  # reuse the value and gradient the search computed
            search = state[1]
            value, grad = jax.lax.cond(
                jnp.isfinite(search.value),
                lambda: (search.value, search.grad),
                lambda: jax.value_and_grad(loss)(params),
            )
        else:
            value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=loss
        )
        return apply_updates(params, updates), state

    return step


def run_many(step, params, state, steps):
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def bench_jitted(loss, params, repeats, steps):
    print(f"\n1. jitted step, {steps} steps per timing, ms per step")
    print(
        f"   {'variant':12s} {'optax':>8s} {'eqopt':>8s} {'ratio':>6s} {'max |diff|':>11s}"
    )
    for store_grad in (False, True):
        runs, finals = {}, {}
        for label, lib, apply in (
            ("optax", optax, optax.apply_updates),
            ("eqopt", eqopt, eqopt.apply_updates),
        ):
            opt = solver(lib, store_grad)
            step = jax.jit(make_step(opt, apply, loss, store_grad))
            box = [params, opt.init(params)]
            box[:] = step(*box)  # compile

            def many(step=step, box=box, label=label):
                box[:] = run_many(step, box[0], box[1], steps)
                finals[label] = box[0]
                return box[0]

            runs[label] = many
        times = interleaved_times(runs, repeats)
        ratio = paired_ratios(times, "optax")["eqopt"]
        med = {k: np.median(v) / steps * 1e3 for k, v in times.items()}
        diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(finals["eqopt"]), jax.tree.leaves(finals["optax"])
            )
        )
        name = "store_grad" if store_grad else "plain"
        print(
            f"   {name:12s} {med['optax']:8.3f} {med['eqopt']:8.3f} {ratio:6.2f} {diff:11.2e}"
        )


def bench_eager(loss, params, steps):
    print(
        f"\n2. eager update (no jax.jit around it), {steps} steps after a warm-up one, "
        "ms per step"
    )
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    apply = jax.jit(optax.apply_updates)
    row = {}
    for label, lib in (("optax", optax), ("eqopt", eqopt)):
        opt = solver(lib, False)
        p, state = params, opt.init(params)
        start = time.perf_counter()
        for i in range(steps + 1):
            if i == 1:  # the first step (compiling) is the warm-up
                jax.block_until_ready(p)
                start = time.perf_counter()
            value, grad = value_and_grad(p)
            updates, state = opt.update(
                grad, state, p, value=value, grad=grad, value_fn=loss
            )
            p = apply(p, updates)
        jax.block_until_ready(p)
        row[label] = (time.perf_counter() - start) / steps * 1e3
    print(
        f"   {'optax':>8s} {row['optax']:8.1f}   eqopt {row['eqopt']:8.1f}   "
        f"ratio {row['eqopt'] / row['optax']:6.3f}"
    )


def bench_compile(loss, params, repeats):
    print("\n3. trace + compile of the jitted step, ms")
    runs = {}
    for label, lib, apply in (
        ("optax", optax, optax.apply_updates),
        ("eqopt", eqopt, eqopt.apply_updates),
    ):

        def compile_once(lib=lib, apply=apply):
            opt = solver(lib, False)  # a new optimiser: nothing cached
            step = jax.jit(make_step(opt, apply, loss, False))
            return step.lower(params, opt.init(params)).compile()

        runs[label] = compile_once
    times = interleaved_times(runs, repeats)
    ratio = paired_ratios(times, "optax")["eqopt"]
    med = {k: np.median(v) * 1e3 for k, v in times.items()}
    print(
        f"   {'optax':>8s} {med['optax']:8.1f}   eqopt {med['eqopt']:8.1f}   ratio {ratio:6.2f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    args = parser.parse_args()
    header()
    loss, params = problem()
    bench_jitted(loss, params, 5 if args.quick else 21, 20)
    bench_eager(loss, params, 5 if args.quick else 20)
    bench_compile(loss, params, 3 if args.quick else 11)


if __name__ == "__main__":
    main()

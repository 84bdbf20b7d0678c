"""A 16-way learning-rate sweep: eqopt vmapped versus Optax, end to end.

Run with `python3 dev.py bench` (or `python benchmarks/bench_sweep.py [--quick]`).

Each run trains the same Equinox MLP (8-64-64-1, full batch of 256 points) with Adam
for `--steps` steps inside one `lax.scan`, and returns its final loss. Compared, end
to end (trace + compile + run, as a user would wait for it):

- **eqopt, vmapped**: `eqopt.adam(lr)` built inside one jitted, vmapped training
  function of the learning rate, which runs the 16 learning rates at once;
- **Optax, sequential**: `optax.adam(lr)` is a closure, so each learning rate is a new
  jitted function, compiled and run one after the other (how Optax sweeps are written
  without `inject_hyperparams`);
- **Optax, inject_hyperparams + vmap**: the Optax way to batch a hyperparameter.

Also printed: the steady-state time of the compiled vmapped sweeps (second call), and
eqopt run sequentially with the optimiser as a jit argument (compiled once). The
ratios are eqopt / Optax; all give close final losses (checked to 5% for the 4
smallest learning rates).
"""

import argparse
import statistics

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from common import header, interleaved_times, paired_ratios

import eqopt


N_RATES = 16


def problem():
    model = eqx.nn.MLP(8, 1, 64, 2, key=jr.key(0))
    params, static = eqx.partition(model, eqx.is_array)
    x = jr.normal(jr.key(1), (256, 8))
    y = jnp.sin(x.sum(axis=1, keepdims=True))

    def loss(params):
        model = eqx.combine(params, static)
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    return params, loss


def make_train(loss, steps, apply_updates):
    """`train(opt, params) -> final loss`, for any object with Optax's interface."""

    def train(opt, params):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), length=steps)
        return loss(params)

    return train


def variants(params, loss, rates, steps):
    """Each way to run the sweep: a function doing everything from scratch (fresh
    functions, so a fresh trace and compile), returning the final losses and, for the
    vmapped ones, a function rerunning the compiled sweep."""
    ours = make_train(loss, steps, eqopt.apply_updates)
    theirs = make_train(loss, steps, optax.apply_updates)

    def eqopt_vmapped():  # the optimiser built from a batched learning rate
        sweep = jax.jit(jax.vmap(lambda lr, p: ours(eqopt.adam(lr), p), (0, None)))
        return sweep(rates, params), lambda: sweep(rates, params)

    def optax_sequential():  # a fresh closure, so a fresh compile, per learning rate
        out = []
        for lr in np.asarray(rates):
            opt = optax.adam(float(lr))
            out.append(jax.jit(lambda p, opt=opt: theirs(opt, p))(params))
        return jnp.stack(out), None

    def optax_inject():  # the learning rate made an input that vmap can batch
        def one(lr, params):
            opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
            return theirs(opt, params)

        sweep = jax.jit(jax.vmap(one, in_axes=(0, None)))
        return sweep(rates, params), lambda: sweep(rates, params)

    def eqopt_sequential():  # no vmap: one compile, the optimiser as an argument
        train = eqx.filter_jit(ours)
        return jnp.stack([train(eqopt.adam(lr), params) for lr in rates]), None

    return {
        "eqopt, jax.vmap over the optimiser": eqopt_vmapped,
        "Optax, 16 sequential runs (one compile each)": optax_sequential,
        "Optax, inject_hyperparams + jax.vmap": optax_inject,
        "eqopt, 16 sequential runs (one compile)": eqopt_sequential,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (100 if args.quick else 500)
    repeats = 3 if args.quick else 7
    e2e_repeats = 1 if args.quick else 3
    header()
    params, loss = problem()
    rates = jnp.logspace(-4, -1, N_RATES)
    # Warm-up: one-off costs (backend start-up, first compiles of JAX's own helpers,
    # GPU autotuning of each matrix shape, cached per process) are paid here, by every
    # variant on a 2-step sweep with the same shapes, so that no variant pays for
    # another.
    for run in variants(params, loss, rates, 2).values():
        jax.block_until_ready(run()[0])

    # End to end, from scratch each time: `variants` makes fresh functions, so every
    # run traces and compiles anew.
    results = {}

    def from_scratch(name):
        def run():
            results[name] = variants(params, loss, rates, steps)[name]()
            return results[name][0]

        return run

    names = list(variants(params, loss, rates, steps))
    times = interleaved_times({n: from_scratch(n) for n in names}, e2e_repeats)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    losses = {name: np.asarray(out) for name, (out, _) in results.items()}
    rerun = {name: again for name, (_, again) in results.items()}
    # Same computation: close final losses for the 4 smallest learning rates. (Batched
    # and unbatched kernels round differently, GPUs multiply float32 matrices in TF32
    # by default, and at larger learning rates training is chaotic enough for such
    # differences to grow over hundreds of steps.)
    for name in names[1:]:
        np.testing.assert_allclose(
            losses[names[0]][:4], losses[name][:4], rtol=5e-2, err_msg=name
        )

    print(
        f"\n{N_RATES}-way learning-rate sweep, Adam, {steps} steps of an 8-64-64-1 MLP "
        f"(end to end: trace + compile + run, median of {e2e_repeats})"
    )
    ours = seconds[names[0]]
    print(f"   {'variant':44s} {'seconds':>8s} {'eqopt vmapped / this':>21s}")
    for name in names:
        print(f"   {name:44s} {seconds[name]:8.2f} {ours / seconds[name]:21.2f}")
    print(
        f"   speed-up of eqopt vmapped over Optax sequential: {seconds[names[1]] / ours:.1f}x"
    )
    steady = interleaved_times(
        {"eqopt": rerun[names[0]], "optax": rerun[names[2]]}, repeats
    )
    ratio = paired_ratios(steady, "optax")["eqopt"]
    eqopt_ms, optax_ms = (
        statistics.median(steady[k]) * 1e3 for k in ("eqopt", "optax")
    )
    print("\n   steady state (compiled, interleaved, median of repeats), ms:")
    print(
        f"   eqopt vmapped {eqopt_ms:8.1f}   optax inject+vmap {optax_ms:8.1f}   "
        f"ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()

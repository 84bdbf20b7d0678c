"""Hypergradient descent against a learning-rate sweep: let Adam find its own learning rate.

Run inside the environment with `python examples/hypergradient.py [--steps N]` (or
`python3 dev.py examples`, which runs every example briefly). About 30 s on 2 CPU cores.

1. A sweep: Adam at 9 fixed learning rates from 1e-5 to 1e-1, trained in one vmapped,
   compiled call (the optimisers are a batch of Modules).
2. Hypergradient descent (`eqopt.hypergradient_descent`, Baydin et al. 2018) around
   the same Adam, started from a learning rate 100x smaller than the sweep's best: at
   every step it moves the learning rate by the derivative of the loss with respect to
   it through the previous update (a `jax.jvp` of the wrapped optimiser).

Prints the learning rate that hypergradient descent learns along the run and the final
losses of both, and saves `examples/out/hypergradient.png` (loss and learning rate
against steps).
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _plotting import save_plot

import eqopt


def make_data(key, n=512):
    kx, kn = jr.split(key)
    x = jr.uniform(kx, (n, 2), minval=-1.5, maxval=1.5)
    y = jnp.sin(3 * x[:, :1]) + x[:, 1:] ** 2 + 0.05 * jr.normal(kn, (n, 1))
    return x, y


def loss_fn(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def train(model, opt, x, y, steps):
    """`steps` full-batch steps in a `lax.scan`; the losses and the final state."""
    params, static = eqx.partition(model, eqx.is_array)

    def step(carry, _):
        params, state = carry
        model = eqx.combine(params, static)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, state = opt.update(grads, state, model)
        model = eqopt.apply_updates(model, updates)
        return (eqx.filter(model, eqx.is_array), state), (loss, state)

    _, (losses, states) = jax.lax.scan(step, (params, opt.init(model)), length=steps)
    return losses, states


def main(steps: int):
    start = time.perf_counter()
    x, y = make_data(jr.key(0))
    model = eqx.nn.MLP(2, 1, width_size=64, depth=2, key=jr.key(1))

    # 1. The sweep: 9 learning rates, one vmapped call.
    rates = jnp.logspace(-5, -1, 9)
    sweep = eqx.filter_jit(
        jax.vmap(lambda lr: train(model, eqopt.adam(lr), x, y, steps)[0])
    )
    curves = sweep(rates)
    best = int(jnp.argmin(curves[:, -1]))
    for lr, curve in zip(rates, curves):
        print(f"[sweep] lr {float(lr):.0e}  final loss {float(curve[-1]):.5f}")
    print(f"[sweep] best: lr {float(rates[best]):.0e}")

    # 2. Hypergradient descent from 100x below the sweep's best.
    start_lr = float(rates[best]) / 100
    opt = eqopt.hypergradient_descent(eqopt.adam(start_lr), hyper_learning_rate=0.02)
    losses, states = eqx.filter_jit(train)(model, opt, x, y, steps)
    learned = states.hyperparams["learning_rate"]
    for i in range(0, steps, max(1, steps // 8)):
        print(
            f"[hd] step {i:5d}  lr {float(learned[i]):.2e}  loss {float(losses[i]):.5f}"
        )
    at_start = int(jnp.argmin(jnp.abs(jnp.log(rates / start_lr))))
    print(
        f"[hd] final lr {float(learned[-1]):.2e} (from {start_lr:.0e}); final loss "
        f"{float(losses[-1]):.5f} against the sweep's best {float(curves[best, -1]):.5f}"
        f" and {float(curves[at_start, -1]):.5f} for Adam fixed at the starting rate"
    )
    print(f"[done] {time.perf_counter() - start:.1f} s")

    def draw(plt):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
        for lr, curve in zip(rates, curves):
            top.plot(curve, color="grey", alpha=0.4, lw=1)
        top.plot(
            curves[best], color="grey", label=f"best fixed lr {float(rates[best]):.0e}"
        )
        top.plot(losses, color="C3", label=f"hypergradient descent from {start_lr:.0e}")
        top.set(yscale="log", ylabel="training loss")
        top.legend()
        bottom.plot(learned, color="C3")
        bottom.axhline(float(rates[best]), color="grey", ls=":", label="best fixed lr")
        bottom.set(yscale="log", xlabel="step", ylabel="learning rate")
        bottom.legend()
        return fig

    save_plot("hypergradient.png", draw, tag="[plot]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps")
    main(parser.parse_args().steps)

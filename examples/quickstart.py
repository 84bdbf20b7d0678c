"""eqopt quickstart: an Equinox MLP, AdamW with warmup-cosine, a vmapped sweep, a hypergradient.

Run with `python3 dev.py demo` (sets up `.venv` first) or, inside the environment,
`python examples/quickstart.py [--steps N]`. Finishes in about a minute on 2 CPU cores.
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
    """A noisy 2-d regression problem: y = sin(3 x0) + x1^2 + noise."""
    kx, kn = jr.split(key)
    x = jr.uniform(kx, (n, 2), minval=-1.5, maxval=1.5)
    y = jnp.sin(3 * x[:, :1]) + x[:, 1:] ** 2 + 0.05 * jr.normal(kn, (n, 1))
    return x, y


def loss_fn(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def train(model, opt, x, y, steps):
    """Train `model` with `opt` for `steps` full-batch steps; return it and its losses."""
    # `lax.scan` carries arrays only, so the activation functions ride outside the loop.
    params, static = eqx.partition(model, eqx.is_array)

    def step(carry, _):
        params, state = carry
        model = eqx.combine(params, static)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, state = opt.update(grads, state, model)  # no eqx.filter needed
        model = eqopt.apply_updates(model, updates)
        return (eqx.filter(model, eqx.is_array), state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(model)), length=steps)
    return eqx.combine(params, static), losses


def main(steps: int):
    start = time.perf_counter()
    x, y = make_data(jr.key(0))
    model = eqx.nn.MLP(2, 1, width_size=64, depth=2, key=jr.key(1))

    # 1. One training run: AdamW with a warmup-cosine learning-rate schedule.
    schedule = eqopt.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=3e-3, warmup_steps=steps // 10, decay_steps=steps
    )
    opt = eqopt.adamw(schedule, weight_decay=1e-4)
    trained, losses = eqx.filter_jit(train)(model, opt, x, y, steps)
    for i in range(0, steps, max(1, steps // 5)):
        print(f"[train] step {i:5d}  loss {float(losses[i]):.4f}")
    print(f"[train] final loss {float(losses[-1]):.4f}")

    # 2. A learning-rate sweep: eight optimisers in one vmapped, compiled call.
    learning_rates = jnp.logspace(-4, -1, 8)
    sweep_opt = jax.vmap(lambda lr: eqopt.adam(lr))(learning_rates)

    @eqx.filter_jit
    def sweep(opt):
        return jax.vmap(lambda o: train(model, o, x, y, steps)[1])(opt)

    curves = sweep(sweep_opt)
    for lr, curve in zip(learning_rates, curves):
        print(f"[sweep] lr {float(lr):.1e}  final loss {float(curve[-1]):.4f}")
    best = int(jnp.argmin(curves[:, -1]))

    # 3. A hypergradient: d(final loss)/d(learning rate), through the whole run.
    def meta_loss(opt):
        return train(model, opt, x, y, steps // 4)[1][-1]

    opt = eqopt.adam(1e-3)
    hypergrad = eqx.filter_jit(eqx.filter_grad(meta_loss))(opt)  # every hyperparameter
    # One meta-step on the learning rate alone, taken by an eqopt optimiser.
    meta_opt = eqopt.adam(5e-4)
    lr_update, _ = meta_opt.update(
        hypergrad.learning_rate, meta_opt.init(opt.learning_rate)
    )
    better = eqx.tree_at(
        lambda o: o.learning_rate,
        opt,
        eqopt.apply_updates(opt.learning_rate, lr_update),
    )
    print(
        f"[meta]  d loss / d lr = {float(hypergrad.learning_rate):.3f} "
        f"(and d loss / d b1 = {float(hypergrad.b1):.3f}, ...)"
    )
    print(
        f"[meta]  one meta-step: lr {float(opt.learning_rate):.2e} -> "
        f"{float(better.learning_rate):.2e}, meta-loss "
        f"{float(meta_loss(opt)):.4f} -> {float(meta_loss(better)):.4f}"
    )

    _plot(learning_rates, curves)
    print(
        f"\nSummary: final loss {float(losses[-1]):.4f} with adamw + warmup-cosine; best "
        f"swept lr {float(learning_rates[best]):.1e} (loss {float(curves[best, -1]):.4f}); "
        f"took {time.perf_counter() - start:.1f}s."
    )


def _plot(learning_rates, curves):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for lr, curve in zip(learning_rates, curves):
            ax.semilogy(curve, label=f"lr={float(lr):.0e}")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title("Adam learning-rate sweep (one vmapped call)")
        ax.legend(fontsize=7)
        return fig

    save_plot("quickstart_sweep.png", draw, tag="[plot] ")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    main(parser.parse_args().steps)

"""Fine-tune part of an Equinox model: a frozen encoder, an optimiser per group, accumulation.

Run inside the environment with `python examples/fine_tuning.py [--steps N]` (or
`python3 dev.py examples`, which runs every example briefly). About 20 s on 2 CPU cores.

1. Pretrain a small model (encoder -> adapter -> head) on one regression task.
2. Fine-tune it on a related task with `eqopt.partition`: the encoder is frozen
   (`set_to_zero`: no state, no update), the adapter gets SGD with momentum and a small
   learning rate, the head AdamW. The labels are a prefix of the model, built from the
   model itself; no `eqx.filter` anywhere.
3. Wrap the whole partition in `eqopt.MultiSteps`: four minibatches of 32 per optimiser
   step (an effective batch of 128), one accumulator of state.
4. Halfway, lower the head's learning rate by 10x in one line through both wrappers
   (`tree_set_hyperparams`), without recompiling the step.

Prints the losses, checks the encoder did not move, and saves
`examples/out/fine_tuning.png` (loss against optimiser steps, against a full fine-tune
with one AdamW).
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _plotting import save_plot

import eqopt


class Model(eqx.Module):
    encoder: eqx.nn.MLP
    adapter: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jr.split(key, 3)
        self.encoder = eqx.nn.MLP(2, 32, 64, 2, activation=jax.nn.gelu, key=k1)
        self.adapter = eqx.nn.Linear(32, 32, key=k2)
        self.head = eqx.nn.Linear(32, 1, key=k3)

    def __call__(self, x):
        h = jnp.tanh(self.encoder(x))
        return self.head(h + jnp.tanh(self.adapter(h)))


def make_task(key, shift, n):
    """y = sin(3 x0 + shift) + x1^2 / 2, on [-1.5, 1.5]^2, with a little noise."""
    kx, kn = jr.split(key)
    x = jr.uniform(kx, (n, 2), minval=-1.5, maxval=1.5)
    y = jnp.sin(3 * x[:, :1] + shift) + x[:, 1:] ** 2 / 2
    return x, y + 0.02 * jr.normal(kn, y.shape)


def loss_fn(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@eqx.filter_jit
def step(model, opt, state, x, y):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
    updates, state = opt.update(grads, state, model)
    return eqopt.apply_updates(model, updates), state, loss


def labels(model):
    """A prefix of the model: every leaf of a group gets its group's label."""
    return eqx.tree_at(
        lambda m: (m.encoder, m.adapter, m.head), model, ("frozen", "adapter", "head")
    )


def fine_tune(model, opt, data, steps, minibatch, k, lower_head_lr_at=None):
    """`steps` optimiser steps of `k` minibatches each; the loss on all of `data` after
    each optimiser step."""
    x, y = data
    state = opt.init(model)
    losses, key = [], jr.key(7)
    for i in range(steps):
        if i == lower_head_lr_at:
            head = lambda path, _: "head" in jax.tree_util.keystr(path)
            opt = eqopt.tree_utils.tree_set_hyperparams(opt, head, learning_rate=1e-3)
        for _ in range(k):
            key, sub = jr.split(key)
            idx = jr.choice(sub, len(x), (minibatch,), replace=False)
            model, state, _ = step(model, opt, state, x[idx], y[idx])
        losses.append(float(loss_fn(model, x, y)))
    return model, losses


def main(steps: int):
    start = time.perf_counter()
    model = Model(jr.key(0))

    # 1. Pretraining on the first task, every parameter trained.
    x, y = make_task(jr.key(1), 0.0, 1024)
    pre_opt = eqopt.adam(3e-3)
    state = pre_opt.init(model)
    for _ in range(4 * steps):
        model, state, loss = step(model, pre_opt, state, x, y)
    print(f"[pretrain] {4 * steps} steps, loss {float(loss):.4f}")

    # 2-3. Fine-tuning on the second task: a partition inside MultiSteps.
    data = make_task(jr.key(2), 0.5, 512)
    groups = {
        "frozen": eqopt.set_to_zero(),
        "adapter": eqopt.sgd(3e-3, momentum=0.9),
        "head": eqopt.adamw(1e-2, weight_decay=1e-4),
    }
    opt = eqopt.MultiSteps(eqopt.partition(groups, labels), every_k_schedule=4)
    print(f"[fine-tune] start loss {float(loss_fn(model, *data)):.4f}")
    tuned, losses = fine_tune(
        model, opt, data, steps, minibatch=32, k=4, lower_head_lr_at=steps // 2
    )
    for i in range(0, steps, max(1, steps // 5)):
        print(f"[fine-tune] optimiser step {i:4d}  loss {losses[i]:.4f}")
    print(f"[fine-tune] final loss {losses[-1]:.4f} (head learning rate 1e-2 -> 1e-3)")

    # 4. The frozen encoder did not move; the other groups did.
    def moved(part):
        return any(
            bool(jnp.any(a != b))
            for a, b in zip(
                jax.tree.leaves(eqx.filter(part(model), eqx.is_array)),
                jax.tree.leaves(eqx.filter(part(tuned), eqx.is_array)),
            )
        )

    assert not moved(lambda m: m.encoder), "the frozen encoder changed"
    assert moved(lambda m: m.adapter) and moved(lambda m: m.head)
    print("[fine-tune] encoder unchanged; adapter and head trained")

    # For comparison: every parameter fine-tuned by one AdamW, same accumulation.
    full = eqopt.MultiSteps(eqopt.adamw(1e-3, weight_decay=1e-4), every_k_schedule=4)
    _, full_losses = fine_tune(model, full, data, steps, minibatch=32, k=4)
    print(f"[full fine-tune] final loss {full_losses[-1]:.4f}")
    print(f"[done] {time.perf_counter() - start:.1f} s")

    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(losses, label="frozen encoder, SGD adapter, AdamW head")
        ax.plot(full_losses, label="everything, AdamW")
        ax.axvline(steps // 2, color="grey", ls=":", label="head lr / 10")
        ax.set(
            xlabel="optimiser step (4 minibatches of 32)", ylabel="loss", yscale="log"
        )
        ax.legend()
        return fig

    save_plot("fine_tuning.png", draw, tag="[fine-tune]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps")
    main(parser.parse_args().steps)

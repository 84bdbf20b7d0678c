"""Today's optimisers on a small transformer: AdamW, Muon, Schedule-Free AdamW, Prodigy, ADOPT.

Run inside the environment with `python examples/modern_optimisers.py [--steps N]` (or
`python3 dev.py examples`, which runs every example briefly). A few minutes on 2 CPU
cores.

A two-block transformer (Equinox's `MultiheadAttention`, pre-LayerNorm, GELU MLP)
learns to reverse sequences of 8 tokens over a vocabulary of 16, on batches it
generates itself. Each optimiser of `eqopt.contrib` (and `eqopt.adamw` as the baseline)
trains the same initial model for the same number of steps in one compiled `lax.scan`;
the table gives the final training loss, the loss and token accuracy on held-out
sequences (Schedule-Free evaluates its averaged parameters,
`schedule_free_eval_params`), and wall times. Saves the loss curves in
`examples/out/modern_optimisers.npz` and `.png`.
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _plotting import save_loss_curves

import eqopt
from eqopt import contrib


VOCAB, LENGTH, WIDTH, HEADS, BATCH = 16, 8, 32, 4, 64


class Block(eqx.Module):
    norm1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jr.split(key, 3)
        self.norm1, self.norm2 = eqx.nn.LayerNorm(WIDTH), eqx.nn.LayerNorm(WIDTH)
        self.attention = eqx.nn.MultiheadAttention(HEADS, WIDTH, key=k1)
        self.up = eqx.nn.Linear(WIDTH, 4 * WIDTH, key=k2)
        self.down = eqx.nn.Linear(4 * WIDTH, WIDTH, key=k3)

    def __call__(self, h):  # h: (LENGTH, WIDTH)
        x = jax.vmap(self.norm1)(h)
        h = h + self.attention(x, x, x)
        x = jax.vmap(self.norm2)(h)
        return h + jax.vmap(self.down)(jax.nn.gelu(jax.vmap(self.up)(x)))


class Transformer(eqx.Module):
    embed: eqx.nn.Embedding
    position: jax.Array
    blocks: tuple[Block, ...]
    norm: eqx.nn.LayerNorm
    unembed: eqx.nn.Linear

    def __init__(self, key):
        keys = jr.split(key, 5)
        self.embed = eqx.nn.Embedding(VOCAB, WIDTH, key=keys[0])
        self.position = 0.02 * jr.normal(keys[1], (LENGTH, WIDTH))
        self.blocks = (Block(keys[2]), Block(keys[3]))
        self.norm = eqx.nn.LayerNorm(WIDTH)
        self.unembed = eqx.nn.Linear(WIDTH, VOCAB, key=keys[4])

    def __call__(self, tokens):  # (LENGTH,) int -> (LENGTH, VOCAB) logits
        h = jax.vmap(self.embed)(tokens) + self.position
        for block in self.blocks:
            h = block(h)
        return jax.vmap(self.unembed)(jax.vmap(self.norm)(h))


def batch(key):
    tokens = jr.randint(key, (BATCH, LENGTH), 0, VOCAB)
    return tokens, tokens[:, ::-1]  # the task: reverse the sequence


def loss_fn(model, tokens, targets):
    logits = jax.vmap(model)(tokens)
    return eqopt.losses.softmax_cross_entropy_with_integer_labels(
        logits, targets
    ).mean()


def accuracy(model, tokens, targets):
    return jnp.mean(jnp.argmax(jax.vmap(model)(tokens), -1) == targets)


@eqx.filter_jit
def train(model, opt, steps):
    """`steps` steps of `opt` from `model`, in one `lax.scan`; the losses and the end."""
    params, static = eqx.partition(model, eqx.is_array)

    def step(carry, key):
        params, state = carry
        model = eqx.combine(params, static)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, *batch(key))
        updates, state = opt.update(grads, state, model)
        return (
            eqx.filter(eqopt.apply_updates(model, updates), eqx.is_array),
            state,
        ), loss

    keys = jr.split(jr.key(1), steps)
    (params, state), losses = jax.lax.scan(step, (params, opt.init(model)), keys)
    return eqx.combine(params, static), state, losses


def optimisers(steps):
    warmup = max(1, steps // 10)
    return {
        "adamw": eqopt.adamw(
            eqopt.warmup_cosine_decay_schedule(0.0, 1e-2, warmup, steps)
        ),
        "muon": contrib.muon(
            eqopt.warmup_cosine_decay_schedule(0.0, 0.02, warmup, steps)
        ),
        "schedule_free_adamw": contrib.schedule_free_adamw(1e-2, warmup_steps=warmup),
        "prodigy": contrib.prodigy(eqopt.cosine_decay_schedule(1.0, steps)),
        "adopt": contrib.adopt(
            eqopt.warmup_cosine_decay_schedule(0.0, 1e-2, warmup, steps)
        ),
    }


def main(steps: int):
    start = time.perf_counter()
    model = Transformer(jr.key(0))
    held_out = batch(jr.key(2))
    curves, rows = {}, []
    for name, opt in optimisers(steps).items():
        began = time.perf_counter()
        trained, state, losses = train(model, opt, steps)
        losses.block_until_ready()
        seconds = time.perf_counter() - began
        if name == "schedule_free_adamw":  # evaluate the averaged parameters
            trained = contrib.schedule_free_eval_params(state, trained)
        curves[name] = losses
        final = float(jnp.mean(losses[-max(1, steps // 20) :]))
        rows.append(
            (
                name,
                final,
                float(loss_fn(trained, *held_out)),
                float(accuracy(trained, *held_out)),
                seconds,
            )
        )
    print(
        f"{'optimiser':<22}{'train loss':>11}{'held-out':>10}{'accuracy':>10}{'seconds':>9}"
    )
    for name, final, val, acc, seconds in rows:
        print(f"{name:<22}{final:>11.4f}{val:>10.4f}{acc:>10.1%}{seconds:>9.1f}")
    print(
        f"[done] {steps} steps each, {time.perf_counter() - start:.1f} s in all "
        "(seconds include compilation)"
    )

    save_loss_curves(
        "modern_optimisers",
        curves,
        steps,
        "training loss (moving average)",
        "Reversing 8 tokens: a 2-block transformer",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps")
    main(parser.parse_args().steps)

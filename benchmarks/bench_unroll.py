"""Memory of meta-gradients through training: `eqopt.unrolled_meta_grad` with and
without checkpointing, against the unroll length.

Run with `python3 dev.py bench` (or `python benchmarks/bench_unroll.py [--quick]`).

For an Equinox MLP (2 -> 64 -> 64 -> 1, 4.4k parameters) trained by Adam on a batch of
64 per step, the meta-gradient of a validation loss after T steps is compiled for each
T, with `checkpoint=True` (blocks of ~sqrt(T) steps recomputed in the backward pass)
and `checkpoint=False`; printed: XLA's temporary bytes (`memory_analysis()`, exact and
deterministic) and the time of one call (median of 5). Nothing is asserted.
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from common import header

import eqopt


def problem(length):
    model = eqx.nn.MLP(2, 1, 64, 2, key=jr.key(0))
    x = jr.normal(jr.key(1), (length, 64, 2))
    y = jnp.sin(2 * x[..., :1]) * x[..., 1:]
    xv = jr.normal(jr.key(2), (256, 2))
    yv = jnp.sin(2 * xv[:, :1]) * xv[:, 1:]

    def train_loss(m, batch):
        return jnp.mean((jax.vmap(m)(batch[0]) - batch[1]) ** 2)

    def val_loss(m):
        return jnp.mean((jax.vmap(m)(xv) - yv) ** 2)

    return model, (x, y), train_loss, val_loss


def measure(length, checkpoint, repeats):
    model, batches, train_loss, val_loss = problem(length)

    @jax.jit  # (the model, closed over, holds functions; the optimiser only arrays)
    def meta(opt):
        return eqopt.unrolled_meta_grad(
            opt,
            train_loss,
            val_loss,
            model,
            length,
            batches=batches,
            checkpoint=checkpoint,
        )[:2]

    opt = eqopt.adam(1e-3)
    compiled = meta.lower(opt).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    jax.block_until_ready(meta(opt))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(meta(opt))
        times.append(time.perf_counter() - start)
    return temp, statistics.median(times)


def main(quick):
    header()
    print("Meta-gradient memory against the unroll length (Adam, MLP, batch 64)")
    lengths = (16, 64, 256) if quick else (16, 64, 256, 1024)
    print(
        f"{'T':>6} {'temp MB, plain':>15} {'checkpointed':>13} {'ratio':>6}"
        f" {'ms, plain':>10} {'checkpointed':>13}"
    )
    for length in lengths:
        plain, t_plain = measure(length, False, 5)
        blocked, t_blocked = measure(length, True, 5)
        print(
            f"{length:>6} {plain / 1e6:>15.2f} {blocked / 1e6:>13.2f}"
            f" {plain / blocked:>6.1f} {1e3 * t_plain:>10.1f} {1e3 * t_blocked:>13.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)

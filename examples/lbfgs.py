"""Full-batch L-BFGS on an Equinox model, against backtracking gradient descent and Adam.

Run inside the environment with `python examples/lbfgs.py [--steps N]` (or
`python3 dev.py examples`, which runs every example briefly). About 20 s on 2 CPU
cores.

A small MLP (an Equinox model: its activation functions are leaves, nothing is
filtered) fits a damped oscillation from 256 points, full batch. Three methods get the
same number of iterations:

- `eqopt.lbfgs()`: L-BFGS with the zoom line search (strong Wolfe conditions);
- gradient descent with a backtracking (Armijo) line search,
  `chain(sgd(1.0), scale_by_backtracking_linesearch(15))`;
- `eqopt.adam(1e-2)`.

The line searches need the objective itself: `update` gets `value`, `grad` and
`value_fn`, as in Optax, and `value_and_grad_from_state` reuses the value and gradient
the line search computed at the accepted point. Prints L-BFGS's progress (value,
gradient norm, accepted step size) and saves `examples/out/lbfgs.png`.
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _plotting import save_plot

import eqopt


X = jnp.linspace(-3, 3, 256)[:, None]
Y = jnp.sin(3 * X) * jnp.exp(-(X**2) / 4)


def loss(model):
    return jnp.mean((jax.vmap(model)(X) - Y) ** 2)


def with_line_search(opt):
    """A jitted step of an optimiser whose `update` needs the objective."""
    value_and_grad = eqopt.value_and_grad_from_state(loss)

    @eqx.filter_jit
    def step(model, state):
        value, grad = value_and_grad(model, state=state)
        updates, state = opt.update(
            grad, state, model, value=value, grad=grad, value_fn=loss
        )
        return eqopt.apply_updates(model, updates), state, value, grad

    return step


def plain(opt):
    @eqx.filter_jit
    def step(model, state):
        value, grad = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(grad, state, model)
        return eqopt.apply_updates(model, updates), state, value, grad

    return step


def run(name, opt, step, model, steps, verbose=False):
    state, values = opt.init(model), []
    start = time.perf_counter()
    for i in range(steps):
        model, state, value, grad = step(model, state)
        values.append(float(value))
        if verbose and (i < 10 or i % max(1, steps // 10) == 0):
            size = eqopt.tree_utils.tree_get(state, "learning_rate")
            print(
                f"[{name}] iteration {i:4d}  value {float(value):.3e}  "
                f"|grad| {float(eqopt.tree_utils.tree_norm(grad)):.2e}  "
                f"step size {float(size):.3g}"
            )
    seconds = time.perf_counter() - start
    print(f"[{name}] {steps} iterations: final loss {values[-1]:.3e}, {seconds:.1f} s")
    return values


def main(steps: int):
    model = eqx.nn.MLP(1, 1, 32, 2, activation=jnp.tanh, key=jr.key(0))
    lbfgs = eqopt.lbfgs()
    backtracking = eqopt.chain(
        eqopt.sgd(1.0), eqopt.scale_by_backtracking_linesearch(15, store_grad=True)
    )
    adam = eqopt.adam(1e-2)
    curves = {
        "L-BFGS (zoom)": run(
            "lbfgs", lbfgs, with_line_search(lbfgs), model, steps, verbose=True
        ),
        "GD + backtracking": run(
            "backtracking", backtracking, with_line_search(backtracking), model, steps
        ),
        "Adam 1e-2": run("adam", adam, plain(adam), model, steps),
    }

    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, values in curves.items():
            ax.plot(values, label=name)
        ax.set(xlabel="iteration", ylabel="loss (full batch)", yscale="log")
        ax.legend()
        return fig

    save_plot("lbfgs.png", draw, tag="[plot]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="iterations per method")
    main(parser.parse_args().steps)

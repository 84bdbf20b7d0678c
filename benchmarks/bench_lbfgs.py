"""L-BFGS with the zoom line search: eqopt against Optax (and Optimistix, if installed).

For each problem (Rosenbrock in 1000 dimensions; a logistic regression on 100k x 100
data), each library solves to a gradient-norm tolerance inside one jitted
`lax.while_loop` of Optax's documented loop (`value_and_grad_from_state`, then
`update(grad, state, params, value=..., grad=..., value_fn=...)`). Printed: iterations
to tolerance, the largest difference between the two libraries' final iterates, the
time per iteration (median of interleaved repeats, warm-up excluded) and the trace +
compile time of the solve.

    python benchmarks/bench_lbfgs.py [--quick] [--repeats N]
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


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def logistic_data(n, d, key):
    kx, kw, kn = jr.split(key, 3)
    x = jr.normal(kx, (n, d))
    w = jr.normal(kw, (d,))
    return x, jnp.where(x @ w + jr.normal(kn, (n,)) > 0, 1.0, -1.0)


def logistic_loss(params, x, y):
    margins = y * (x @ params["w"] + params["b"])
    return jnp.mean(jax.nn.softplus(-margins)) + 1e-4 * jnp.sum(params["w"] ** 2)


def logistic_problem(n, d):
    x, y = logistic_data(n, d, jr.key(0))
    return (lambda p: logistic_loss(p, x, y)), {"w": jnp.zeros(d), "b": jnp.zeros(())}


def make_solve(lib, f, tol, max_iter):
    """`solve(params) -> (params, iterations)`: L-BFGS until `|grad| <= tol`."""
    opt = lib.lbfgs()
    value_and_grad = lib.value_and_grad_from_state(f)

    def cond(carry):
        _, _, k, grad_norm = carry
        return (k < max_iter) & (grad_norm > tol)

    def body(carry):
        params, state, k, _ = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = lib.apply_updates(params, updates)
        # The gradient at the new iterate, which the line search stored.
        grad_norm = optax.tree.norm(lib.tree_utils.tree_get(state, "grad"))
        return params, state, k + 1, grad_norm

    def solve(params):
        start = (params, opt.init(params), jnp.asarray(0), jnp.asarray(jnp.inf))
        params, _, k, _ = jax.lax.while_loop(cond, body, start)
        return params, k

    return jax.jit(solve)


def optimistix_solve(f, tol, max_iter):
    try:
        import optimistix as optx
    except ImportError:
        return None
    solver = optx.LBFGS(rtol=0.0, atol=tol)

    def solve(params):
        sol = optx.minimise(
            lambda p, _: f(p), solver, params, max_steps=max_iter, throw=False
        )
        return sol.value, sol.stats["num_steps"]

    return jax.jit(solve)


def run(name, f, params, tol, max_iter, repeats):
    solvers = {
        "eqopt": make_solve(eqopt, f, tol, max_iter),
        "optax": make_solve(optax, f, tol, max_iter),
    }
    other = optimistix_solve(f, tol, max_iter)
    if other is not None:
        solvers["optimistix"] = other
    compile_s, results = {}, {}
    for lib, solve in solvers.items():
        start = time.perf_counter()
        compiled = solve.lower(params).compile()
        compile_s[lib] = time.perf_counter() - start
        solvers[lib] = compiled
        results[lib] = jax.block_until_ready(compiled(params))
    times = interleaved_times(
        {k: (lambda s=s: s(params)) for k, s in solvers.items()}, repeats
    )
    ratios = paired_ratios(times, "optax")
    final_diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(
            jax.tree.leaves(results["eqopt"][0]), jax.tree.leaves(results["optax"][0])
        )
    )
    print(f"\n{name} (tolerance |grad| <= {tol:g}, at most {max_iter} iterations)")
    print(f"  final iterates, eqopt vs optax: max |difference| = {final_diff:.3g}")
    for lib in solvers:
        iterations = int(results[lib][1])
        per_iter = float(np.median(times[lib])) / max(iterations, 1)
        print(
            f"  {lib:10s} iterations {iterations:5d}  "
            f"{per_iter * 1e6:9.1f} us/iteration  "
            f"(x{ratios[lib]:.3f} of optax)  trace+compile {compile_s[lib]:.2f} s  "
            f"value {float(f(results[lib][0])):.3g}"
        )


def run_batched(batch, rows, iterations, repeats):
    """`batch` logistic regressions (different data, same shapes) solved at once under
    `jax.vmap`, a fixed number of iterations: Optax's line search evaluates the
    objective in both branches of its `lax.cond`, which `vmap` turns into a select."""
    keys = jr.split(jr.key(1), batch)
    xs, ys = jax.vmap(lambda k: logistic_data(rows, 100, k))(keys)
    solvers = {}
    for name, lib in (("eqopt", eqopt), ("optax", optax)):

        def one(x, y, lib=lib):
            f = lambda p: logistic_loss(p, x, y)  # noqa: E731
            params = {"w": jnp.zeros(100), "b": jnp.zeros(())}
            opt = lib.lbfgs()
            value_and_grad = lib.value_and_grad_from_state(f)

            def step(carry, _):
                params, state = carry
                value, grad = value_and_grad(params, state=state)
                updates, state = opt.update(
                    grad, state, params, value=value, grad=grad, value_fn=f
                )
                return (lib.apply_updates(params, updates), state), value

            (params, _), values = jax.lax.scan(
                step, (params, opt.init(params)), length=iterations
            )
            return params, values

        solvers[name] = jax.jit(jax.vmap(one)).lower(xs, ys).compile()
    results = {k: jax.block_until_ready(s(xs, ys)) for k, s in solvers.items()}
    times = interleaved_times(
        {k: (lambda s=s: s(xs, ys)) for k, s in solvers.items()}, repeats
    )
    ratios = paired_ratios(times, "optax")
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(
            jax.tree.leaves(results["eqopt"]), jax.tree.leaves(results["optax"])
        )
    )
    print(
        f"\nvmap over {batch} logistic regressions, {rows} x 100, {iterations} iterations"
    )
    print(f"  eqopt vs optax: max |difference| of iterates and values = {diff:.3g}")
    for lib in solvers:
        per_iter = float(np.median(times[lib])) / iterations
        print(
            f"  {lib:10s} {per_iter * 1e3:9.2f} ms/iteration  (x{ratios[lib]:.3f} of optax)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    header()
    repeats = args.repeats or (3 if args.quick else 7)
    n_rosen = 100 if args.quick else 1000
    rows = 10_000 if args.quick else 100_000
    run(
        f"Rosenbrock, {n_rosen} dimensions",
        rosenbrock,
        jnp.zeros(n_rosen),
        1e-3,
        5000,
        repeats,
    )
    loss, params = logistic_problem(rows, 100)
    run(f"Logistic regression, {rows} x 100", loss, params, 1e-5, 1000, repeats)
    run_batched(8, rows // 10, 10, repeats)


if __name__ == "__main__":
    main()

"""eqopt versus Optax, side by side in one process: step time and compile time.

Run with `python3 dev.py bench` (or `python benchmarks/bench_step.py [--quick]`).

Measured, for each optimiser, with the same inputs and the same `jax.jit` wrapping
(parameters and state donated), warm-up excluded, median of repeats:

1. for every optimiser of the test registry that Optax has (`--only adam lion` for
   some), a jitted `update` + `apply_updates` step on ~10M float32 parameters in 100
   leaves, with the optimiser closed over (as Optax users write it) and, for eqopt,
   also passed as an argument of the same `jax.jit` (so changing a hyperparameter does
   not recompile); and the size of each library's optimiser state;
2. a whole training step of a small Equinox MLP (dispatch-bound), for four common
   optimisers (`OPTIMISERS`);
3. the trace + compile time of that training step.

Ratios are eqopt / Optax, the median over rounds of the ratio of the two runs of each
round (the variants take turns in every round): below 1.00 means eqopt is faster.
Nothing is asserted.
"""

import argparse
import pathlib
import statistics
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from common import header, interleaved_times, paired_ratios, update_step

import eqopt


OPTIMISERS = {
    "adam": (lambda: eqopt.adam(1e-3), lambda: optax.adam(1e-3)),
    "adamw": (lambda: eqopt.adamw(1e-3), lambda: optax.adamw(1e-3)),
    "sgd+momentum": (lambda: eqopt.sgd(1e-2, 0.9), lambda: optax.sgd(1e-2, 0.9)),
    "rmsprop": (lambda: eqopt.rmsprop(1e-3), lambda: optax.rmsprop(1e-3)),
}


def report(name, runs, repeats, scale, calls_per_run=1, extra=""):
    """Time `runs` (their turns interleaved) and print one row: the median time of each
    (seconds times `scale`, per call) and, after each eqopt variant, its ratio to Optax
    (the median of the per-round ratios). Returns the ratios."""
    times = interleaved_times(runs, repeats)
    ratios = paired_ratios(times, "optax")
    cells = []
    for label, values in times.items():
        cells.append(f"{statistics.median(values) / calls_per_run * scale:13.2f}")
        if label != "optax":
            cells.append(f"{ratios[label]:6.2f}")
    print(f"   {name:30s} " + " ".join(cells) + f"  {extra}")
    return ratios


def print_header(unit, labels, extra=""):
    cells = [f"{'optax ' + unit:>13s}"]
    for label in labels:
        cells += [f"{label + ' ' + unit:>13s}", f"{'ratio':>6s}"]
    print(f"   {'optimiser':30s} " + " ".join(cells) + f"  {extra}")


def large_params(n_leaves=100, total=10_000_000):
    side = int((total / n_leaves) ** 0.5)
    keys = jr.split(jr.key(0), n_leaves)
    return [jr.normal(k, (side, side)) for k in keys]


def registered_optimisers(only=None):
    """name -> (eqopt factory, Optax factory, extra arguments) for every optimiser of the test registry
    (`tests/registry`) that Optax also has, at the registry's hyperparameter value.
    Transformations on their own (`scale_by_adam`...) are left out: each is part of an
    optimiser here. `only` keeps the names containing one of its strings. The extra
    arguments are the case's `extra_args` (`value=...` for `polyak_sgd`), or `None`."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from tests.registry import REGISTRY

    out = {}
    for case in REGISTRY:
        h = 0.1 if case.h is None else case.h
        if case.reference is None or not _is_optimiser(case.id, case.make(h)):
            continue
        if only and not any(s in case.id for s in only):
            continue
        out[case.id] = (
            lambda case=case, h=h: case.make(h),
            lambda case=case, h=h: case.reference(h),
            case.extra_args,
        )
    return out


def _is_optimiser(case_id, opt):
    """An optimiser alias, or an `eqopt.contrib` optimiser (Prodigy, Mechanic...: one
    transformation, not a chain), but no `scale_by_*` block on its own."""
    contrib = type(opt).__module__.startswith("eqopt.contrib")
    return isinstance(opt, eqopt.AbstractOptimiser) or (
        contrib and not case_id.startswith("scale_by")
    )


def state_megabytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes")) / 1e6


def bench_large_step(repeats, optimisers):
    params = large_params()
    n = sum(p.size for p in params)
    grads = [jnp.full_like(p, 1e-3) for p in params]
    print(
        f"\n1. update + apply_updates, {n / 1e6:.1f}M float32 parameters in {len(params)} leaves"
    )
    print_header("ms", ["eqopt", "eqopt-arg"], extra="state MB optax/eqopt")
    results = {}
    for name, (make_ours, make_theirs, extra_args) in optimisers.items():
        runs, megabytes = {}, []
        for label, opt, apply, as_argument in (
            ("optax", make_theirs(), optax.apply_updates, False),
            ("eqopt", make_ours(), eqopt.apply_updates, False),
            ("eqopt-arg", make_ours(), eqopt.apply_updates, True),
        ):
            # An eqopt optimiser is a pytree of arrays, so `jax.jit` takes it as is.
            if as_argument:
                jitted = jax.jit(
                    lambda opt, p, s, g, apply=apply: update_step(
                        opt, apply, extra_args
                    )(p, s, g),
                    donate_argnums=(1, 2),
                )
                run = lambda p, s, jitted=jitted, opt=opt: jitted(opt, p, s, grads)  # noqa: E731
            else:
                jitted = jax.jit(
                    update_step(opt, apply, extra_args), donate_argnums=(0, 1)
                )
                run = lambda p, s, jitted=jitted: jitted(p, s, grads)  # noqa: E731
            # From a copy: Optax's SAM, Schedule-Free, Prodigy, DoG, COCOB... keep the
            # very parameter arrays in their state, which donating the state would
            # delete; and copies of the state's arrays, for Optax's COCOB puts one
            # zeros array in three fields (eqopt's state never aliases).
            state = opt.init([x.copy() for x in params])
            state = jax.tree.map(lambda x: x.copy() if eqx.is_array(x) else x, state)
            if not as_argument:
                megabytes.append(state_megabytes(state))
            box = list(run([x.copy() for x in params], state))  # compile

            def once(run=run, box=box):
                box[0], box[1] = run(box[0], box[1])
                return box[0]

            runs[label] = once
        extra = f"{megabytes[0]:8.1f}/{megabytes[1]:.1f}"
        results[name] = report(name, runs, repeats, 1e3, extra=extra)
    return results


def mlp_problem():
    model = eqx.nn.MLP(32, 1, 64, 2, key=jr.key(1))
    x = jr.normal(jr.key(2), (64, 32))
    y = jr.normal(jr.key(3), (64, 1))

    def loss(m, x, y):
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    return model, x, y, loss


def make_mlp_steps(loss, ours, theirs):
    @eqx.filter_jit
    def optax_step(model, state, x, y):
        grads = eqx.filter_grad(loss)(model, x, y)
        updates, state = theirs.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state

    @eqx.filter_jit
    def eqopt_step(model, state, x, y):
        grads = eqx.filter_grad(loss)(model, x, y)
        updates, state = ours.update(grads, state, model)
        return eqopt.apply_updates(model, updates), state

    @eqx.filter_jit
    def eqopt_arg_step(opt, model, state, x, y):
        grads = eqx.filter_grad(loss)(model, x, y)
        updates, state = opt.update(grads, state, model)
        return eqopt.apply_updates(model, updates), state

    return optax_step, eqopt_step, eqopt_arg_step


def bench_mlp(repeats):
    model, x, y, loss = mlp_problem()
    print(
        "\n2. whole training step of an Equinox MLP (32-64-64-1, batch 64), eqx.filter_jit"
    )
    print_header("us", ["eqopt", "eqopt-arg"])
    results = {}
    for name, (make_ours, make_theirs) in OPTIMISERS.items():
        ours, theirs = make_ours(), make_theirs()
        optax_step, eqopt_step, eqopt_arg_step = make_mlp_steps(loss, ours, theirs)
        runs = {
            "optax": (optax_step, theirs.init(eqx.filter(model, eqx.is_array)), ()),
            "eqopt": (eqopt_step, ours.init(model), ()),
            "eqopt-arg": (eqopt_arg_step, ours.init(model), (ours,)),
        }
        many = {}
        for label, (step, state, prefix) in runs.items():
            box = [model, state]
            step(*prefix, model, state, x, y)  # warm-up

            def twenty(step=step, prefix=prefix, box=box):
                for _ in range(20):
                    box[0], box[1] = step(*prefix, box[0], box[1], x, y)
                return jax.tree.leaves(box[0])[0]

            many[label] = twenty
        results[name] = report(name, many, repeats, 1e6, calls_per_run=20)
    return results


def bench_compile(repeats):
    model, x, y, loss = mlp_problem()
    print(
        "\n3. trace + compile time of the MLP training step (fresh function each time)"
    )
    print_header("ms", ["eqopt"])
    results = {}
    for name, (make_ours, make_theirs) in OPTIMISERS.items():
        ours, theirs = make_ours(), make_theirs()
        states = theirs.init(eqx.filter(model, eqx.is_array)), ours.init(model)

        def compile_optax(ours=ours, theirs=theirs, states=states):
            step = make_mlp_steps(loss, ours, theirs)[0]  # a fresh function
            step.lower(model, states[0], x, y).compile()

        def compile_eqopt(ours=ours, theirs=theirs, states=states):
            step = make_mlp_steps(loss, ours, theirs)[1]
            step.lower(model, states[1], x, y).compile()

        runs = {"optax": compile_optax, "eqopt": compile_eqopt}
        results[name] = report(name, runs, repeats, 1e3)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    parser.add_argument(
        "--only", nargs="*", help="step benchmark: only optimisers whose id has one"
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else 15
    header()
    bench_large_step(repeats, registered_optimisers(args.only))
    bench_mlp(repeats)
    bench_compile(5 if args.quick else 21)


if __name__ == "__main__":
    main()

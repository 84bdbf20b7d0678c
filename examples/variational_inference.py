"""Variational inference with eqopt's Monte Carlo gradient estimators.

Fits a diagonal Gaussian q(w) = N(loc, exp(log_scale)^2) to the posterior of a small
Bayesian logistic regression on generated data, by minimising the negative ELBO

    L(loc, log_scale) = E_q[f(w)] - H[q],   f(w) = -log p(y | X, w) - log p(w),

where the gradient of E_q[f] is estimated by each of eqopt's estimators (score
function, with and without control variates; pathwise; measure-valued) and the
entropy H[q] is differentiated exactly. Every run uses `eqopt.adam`.

It prints progress, then the variance of each gradient estimator at the initial and at
the fitted parameters, and saves `examples/out/variational_inference.png` (the objective
and the gradient variance along training).

Run with `python examples/variational_inference.py [--steps N]` (or set
`EQOPT_EXAMPLE_STEPS`). Finishes in about a minute on 2 CPU cores.
"""

import argparse
import functools as ft
import math
import os
import time

import jax
import jax.numpy as jnp
import jax.random as jr
from _plotting import save_plot

import eqopt


mc = eqopt.monte_carlo
multi_normal = eqopt.utils.multi_normal

NUM_FEATURES = 5
NUM_DATA = 200
NUM_SAMPLES = 16  # samples per gradient estimate
VARIANCE_SAMPLES = 2000  # samples to measure an estimator's variance


def make_key(seed):
    """A PRNG key. Any key works; this implementation compiles faster on the CPU."""
    return jr.key(seed, impl="unsafe_rbg")


def make_data(key):
    """Logistic-regression data: x ~ N(0, I), y ~ Bernoulli(sigmoid(x . w_true))."""
    kw, kx, ky = jr.split(key, 3)
    w_true = 1.5 * jr.normal(kw, (NUM_FEATURES,))
    x = jr.normal(kx, (NUM_DATA, NUM_FEATURES))
    y = jr.bernoulli(ky, jax.nn.sigmoid(x @ w_true)).astype(jnp.float32)
    return x, y, w_true


def negative_log_joint(w, x, y):
    """f(w) = -log p(y | x, w) - log p(w), with a standard normal prior on w."""
    logits = x @ w
    log_likelihood = jnp.sum(
        y * jax.nn.log_sigmoid(logits) + (1 - y) * jax.nn.log_sigmoid(-logits)
    )
    log_prior = -0.5 * jnp.sum(w**2) - 0.5 * NUM_FEATURES * math.log(2 * math.pi)
    return -(log_likelihood + log_prior)


def entropy(log_scale):
    """H[q] of a diagonal Gaussian."""
    return jnp.sum(log_scale) + 0.5 * NUM_FEATURES * (1 + math.log(2 * math.pi))


# Each method: how to estimate the per-sample Jacobians of E_q[f], from an estimator
# Module and, optionally, a control variate built from f.
METHODS = {
    "score function": (mc.ScoreFunctionEstimator, None),
    "score function + baseline": (mc.ScoreFunctionEstimator, mc.moving_avg_baseline),
    "score function + delta": (mc.ScoreFunctionEstimator, mc.control_delta_method),
    "pathwise": (mc.PathwiseEstimator, None),
    "measure-valued": (mc.MeasureValuedEstimator, None),
}


def jacobians(method, f, params, key, cv_state, num_samples):
    """Per-sample Jacobians of E_q[f] (a list for loc and log_scale), and the state."""
    estimator_class, control_variate = METHODS[method]
    estimator = estimator_class(num_samples)
    if control_variate is None:
        return estimator(f, params, multi_normal, key), cv_state
    with_cv = mc.ControlVariatesEstimator(estimator, control_variate(f))
    return with_cv(params, multi_normal, key, cv_state)


def initial_cv_state(method, f):
    control_variate = METHODS[method][1]
    return None if control_variate is None else control_variate(f).init()


def total_variance(jacs):
    """The trace of the covariance of a one-sample gradient estimate."""
    return sum(jnp.sum(jnp.var(j, axis=0)) for j in jacs)


@ft.partial(jax.jit, static_argnames=("method", "steps"))
def train(method, opt, x, y, params, probe, key, *, steps):
    """`steps` Adam steps on the negative ELBO, from `params`.

    Returns the fitted parameters; per step, the objective (from 256 fixed
    reparameterised samples) and the gradient variance; and the gradient variance at
    `params` and at `probe`, measured on `VARIANCE_SAMPLES` samples.
    """
    f = ft.partial(negative_log_joint, x=x, y=y)
    eps = jr.normal(make_key(123), (256, NUM_FEATURES))

    def objective(params):
        loc, log_scale = params
        w = loc[None] + jnp.exp(log_scale)[None] * eps
        return jnp.mean(jax.vmap(f)(w)) - entropy(log_scale)

    def step(carry, key):
        params, opt_state, cv_state = carry
        jacs, cv_state = jacobians(method, f, params, key, cv_state, NUM_SAMPLES)
        # d(-H)/d loc = 0, d(-H)/d log_scale = -1.
        grads = [jacs[0].mean(0), jacs[1].mean(0) - 1]
        updates, opt_state = opt.update(grads, opt_state, params)
        params = eqopt.apply_updates(params, updates)
        return (params, opt_state, cv_state), (objective(params), total_variance(jacs))

    train_key, variance_key = jr.split(key)
    carry = (params, opt.init(params), initial_cv_state(method, f))
    (fitted, _, _), (objectives, variances) = jax.lax.scan(
        step, carry, jr.split(train_key, steps)
    )

    def measure_variance(params):
        """At fixed `params`, after a baseline has warmed up on 20 batches."""
        cv_state = initial_cv_state(method, f)
        if cv_state is not None:

            def warm_up(cv_state, key):
                return jacobians(method, f, params, key, cv_state, NUM_SAMPLES)[1], None

            keys = jr.split(jr.fold_in(variance_key, 1), 20)
            cv_state, _ = jax.lax.scan(warm_up, cv_state, keys)
        jacs, _ = jacobians(method, f, params, variance_key, cv_state, VARIANCE_SAMPLES)
        return total_variance(jacs)

    both = [jnp.stack([p, q]) for p, q in zip(params, probe)]
    return fitted, objectives, variances, jax.vmap(measure_variance)(both)


def main(steps):
    start = time.perf_counter()
    x, y, w_true = make_data(make_key(0))
    params = [jnp.zeros(NUM_FEATURES), jnp.full(NUM_FEATURES, -1.0, jnp.float32)]
    opt = eqopt.adam(0.05)

    # The variances are compared at the initial parameters and at a good fit (the
    # pathwise one; its program is compiled once, then reused).
    probe = train("pathwise", opt, x, y, params, params, make_key(1), steps=steps)[0]
    results, table = {}, {}
    for method in METHODS:
        t = time.perf_counter()
        fitted, objectives, variances, fixed = train(
            method, opt, x, y, params, probe, make_key(1), steps=steps
        )
        results[method] = (fitted, objectives, variances)
        table[method] = [float(v) for v in fixed]
        marks = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
        progress = ", ".join(f"{i}: {float(objectives[i]):.2f}" for i in marks)
        print(
            f"[{method:>26}] -ELBO at steps {progress}  ({time.perf_counter() - t:.1f}s)"
        )

    fitted = results["pathwise"][0]
    print(f"\nposterior mean (pathwise) {jnp.round(fitted[0], 2)}")
    print(f"true weights              {jnp.round(w_true, 2)}")

    print(
        "\nVariance of a one-sample gradient (trace of its covariance, "
        f"{VARIANCE_SAMPLES} samples), at the initial parameters and at the fit:"
    )
    print(
        f"{'method':>26} | {'at init':>10} {'vs SF':>8} | {'at the fit':>10} {'vs SF':>8}"
    )
    reference = table["score function"]
    for method, values in table.items():
        ratios = [r / v for r, v in zip(reference, values)]
        print(
            f"{method:>26} | {values[0]:10.3g} {ratios[0]:7.1f}x | {values[1]:10.3g} "
            f"{ratios[1]:7.1f}x"
        )

    _plot(results)
    print(f"\nDone in {time.perf_counter() - start:.1f}s.")


def _plot(results):
    def draw(plt):
        fig, (ax_objective, ax_variance) = plt.subplots(1, 2, figsize=(11, 4))
        for method, (_, objectives, variances) in results.items():
            ax_objective.plot(objectives, label=method)
            ax_variance.semilogy(variances, label=method)
        ax_objective.set_xlabel("step")
        ax_objective.set_ylabel("negative ELBO")
        low = min(float(jnp.min(o)) for _, o, _ in results.values())
        ax_objective.set_ylim(low - 5, low + 150)
        ax_objective.set_title("Objective")
        ax_variance.set_xlabel("step")
        ax_variance.set_ylabel("trace of the one-sample gradient covariance")
        ax_variance.set_title(f"Gradient variance ({NUM_SAMPLES} samples per step)")
        ax_variance.legend(fontsize=8)
        return fig

    save_plot("variational_inference.png", draw)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=int(os.environ.get("EQOPT_EXAMPLE_STEPS", 500))
    )
    main(parser.parse_args().steps)

"""Wrappers (`flatten`, `MultiSteps`, `apply_every`, `apply_if_finite`) around Adam and
SGD; `h` is the inner learning rate, so every generic test reaches through the wrapper.

`lookahead` is not registered: its parameters and updates are `LookaheadParams(fast,
slow)`, not the plain trees the generic tests pass, so `tests/test_wrappers.py` runs the
same promises (parity, sweep, hypergradients, no retrace, Equinox model, resume,
bfloat16, abstract init) on it directly.
"""

import jax
import jax.numpy as jnp
import optax

import eqopt

from .case import Case


def every_k(gradient_step):
    """Two mini-steps for the first two inner steps, three afterwards (a module-level
    function: a new lambda per case would be a new static field, so a retrace)."""
    return jnp.where(gradient_step < 2, 2, 3)


def halve(updates, params):
    """A `stateless` function (module-level: equal functions, so no retrace)."""
    del params
    return jax.tree.map(lambda u: u / 2, updates)


def damp_negative(update, param):
    """A `stateless_with_tree_map` function: halve the update of negative parameters
    (exact in bfloat16, so the bfloat16 test's float32 reference rounds alike)."""
    return update if param is None else jnp.where(param < 0, update / 2, update)


def is_large(updates):
    """A boolean measurement, averaged by `measure_with_ema`."""
    return eqopt.tree.norm(updates) > 1.0


CASES: tuple[Case, ...] = (
    Case(
        "flatten-adam",
        lambda h: eqopt.flatten(eqopt.adam(h)),
        lambda h: optax.flatten(optax.adam(h)),
        # The inner state holds one flat vector, not one array per parameter.
        moments_like_params=False,
    ),
    Case(
        "MultiSteps-adam",
        lambda h: eqopt.MultiSteps(eqopt.adam(h), 3),
        lambda h: optax.MultiSteps(optax.adam(h), 3),
        # The float32 accumulator (Optax's default) rounds the float64 gradients of the
        # finite-difference test; `MultiSteps-sgd-...` (accumulator_dtype=None) runs it.
        smooth=False,
    ),
    Case(
        "MultiSteps-sgd-schedule-sum-skip_not_finite",
        lambda h: eqopt.MultiSteps(
            eqopt.sgd(h, momentum=0.9),
            every_k,
            use_grad_mean=False,
            should_skip_update_fn=eqopt.skip_not_finite,
            accumulator_dtype=None,
        ),
        lambda h: optax.MultiSteps(
            optax.sgd(h, momentum=0.9),
            every_k,
            use_grad_mean=False,
            should_skip_update_fn=optax.skip_not_finite,
            accumulator_dtype=None,
        ),
        h=0.05,
    ),
    Case(
        "apply_every-sgd",
        lambda h: eqopt.chain(eqopt.apply_every(3), eqopt.sgd(h)),
        lambda h: optax.chain(optax.apply_every(3), optax.sgd(h)),
    ),
    Case(
        "apply_if_finite-adam",
        lambda h: eqopt.apply_if_finite(eqopt.adam(h), 2),
        lambda h: optax.apply_if_finite(optax.adam(h), 2),
    ),
    Case(
        "stateless-sgd",
        lambda h: eqopt.chain(eqopt.stateless(halve), eqopt.sgd(h)),
        lambda h: optax.chain(optax.stateless(halve), optax.sgd(h)),
    ),
    Case(
        "stateless_with_tree_map-sgd",
        lambda h: eqopt.chain(
            eqopt.stateless_with_tree_map(damp_negative), eqopt.sgd(h)
        ),
        lambda h: optax.chain(
            optax.stateless_with_tree_map(damp_negative), optax.sgd(h)
        ),
    ),
    Case(
        "snapshot-sgd",
        lambda h: eqopt.chain(
            eqopt.sgd(h, momentum=0.9), eqopt.snapshot("norm", eqopt.tree.norm)
        ),
        lambda h: optax.chain(
            optax.sgd(h, momentum=0.9), optax.snapshot("norm", optax.tree.norm)
        ),
    ),
    Case(
        "monitor-measure_with_ema-sgd",
        lambda h: eqopt.chain(
            eqopt.sgd(h, momentum=0.9),
            eqopt.monitor(
                {
                    "norm": eqopt.tree.norm,
                    "large": eqopt.measure_with_ema(is_large, 0.9),
                }
            ),
        ),
        # Optax's `monitor` state changes structure at the first step (`{}` after
        # `init`), which `lax.scan` (the parity test) rejects; `tests/
        # test_wrappers_more.py` compares with Optax step by step instead.
        None,
    ),
)

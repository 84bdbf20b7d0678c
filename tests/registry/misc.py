"""Clipping per block and per unit, gradient noise, small transformations, and the
optimistic and noisy optimisers (the per-example clipping functions act on batched
gradients: `tests/test_misc_transforms.py` tests them)."""

import warnings

import optax

import eqopt

from .case import Case


def _quietly(factory):
    """`factory` with its `DeprecationWarning` silenced (Optax's and ours alike)."""

    def make(h):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return factory(h)

    return make


CASES: tuple[Case, ...] = (
    # Transformations.
    Case(
        "adaptive_grad_clip",
        eqopt.adaptive_grad_clip,
        optax.adaptive_grad_clip,
        0.1,
        False,
    ),
    Case(
        "clip_by_block_rms",
        eqopt.clip_by_block_rms,
        optax.clip_by_block_rms,
        0.5,
        False,
    ),
    Case(
        "centralize",
        lambda h: eqopt.centralize(),
        lambda h: optax.centralize(),
        None,
        False,
    ),
    Case(
        "add_noise",
        lambda h: eqopt.add_noise(h, 0.55, 3),
        lambda h: optax.add_noise(h, 0.55, 3),
        0.01,
        False,
    ),
    Case(
        "keep_params_nonnegative",
        lambda h: eqopt.chain(eqopt.sgd(h), eqopt.keep_params_nonnegative()),
        lambda h: optax.chain(optax.sgd(h), optax.keep_params_nonnegative()),
        # Parameters are projected onto [0, inf): the loss may rise at first.
        descends=False,
    ),
    Case(
        "zero_nans",
        lambda h: eqopt.zero_nans(),
        lambda h: optax.zero_nans(),
        None,
        False,
    ),
    Case("ema", eqopt.ema, optax.ema, 0.9, False),
    Case(
        "ema-biased-accumulator_dtype",
        lambda h: eqopt.ema(h, False, "float32"),
        lambda h: optax.ema(h, False, "float32"),
        0.9,
        False,
        # The float32 accumulator rounds the float64 finite-difference run (~1e-4).
        smooth=False,
    ),
    Case(
        "scale_by_optimistic_gradient",
        lambda h: eqopt.scale_by_optimistic_gradient(h, 0.5),
        lambda h: optax.scale_by_optimistic_gradient(h, 0.5),
        1.0,
        False,
    ),
    # Optimisers.
    Case(
        "noisy_sgd",
        lambda h: eqopt.noisy_sgd(h, key=5),
        lambda h: optax.noisy_sgd(h, key=5),
    ),
    Case(
        "optimistic_gradient_descent",
        eqopt.optimistic_gradient_descent,
        optax.optimistic_gradient_descent,
    ),
    Case(
        "optimistic_adam",
        _quietly(eqopt.optimistic_adam),
        _quietly(optax.optimistic_adam),
    ),
    Case(
        "optimistic_adam_v2",
        lambda h: eqopt.optimistic_adam_v2(h, alpha=0.8, beta=0.5),
        lambda h: optax.optimistic_adam_v2(h, alpha=0.8, beta=0.5),
    ),
)

"""Combinators around inner optimisers: masks, partitions, freezing, conditions.

The generic tests use three different parameter trees (a dict, an Equinox model with
non-array leaves, the sharding test's dict), so masks and labels here are functions of
the parameters; pytree masks and labels are tested in `tests/test_combine.py`.
"""

import jax
import optax

import eqopt

from .case import Case


def _is_matrix(x):
    return getattr(x, "ndim", 0) >= 2


def _matrices(params):
    return jax.tree.map(_is_matrix, params)


def _not_scalars(params):
    return jax.tree.map(lambda x: getattr(x, "ndim", 0) >= 1, params)


def _labels(params):
    return jax.tree.map(lambda x: "a" if _is_matrix(x) else "b", params)


def _even_steps(step):
    return step % 2 == 0


def _every_third_step(step):
    return step % 3 == 0


CASES: tuple[Case, ...] = (
    # Masked-out leaves get the raw gradient (as in Optax): no descent method.
    Case(
        "masked-adam",
        lambda h: eqopt.masked(eqopt.adam(h), _matrices),
        lambda h: optax.masked(optax.adam(h), _matrices),
        descends=False,
    ),
    Case(
        "masked-nested-sgd",
        lambda h: eqopt.masked(
            eqopt.masked(eqopt.sgd(h, 0.9), _matrices), _not_scalars
        ),
        lambda h: optax.masked(
            optax.masked(optax.sgd(h, 0.9), _matrices), _not_scalars
        ),
        descends=False,
    ),
    Case(
        "partition-adam-sgd",
        lambda h: eqopt.partition({"a": eqopt.adam(h), "b": eqopt.sgd(h)}, _labels),
        lambda h: optax.partition({"a": optax.adam(h), "b": optax.sgd(h)}, _labels),
    ),
    Case(
        "freeze",
        lambda h: eqopt.freeze(_matrices),
        lambda h: optax.freeze(_matrices),
        None,
        False,
    ),
    # `freeze_mask=False` trains everything (a prefix): Optax's selective_transform
    # takes no mask function, and the generic tests' trees differ.
    Case(
        "selective_transform-adam",
        lambda h: eqopt.selective_transform(eqopt.adam(h), freeze_mask=False),
        lambda h: optax.selective_transform(optax.adam(h), freeze_mask=False),
    ),
    Case(
        "selective_transform-adam-mask_fn",
        lambda h: eqopt.selective_transform(eqopt.adam(h), freeze_mask=_matrices),
        None,
    ),
    Case(
        "conditionally_mask-adam",
        lambda h: eqopt.conditionally_mask(eqopt.adam(h), _even_steps),
        lambda h: optax.conditionally_mask(optax.adam(h), _even_steps),
    ),
    # Adam's scaling every third step, plain gradients otherwise, then the rate.
    Case(
        "conditionally_transform-scale_by_adam",
        lambda h: eqopt.chain(
            eqopt.conditionally_transform(eqopt.scale_by_adam(), _every_third_step),
            eqopt.scale_by_learning_rate(h),
        ),
        lambda h: optax.chain(
            optax.conditionally_transform(optax.scale_by_adam(), _every_third_step),
            optax.scale_by_learning_rate(h),
        ),
    ),
)

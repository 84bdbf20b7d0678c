"""Inputs where the textbook formula (or Optax) gives NaN: eqopt's values and gradients.

Each case gives eqopt's loss, inputs (with `-inf` logits, zero probabilities, zero
vectors, padding...), which argument to differentiate, and a reference for the value:
Optax where Optax is finite, otherwise the limit the loss should take.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqopt

from ..helpers import assert_trees_allclose, tree_isfinite
from .cases import call_optax, first_output, Programs


E, O = eqopt.losses, optax.losses
INF = float("inf")


@dataclasses.dataclass(frozen=True)
class EdgeCase:
    id: str
    loss: Callable  # eqopt's
    args: tuple[Any, ...]
    reference: Callable  # (args, kwargs) -> expected value; traceable
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    argnum: int = 0  # the argument whose gradient must be finite
    grad_check: Callable | None = None  # a further check of that gradient


def _optax(name):
    """Reference: Optax's loss of the same name on the same inputs."""
    return lambda args, kwargs: call_optax(getattr(O, name), *args, **kwargs)


def _f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


_LOGITS_INF = _f32([[1.0, -INF, 2.0, 0.5], [-INF, -INF, -INF, -INF]])
_LABELS = _f32([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])
_WHERE = jnp.array([[True, False, True, True], [False, False, False, False]])

_CTC_LOGITS = _f32(np.random.default_rng(0).standard_normal((2, 6, 5)))
# Sequence 0 has padded frames; sequence 1 needs 4 frames (3, blank, 3, 1) but has 3.
_CTC_LOGIT_PADDINGS = _f32([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]])
_CTC_LABELS = jnp.array([[1, 2, 0], [3, 3, 1]], jnp.int32)
_CTC_LABEL_PADDINGS = _f32([[0, 0, 1], [0, 0, 0]])
_CTC_ARGS = (_CTC_LOGITS, _CTC_LOGIT_PADDINGS, _CTC_LABELS, _CTC_LABEL_PADDINGS)


def _ctc_reference(args, kwargs):
    """Optax without the padded frames' logits and without the `-inf` class."""
    logits, paddings = args[0], args[1]
    logits = jnp.where(paddings[..., None] > 0, 0, logits)[..., :-1]
    return call_optax(O.ctc_loss, logits, *args[1:], **kwargs)


def _padded_frames_have_zero_gradient(grad):
    assert jnp.all(grad[0, 4:] == 0) and jnp.all(grad[1, 3:] == 0)


def _kl_finite_predictions(args, kwargs):
    log_predictions, targets = args
    finite = jnp.where(jnp.isinf(log_predictions), 0, log_predictions)
    return call_optax(O.kl_divergence, finite, targets, **kwargs)


def _kl_log_targets_present(args, kwargs):
    log_predictions, log_targets = args
    present = jnp.isfinite(log_targets)
    safe = jnp.where(present, log_targets, 0)
    return call_optax(
        O.kl_divergence_with_log_targets, log_predictions, safe, where=present
    )


def _smoothed_or_scaled(args, kwargs):
    labels, alpha = args
    smoothed = call_optax(O.smooth_labels, labels, alpha, **kwargs)
    some = jnp.any(kwargs["where"], axis=-1, keepdims=True)
    return jnp.where(some, smoothed, (1 - alpha) * labels)


def _binary_dice_from_logits(args, kwargs):
    probabilities, targets = args
    logits = jnp.log(probabilities) - jnp.log1p(-probabilities)
    return call_optax(O.binary_dice_loss, logits, targets)


def _sparsemax_flattened(args, kwargs):
    scores, labels = args
    flat = call_optax(
        O.multiclass_sparsemax_loss, scores.reshape(-1, 5), labels.reshape(-1)
    )
    return flat.reshape(labels.shape)


_RNG = np.random.default_rng(1)

EDGE_CASES = [
    EdgeCase(
        "softmax_cross_entropy-inf-logit-zero-label",
        E.softmax_cross_entropy,
        (_LOGITS_INF[:1], _LABELS[:1]),
        _optax("safe_softmax_cross_entropy"),
    ),
    EdgeCase(
        "softmax_cross_entropy-where-masks-inf-and-a-whole-row",
        E.softmax_cross_entropy,
        (_LOGITS_INF, _LABELS),
        _optax("softmax_cross_entropy"),
        kwargs={"where": _WHERE},
    ),
    EdgeCase(
        "softmax_cross_entropy-where-rows",
        E.softmax_cross_entropy,
        (_LOGITS_INF.at[0, 1].set(0.0), _LABELS),
        _optax("softmax_cross_entropy"),
        kwargs={"where": jnp.array([True, False])},
    ),
    EdgeCase(
        "safe_softmax_cross_entropy-inf-logit",
        E.safe_softmax_cross_entropy,
        (_LOGITS_INF[:1], _LABELS[:1]),
        _optax("safe_softmax_cross_entropy"),
    ),
    EdgeCase(
        "softmax_cross_entropy_with_integer_labels-where-masks-inf-and-a-whole-row",
        E.softmax_cross_entropy_with_integer_labels,
        (_LOGITS_INF, jnp.array([2, 0], jnp.int32)),
        _optax("softmax_cross_entropy_with_integer_labels"),
        kwargs={"where": _WHERE},
    ),
    EdgeCase(
        "poly_loss_cross_entropy-where-masks-inf",
        E.poly_loss_cross_entropy,
        (_LOGITS_INF[:1], _LABELS[:1]),
        _optax("poly_loss_cross_entropy"),
        kwargs={"where": _WHERE[:1]},
    ),
    EdgeCase(
        "ranking_softmax_loss-inf-scores-and-a-list-with-no-valid-item",
        E.ranking_softmax_loss,
        (_LOGITS_INF, _f32([[1, 0, 2, 0], [1, 0, 0, 0]])),
        _optax("ranking_softmax_loss"),
        kwargs={"where": _WHERE},
    ),
    EdgeCase(
        "kl_divergence-zero-target-and-inf-log-prediction",
        E.kl_divergence,
        (jnp.log(_f32([[0.5, 0.5, 0.0]])), _f32([[0.5, 0.5, 0.0]])),
        _kl_finite_predictions,
    ),
    EdgeCase(
        "kl_divergence-gradient-in-zero-targets",
        E.kl_divergence,
        (jnp.log(_f32([[0.3, 0.3, 0.4]])), _f32([[0.5, 0.5, 0.0]])),
        _optax("kl_divergence"),
        argnum=1,
    ),
    EdgeCase(
        "kl_divergence_with_log_targets-inf-log-target",
        E.kl_divergence_with_log_targets,
        (jnp.log(_f32([[0.3, 0.3, 0.4]])), jnp.log(_f32([[0.5, 0.5, 0.0]]))),
        _kl_log_targets_present,
        argnum=1,
    ),
    EdgeCase(
        "generalized_kl_divergence-gradient-in-zero-targets",
        E.generalized_kl_divergence,
        (_f32([[0.1, -0.3, 0.2]]), _f32([[1.5, 0.0, 0.7]])),
        _optax("generalized_kl_divergence"),
        argnum=1,
    ),
    EdgeCase(
        "cosine_similarity-zero-vector",
        E.cosine_similarity,
        (
            _f32([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),
            _f32([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
        ),
        lambda args, kwargs: jnp.zeros(2, jnp.float32),
    ),
    EdgeCase(
        "cosine_distance-zero-vector",
        E.cosine_distance,
        (_f32([[0.0, 0.0, 0.0]]), _f32([[1.0, 2.0, 3.0]])),
        lambda args, kwargs: jnp.ones(1, jnp.float32),
    ),
    EdgeCase(
        "smooth_labels-where-excludes-a-whole-row",
        E.smooth_labels,
        (_f32([[0, 1, 0], [1, 0, 0]]), 0.1),
        _smoothed_or_scaled,
        kwargs={"where": jnp.array([[True, True, False], [False, False, False]])},
    ),
    EdgeCase(
        "ctc_loss-inf-logits-padded-and-unused-class-labels-longer-than-input",
        E.ctc_loss,
        (_CTC_LOGITS.at[0, 4:].set(INF).at[:, :, -1].set(-INF), *_CTC_ARGS[1:]),
        _ctc_reference,
        grad_check=_padded_frames_have_zero_gradient,
    ),
    EdgeCase(
        "ntxent-no-positive-pair",
        E.ntxent,
        (_f32(_RNG.standard_normal((4, 3))), jnp.array([0, 1, 2, 3], jnp.int32)),
        lambda args, kwargs: jnp.zeros((), jnp.float32),
    ),
    EdgeCase(
        "ntxent-zero-embedding",
        E.ntxent,
        (
            _f32([[1.0, 0.0], [1.0, 0.1], [0.0, 0.0], [0.0, 1.0]]),
            jnp.array([0, 0, 1, 1]),
        ),
        _optax("ntxent"),
    ),
    EdgeCase(
        "triplet_margin_loss-anchor-equals-positive",
        E.triplet_margin_loss,
        (jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.zeros((2, 3))),
        _optax("triplet_margin_loss"),
    ),
    EdgeCase(
        "sigmoid_binary_cross_entropy-extreme-logits",
        E.sigmoid_binary_cross_entropy,
        (_f32([-1e4, -100.0, 0.0, 100.0, 1e4]), _f32([1, 0, 1, 1, 0])),
        _optax("sigmoid_binary_cross_entropy"),
    ),
    EdgeCase(
        "sigmoid_focal_loss-extreme-logits-small-gamma",
        E.sigmoid_focal_loss,
        (_f32([-1e4, -100.0, 0.0, 100.0, 1e4]), _f32([1, 0, 1, 1, 0])),
        _optax("sigmoid_focal_loss"),
        kwargs={"gamma": 0.5, "alpha": 0.25},
    ),
    EdgeCase(
        "huber_loss-zero-error",
        E.huber_loss,
        (_f32([0.0, 1.0, -3.0]), _f32([0.0, 1.0, 0.0])),
        _optax("huber_loss"),
    ),
    EdgeCase(
        "log_cosh-zero-and-huge-errors",
        E.log_cosh,
        (_f32([0.0, 1e4, -1e4]),),
        _optax("log_cosh"),
    ),
    EdgeCase(
        "multiclass_sparsemax_loss-tied-scores",
        E.multiclass_sparsemax_loss,
        (_f32([[1.0, 1.0, 1.0], [2.0, 2.0, -5.0]]), jnp.array([0, 2], jnp.int32)),
        _optax("multiclass_sparsemax_loss"),
    ),
    EdgeCase(
        "multiclass_sparsemax_loss-two-batch-axes",
        E.multiclass_sparsemax_loss,
        (
            _f32(_RNG.standard_normal((2, 3, 5))),
            jnp.asarray(_RNG.integers(0, 5, (2, 3))),
        ),
        _sparsemax_flattened,
    ),
    EdgeCase(
        "dice_loss-empty-class",
        E.dice_loss,
        (
            _f32(_RNG.standard_normal((2, 4, 4, 3))),
            jnp.zeros((2, 4, 4, 3)).at[..., 0].set(1),
        ),
        _optax("dice_loss"),
    ),
    EdgeCase(
        "binary_dice_loss-probabilities",
        E.binary_dice_loss,
        (
            _f32(_RNG.uniform(0.05, 0.95, (2, 4, 4))),
            _f32(_RNG.uniform(size=(2, 4, 4)) > 0.5),
        ),
        _binary_dice_from_logits,
        kwargs={"apply_sigmoid": False},
    ),
]


def _program(case):
    def run(args):
        def total(x):
            new_args = args[: case.argnum] + (x,) + args[case.argnum + 1 :]
            return jnp.sum(first_output(case.loss(*new_args, **case.kwargs)))

        value = case.loss(*args, **case.kwargs)
        grad = jax.grad(total)(args[case.argnum])
        return value, grad, case.reference(args, case.kwargs)

    return run, case.args


PROGRAMS = Programs({case.id: _program(case) for case in EDGE_CASES})


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.id)
def test_value_and_gradient_are_finite(case):
    value, grad, expected = PROGRAMS.run(case.id)
    assert tree_isfinite(value), value
    assert tree_isfinite(grad), grad
    assert_trees_allclose(first_output(value), expected)
    if case.grad_check is not None:
        case.grad_check(grad)

"""Wrong inputs raise readable errors that name the argument; deprecations warn."""

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import pytest
from jax.scipy.special import logsumexp
from jaxtyping import TypeCheckError

import eqopt


E = eqopt.losses


@dataclasses.dataclass(frozen=True)
class ErrorCase:
    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str


def _shape_error(argument: str) -> str:
    """jaxtyping's message for a wrong shape or dtype names the parameter."""
    return f"parameter '{argument}'"


_x4, _x3 = jnp.ones(4), jnp.ones(3)
_logits = jnp.ones((4, 5))
_ctc_args = (
    jnp.ones((2, 6, 5)),
    jnp.zeros((2, 6)),
    jnp.ones((2, 3), int),
    jnp.zeros((2, 3)),
)

ERROR_CASES = [
    # Shapes and dtypes, checked by jaxtyping at call (or trace) time.
    ErrorCase(
        "squared_error-targets-shape",
        lambda: E.squared_error(_x4, _x3),
        TypeCheckError,
        _shape_error("targets"),
    ),
    ErrorCase(
        "perceptron_loss-targets-shape",
        lambda: E.perceptron_loss(_x4, _x3),
        TypeCheckError,
        _shape_error("targets"),
    ),
    ErrorCase(
        "huber_loss-integer-predictions",
        lambda: E.huber_loss(jnp.ones(4, int), _x4),
        TypeCheckError,
        _shape_error("predictions"),
    ),
    ErrorCase(
        "sigmoid_binary_cross_entropy-labels-do-not-broadcast",
        lambda: E.sigmoid_binary_cross_entropy(_logits, jnp.ones((3, 5))),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "softmax_cross_entropy_with_integer_labels-float-labels",
        lambda: E.softmax_cross_entropy_with_integer_labels(_logits, jnp.zeros(4)),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "multiclass_hinge_loss-labels-batch",
        lambda: E.multiclass_hinge_loss(_logits, jnp.zeros(3, int)),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "multiclass_sparsemax_loss-labels-batch",
        lambda: E.multiclass_sparsemax_loss(_logits, jnp.zeros(3, int)),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "kl_divergence-where-shape",
        lambda: E.kl_divergence(_logits, _logits, where=jnp.ones((3, 5), bool)),
        TypeCheckError,
        _shape_error("where"),
    ),
    ErrorCase(
        "cosine_similarity-float-where",
        lambda: E.cosine_similarity(_logits, _logits, where=jnp.ones((4, 5))),
        TypeCheckError,
        _shape_error("where"),
    ),
    ErrorCase(
        "ctc_loss-logit-paddings-shape",
        lambda: E.ctc_loss(_ctc_args[0], jnp.zeros((3, 6)), *_ctc_args[2:]),
        TypeCheckError,
        _shape_error("logit_paddings"),
    ),
    ErrorCase(
        "ctc_loss-labels-batch",
        lambda: E.ctc_loss(*_ctc_args[:2], jnp.ones((3, 3), int), _ctc_args[3]),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "ctc_loss-rank",
        lambda: E.ctc_loss(_ctc_args[0][0], *_ctc_args[1:]),
        TypeCheckError,
        _shape_error("logits"),
    ),
    ErrorCase(
        "ranking_softmax_loss-weights-shape",
        lambda: E.ranking_softmax_loss(_logits, _logits, weights=jnp.ones((4, 4))),
        TypeCheckError,
        _shape_error("weights"),
    ),
    ErrorCase(
        "ntxent-labels-batch",
        lambda: E.ntxent(jnp.ones((4, 2)), jnp.zeros(3, int)),
        TypeCheckError,
        _shape_error("labels"),
    ),
    ErrorCase(
        "fenchel_young_loss-targets-shape",
        lambda: E.make_fenchel_young_loss(logsumexp)(_logits, jnp.ones((4, 3))),
        TypeCheckError,
        _shape_error("targets"),
    ),
    ErrorCase(
        "smooth_labels-integer-labels",
        lambda: E.smooth_labels(jnp.ones((4, 5), int), 0.1),
        TypeCheckError,
        _shape_error("labels"),
    ),
    # Values and options eqopt checks itself.
    ErrorCase(
        "softmax_cross_entropy_with_integer_labels-labels-batch",
        lambda: E.softmax_cross_entropy_with_integer_labels(_logits, jnp.zeros(3, int)),
        ValueError,
        r"softmax_cross_entropy_with_integer_labels\(labels=\.\.\.\)` must have the "
        r"batch shape of `logits` \(here \(4,\)\).*got labels.shape=\(3,\)",
    ),
    ErrorCase(
        "softmax_cross_entropy_with_integer_labels-axis",
        lambda: E.softmax_cross_entropy_with_integer_labels(
            _logits, jnp.zeros(4, int), axis=2
        ),
        ValueError,
        r"`axis=2` is out of bounds for `logits` with 2 dimensions",
    ),
    ErrorCase(
        "dice_loss-reduction",
        lambda: E.dice_loss(_logits, _logits, reduction="max"),
        ValueError,
        r"`dice_loss\(reduction=\.\.\.\)` must be one of 'mean', 'sum', 'none'; "
        r"got reduction='max'\.",
    ),
    ErrorCase(
        "dice_loss-shapes",
        lambda: E.dice_loss(jnp.ones((2, 4, 3)), jnp.ones((2, 4, 2))),
        ValueError,
        r"predictions.shape=\(2, 4, 3\), targets.shape=\(2, 4, 2\)",
    ),
    ErrorCase(
        "dice_loss-probabilities-do-not-sum-to-one",
        lambda: E.dice_loss(
            jnp.ones((2, 4, 3)), jnp.ones((2, 4, 3)), apply_softmax=False
        ),
        ValueError,
        r"must be probability distributions that sum to 1.*\[3\.000000, 3\.000000\]",
    ),
    ErrorCase(
        "binary_dice_loss-probabilities-out-of-range",
        lambda: E.binary_dice_loss(
            jnp.full((2, 4), 1.5), jnp.ones((2, 4)), apply_sigmoid=False
        ),
        ValueError,
        r"binary `predictions` must be probabilities in \[0, 1\]",
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_error(case):
    with pytest.raises(case.error, match=case.match):
        case.call()


def test_convex_kl_divergence_is_deprecated_like_optax():
    log_predictions, targets = jnp.log(jnp.full(3, 1 / 3)), jnp.full(3, 1 / 3)
    with pytest.warns(DeprecationWarning, match="Please use generalized_kl_divergence"):
        loss = E.convex_kl_divergence(log_predictions, targets)
    assert loss == E.generalized_kl_divergence(log_predictions, targets)

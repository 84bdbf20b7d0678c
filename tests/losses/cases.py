"""The table of loss cases: eqopt's loss, Optax's, and a builder of realistic inputs.

Each `Case` names a loss (the same name in `eqopt.losses` and `optax.losses`) and a
builder `rng -> (args, kwargs)`. `args` are arrays (the first is differentiated in the
gradient tests); `kwargs` are closed over (hyperparameters, masks, static options).
"""

import dataclasses
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

import eqopt


Builder = Callable[[np.random.Generator], tuple[tuple[Any, ...], dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    name: str  # the loss's name in `eqopt.losses` and `optax.losses`
    build: Builder
    # Optax's version cannot be differentiated on these inputs (it branches on values);
    # the gradient is then only checked to be finite.
    optax_differentiable: bool = True
    # Cast the floating inputs to this dtype (the builders make float32).
    dtype: Any = None

    def eqopt_fn(self) -> Callable:
        if self.name == "make_fenchel_young_loss":
            return eqopt.losses.make_fenchel_young_loss(logsumexp)
        return getattr(eqopt.losses, self.name)

    def optax_fn(self) -> Callable:
        if self.name == "make_fenchel_young_loss":
            return optax.losses.make_fenchel_young_loss(logsumexp)
        return getattr(optax.losses, self.name)

    def inputs(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The inputs, from a seed fixed by the case's id."""
        args, kwargs = self.build(np.random.default_rng(zlib.crc32(self.id.encode())))
        if self.dtype is not None:
            args = tuple(
                x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
                for x in args
            )
        return args, kwargs


def quiet_deprecation(fn: Callable) -> Callable:
    """`fn` with its `DeprecationWarning` silenced (checked once, in the error tests)."""

    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return fn(*args, **kwargs)

    return wrapped


def call_optax(fn: Callable, *args, **kwargs):
    """Optax under JAX's default promotion rules (the tests run strict)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return quiet_deprecation(fn)(*args, **kwargs)


# Compile time, not run time, dominates these tests (over a hundred small programs on two
# cores); XLA's backend optimisations roughly halve it and change no comparison, since
# eqopt and Optax are compiled alike, in one program per case.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compile_and_run(fn: Callable, *args):
    """`jax.jit(fn)(*args)`, compiled with `FAST_COMPILE`."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


class Programs:
    """Test programs (`id -> (fn, args)`), compiled in chunks on first use.

    A program holding several cases compiles in about two thirds of the time of one
    program per case. Chunks of consecutive cases keep that gain when pytest-xdist
    shares a file's tests out between workers in runs of consecutive tests. If a
    chunk cannot be built (a case fails to trace or compile), its cases are compiled
    one by one instead, so the failure shows in that case's test only.
    """

    def __init__(self, programs: dict[str, tuple[Callable, Any]], chunk_size: int = 8):
        ids = list(programs)
        self.programs = programs
        self.chunk_of = {id: n // chunk_size for n, id in enumerate(ids)}
        self.chunks = [ids[n : n + chunk_size] for n in range(0, len(ids), chunk_size)]
        self.results: dict[int, dict[str, Any] | None] = {}

    def _compile_chunk(self, chunk: int) -> dict[str, Any] | None:
        fns = {k: self.programs[k][0] for k in self.chunks[chunk]}
        inputs = {k: self.programs[k][1] for k in self.chunks[chunk]}
        try:
            return compile_and_run(
                lambda xs: {k: f(xs[k]) for k, f in fns.items()}, inputs
            )
        except Exception:
            return None

    def run(self, id: str) -> Any:
        chunk = self.chunk_of[id]
        if chunk not in self.results:
            self.results[chunk] = self._compile_chunk(chunk)
        results = self.results[chunk]
        if results is not None:
            return results[id]
        fn, args = self.programs[id]
        return compile_and_run(fn, args)


def first_output(out):
    """The loss of a loss function that also returns auxiliary values."""
    return out[0] if isinstance(out, tuple) else out


# ----------------------------------------------------------------------------------
# Input builders. They use NumPy: eager JAX random numbers would compile a kernel per
# shape, which costs more than the tests themselves.


def _arrays(*xs):
    return tuple(jnp.asarray(x) for x in xs)


def _normal(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def _probabilities(rng, shape):
    return _softmax(_normal(rng, shape, 2.0))


def _one_hot(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels]


def _binary(rng, shape):
    return (rng.uniform(size=shape) > 0.5).astype(np.float32)


def _mask(rng, shape, keep=0.7):
    """A random mask that keeps at least one entry along the last axis."""
    mask = rng.uniform(size=shape) < keep
    mask[..., 0] = True
    return mask


def _pair(scale=1.0, shape=(8, 5), **kwargs):
    def build(rng):
        return _arrays(_normal(rng, shape, scale), _normal(rng, shape, scale)), kwargs

    return build


def _single(rng):
    return _arrays(_normal(rng, (8, 5))), {}


def _logits_probs(shape=(8, 10), one_hot=False, where=None, **kwargs):
    def build(rng):
        logits = _normal(rng, shape, 2.0)
        if one_hot:
            labels = _one_hot(rng.integers(0, shape[-1], shape[:-1]), shape[-1])
        else:
            labels = _probabilities(rng, shape)
        kw = dict(kwargs)
        if where == "classes":
            kw["where"] = jnp.asarray(_mask(rng, shape))
        elif where == "rows":
            kw["where"] = jnp.asarray(rng.uniform(size=shape[:-1]) < 0.7)
        return _arrays(logits, labels), kw

    return build


def _logits_integer_labels(shape=(8, 10), where=False):
    def build(rng):
        logits = _normal(rng, shape, 2.0)
        labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
        kw = {}
        if where:
            mask = _mask(rng, shape)
            mask[np.arange(shape[0]), labels] = True
            kw["where"] = jnp.asarray(mask)
        return _arrays(logits, labels), kw

    return build


def _integer_labels_tuple_axis(rng):
    # Classes are the 3 x 4 slices over axes (1, 3); a label is a flat index into them.
    logits = _normal(rng, (2, 3, 5, 4), 2.0)
    labels = rng.integers(0, 12, (2, 5)).astype(np.int32)
    return _arrays(logits, labels), {"axis": (1, 3)}


def _scores_integer_labels(shape=(8, 6)):
    def build(rng):
        labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
        return _arrays(_normal(rng, shape, 2.0), labels), {}

    return build


def _logits_binary(shape=(8, 6), soft=False, **kwargs):
    def build(rng):
        logits = _normal(rng, shape, 3.0)
        labels = (
            rng.uniform(size=shape).astype(np.float32) if soft else _binary(rng, shape)
        )
        return _arrays(logits, labels), kwargs

    return build


def _outputs_signs(rng):
    shape = (8, 6)
    return _arrays(_normal(rng, shape, 1.5), 2 * _binary(rng, shape) - 1), {}


def _log_predictions_targets(log_targets=False, unnormalised=False, where=False, **kw):
    def build(rng):
        shape = (8, 10)
        if unnormalised:
            log_predictions = _normal(rng, shape, 0.5)
            targets = np.exp(_normal(rng, shape, 0.5))
        else:
            log_predictions = np.log(_probabilities(rng, shape))
            targets = _probabilities(rng, shape)
        if log_targets:
            targets = np.log(targets)
        kwargs = dict(kw)
        if where:
            kwargs["where"] = jnp.asarray(_mask(rng, shape))
        return _arrays(log_predictions, targets), kwargs

    return build


def _vectors(where=False, **kw):
    def build(rng):
        shape = (8, 16)
        kwargs = dict(kw)
        if where:
            kwargs["where"] = jnp.asarray(_mask(rng, shape))
        return _arrays(_normal(rng, shape), _normal(rng, shape)), kwargs

    return build


def _one_hot_labels(where=False):
    def build(rng):
        labels = _one_hot(rng.integers(0, 10, (8,)), 10)
        kwargs = {}
        if where:
            kwargs["where"] = jnp.asarray(_mask(rng, (8, 10)))
        return (jnp.asarray(labels), 0.1), kwargs

    return build


def _ctc(blank_id=0, **kw):
    def build(rng):
        batch, frames, classes, max_labels = 3, 12, 6, 4
        logits = _normal(rng, (batch, frames, classes), 2.0)
        frame_lengths = np.array([12, 10, 7])
        logit_paddings = np.arange(frames)[None, :] >= frame_lengths[:, None]
        # Labels avoid the blank class; one sequence repeats a label.
        labels = rng.integers(0, classes - 1, (batch, max_labels)).astype(np.int32)
        labels = np.where(labels >= blank_id, labels + 1, labels)
        labels[0, 2] = labels[0, 1]
        label_lengths = np.array([4, 3, 2])
        label_paddings = np.arange(max_labels)[None, :] >= label_lengths[:, None]
        args = _arrays(
            logits,
            logit_paddings.astype(np.float32),
            labels,
            label_paddings.astype(np.float32),
        )
        return args, dict(blank_id=blank_id, **kw)

    return build


def _segmentation(shape=(2, 8, 8, 3), probabilities=False, **kw):
    def build(rng):
        predictions = _normal(rng, shape, 2.0)
        if probabilities:
            predictions = _softmax(predictions)
        targets = _one_hot(rng.integers(0, shape[-1], shape[:-1]), shape[-1])
        return _arrays(predictions, targets), kw

    return build


def _binary_segmentation(shape=(2, 8, 8), **kw):
    def build(rng):
        return _arrays(_normal(rng, shape, 2.0), _binary(rng, shape)), kw

    return build


def _ranking(where=False, weights=False, **kw):
    def build(rng):
        shape = (4, 8)
        logits = _normal(rng, shape)
        labels = rng.integers(0, 4, shape).astype(np.float32)
        kwargs = dict(kw)
        if where:
            mask = _mask(rng, shape)
            mask[-1] = False  # one list with no valid item
            kwargs["where"] = jnp.asarray(mask)
        if weights:
            kwargs["weights"] = jnp.asarray(rng.uniform(size=shape).astype(np.float32))
        return _arrays(logits, labels), kwargs

    return build


def _embeddings(**kw):
    def build(rng):
        labels = np.array([0, 0, 1, 1, 2, 2, 3, 3], dtype=np.int32)
        return _arrays(_normal(rng, (8, 4)), labels), kw

    return build


def _triplets(**kw):
    def build(rng):
        anchors = _normal(rng, (8, 6))
        positives = anchors + _normal(rng, (8, 6), 0.5)
        negatives = _normal(rng, (8, 6))
        return _arrays(anchors, positives, negatives), kw

    return build


# ----------------------------------------------------------------------------------
# The table.

_BFLOAT16_CASES = [
    # Regression.
    Case("squared_error", "squared_error", _pair()),
    Case("squared_error-no-targets", "squared_error", _single),
    Case("l2_loss", "l2_loss", _pair()),
    Case("huber_loss-delta", "huber_loss", _pair(scale=2.0, delta=0.5)),
    Case("log_cosh", "log_cosh", _pair(scale=3.0)),
    # Softmax cross-entropy family.
    Case("softmax_cross_entropy", "softmax_cross_entropy", _logits_probs()),
    Case(
        "softmax_cross_entropy-where-classes",
        "softmax_cross_entropy",
        _logits_probs(where="classes"),
    ),
    Case(
        "softmax_cross_entropy-where-rows",
        "softmax_cross_entropy",
        _logits_probs(where="rows"),
    ),
    Case(
        "softmax_cross_entropy-axis-tuple",
        "softmax_cross_entropy",
        _logits_probs(shape=(2, 3, 4, 5), axis=(2, 3)),
    ),
    Case(
        "safe_softmax_cross_entropy",
        "safe_softmax_cross_entropy",
        _logits_probs(),
    ),
    Case(
        "softmax_cross_entropy_with_integer_labels",
        "softmax_cross_entropy_with_integer_labels",
        _logits_integer_labels(),
    ),
    Case(
        "softmax_cross_entropy_with_integer_labels-where",
        "softmax_cross_entropy_with_integer_labels",
        _logits_integer_labels(where=True),
    ),
    Case(
        "softmax_cross_entropy_with_integer_labels-axis-tuple",
        "softmax_cross_entropy_with_integer_labels",
        _integer_labels_tuple_axis,
    ),
    Case(
        "poly_loss_cross_entropy-epsilon-where",
        "poly_loss_cross_entropy",
        _logits_probs(one_hot=True, where="classes", epsilon=-1.0),
    ),
    # Binary and margin classification.
    Case(
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy",
        _logits_binary(),
    ),
    Case(
        "sigmoid_binary_cross_entropy-soft",
        "sigmoid_binary_cross_entropy",
        _logits_binary(soft=True),
    ),
    Case(
        "sigmoid_focal_loss-alpha-gamma",
        "sigmoid_focal_loss",
        _logits_binary(soft=True, alpha=0.25, gamma=0.5),
    ),
    Case("hinge_loss", "hinge_loss", _outputs_signs),
    Case("perceptron_loss", "perceptron_loss", _outputs_signs),
    Case("multiclass_hinge_loss", "multiclass_hinge_loss", _scores_integer_labels()),
    Case(
        "multiclass_perceptron_loss",
        "multiclass_perceptron_loss",
        _scores_integer_labels(),
    ),
    Case("sparsemax_loss", "sparsemax_loss", _logits_binary()),
    Case(
        "multiclass_sparsemax_loss",
        "multiclass_sparsemax_loss",
        _scores_integer_labels(),
    ),
    Case(
        "make_fenchel_young_loss-logsumexp",
        "make_fenchel_young_loss",
        _logits_probs(),
    ),
    Case("smooth_labels", "smooth_labels", _one_hot_labels()),
    Case("smooth_labels-where", "smooth_labels", _one_hot_labels(where=True)),
    # Divergences and similarities.
    Case(
        "kl_divergence-where",
        "kl_divergence",
        _log_predictions_targets(where=True),
    ),
    Case(
        "kl_divergence_with_log_targets",
        "kl_divergence_with_log_targets",
        _log_predictions_targets(log_targets=True),
    ),
    Case(
        "generalized_kl_divergence",
        "generalized_kl_divergence",
        _log_predictions_targets(unnormalised=True),
    ),
    Case(
        "convex_kl_divergence",
        "convex_kl_divergence",
        _log_predictions_targets(unnormalised=True, axis=0),
    ),
    Case("cosine_similarity", "cosine_similarity", _vectors()),
    Case(
        "cosine_similarity-epsilon-axis0",
        "cosine_similarity",
        _vectors(epsilon=1e-3, axis=0),
    ),
    Case("cosine_distance-where", "cosine_distance", _vectors(where=True)),
    # Sequences.
    Case("ctc_loss", "ctc_loss", _ctc()),
    Case(
        "ctc_loss_with_forward_probs-blank-last-log-epsilon",
        "ctc_loss_with_forward_probs",
        _ctc(blank_id=5, log_epsilon=-1e4),
    ),
    # Segmentation.
    Case("dice_loss", "dice_loss", _segmentation()),
    Case(
        "dice_loss-tversky-weights-sum-axis",
        "dice_loss",
        _segmentation(
            alpha=0.3,
            beta=0.7,
            class_weights=jnp.array([0.5, 1.0, 2.0]),
            reduction="sum",
            axis=(1,),
        ),
    ),
    Case(
        "dice_loss-none-ignore-background",
        "dice_loss",
        _segmentation(reduction="none", ignore_background=True),
    ),
    Case(
        "dice_loss-probabilities",
        "dice_loss",
        _segmentation(probabilities=True, apply_softmax=False),
        optax_differentiable=False,
    ),
    Case(
        "binary_dice_loss-channel",
        "binary_dice_loss",
        _binary_segmentation(shape=(2, 8, 8, 1), smooth=0.5),
    ),
    Case(
        "multiclass_generalized_dice_loss-ignore-background",
        "multiclass_generalized_dice_loss",
        _segmentation(shape=(2, 8, 8, 4), ignore_background=True),
    ),
    # Ranking and metric learning.
    Case("ranking_softmax_loss", "ranking_softmax_loss", _ranking()),
    Case(
        "ranking_softmax_loss-where-sum",
        "ranking_softmax_loss",
        _ranking(where=True, reduce_fn=jnp.sum),
    ),
    Case(
        "ranking_softmax_loss-where-weights-unreduced",
        "ranking_softmax_loss",
        _ranking(where=True, weights=True, reduce_fn=None),
    ),
    Case("ntxent-temperature", "ntxent", _embeddings(temperature=0.5)),
    Case(
        "triplet_margin_loss-margin-degree",
        "triplet_margin_loss",
        _triplets(margin=0.3, norm_degree=4),
    ),
]

# Low precision: Optax's dtype rules (a float32 one-hot product, float32 constants)
# decide the output dtype, and eqopt follows them.
_BFLOAT16 = [
    "huber_loss-delta",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "multiclass_hinge_loss",
    "ctc_loss",
]
CASES = _BFLOAT16_CASES + [
    dataclasses.replace(case, id=f"{case.id}-bfloat16", dtype=jnp.bfloat16)
    for case in _BFLOAT16_CASES
    if case.id in _BFLOAT16
]

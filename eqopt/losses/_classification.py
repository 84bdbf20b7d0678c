"""Binary and margin classification losses: sigmoid cross-entropy, focal, hinge, perceptron."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Integer, Real, Shaped

from ._common import default_float, promote, result_dtype


def sigmoid_binary_cross_entropy(
    logits: Float[ArrayLike, "*#shape"],
    labels: Shaped[ArrayLike, "*#shape"],
) -> Float[Array, "*#shape"]:
    r"""Elementwise sigmoid cross-entropy, for binary or multi-label classification.

    With $\sigma$ the logistic sigmoid,

    $$\ell(x, y) = -y \log \sigma(x) - (1 - y) \log \sigma(-x),$$

    computed with `log_sigmoid`, which neither overflows nor takes the log of zero.
    Each element is an independent binary prediction: pass the logit of class 1
    with binary labels, or one logit per class with per-class target probabilities.

    Optax: `optax.losses.sigmoid_binary_cross_entropy`.

    **Arguments:**

    - `logits`: the logits of each binary prediction.
    - `labels`: $y$, binary labels in $\{0, 1\}$ or target probabilities in
        $[0, 1]$, broadcastable with `logits`; cast to the dtype of `logits`.

    **Returns:**

    The cross-entropies, with the broadcast shape of the inputs.

    ??? cite "References"

        Goodfellow, Bengio and Courville, *Deep Learning*, MIT Press, 2016, §3.13.
        [deeplearningbook.org](https://www.deeplearningbook.org/contents/prob.html)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    log_p = jax.nn.log_sigmoid(logits)
    log_not_p = jax.nn.log_sigmoid(-logits)  # log(1 - sigmoid(x)), stably
    return -labels * log_p - (1.0 - labels) * log_not_p


def sigmoid_focal_loss(
    logits: Float[ArrayLike, "*#shape"],
    labels: Shaped[ArrayLike, "*#shape"],
    *,
    alpha: Real[ArrayLike, "*#shape"] | None = None,
    gamma: Real[ArrayLike, "*#shape"] = 2.0,
) -> Float[Array, "*#shape"]:
    r"""Sigmoid focal loss: cross-entropy scaled down on easy examples.

    With $p = \sigma(x)$, $p_t = y p + (1 - y)(1 - p)$ the probability of the label
    and $\alpha_t = y \alpha + (1 - y)(1 - \alpha)$,

    $$\mathrm{FL}(p_t) = -\alpha_t (1 - p_t)^\gamma \log p_t.$$

    $(1 - p_t)^\gamma$ is computed as $\exp(\gamma \log(1 - p_t))$, with
    $\log(1 - p_t)$ from `log_sigmoid` and `logsumexp`, so the loss is accurate for
    $\gamma < 2$ and extreme logits. Labels may be soft, in $[0, 1]$.

    Optax: `optax.losses.sigmoid_focal_loss`.

    **Arguments:**

    - `logits`: the logits of each binary prediction.
    - `labels`: $y$, in $\{0, 1\}$ or $[0, 1]$, broadcastable with `logits`.
    - `alpha`: $\alpha \in (0, 1)$, the weight of positive examples; `None` for no
        weighting ($\alpha_t = 1$).
    - `gamma`: $\gamma$, the exponent of the modulating factor.

    **Returns:**

    The losses, with the broadcast shape of the inputs.

    ??? cite "References"

        Lin, Goyal, Girshick, He and Dollár, *Focal Loss for Dense Object Detection*,
        ICCV 2017. [arXiv:1708.02002](https://arxiv.org/abs/1708.02002)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    logits, labels = jnp.broadcast_arrays(logits, labels)
    cross_entropy = sigmoid_binary_cross_entropy(logits, labels)
    log_p = jax.nn.log_sigmoid(logits)
    log_q = jax.nn.log_sigmoid(-logits)
    # log(1 - p_t) = log((1 - y) p + y (1 - p)), as a weighted logsumexp.
    log_one_minus_p_t = jax.nn.logsumexp(
        jnp.stack([log_p, log_q], axis=-1),
        axis=-1,
        b=jnp.stack([1 - labels, labels], axis=-1),
    )
    log_one_minus_p_t, gamma = promote(log_one_minus_p_t, gamma)
    loss = cross_entropy * jnp.exp(gamma * log_one_minus_p_t)
    if alpha is None:
        return loss
    loss, labels, alpha = promote(loss, labels, alpha)
    return (alpha * labels + (1.0 - alpha) * (1.0 - labels)) * loss


def hinge_loss(
    predictor_outputs: Real[ArrayLike, "*#shape"],
    targets: Real[ArrayLike, "*#shape"],
) -> Real[Array, "*#shape"]:
    r"""Hinge loss for binary classification.

    $$\ell(s, y) = \max(0, 1 - s y), \qquad y \in \{-1, 1\}.$$

    Optax: `optax.losses.hinge_loss`.

    **Arguments:**

    - `predictor_outputs`: $s$, the outputs of the decision function.
    - `targets`: $y$, in $\{-1, 1\}$, broadcastable with `predictor_outputs`.

    **Returns:**

    The losses, with the broadcast shape of the inputs.

    ??? cite "References"

        [Hinge loss](https://en.wikipedia.org/wiki/Hinge_loss), Wikipedia.
    """
    predictor_outputs, targets = promote(predictor_outputs, targets)
    return jnp.maximum(0, 1 - predictor_outputs * targets)


def perceptron_loss(
    predictor_outputs: Real[ArrayLike, "*shape"],
    targets: Real[ArrayLike, "*shape"],
) -> Real[Array, "*shape"]:
    r"""Binary perceptron loss.

    $$\ell(s, y) = \max(0, -s y), \qquad y \in \{-1, 1\}.$$

    Optax: `optax.losses.perceptron_loss`.

    **Arguments:**

    - `predictor_outputs`: $s$, the scores of the model.
    - `targets`: $y$, in $\{-1, 1\}$, of the shape of `predictor_outputs`.

    **Returns:**

    The losses, with the shape of the inputs.

    ??? cite "References"

        Rosenblatt, *The perceptron: a probabilistic model for information storage and
        organization in the brain*, Psychological Review 65(6), 1958.
        [Perceptron](https://en.wikipedia.org/wiki/Perceptron), Wikipedia.
    """
    predictor_outputs, targets = promote(predictor_outputs, targets)
    return jnp.maximum(0, -predictor_outputs * targets)


def _label_scores(
    scores: Float[Array, "*#batch num_classes"], labels: Integer[Array, "*#batch"]
) -> Float[Array, "*#batch"]:
    """`scores[..., labels]`, gathered; an out-of-range label scores 0, like Optax's."""
    num_classes = scores.shape[-1]
    batch = jnp.broadcast_shapes(scores.shape[:-1], labels.shape)
    labels = jnp.broadcast_to(labels, batch)
    index = jnp.clip(labels, 0, num_classes - 1)[..., None]
    scores = jnp.broadcast_to(scores, batch + (num_classes,))
    gathered = jnp.take_along_axis(scores, index, axis=-1)[..., 0]
    return jnp.where((labels >= 0) & (labels < num_classes), gathered, 0)


def _upcast(scores: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Scores in at least the default float dtype, where Optax's one-hot product puts
    them (exactly: an upcast)."""
    scores = jnp.asarray(scores)
    return scores.astype(result_dtype(scores, default_float()))


def _one_hot(
    labels: Integer[Array, "*#batch"], like: Float[Array, "*#batch n"]
) -> Array:
    return jax.nn.one_hot(labels, like.shape[-1], dtype=like.dtype)


def multiclass_hinge_loss(
    scores: Float[ArrayLike, "*#batch num_classes"],
    labels: Integer[ArrayLike, "*#batch"],
) -> Float[Array, "*#batch"]:
    r"""Multiclass hinge loss (Crammer and Singer).

    $$\ell(s, y) = \max_j \left(s_j + 1 - [j = y]\right) - s_y.$$

    Optax: `optax.losses.multiclass_hinge_loss`.

    **Arguments:**

    - `scores`: $s$, the scores of the model, of shape `[..., num_classes]`.
    - `labels`: $y$, the classes, integers of shape `[...]`.

    **Returns:**

    The losses, of shape `[...]`.

    ??? cite "References"

        Crammer and Singer, *On the Algorithmic Implementation of Multiclass
        Kernel-based Vector Machines*, JMLR 2, 2001.
        [Hinge loss](https://en.wikipedia.org/wiki/Hinge_loss), Wikipedia.
    """
    scores, labels = jnp.asarray(scores), jnp.asarray(labels)
    # As in Optax: 1 is added in the scores' dtype, the one-hot product is in at least
    # the default float dtype.
    shifted = _upcast(scores + 1.0)
    scores = _upcast(scores)
    margins = shifted - _one_hot(labels, scores)
    return jnp.max(margins, axis=-1) - _label_scores(scores, labels)


def multiclass_perceptron_loss(
    scores: Float[ArrayLike, "*#batch num_classes"],
    labels: Integer[ArrayLike, "*#batch"],
) -> Float[Array, "*#batch"]:
    r"""Multiclass perceptron loss.

    $$\ell(s, y) = \max_j s_j - s_y.$$

    Optax: `optax.losses.multiclass_perceptron_loss`.

    **Arguments:**

    - `scores`: $s$, the scores of the model, of shape `[..., num_classes]`.
    - `labels`: $y$, the classes, integers of shape `[...]`.

    **Returns:**

    The losses, of shape `[...]`.

    ??? cite "References"

        Collins, *Discriminative Training Methods for Hidden Markov Models: Theory and
        Experiments with Perceptron Algorithms*, EMNLP 2002.
    """
    scores, labels = _upcast(scores), jnp.asarray(labels)
    return jnp.max(scores, axis=-1) - _label_scores(scores, labels)

"""Metric-learning losses for embeddings: NT-Xent and the triplet margin loss."""

from typing import no_type_check

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Shaped

from .._custom_types import ScalarLike
from ._common import promote
from ._divergences import cosine_similarity


def ntxent(
    embeddings: Float[ArrayLike, "batch dim"],
    labels: Shaped[ArrayLike, " batch"],
    temperature: ScalarLike = 0.07,
) -> Float[Array, ""]:
    r"""Normalised temperature-scaled cross-entropy (NT-Xent), the SimCLR loss.

    With $s_{ij}$ the cosine similarity of embeddings $i$ and $j$, $\tau$ the
    temperature, $P$ the positive pairs (same label, $i \ne j$) and $N_i$ the
    embeddings with a label other than $i$'s,

    $$
    \ell = -\frac{1}{|P|} \sum_{(i, j) \in P}
    \log \frac{e^{s_{ij} / \tau}}{e^{s_{ij} / \tau} + \sum_{k \in N_i} e^{s_{ik} / \tau}}.
    $$

    Optax: `optax.ntxent`, `optax.losses.ntxent`.

    **Arguments:**

    - `embeddings`: a batch of embeddings, of shape `[batch, dim]`.
    - `labels`: of shape `[batch]`; embeddings with equal labels are positive pairs
        (for example `[0, 0, 1, 1]` when rows 0-1 and 2-3 are two views of one image).
    - `temperature`: $\tau$.

    **Returns:**

    The loss averaged over the positive pairs, a scalar.

    !!! info "Differences from Optax"

        With no positive pair in the batch, Optax divides by zero and returns NaN;
        eqopt returns $0$ (with zero gradients), so one unlucky batch does not spoil
        training.

    ??? cite "References"

        Chen, Kornblith, Norouzi and Hinton, *A Simple Framework for Contrastive
        Learning of Visual Representations*, ICML 2020.
        [arXiv:2002.05709](https://arxiv.org/abs/2002.05709)
    """
    embeddings = jnp.asarray(embeddings)
    labels = jnp.asarray(labels)
    eps = jnp.finfo(embeddings.dtype).eps
    similarity = cosine_similarity(
        embeddings[None, :, :], embeddings[:, None, :], epsilon=eps
    )
    similarity, temperature = promote(similarity, temperature)
    similarity = similarity / temperature

    same = labels[:, None] == labels[None, :]
    positive = same & ~jnp.eye(labels.shape[0], dtype=bool)
    negative = ~same
    sim_negative = jnp.where(negative, similarity, -jnp.inf)
    sim_positive = jnp.where(positive, similarity, -jnp.inf)

    # Shift by the row maximum for stability (a constant, so no gradient through it).
    row_max = jnp.max(
        jnp.concatenate([sim_negative, sim_positive], axis=-1), axis=1, keepdims=True
    )
    row_max = jax.lax.stop_gradient(row_max)
    shifted_negative = sim_negative - row_max
    shifted_positive = sim_positive - row_max
    denominator = jnp.sum(jnp.exp(shifted_negative), axis=1, keepdims=True)
    denominator = denominator + jnp.exp(shifted_positive)
    log_softmax = shifted_positive - jnp.log(denominator)
    num_positive = jnp.sum(positive).astype(similarity.dtype)
    total = jnp.sum(jnp.where(positive, log_softmax, 0))
    return -total / jnp.maximum(num_positive, 1)


def triplet_margin_loss(
    anchors: Float[ArrayLike, "*#shape"],
    positives: Float[ArrayLike, "*#shape"],
    negatives: Float[ArrayLike, "*#shape"],
    axis: int = -1,
    norm_degree: ScalarLike = 2,
    margin: ScalarLike = 1.0,
    eps: ScalarLike = 1e-6,
) -> Float[Array, "..."]:
    r"""Triplet margin loss: an anchor nearer its positive than its negative.

    With $d(x, y) = \left(\sum_k (x_k - y_k)^p + \varepsilon\right)^{1/p}$,

    $$\ell(a, p, n) = \max\left(d(a, p) - d(a, n) + m,\ 0\right).$$

    The differences are raised to the power $p$ without an absolute value, as in
    Optax, so use an even `norm_degree`.

    Optax: `optax.losses.triplet_margin_loss`.

    **Arguments:**

    - `anchors`: the anchor embeddings, of shape `[batch, dim]`.
    - `positives`: embeddings similar to the anchors, of the same shape.
    - `negatives`: embeddings dissimilar to the anchors, of the same shape.
    - `axis`: the embedding axis.
    - `norm_degree`: $p$, the degree of the distance.
    - `margin`: $m$, by how much the positive distance should be the smaller.
    - `eps`: $\varepsilon$, which keeps the root differentiable at zero distance.

    **Returns:**

    The losses, of shape `[batch]`.

    ??? cite "References"

        Balntas, Riba, Ponsa and Mikolajczyk, *Learning local feature descriptors with
        triplets and shallow convolutional neural networks*, BMVC 2016.
        [doi:10.5244/C.30.119](https://doi.org/10.5244/C.30.119)
    """
    anchors, positives, negatives, margin, eps = promote(
        anchors, positives, negatives, margin, eps
    )
    if not isinstance(norm_degree, int | float):
        # An array degree computes in the embeddings' dtype (a Python number keeps
        # `x ** 2` an exact integer power, as in Optax).
        norm_degree = jnp.asarray(norm_degree).astype(anchors.dtype)

    @no_type_check
    def distance(x, y):
        return jnp.power(jnp.power(x - y, norm_degree).sum(axis) + eps, 1 / norm_degree)

    gap = distance(anchors, positives) - distance(anchors, negatives)
    return jnp.maximum(gap + margin, 0)

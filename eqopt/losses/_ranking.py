"""Ranking losses: the cost of the order that item scores induce, given relevance labels.

They work over the last axis (the items of a list); leading axes are batch axes.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Real, Shaped

from ._common import promote, weighted_log


def _safe_reduce(
    loss: Float[Array, "*batch"],
    where: Bool[Array, "*batch"] | None,
    reduce_fn: Callable[..., Any] | None,
) -> Float[Array, "..."]:
    """Optax's reduction: a mean over no valid list is 0, not NaN; unreduced masked
    lists are 0."""
    if reduce_fn is None:
        return loss if where is None else jnp.where(where, loss, 0)
    output = jnp.asarray(reduce_fn(loss, where=where))
    if reduce_fn is jnp.mean:
        # Only hide the NaN of an empty mean, never a NaN that was in the losses.
        input_valid = ~jnp.any(jnp.isnan(loss))
        output = jnp.where(jnp.isnan(output) & input_valid, 0, output)
    return output


def ranking_softmax_loss(
    logits: Float[ArrayLike, "*batch list_size"],
    labels: Shaped[ArrayLike, "*batch list_size"],
    *,
    where: Bool[ArrayLike, "*batch list_size"] | None = None,
    weights: Real[ArrayLike, "*batch list_size"] | None = None,
    reduce_fn: Callable[..., Any] | None = jnp.mean,
) -> Float[Array, "..."]:
    r"""Ranking softmax loss (ListNet-style cross-entropy over a list of items).

    With scores $s$ and relevance labels $y$ (times the `weights`, if given) over the
    valid items of a list,

    $$\ell(s, y) = -\sum_i y_i \log \frac{e^{s_i}}{\sum_j e^{s_j}}.$$

    Items excluded by `where` take no part, and a list with no valid item has loss
    $0$ with zero gradients.

    Optax: `optax.losses.ranking_softmax_loss`.

    **Arguments:**

    - `logits`: $s$, the score of each item, of shape `[..., list_size]`.
    - `labels`: $y$, the relevance of each item, of shape `[..., list_size]`.
    - `where`: which items are valid.
    - `weights`: a weight per item, multiplying the labels.
    - `reduce_fn`: how to reduce the per-list losses: `jnp.mean` (a mean over lists
        with a valid item), `jnp.sum`, or `None` for no reduction.

    **Returns:**

    The reduced loss, or the per-list losses of shape `[...]` with `reduce_fn=None`.

    !!! example

        ```python
        scores = jnp.array([2.0, 1.0, 3.0])
        labels = jnp.array([1.0, 0.0, 0.0])
        loss = eqopt.losses.ranking_softmax_loss(scores, labels)  # 1.408
        ```

    ??? cite "References"

        Cao, Qin, Liu, Tsai and Li, *Learning to Rank: From Pairwise Approach to
        Listwise Approach*, ICML 2007.
        [doi:10.1145/1273496.1273513](https://doi.org/10.1145/1273496.1273513)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    if where is not None:
        where = jnp.asarray(where)
        labels = jnp.where(where, labels, 0)
        # A list with no valid item is computed as if all were valid, then zeroed.
        valid_list = jnp.any(where, axis=-1)
        softmax_where = where | ~valid_list[..., None]
        logits = jnp.where(where, logits, 0)
    else:
        valid_list = softmax_where = None
    if weights is not None:
        labels, weights = promote(labels, weights)
        labels = labels * weights
    log_probs = jax.nn.log_softmax(logits, axis=-1, where=softmax_where)
    labels, log_probs = promote(labels, log_probs)
    loss = -jnp.sum(weighted_log(labels, log_probs), axis=-1, where=where)
    return _safe_reduce(loss, valid_list, reduce_fn)

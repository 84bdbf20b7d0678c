"""Softmax cross-entropy losses, with probability or integer labels, and PolyLoss."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Integer, Shaped

from .._custom_types import ScalarLike
from ._common import promote, weighted_log, where_axis


Axis = int | tuple[int, ...] | None


def _canonical_axes(axis: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else axis
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`axis={axis!r}` is out of bounds for `logits` with {ndim} dimensions."
            )
    return tuple(a % ndim for a in axes)


def softmax_cross_entropy(
    logits: Float[ArrayLike, "*#shape"],
    labels: Shaped[ArrayLike, "*#shape"],
    axis: Axis = -1,
    where: Bool[ArrayLike, "..."] | None = None,
) -> Float[Array, "..."]:
    r"""Softmax cross-entropy between logits and target distributions.

    With logits $x$ and labels $y$ (a one-hot encoding, or any distribution over the
    classes),

    $$\ell(x, y) = -\sum_j y_j \log \frac{e^{x_j}}{\sum_k e^{x_k}},$$

    with the convention $0 \log 0 = 0$: a class with label $0$ and logit $-\infty$
    contributes $0$. Classes excluded by `where` are left out of both sums, so their
    logits may be $-\infty$; gradients stay finite in both cases.

    Optax: `optax.losses.softmax_cross_entropy`.

    **Arguments:**

    - `logits`: unnormalised log-probabilities, of shape `[..., num_classes]`.
    - `labels`: target probabilities, broadcastable to `logits`.
    - `axis`: the class axis or axes.
    - `where`: which classes to include; of the shape of `logits`, or of the batch
        shape (then whole rows are included or left out).

    **Returns:**

    The cross-entropies, of the batch shape.

    !!! info "Differences from Optax"

        Where a logit is $-\infty$ and its label is $0$, Optax returns NaN; eqopt
        returns the limit, as [`eqopt.losses.safe_softmax_cross_entropy`][] does.

    !!! example

        ```python
        logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        loss = eqopt.losses.softmax_cross_entropy(logits, labels)  # [0.2761, 2.9518]
        ```

    ??? cite "References"

        [Cross-entropy](https://en.wikipedia.org/wiki/Cross-entropy), Wikipedia.
    """
    logits = jnp.asarray(logits)
    where = where_axis(where, logits.ndim, axis)
    log_probs = jax.nn.log_softmax(logits, axis=axis, where=where)
    labels, log_probs = promote(labels, log_probs)
    return -jnp.sum(weighted_log(labels, log_probs), axis=axis, where=where)


def safe_softmax_cross_entropy(
    logits: Float[ArrayLike, "*#batch num_classes"],
    labels: Shaped[ArrayLike, "*#batch num_classes"],
) -> Float[Array, "*#batch"]:
    r"""Softmax cross-entropy over the last axis, with $0 \log 0 = 0$.

    The formula of [`eqopt.losses.softmax_cross_entropy`][]: a class with label $0$
    and logit $-\infty$ contributes $0$, with finite gradients. In eqopt
    `softmax_cross_entropy` follows the same convention; this name is kept for Optax
    code.

    Optax: `optax.losses.safe_softmax_cross_entropy`.

    **Arguments:**

    - `logits`: unnormalised log-probabilities, of shape `[..., num_classes]`.
    - `labels`: target probabilities, broadcastable to `logits`.

    **Returns:**

    The cross-entropies, of shape `[...]`.

    ??? cite "References"

        [Cross-entropy](https://en.wikipedia.org/wiki/Cross-entropy), Wikipedia.
    """
    log_probs = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    labels, log_probs = promote(labels, log_probs)
    return -jnp.sum(weighted_log(labels, log_probs), axis=-1)


def softmax_cross_entropy_with_integer_labels(
    logits: Float[ArrayLike, "..."],
    labels: Integer[ArrayLike, "..."],
    axis: int | tuple[int, ...] = -1,
    where: Bool[ArrayLike, "..."] | None = None,
) -> Float[Array, "..."]:
    r"""Softmax cross-entropy between logits and integer class labels.

    $$\ell(x, y) = -\log \frac{e^{x_y}}{\sum_k e^{x_k}} = \log \sum_k e^{x_k} - x_y.$$

    Only the label's logit is gathered; no one-hot matrix is built. A row that
    `where` excludes entirely has loss $0$ (and zero gradients).

    Optax: `optax.losses.softmax_cross_entropy_with_integer_labels`.

    **Arguments:**

    - `logits`: unnormalised log-probabilities, of shape `[..., num_classes]`.
    - `labels`: the classes, integers in `[0, num_classes)`, of shape `[...]`.
    - `axis`: the class axis. With a tuple of axes, the classes are the elements of
        the slice `logits[axis]`, and a label is a flat (row-major) index into it.
    - `where`: which classes to include; of the shape of `logits`, or of the batch
        shape.

    **Returns:**

    The cross-entropies, of shape `[...]`.

    !!! example

        ```python
        logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        labels = jnp.array([0, 1])
        loss = eqopt.losses.softmax_cross_entropy_with_integer_labels(logits, labels)
        ```

    ??? cite "References"

        [Cross-entropy](https://en.wikipedia.org/wiki/Cross-entropy) and
        [multinomial logistic regression](https://en.wikipedia.org/wiki/Multinomial_logistic_regression),
        Wikipedia.
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    where = where_axis(where, logits.ndim, axis)
    class_axes = _canonical_axes(axis, logits.ndim)
    batch_axes = tuple(a for a in range(logits.ndim) if a not in class_axes)
    # Move the class axes to the end, flattened into one.
    batch_shape = tuple(logits.shape[a] for a in batch_axes)
    logits = logits.transpose(batch_axes + class_axes).reshape(batch_shape + (-1,))
    if where is not None:
        where = where.transpose(batch_axes + class_axes)
        where = where.reshape(where.shape[: len(batch_axes)] + (-1,))
    if labels.ndim != len(batch_shape) or any(
        n not in (1, b) for n, b in zip(labels.shape, batch_shape)
    ):
        raise ValueError(
            "`softmax_cross_entropy_with_integer_labels(labels=...)` must have the "
            f"batch shape of `logits` (here {batch_shape}), or one that broadcasts to "
            f"it with as many dimensions; got labels.shape={labels.shape}."
        )
    label_logits = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    if where is None:
        return jax.nn.logsumexp(logits, axis=-1) - label_logits
    # A row with nothing to include would give -inf - x_y; compute it as if every
    # class were included, then replace it by 0 (the double `where`).
    any_included = jnp.any(where, axis=-1)
    safe_where = where | ~any_included[..., None]
    safe_logits = jnp.where(where, logits, 0)
    out = jax.nn.logsumexp(safe_logits, axis=-1, where=safe_where) - label_logits
    return jnp.where(any_included, out, 0)


def poly_loss_cross_entropy(
    logits: Float[ArrayLike, "*#shape"],
    labels: Float[ArrayLike, "*#shape"],
    *,
    epsilon: ScalarLike = 2.0,
    axis: Axis = -1,
    where: Bool[ArrayLike, "*#shape"] | None = None,
) -> Float[Array, "..."]:
    r"""Poly-1 loss: cross-entropy plus a weighted first polynomial term.

    PolyLoss expands cross-entropy in powers of $1 - p_t$, where $p_t$ is the
    probability of the target class, and re-weights the terms. Poly-1 changes only the
    first coefficient:

    $$\ell = -\log p_t + \epsilon\, (1 - p_t), \qquad
    1 - p_t = \sum_j y_j (1 - \mathrm{softmax}(x)_j).$$

    Optax: `optax.losses.poly_loss_cross_entropy`.

    **Arguments:**

    - `logits`: unnormalised log-probabilities, of shape `[..., num_classes]`.
    - `labels`: target probabilities, broadcastable to `logits`.
    - `epsilon`: $\epsilon$, the coefficient of the first polynomial term. The paper
        recommends $2$ for ImageNet classification and $-1$ for instance
        segmentation and detection.
    - `axis`: the class axis or axes.
    - `where`: which classes to include, of the shape of `logits`.

    **Returns:**

    The losses, of the batch shape.

    ??? cite "References"

        Leng, Xu, Chen, Li, Wu, Lin, Tan, Cui, Wang and Anguelov, *PolyLoss: A
        Polynomial Expansion Perspective of Classification Loss Functions*, ICLR 2022.
        [arXiv:2204.12511](https://arxiv.org/abs/2204.12511)
    """
    logits = jnp.asarray(logits)
    p = jax.nn.softmax(logits, axis=axis, where=where)
    labels_p, p = promote(labels, p)
    one_minus_pt = jnp.sum(labels_p * (1 - p), axis=axis, where=where)
    cross_entropy = softmax_cross_entropy(logits, labels, axis=axis, where=where)
    cross_entropy, one_minus_pt, epsilon = promote(cross_entropy, one_minus_pt, epsilon)
    return cross_entropy + epsilon * one_minus_pt

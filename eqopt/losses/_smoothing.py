"""Label smoothing."""

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._custom_types import ScalarLike
from ._common import promote


def smooth_labels(
    labels: Float[ArrayLike, "*#shape"],
    alpha: ScalarLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: Bool[ArrayLike, "*#shape"] | None = None,
) -> Float[Array, "*#shape"]:
    r"""Label smoothing: mix one-hot labels with the uniform distribution.

    With $K$ classes (those included by `where`, if given),

    $$\tilde y = (1 - \alpha)\, y + \frac{\alpha}{K}.$$

    Smoothed labels favour small gaps between logits, which tends to calibrate the
    model better. Use them with a cross-entropy such as
    [`eqopt.losses.softmax_cross_entropy`][].

    Optax: `optax.losses.smooth_labels`.

    **Arguments:**

    - `labels`: $y$, one-hot (or any) target distributions.
    - `alpha`: $\alpha$, the smoothing factor.
    - `axis`: the class axis or axes.
    - `where`: which classes count towards $K$.

    **Returns:**

    The smoothed labels, of the shape of `labels`.

    !!! info "Differences from Optax"

        Where `where` includes no class of a row, Optax divides by $K = 0$ and gives
        `inf`; eqopt adds nothing to that row.

    ??? cite "References"

        Müller, Kornblith and Hinton, *When Does Label Smoothing Help?*, NeurIPS 2019.
        [arXiv:1906.02629](https://arxiv.org/abs/1906.02629)
    """
    labels, alpha = promote(labels, alpha)
    if where is None:
        if axis is None:
            axes = range(labels.ndim)
        else:
            axes = (axis,) if isinstance(axis, int) else axis
        num_classes = math.prod(labels.shape[a] for a in axes)
        return (1.0 - alpha) * labels + alpha / num_classes
    num_classes = jnp.sum(where, axis=axis, keepdims=True).astype(labels.dtype)
    some = num_classes > 0
    uniform = jnp.where(some, alpha / jnp.where(some, num_classes, 1), 0)
    return (1.0 - alpha) * labels + uniform

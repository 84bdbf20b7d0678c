"""Segmentation losses: (generalised) Dice and Tversky."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._custom_types import ScalarLike
from ._common import promote, result_dtype, validate_choice


_REDUCTIONS = ("mean", "sum", "none")


def _is_concrete(x: Array) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_probabilities(probs: Float[Array, "..."]) -> None:
    """With `apply_softmax=False`, concrete predictions must be probabilities."""
    if not _is_concrete(probs):
        return  # traced values are not checked
    values = np.asarray(probs)
    if values.shape[-1] == 1:  # binary: one probability per element
        if not np.all((values >= 0) & (values <= 1)):
            raise ValueError(
                "With `apply_softmax=False`, binary `predictions` must be probabilities "
                f"in [0, 1]; found values in [{values.min():.6f}, {values.max():.6f}]."
            )
        return
    sums = values.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=1e-5):
        raise ValueError(
            "With `apply_softmax=False`, `predictions` must be probability "
            "distributions that sum to 1 along the class axis; found sums in "
            f"[{sums.min():.6f}, {sums.max():.6f}]."
        )


def dice_loss(
    predictions: Float[ArrayLike, "..."],
    targets: Real[ArrayLike, "..."],
    *,
    class_weights: Real[ArrayLike, " num_classes"] | Sequence[float] | None = None,
    smooth: ScalarLike = 1.0,
    alpha: ScalarLike = 0.5,
    beta: ScalarLike = 0.5,
    apply_softmax: bool = True,
    reduction: str = "mean",
    ignore_background: bool = False,
    axis: int | Sequence[int] | None = None,
) -> Float[Array, "..."]:
    r"""Soft Dice loss (and Tversky loss) for binary or multi-class segmentation.

    With predicted probabilities $p_{i,c}$ and targets $t_{i,c}$ over elements $i$
    (pixels, voxels) and classes $c$, $I_c = \sum_i p_{i,c} t_{i,c}$,
    $P_c = \sum_i p_{i,c}$ and $T_c = \sum_i t_{i,c}$,

    $$
    \ell_c = 1 - \frac{I_c + s}
    {I_c + \alpha (P_c - I_c) + \beta (T_c - I_c) + s},
    $$

    with $s$ = `smooth`. $P_c - I_c$ and $T_c - I_c$ are the soft false positives
    and false negatives. $\alpha = \beta = \frac{1}{2}$ is the Dice loss; other
    values give the Tversky loss ($\alpha > \beta$ penalises false positives more).
    The per-class losses are weighted by `class_weights` and then reduced over the
    classes.

    Optax: `optax.losses.dice_loss`.

    **Arguments:**

    - `predictions`: logits of shape `[..., num_classes]`, or of shape `[..., 1]` or
        `[...]` for binary segmentation (then a sigmoid replaces the softmax).
    - `targets`: one-hot targets of the same shape, or binary targets of shape
        `[..., 1]` or `[...]`.
    - `class_weights`: a weight per class, an array or a list of `num_classes`
        numbers; `None` weighs all classes equally.
    - `smooth`: $s$, which avoids division by zero and smooths the gradient.
    - `alpha`: $\alpha$, the weight of false positives.
    - `beta`: $\beta$, the weight of false negatives.
    - `apply_softmax`: whether `predictions` are logits (`True`) or already
        probabilities (`False`).
    - `reduction`: over the classes: `"mean"`, `"sum"` or `"none"` (per-class losses).
    - `ignore_background`: leave out class 0.
    - `axis`: the axis or axes summed over in $I_c, P_c, T_c$; by default every axis
        but the first (batch) and the last (classes).

    **Returns:**

    The losses, of shape `[batch]` (with `"mean"` or `"sum"`) or
    `[batch, num_classes]` (with `"none"`), for the default `axis`.

    !!! info "Differences from Optax"

        With `apply_softmax=False`, Optax checks that the predictions sum to one over
        the class axis, which binary predictions (one class) can never pass, and which
        cannot run under `jax.jit` or `jax.grad`. eqopt checks concrete binary
        predictions for values in $[0, 1]$, multi-class ones for sums of one, and
        traced values not at all. An unknown `reduction` raises before any work.

    ??? cite "References"

        Milletari, Navab and Ahmadi, *V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation*, 3DV 2016.
        [arXiv:1606.04797](https://arxiv.org/abs/1606.04797)

        Salehi, Erdogmus and Gholipour, *Tversky loss function for image segmentation
        using 3D fully convolutional deep networks*, MLMI 2017.
        [arXiv:1706.05721](https://arxiv.org/abs/1706.05721)
    """
    validate_choice("dice_loss", "reduction", reduction, _REDUCTIONS)
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.ndim == targets.ndim - 1:
        predictions = predictions[..., None]
    if targets.ndim == predictions.ndim - 1:
        targets = targets[..., None]
    if predictions.shape != targets.shape:
        raise ValueError(
            "`dice_loss(predictions=..., targets=...)` must have the same shape (or "
            "differ by a trailing class axis of size 1); got "
            f"predictions.shape={predictions.shape}, targets.shape={targets.shape}."
        )
    if not apply_softmax:
        _check_probabilities(predictions)
        probs = predictions
    elif predictions.shape[-1] == 1:
        probs = jax.nn.sigmoid(predictions)
    else:
        probs = jax.nn.softmax(predictions, axis=-1)

    if axis is None:
        axis = tuple(range(1, probs.ndim - 1))
    elif not isinstance(axis, int):
        axis = tuple(axis)
    probs, targets, smooth, alpha, beta = promote(probs, targets, smooth, alpha, beta)
    intersection = jnp.sum(probs * targets, axis=axis)
    predicted = jnp.sum(probs, axis=axis)
    actual = jnp.sum(targets, axis=axis)
    numerator = intersection + smooth
    denominator = (
        intersection
        + alpha * (predicted - intersection)
        + beta * (actual - intersection)
        + smooth
    )
    loss = 1.0 - numerator / denominator  # [..., num_classes]

    if class_weights is not None:
        loss, class_weights = promote(loss, jnp.asarray(class_weights))
        loss = loss * jnp.broadcast_to(class_weights, loss.shape)
    if ignore_background and probs.shape[-1] > 1:
        loss = loss[..., 1:]
    if reduction == "mean":
        return jnp.mean(loss, axis=-1)
    if reduction == "sum":
        return jnp.sum(loss, axis=-1)
    return loss


def multiclass_generalized_dice_loss(
    predictions: Float[ArrayLike, "*shape"],
    targets: Real[ArrayLike, "*shape"],
    *,
    smooth: ScalarLike = 1.0,
    apply_softmax: bool = True,
    ignore_background: bool = False,
) -> Float[Array, ""]:
    r"""Generalised Dice loss, with each class weighted by its inverse squared size.

    The per-class Dice losses of [`eqopt.losses.dice_loss`][], weighted by

    $$w_c = \frac{K}{\sum_{c'} v_{c'}}\, v_c, \qquad
    v_c = \frac{1}{(\sum_i t_{i,c})^2 + 10^{-7}},$$

    (normalised to average one over the $K$ classes), then averaged over the batch
    and the classes. Rare classes get large weights, which helps with heavily
    unbalanced segmentations.

    Optax: `optax.losses.multiclass_generalized_dice_loss`.

    **Arguments:**

    - `predictions`: logits of shape `[..., num_classes]`.
    - `targets`: one-hot targets of the same shape.
    - `smooth`: the smoothing term of the Dice loss.
    - `apply_softmax`: whether `predictions` are logits (`True`) or already
        probabilities (`False`).
    - `ignore_background`: leave out class 0.

    **Returns:**

    The loss, a scalar.

    ??? cite "References"

        Sudre, Li, Vercauteren, Ourselin and Cardoso, *Generalised Dice overlap as a
        deep learning loss function for highly unbalanced segmentations*, DLMIA 2017.
        [arXiv:1707.03237](https://arxiv.org/abs/1707.03237)
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    class_frequencies = jnp.sum(targets, axis=tuple(range(targets.ndim - 1)))
    class_frequencies = class_frequencies.astype(result_dtype(class_frequencies, 1.0))
    class_weights = 1.0 / (class_frequencies**2 + 1e-7)
    class_weights = class_weights / jnp.sum(class_weights) * len(class_weights)
    loss = dice_loss(
        predictions,
        targets,
        class_weights=class_weights,
        smooth=smooth,
        apply_softmax=apply_softmax,
        reduction="none",
        ignore_background=ignore_background,
    )
    return jnp.mean(loss)


def binary_dice_loss(
    predictions: Float[ArrayLike, "..."],
    targets: Real[ArrayLike, "..."],
    *,
    smooth: ScalarLike = 1.0,
    apply_sigmoid: bool = True,
) -> Float[Array, "..."]:
    r"""Dice loss for binary segmentation.

    [`eqopt.losses.dice_loss`][] with one class, a sigmoid instead of a softmax, and
    $\alpha = \beta = \frac{1}{2}$:

    $$\ell = 1 - \frac{2 \sum_i p_i t_i + 2 s}{\sum_i p_i + \sum_i t_i + 2 s}.$$

    Optax: `optax.losses.binary_dice_loss`.

    **Arguments:**

    - `predictions`: logits of shape `[...]` or `[..., 1]`.
    - `targets`: binary targets of the same shape.
    - `smooth`: $s$, the smoothing term.
    - `apply_sigmoid`: whether `predictions` are logits (`True`) or already
        probabilities (`False`).

    **Returns:**

    The losses, of shape `[batch]`.

    ??? cite "References"

        Milletari, Navab and Ahmadi, *V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation*, 3DV 2016.
        [arXiv:1606.04797](https://arxiv.org/abs/1606.04797)
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.ndim == targets.ndim and predictions.shape[-1] != 1:
        predictions = predictions[..., None]
        targets = targets[..., None]
    return dice_loss(
        predictions,
        targets,
        smooth=smooth,
        apply_softmax=apply_sigmoid,
        reduction="mean",
    )

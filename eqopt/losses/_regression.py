"""Regression losses: squared error, L2, Huber and log-cosh."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from ._common import promote


def _errors(
    predictions: Float[ArrayLike, "..."], targets: Real[ArrayLike, "..."] | None
) -> Float[Array, "..."]:
    if targets is None:
        return jnp.asarray(predictions)
    predictions, targets = promote(predictions, targets)
    return predictions - targets


def squared_error(
    predictions: Float[ArrayLike, "*shape"],
    targets: Real[ArrayLike, "*shape"] | None = None,
) -> Float[Array, "*shape"]:
    r"""Elementwise squared error.

    $$\ell(\hat y, y) = (\hat y - y)^2.$$

    The mean squared error is `squared_error(predictions, targets).mean()`.

    Optax: `optax.losses.squared_error`.

    **Arguments:**

    - `predictions`: the predictions, of any shape.
    - `targets`: the targets, of the same shape as `predictions`; zeros when `None`.

    **Returns:**

    The squared errors, with the shape of `predictions`.

    ??? cite "References"

        Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, 2nd
        edition, Springer, 2009, §2.4.
    """
    return _errors(predictions, targets) ** 2


def l2_loss(
    predictions: Float[ArrayLike, "*shape"],
    targets: Real[ArrayLike, "*shape"] | None = None,
) -> Float[Array, "*shape"]:
    r"""Elementwise L2 loss: half the squared error.

    $$\ell(\hat y, y) = \tfrac{1}{2} (\hat y - y)^2.$$

    The factor $\frac{1}{2}$ follows Bishop's *Pattern Recognition and Machine
    Learning*; [`eqopt.losses.squared_error`][] leaves it out.

    Optax: `optax.losses.l2_loss`.

    **Arguments:**

    - `predictions`: the predictions, of any shape.
    - `targets`: the targets, of the same shape as `predictions`; zeros when `None`.

    **Returns:**

    The losses, with the shape of `predictions`.

    ??? cite "References"

        Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, §1.1.
    """
    return 0.5 * squared_error(predictions, targets)


def huber_loss(
    predictions: Float[ArrayLike, "*#shape"],
    targets: Real[ArrayLike, "*#shape"] | None = None,
    *,
    delta: Real[ArrayLike, "*#shape"] = 1.0,
) -> Float[Array, "*#shape"]:
    r"""Elementwise Huber loss: quadratic near zero, linear away from it.

    With $e = \hat y - y$ and $\delta$ = `delta`,

    $$
    \ell(e) = \begin{cases}
    \tfrac{1}{2} e^2 & |e| \le \delta, \\
    \tfrac{1}{2} \delta^2 + \delta (|e| - \delta) & |e| > \delta.
    \end{cases}
    $$

    Gradient descent on the Huber loss is gradient descent on
    [`eqopt.losses.l2_loss`][] with the gradient clipped to $[-\delta, \delta]$.

    Optax: `optax.losses.huber_loss`.

    **Arguments:**

    - `predictions`: the predictions, of any shape.
    - `targets`: the targets, broadcastable with `predictions`; zeros when `None`.
    - `delta`: $\delta$, where the loss turns from quadratic to linear.

    **Returns:**

    The losses, with the broadcast shape of the inputs.

    ??? cite "References"

        Huber, *Robust Estimation of a Location Parameter*, Annals of Mathematical
        Statistics 35(1), 1964. [doi:10.1214/aoms/1177703732](https://doi.org/10.1214/aoms/1177703732)
    """
    errors, delta = promote(_errors(predictions, targets), delta)
    abs_errors = jnp.abs(errors)
    quadratic = jnp.minimum(abs_errors, delta)
    # `abs_errors - quadratic` is `max(|e| - delta, 0)` without doubling the gradient
    # at the kink.
    linear = abs_errors - quadratic
    return 0.5 * quadratic**2 + delta * linear


def log_cosh(
    predictions: Float[ArrayLike, "*#shape"],
    targets: Real[ArrayLike, "*#shape"] | None = None,
) -> Float[Array, "*#shape"]:
    r"""Elementwise log-cosh loss, a twice-differentiable cousin of the Huber loss.

    $$\ell(e) = \log\cosh(e) = \log\left(e^{e} + e^{-e}\right) - \log 2,$$

    computed with `logaddexp` so that it does not overflow. It is about $e^2 / 2$
    for small $e = \hat y - y$ and about $|e| - \log 2$ for large $e$.

    Optax: `optax.losses.log_cosh`.

    **Arguments:**

    - `predictions`: the predictions, of any shape.
    - `targets`: the targets, broadcastable with `predictions`; zeros when `None`.

    **Returns:**

    The losses, with the broadcast shape of the inputs.

    ??? cite "References"

        Chen, Tian, Jordan and Fox, *Log Hyperbolic Cosine Loss Improves Variational
        Auto-Encoder*, 2019. [OpenReview](https://openreview.net/forum?id=rkglvsC9Ym)
    """
    errors = _errors(predictions, targets)
    return jnp.logaddexp(errors, -errors) - jnp.log(2.0).astype(errors.dtype)

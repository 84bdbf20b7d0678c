"""Exponential moving averages of gradient moments, and their bias correction.

The building blocks of Adam-like optimisers, one pytree at a time. Where a gradient is
`None` or not an array (`eqx.filter_grad` output on an Equinox model), the moment is
left exactly as it is: no gradient, no change of state. (Optax returns `None` there,
which changes the structure of the state when a gradient goes missing.)
"""

from typing import Any, no_type_check

import jax.numpy as jnp
from jaxtyping import ArrayLike, PyTree, Real

from .._numerics import abs_sq, bias_correction
from ._leaves import map_arrays


@no_type_check
def _update_moments(rule, updates: Any, moments: Any) -> Any:
    """`rule(g, m)` where gradient `g` and moment `m` are arrays; `m` elsewhere."""
    return map_arrays(lambda m, g: rule(g, m), moments, updates)


def tree_update_moment(
    updates: PyTree,
    moments: PyTree,
    decay: Real[ArrayLike, ""],
    order: Real[ArrayLike, ""],
) -> PyTree:
    r"""Update the exponential moving average of the `order`-th moment.

    $$m_t = (1 - \beta)\, g_t^{\,p} + \beta\, m_{t-1}$$

    Optax: `optax.tree_utils.tree_update_moment`.

    **Arguments:**

    - `updates`: the gradients $g_t$.
    - `moments`: the moments $m_{t-1}$, with the structure of `updates`.
    - `decay`: $\beta$.
    - `order`: $p$ (1 for the mean, 2 for the uncentred variance).

    **Returns:**

    The moments $m_t$, with the structure of `updates`; a moment is kept as it is
    where its gradient is `None` or not an array.
    """
    return _update_moments(
        lambda g, m: (1 - decay) * (g**order) + decay * m, updates, moments
    )


def tree_update_infinity_moment(
    updates: PyTree,
    moments: PyTree,
    decay: Real[ArrayLike, ""],
    eps: Real[ArrayLike, ""],
) -> PyTree:
    r"""Update the exponentially weighted infinity norm (Adamax's second moment).

    $$u_t = \max\big(|g_t| + \varepsilon,\ \beta\, u_{t-1}\big)$$

    Optax: `optax.tree_utils.tree_update_infinity_moment`.

    **Arguments:**

    - `updates`: the gradients $g_t$.
    - `moments`: the norms $u_{t-1}$, with the structure of `updates`.
    - `decay`: $\beta$.
    - `eps`: $\varepsilon$.

    **Returns:**

    The norms $u_t$; a moment is kept as it is where its gradient is skipped.

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015,
        section 7.1 (AdaMax).
    """
    return _update_moments(
        lambda g, m: jnp.maximum(jnp.abs(g) + eps, decay * m), updates, moments
    )


@no_type_check
def _orderth_norm(g: Any, order: Any) -> Any:
    r"""$|g|^p$ elementwise: $g^p$ for real $g$, $(|g|^2)^{p/2}$ for complex $g$."""
    if jnp.isrealobj(g):
        return g**order
    half_order = order / 2
    # An integer exponent gives `integer_pow`, exact and cheaper, as in Optax.
    if isinstance(half_order, float) and half_order.is_integer():
        half_order = int(half_order)
    return abs_sq(g) ** half_order


def tree_update_moment_per_elem_norm(
    updates: PyTree,
    moments: PyTree,
    decay: Real[ArrayLike, ""],
    order: Real[ArrayLike, ""],
) -> PyTree:
    r"""Update the moving average of the `order`-th power of each element's modulus.

    $$m_t = (1 - \beta)\, |g_t|^{p} + \beta\, m_{t-1}$$

    For real gradients $|g|^p$ is computed as $g^p$ (as in Optax), for complex ones as
    $(|g|^2)^{p/2}$, which is real.

    Optax: `optax.tree_utils.tree_update_moment_per_elem_norm`.

    **Arguments:**

    - `updates`: the gradients $g_t$.
    - `moments`: the moments $m_{t-1}$, with the structure of `updates`.
    - `decay`: $\beta$.
    - `order`: $p$.

    **Returns:**

    The moments $m_t$; a moment is kept as it is where its gradient is skipped.
    """
    return _update_moments(
        lambda g, m: (1 - decay) * _orderth_norm(g, order) + decay * m,
        updates,
        moments,
    )


def tree_bias_correction(
    moment: PyTree, decay: Real[ArrayLike, ""], count: Real[ArrayLike, ""]
) -> PyTree:
    r"""Debias an exponential moving average started at zero.

    $$\hat m_t = \frac{m_t}{1 - \beta^t}$$

    $1 - \beta^t$ is computed in the precision of $\beta$ (float32 for a Python float),
    where $\beta^t$ is not rounded to 1, and only then cast to each moment's dtype for
    the division, so bfloat16 moments stay bfloat16.

    Optax: `optax.tree_utils.tree_bias_correction`.

    **Arguments:**

    - `moment`: the moments $m_t$.
    - `decay`: $\beta$.
    - `count`: the step count $t$ (the number of updates so far, from 1).

    **Returns:**

    The debiased moments; skipped leaves are kept as they are.

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015,
        section 3.
    """
    # `jnp.asarray` does what Optax's `jax.jit` does to Python numbers: weakly typed
    # 0-d arrays, so `decay ** count` is an array even for Python inputs.
    decay, count = jnp.asarray(decay), jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):  # float ** int: an integer power
        correction = bias_correction(decay, count)
    else:
        correction = 1 - decay**count
    return map_arrays(lambda m: m / correction.astype(m.dtype), moment)

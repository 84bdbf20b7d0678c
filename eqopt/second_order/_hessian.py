"""Hessian-vector products, the Hessian's diagonal and the empirical Fisher's diagonal.

`params` may be any pytree, an Equinox model included: only its floating-point array
leaves are differentiated (as `eqx.filter_grad` does), and the flat vectors below run
over those leaves in `jax.tree.leaves` order.
"""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Inexact, PyTree


#: `loss(params, inputs, targets) -> scalar`, Optax's `LossFn`.
LossFn = Callable[[Any, Any, Any], Inexact[Array, ""]]


def _ravel(tree: PyTree) -> tuple[Inexact[Array, " n"], Callable]:
    """`ravel_pytree`, for leaves of mixed dtypes also under strict promotion."""
    with jax.numpy_dtype_promotion("standard"):
        return ravel_pytree(tree)


def _split(params: PyTree) -> tuple[Any, Any, Inexact[Array, " n"], Callable]:
    """The differentiable part of `params`, the rest, and the part as a flat vector."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = _ravel(diff)
    return diff, static, flat, unravel


def _hvp(loss: LossFn, v: ArrayLike, params: Any, inputs: Any, targets: Any) -> Any:
    v = jnp.asarray(v)
    diff, static, flat, unravel = _split(params)
    if v.shape != flat.shape:
        raise ValueError(
            f"`hvp(v=...)` must be a vector with one entry per parameter (the size of "
            f"`ravel_pytree(params)`, here {flat.size}); got v.shape={v.shape}."
        )

    @no_type_check
    def grad_fn(p):
        return jax.grad(lambda q: loss(eqx.combine(q, static), inputs, targets))(p)

    return jax.jvp(grad_fn, (diff,), (unravel(v.astype(flat.dtype)),))[1]


def hvp(
    loss: LossFn,
    v: Inexact[ArrayLike, " n"],
    params: PyTree,
    inputs: PyTree,
    targets: PyTree,
) -> PyTree:
    r"""The product of the Hessian of `loss` with a vector, $H v$.

    $$
    H v = \nabla_\theta^2\, \ell(\theta; x, y)\, v
        = \left.\frac{\mathrm{d}}{\mathrm{d}\varepsilon}
          \nabla_\theta\, \ell(\theta + \varepsilon v; x, y)\right|_{\varepsilon = 0},
    $$

    computed as forward-over-reverse differentiation (a `jax.jvp` of `jax.grad`),
    without forming $H$ (Pearlmutter's trick).

    Optax: `optax.second_order.hvp`.

    **Arguments:**

    - `loss`: the loss $\ell$, called as `loss(params, inputs, targets)` and returning
        a scalar.
    - `v`: the vector $v$, with one entry per entry of the floating-point leaves of
        `params` (the size of `jax.flatten_util.ravel_pytree(params)[0]`).
    - `params`: the parameters $\theta$ at which the Hessian is taken.
    - `inputs`: the inputs $x$ passed to `loss`.
    - `targets`: the targets $y$ passed to `loss`.

    **Returns:**

    $H v$ as a pytree shaped like `params` (`None` at leaves that are not
    floating-point arrays).

    ??? cite "References"

        Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation,
        1994.
    """
    return _hvp(loss, v, params, inputs, targets)


def hessian_diag(
    loss: LossFn,
    params: PyTree,
    inputs: PyTree,
    targets: PyTree,
) -> Inexact[Array, " n"]:
    r"""The diagonal of the Hessian of `loss`, $\operatorname{diag}(H)$.

    $$
    H_{ii} = e_i^\top \left(\nabla_\theta^2\, \ell(\theta; x, y)\right) e_i,
    $$

    from one Hessian-vector product ([`eqopt.second_order.hvp`][]) per parameter
    entry, batched with `jax.vmap`. This costs $n$ Hessian-vector products and
    $O(n^2)$ memory, so it suits small models.

    Optax: `optax.second_order.hessian_diag`.

    **Arguments:**

    - `loss`: the loss $\ell$, called as `loss(params, inputs, targets)`.
    - `params`: the parameters $\theta$.
    - `inputs`: the inputs $x$ passed to `loss`.
    - `targets`: the targets $y$ passed to `loss`.

    **Returns:**

    The flat vector $(H_{11}, \dots, H_{nn})$, in the order of
    `jax.flatten_util.ravel_pytree(params)`.
    """
    _, _, flat, _ = _split(params)
    basis = jnp.eye(flat.size, dtype=flat.dtype)

    @no_type_check
    def diagonal_entry(e):
        return jnp.vdot(e, _ravel(_hvp(loss, e, params, inputs, targets))[0])

    return jax.vmap(diagonal_entry)(basis)


def fisher_diag(
    negative_log_likelihood: LossFn,
    params: PyTree,
    inputs: PyTree,
    targets: PyTree,
) -> Inexact[Array, " n"]:
    r"""The diagonal of the observed (empirical) Fisher information matrix.

    $$
    F_{ii} = \left(\frac{\partial}{\partial \theta_i}
        \bigl(-\log p(y \mid x, \theta)\bigr)\right)^2,
    $$

    the diagonal of $g g^\top$ for the gradient $g$ of the negative log-likelihood at
    the given data.

    Optax: `optax.second_order.fisher_diag`.

    **Arguments:**

    - `negative_log_likelihood`: $-\log p(y \mid x, \theta)$, called as
        `negative_log_likelihood(params, inputs, targets)`.
    - `params`: the parameters $\theta$.
    - `inputs`: the inputs $x$.
    - `targets`: the targets $y$.

    **Returns:**

    The flat vector $(F_{11}, \dots, F_{nn})$, in the order of
    `jax.flatten_util.ravel_pytree(params)`.

    ??? cite "References"

        Kunstner, Balles and Hennig, *Limitations of the empirical Fisher
        approximation for natural gradient descent*, NeurIPS 2019.
    """
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    grads = jax.grad(
        lambda p: negative_log_likelihood(eqx.combine(p, static), inputs, targets)
    )(diff)
    return jnp.square(_ravel(grads)[0])

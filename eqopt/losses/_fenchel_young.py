"""Fenchel-Young losses, built from a max function."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from ._common import promote


class FenchelYoungLoss(eqx.Module):
    r"""A Fenchel-Young loss: $\ell(s, y) = \Omega^*(s) - \langle y, s \rangle$.

    Returned by [`eqopt.losses.make_fenchel_young_loss`][]; see there for the formula.
    Call it as `loss(scores, targets, *args, **kwargs)`; the extra arguments go to
    `max_fun`.

    **Fields:**

    - `max_fun`: $\Omega^*$, a function from a vector of scores to a scalar; a static
        field (it decides the computation), so it should be hashable and the same
        object from step to step, or each new one recompiles.
    """

    max_fun: Callable[..., Any] = eqx.field(static=True)

    def __call__(
        self,
        scores: Float[ArrayLike, "*#batch n"],
        targets: Real[ArrayLike, "*#batch n"],
        *args: Any,
        **kwargs: Any,
    ) -> Float[Array, "*#batch"]:
        """The loss of `scores` against `targets`, over the last axis.

        **Arguments:**

        - `scores`: $s$, of shape `[..., n]`.
        - `targets`: $y$, of shape `[..., n]` (broadcastable with `scores`).
        - `*args`, `**kwargs`: passed on to `max_fun`.

        **Returns:**

        The losses, of shape `[...]`.
        """
        max_fun = jnp.vectorize(self.max_fun, signature="(n)->()")
        vdot = jnp.vectorize(jnp.vdot, signature="(n),(n)->()")
        max_value = max_fun(jnp.asarray(scores), *args, **kwargs)
        targets, scores = promote(targets, scores)
        return jnp.asarray(max_value) - vdot(targets, scores)


def make_fenchel_young_loss(max_fun: Callable[..., Any]) -> FenchelYoungLoss:
    r"""Make the Fenchel-Young loss of a max function.

    Given a convex "max" function $\Omega^*$ (the Fenchel conjugate of a
    regulariser $\Omega$), the Fenchel-Young loss is

    $$\ell(s, y) = \Omega^*(s) + \Omega(y) - \langle y, s \rangle,$$

    computed here without the $\Omega(y)$ term, which does not depend on the scores $s$.
    Its gradient in $s$ is $\nabla \Omega^*(s) - y$. With $\Omega^* = $ `logsumexp`
    it is the softmax cross-entropy (up to that constant); with the sparsemax
    conjugate, the sparsemax loss.

    The loss works over the last axis; leading axes are batch axes.

    Optax: `optax.losses.make_fenchel_young_loss`.

    **Arguments:**

    - `max_fun`: $\Omega^*$, a function from a vector `[n]` to a scalar.

    **Returns:**

    A [`eqopt.losses.FenchelYoungLoss`][] Module, called as
    `loss(scores, targets, *args, **kwargs)`.

    !!! example

        ```python
        from jax.scipy.special import logsumexp

        fy_loss = eqopt.losses.make_fenchel_young_loss(max_fun=logsumexp)
        scores = jnp.array([[1.0, 2.0, 0.5]])
        targets = jnp.array([[0.0, 1.0, 0.0]])
        loss = fy_loss(scores, targets)  # shape [1]
        ```

    ??? cite "References"

        Blondel, Martins and Niculae, *Learning with Fenchel-Young Losses*, JMLR 21,
        2020. [arXiv:1901.02324](https://arxiv.org/abs/1901.02324)
    """
    return FenchelYoungLoss(max_fun)

"""Sparsemax losses: the Fenchel-Young losses of the Gini negentropy."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Integer, Shaped

from ..projections._simplex import projection_unit_simplex


def sparsemax_loss(
    logits: Float[ArrayLike, "*#shape"],
    labels: Shaped[ArrayLike, "*#shape"],
) -> Float[Array, "*#shape"]:
    r"""Binary sparsemax loss.

    With $\mathrm{sparseplus}(x) = \max(0, x)$ smoothed quadratically on $[-1, 1]$,

    $$\ell(x, y) = \mathrm{sparseplus}\left((1 - 2y)\, x\right), \qquad y \in \{0, 1\}.$$

    It is zero exactly when `jax.nn.sparse_sigmoid(logits) == labels`.

    Optax: `optax.losses.sparsemax_loss`.

    **Arguments:**

    - `logits`: the scores of the model.
    - `labels`: $y$, binary labels (`0`/`1` or booleans), broadcastable with `logits`.

    **Returns:**

    The losses, with the broadcast shape of the inputs.

    ??? cite "References"

        Blondel, Martins and Niculae, *Learning with Fenchel-Young Losses*, JMLR 21,
        2020, §4.4. [arXiv:1901.02324](https://arxiv.org/abs/1901.02324)
    """
    logits = jnp.asarray(logits)
    return jax.nn.sparse_plus(jnp.where(labels, -logits, logits))


def _multiclass_sparsemax_loss(
    scores: Float[Array, " num_classes"], label: Integer[Array, ""]
) -> Float[Array, ""]:
    p = projection_unit_simplex(scores)
    # The Fenchel conjugate of the Gini negentropy at `scores`, minus `scores[label]`.
    shifted = (scores - scores[label]).at[label].set(0.0)
    return jnp.dot(p, jnp.where(p != 0, shifted, 0)) + 0.5 * (1 - jnp.dot(p, p))


def multiclass_sparsemax_loss(
    scores: Float[ArrayLike, "*#batch num_classes"],
    labels: Integer[ArrayLike, "*#batch"],
) -> Float[Array, "*#batch"]:
    r"""Multiclass sparsemax loss.

    With $p = \mathrm{sparsemax}(s)$, the Euclidean projection of the scores onto the
    probability simplex,

    $$\ell(s, y) = \langle p, s \rangle + \tfrac{1}{2}(1 - \|p\|^2) - s_y,$$

    the Fenchel-Young loss of the Gini negentropy. Its gradient is $p - e_y$.

    Optax: `optax.losses.multiclass_sparsemax_loss`.

    **Arguments:**

    - `scores`: $s$, the scores of the model, of shape `[..., num_classes]`.
    - `labels`: $y$, the classes, integers of shape `[...]`.

    **Returns:**

    The losses, of shape `[...]`.

    !!! info "Differences from Optax"

        Optax accepts exactly one batch axis (`[batch, num_classes]`); eqopt accepts
        any number, including none.

    ??? cite "References"

        Martins and Astudillo, *From Softmax to Sparsemax: A Sparse Model of Attention
        and Multi-Label Classification*, ICML 2016.
        [arXiv:1602.02068](https://arxiv.org/abs/1602.02068)
    """
    loss = jnp.vectorize(_multiclass_sparsemax_loss, signature="(k),()->()")
    return loss(jnp.asarray(scores), jnp.asarray(labels))

"""Connectionist temporal classification (CTC)."""

from typing import no_type_check

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Integer, Real

from .._custom_types import ScalarLike
from ._common import default_float, result_dtype


def ctc_loss_with_forward_probs(
    logits: Float[ArrayLike, "B T K"],
    logit_paddings: Real[ArrayLike, "B T"],
    labels: Integer[ArrayLike, "B N"],
    label_paddings: Real[ArrayLike, "B N"],
    *,
    blank_id: int = 0,
    log_epsilon: ScalarLike = -1e5,
) -> tuple[Float[Array, " B"], Float[Array, "T B N+1"], Float[Array, "T B N"]]:
    r"""CTC loss, and the forward (alpha) log-probabilities it is computed from.

    CTC scores every alignment $\pi$ of the label sequence $y$ to the $T$ input
    frames, where an alignment repeats labels and inserts a blank symbol $\phi$, and
    the collapse $\mathcal{B}$ removes repeats and then blanks:

    $$\ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_{t=1}^{T} p_t(\pi_t).$$

    The sum is computed by a forward recursion in log space over two kinds of state,
    "the last symbol emitted was a blank" and "was label $n$":

    $$
    \begin{aligned}
    \alpha_{\phi}(t, n) &= \textstyle\sum_{\pi_{1:t}}
        p(\pi_t = \phi \mid \pi_{1:t-1}, y_{1:n}), \\
    \alpha_{y}(t, n) &= \textstyle\sum_{\pi_{1:t}}
        p(\pi_t = y_n \mid \pi_{1:t-1}, y_{1:n-1}),
    \end{aligned}
    $$

    and $\ell = -\log \alpha_\phi(T, N_b)$ for a sequence of $N_b$ labels. An
    impossible transition has log-probability `log_epsilon` rather than $-\infty$.
    Padded frames leave the alphas unchanged.

    Optax: `optax.losses.ctc_loss_with_forward_probs`.

    **Arguments:**

    - `logits`: of shape `[B, T, K]`: batch, frames, and classes (the blank included).
    - `logit_paddings`: of shape `[B, T]`; `1` marks a padded frame, `0` a real one.
    - `labels`: the label sequences, integers of shape `[B, N]`.
    - `label_paddings`: of shape `[B, N]`; `1` marks a padded label. Labels must be
        right-padded: each row is zeros followed by ones.
    - `blank_id`: the class of the blank symbol.
    - `log_epsilon`: the log-probability used for "impossible", a stand-in for
        $\log 0$.

    **Returns:**

    A 3-tuple of:

    - the losses, of shape `[B]`;
    - $\log \alpha_\phi$, of shape `[T, B, N + 1]`;
    - $\log \alpha_y$, of shape `[T, B, N]`.

    !!! info "Differences from Optax"

        Optax picks each label's log-probability with a one-hot product, so a logit of
        $-\infty$ in any class, or an infinite logit in a padded frame, makes the loss
        NaN. eqopt gathers the log-probability instead, and ignores padded frames'
        logits, so both give Optax's finite loss and finite gradients (zero for the
        padded frames). The recursion runs in the dtype Optax ends up in: at least the
        default float dtype.

    ??? cite "References"

        Graves, Fernández, Gomez and Schmidhuber, *Connectionist Temporal
        Classification: Labelling Unsegmented Sequence Data with Recurrent Neural
        Networks*, ICML 2006. [doi:10.1145/1143844.1143891](https://doi.org/10.1145/1143844.1143891)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    batch_size, _, num_classes = logits.shape
    max_label_length = labels.shape[1]
    dtype = result_dtype(logits, default_float(), log_epsilon)
    log_epsilon = jnp.asarray(log_epsilon, dtype)

    # Padded frames may hold anything (even inf): read them as zeros, so that neither
    # the values nor the gradients see them.
    frame_padded = jnp.asarray(logit_paddings) != 0
    logits = jnp.where(frame_padded[..., None], 0, logits)
    log_probs = jax.nn.log_softmax(logits).astype(dtype)
    label_paddings = jnp.asarray(label_paddings)
    label_lengths = max_label_length - jnp.sum(label_paddings, axis=1).astype(jnp.int32)

    # repeat[b, n] = 1 when labels[b, n] == labels[b, n + 1].
    repeat = (labels[:, :-1] == labels[:, 1:]).astype(dtype)
    repeat = jnp.pad(repeat, ((0, 0), (0, 1)))

    log_probs_blank = jnp.transpose(log_probs[:, :, blank_id : blank_id + 1], (1, 0, 2))
    # log_probs_emit[t, b, n] = log_probs[b, t, labels[b, n]]; an out-of-range label
    # (padding) emits with log-probability 0, as Optax's one-hot product gives.
    in_range = (labels >= 0) & (labels < num_classes)
    index = jnp.broadcast_to(
        jnp.clip(labels, 0, num_classes - 1)[:, None, :],
        (batch_size, log_probs.shape[1], max_label_length),
    )
    log_probs_emit = jnp.take_along_axis(log_probs, index, axis=2)
    log_probs_emit = jnp.where(in_range[:, None, :], log_probs_emit, 0)
    log_probs_emit = jnp.transpose(log_probs_emit, (1, 0, 2))

    init_blank = jnp.full((batch_size, max_label_length + 1), log_epsilon)
    init_blank = init_blank.at[:, 0].set(0.0)
    init_emit = jnp.full((batch_size, max_label_length), log_epsilon)

    @no_type_check
    def add_to_blank(blank, added):
        """`blank[:, 1:]` plus `added`, in log space."""
        return jnp.concatenate(
            [blank[:, :1], jnp.logaddexp(blank[:, 1:], added)], axis=-1
        )

    @no_type_check
    def step(carry, inputs):
        prev_blank, prev_emit = carry
        log_prob_emit, log_prob_blank, padded = inputs
        # Label-to-blank epsilon transition, except before a repeated label.
        blank = add_to_blank(prev_blank, prev_emit + log_epsilon * repeat)
        # Blank-to-label and label self-loop.
        next_emit = jnp.logaddexp(
            blank[:, :-1] + log_prob_emit, prev_emit + log_prob_emit
        )
        # Blank self-loop, and label-to-blank only before a repeated label.
        next_blank = add_to_blank(
            blank + log_prob_blank,
            prev_emit + log_prob_blank + log_epsilon * (1 - repeat),
        )
        padded = padded[:, None]
        next_emit = jnp.where(padded, prev_emit, next_emit)
        next_blank = jnp.where(padded, prev_blank, next_blank)
        return (next_blank, next_emit), (next_blank, next_emit)

    inputs = (log_probs_emit, log_probs_blank, frame_padded.T)
    _, (log_alpha_blank, log_alpha_emit) = jax.lax.scan(
        step, (init_blank, init_emit), inputs
    )
    # The last frame still needs its final label-to-blank epsilon transition.
    last_blank = add_to_blank(log_alpha_blank[-1], log_alpha_emit[-1])
    log_alpha_blank = log_alpha_blank.at[-1].set(last_blank)
    loss = -jnp.take_along_axis(last_blank, label_lengths[:, None], axis=1)[:, 0]
    return loss, log_alpha_blank, log_alpha_emit


def ctc_loss(
    logits: Float[ArrayLike, "B T K"],
    logit_paddings: Real[ArrayLike, "B T"],
    labels: Integer[ArrayLike, "B N"],
    label_paddings: Real[ArrayLike, "B N"],
    *,
    blank_id: int = 0,
    log_epsilon: ScalarLike = -1e5,
) -> Float[Array, " B"]:
    r"""CTC loss of each sequence in a batch.

    The loss of [`eqopt.losses.ctc_loss_with_forward_probs`][], without the forward
    probabilities; see there for the formula and the arguments.

    Optax: `optax.losses.ctc_loss`.

    **Returns:**

    The losses, of shape `[B]`.

    ??? cite "References"

        Graves, Fernández, Gomez and Schmidhuber, *Connectionist Temporal
        Classification: Labelling Unsegmented Sequence Data with Recurrent Neural
        Networks*, ICML 2006. [doi:10.1145/1143844.1143891](https://doi.org/10.1145/1143844.1143891)
    """
    loss, _, _ = ctc_loss_with_forward_probs(
        logits,
        logit_paddings,
        labels,
        label_paddings,
        blank_id=blank_id,
        log_epsilon=log_epsilon,
    )
    return loss

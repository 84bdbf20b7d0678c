"""The mean and variance of per-element gradients, tracked alongside an optimiser."""

import math
from collections.abc import Sequence
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..._base import EmptyState, GradientTransformation, Identity
from ..._checks import check_hyperparameters, UNIT
from ..._combine import Chain
from ..._custom_types import Count, Moments, OptState, Params, Updates
from ..._hyperparams import as_scalar
from ..._numerics import safe_increment
from ..._tree import is_none, map_leaves, zeros_like_params
from ...tree_utils._state_utils import tree_get
from ._aggregator import Process
from ._averaging import as_axes, check_accumulation_steps


def get_batch_size_from_per_elt_updates(
    per_elt_updates: Updates, per_elt_axis: int | Sequence[int]
) -> int:
    """The number of elements (examples) in per-element updates: the size of
    `per_elt_axis` (the product of the sizes, for several axes), which must be the same
    for every leaf.

    Optax: `optax.experimental.aggregating.get_batch_size_from_per_elt_updates`.

    **Arguments:**

    - `per_elt_updates`: per-element updates.
    - `per_elt_axis`: the per-element axis or axes.

    **Returns:**

    The batch size, a Python int.

    **Raises:**

    `ValueError` if the leaves disagree.
    """
    axes = (per_elt_axis,) if isinstance(per_elt_axis, int) else tuple(per_elt_axis)
    sizes = [
        math.prod(g.shape[a] for a in axes)
        for g in jax.tree.leaves(per_elt_updates, is_leaf=is_none)
        if eqx.is_array(g)
    ]
    if not sizes or any(s != sizes[0] for s in sizes):
        raise ValueError(
            f"Per-element updates must have the same batch size. Got: {sizes}"
        )
    return sizes[0]


class PerElementMeanAndSumSqDiffGradsState(eqx.Module):
    """State of `PerElementMeanAndSumSqDiffGrads` with accumulation: the micro-step,
    whether the last call gave an output (`ready`), and the running mean and sum of
    squared deviations of the per-element gradients."""

    micro_step: Count
    ready: Bool[Array, ""]
    mean_grads: Moments
    sum_sq_diff_grads: Moments


class PerElementMeanAndSumSqDiffGrads(GradientTransformation):
    r"""Aggregate per-element gradients into their mean, and pass on the sum of
    squared deviations from it (for a variance) and the sample size.

    Over a batch of $B$ elements, $\bar g = \frac1B \sum_i g_i$ and $S = \sum_i (g_i -
    \bar g)^2$ (per entry). The update is `(mean, aux)` with `aux =
    {"sum_sq_diff_grads": S, "sample_size": B}`: with
    [`eqopt.experimental.aggregating.process`][]`(..., aggregator_has_aux=True)`, `aux`
    reaches the postprocessor as keyword arguments (see
    [`eqopt.experimental.aggregating.track_per_element_mean_and_variance_with_ema`][]).

    With `accumulation_steps` $K > 1$, the means and sums of squared deviations of $K$
    micro-batches are merged exactly (Chan et al.'s parallel update: $\bar g
    \leftarrow \bar g + \delta / k$, $S \leftarrow S + S_k + \delta^2 (k-1) B / k$
    with $\delta = \bar g_k - \bar g$), the output is zero (and `ready` false) until
    the $K$-th, and the sample size is $K B$. With $K = 1$ the state is an
    [`eqopt.EmptyState`][].

    Optax: `optax.experimental.aggregating.get_per_element_mean_and_sum_sq_diff_grads`.

    **Arguments:**

    - `per_elt_axis`: the per-element axis (or axes).
    - `accumulation_steps`: $K \ge 1$, the number of micro-batches.
    """

    per_elt_axis: int | tuple[int, ...] = eqx.field(
        static=True, converter=as_axes, default=0
    )
    accumulation_steps: int = eqx.field(static=True, default=1)
    is_aggregator = True

    def __check_init__(self):
        check_accumulation_steps(
            "get_per_element_mean_and_sum_sq_diff_grads", self.accumulation_steps
        )

    def init(self, params: Params) -> PerElementMeanAndSumSqDiffGradsState | EmptyState:
        if self.accumulation_steps == 1:
            return EmptyState()
        return PerElementMeanAndSumSqDiffGradsState(
            micro_step=jnp.zeros([], jnp.int32),
            ready=jnp.asarray(False),
            mean_grads=zeros_like_params(params),
            sum_sq_diff_grads=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: PerElementMeanAndSumSqDiffGradsState | EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[tuple[Updates, dict[str, Any]], OptState]:
        batch_size = get_batch_size_from_per_elt_updates(updates, self.per_elt_axis)
        axis = self.per_elt_axis

        @no_type_check
        def batch_moments(g, _):
            mean = jnp.mean(g, axis=axis, keepdims=True)
            sum_sq_diff = jnp.sum(jnp.square(g - mean), axis=axis)
            return jnp.squeeze(mean, axis=axis), sum_sq_diff

        # (`updates` twice: `map_leaves` keeps one output per input where a leaf is
        # `None`.)
        mean, sum_sq_diff = map_leaves(batch_moments, updates, updates)
        if self.accumulation_steps == 1:
            aux = {"sum_sq_diff_grads": sum_sq_diff, "sample_size": batch_size}
            return (mean, aux), state

        micro_step = state.micro_step + 1
        size_factor = state.micro_step * batch_size / micro_step  # float32
        done = micro_step == self.accumulation_steps

        @no_type_check
        def merge(batch_mean, batch_sum_sq_diff, old_mean, old_sum_sq_diff):
            dtype = batch_mean.dtype
            steps, factor = micro_step.astype(dtype), size_factor.astype(dtype)
            delta = batch_mean - old_mean
            new_mean = old_mean + delta / steps
            new_sum = old_sum_sq_diff + batch_sum_sq_diff + delta**2 * factor
            return new_mean, new_sum, old_mean, old_sum_sq_diff

        new_mean, new_sum = map_leaves(
            merge,
            mean,
            sum_sq_diff,
            state.mean_grads,
            state.sum_sq_diff_grads,
            names=(
                "mean",
                "sum_sq_diff",
                "state.mean_grads",
                "state.sum_sq_diff_grads",
            ),
        )[:2]
        outputs = (
            new_mean,
            {"sum_sq_diff_grads": new_sum, "sample_size": batch_size * micro_step},
        )
        zeros = jax.tree.map(jnp.zeros_like, outputs)
        outputs = jax.tree.map(lambda x, z: jnp.where(done, x, z), outputs, zeros)
        kept = jax.tree.map(
            lambda x: jnp.where(done, jnp.zeros_like(x), x), (new_mean, new_sum)
        )
        new_state = PerElementMeanAndSumSqDiffGradsState(
            micro_step=jnp.where(done, 0, micro_step),
            ready=done,
            mean_grads=kept[0],
            sum_sq_diff_grads=kept[1],
        )
        return outputs, new_state


class PerElementMeanAndVarianceEMAState(eqx.Module):
    """State of `TrackPerElementMeanAndVarianceWithEMA`: the step count, the decay
    (kept for [`eqopt.experimental.aggregating.get_unbiased_mean_and_variance_ema`][]),
    and the moving averages of the mean and the variance of the per-element
    gradients."""

    count: Count
    ema_decay: Float[Array, ""]
    mean_grads_ema: Moments
    variance_grads_ema: Moments


class TrackPerElementMeanAndVarianceWithEMA(GradientTransformation):
    r"""Track moving averages of the mean and the variance of per-element gradients,
    passing the updates through unchanged.

    $$
    m_t = (1 - \beta)\, g_t + \beta\, m_{t-1}, \qquad
    v_t = (1 - \beta)\, \frac{S_t}{n_t - 1} + \beta\, v_{t-1},
    $$

    where $g_t$ is the (mean) update and $S_t$, $n_t$ the keyword arguments
    `sum_sq_diff_grads` and `sample_size` that
    [`eqopt.experimental.aggregating.get_per_element_mean_and_sum_sq_diff_grads`][]
    passes through [`eqopt.experimental.aggregating.process`][]. The debiased averages
    are [`eqopt.experimental.aggregating.get_unbiased_mean_and_variance_ema`][]`(state)`.

    Optax: `optax.experimental.aggregating.track_per_element_mean_and_variance_with_ema`.

    **Arguments:**

    - `ema_decay`: $\beta$, in $[0, 1)$.
    """

    ema_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)

    def __check_init__(self):
        check_hyperparameters(
            "track_per_element_mean_and_variance_with_ema", self, ema_decay=UNIT
        )

    def init(self, params: Params) -> PerElementMeanAndVarianceEMAState:
        return PerElementMeanAndVarianceEMAState(
            count=jnp.zeros([], jnp.int32),
            ema_decay=jnp.array(self.ema_decay),  # a copy: the state may be donated
            mean_grads_ema=zeros_like_params(params),
            variance_grads_ema=zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: PerElementMeanAndVarianceEMAState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, PerElementMeanAndVarianceEMAState]:
        missing = {"sum_sq_diff_grads", "sample_size"} - set(extra_args)
        if missing:
            raise TypeError(
                "`track_per_element_mean_and_variance_with_ema.update` needs the "
                f"keyword arguments {sorted(missing)}: use it as the postprocessor of "
                "`process(..., get_per_element_mean_and_sum_sq_diff_grads(...), ..., "
                "aggregator_has_aux=True)`, or `add_mean_variance_to_opt`."
            )
        decay = self.ema_decay
        scale = 1 / (extra_args["sample_size"] - 1)

        @no_type_check
        def rule(g, sum_sq_diff, mean_ema, variance_ema):
            mean_ema = (1.0 - decay) * g + decay * mean_ema
            variance_ema = (1.0 - decay) * (scale * sum_sq_diff) + decay * variance_ema
            return g, sum_sq_diff, mean_ema, variance_ema

        names = (
            "updates",
            "sum_sq_diff_grads",
            "state.mean_grads_ema",
            "state.variance_grads_ema",
        )
        _, _, mean_ema, variance_ema = map_leaves(
            rule,
            updates,
            extra_args["sum_sq_diff_grads"],
            state.mean_grads_ema,
            state.variance_grads_ema,
            names=names,
        )
        new_state = PerElementMeanAndVarianceEMAState(
            count=safe_increment(state.count),
            ema_decay=jnp.array(decay).astype(state.ema_decay.dtype),
            mean_grads_ema=mean_ema,
            variance_grads_ema=variance_ema,
        )
        return updates, new_state


def get_unbiased_mean_and_variance_ema(state: OptState) -> tuple[Updates, Updates]:
    r"""The debiased moving averages of the mean and the variance of per-element
    gradients, $m_t / (1 - \beta^t)$ and $v_t / (1 - \beta^t)$, from the
    `PerElementMeanAndVarianceEMAState` found in `state`.

    Optax: `optax.experimental.aggregating.get_unbiased_mean_and_variance_ema`.

    **Arguments:**

    - `state`: an optimiser state holding one `PerElementMeanAndVarianceEMAState`
        (the state of [`eqopt.experimental.aggregating.add_mean_variance_to_opt`][]).

    **Returns:**

    The debiased mean and variance, each with the structure of the parameters.

    **Raises:**

    `ValueError` if `state` holds no `PerElementMeanAndVarianceEMAState`.
    """
    found = tree_get(state, "PerElementMeanAndVarianceEMAState", None)
    if found is None:
        raise ValueError(
            "State must have PerElementMeanAndVarianceEMAState to compute unbiased"
            " mean and variance EMA."
        )
    decay = found.ema_decay
    correction = 1 - decay ** found.count.astype(decay.dtype)
    unbias = lambda tree: jax.tree.map(lambda x: x / correction, tree)  # noqa: E731
    return unbias(found.mean_grads_ema), unbias(found.variance_grads_ema)


class AddMeanVarianceToOpt(GradientTransformation):
    r"""An optimiser that takes per-element gradients, steps on their mean, and tracks
    moving averages of their mean and variance.

    The same as `process(identity(),
    get_per_element_mean_and_sum_sq_diff_grads(per_elt_axis, accumulation_steps),
    chain(track_per_element_mean_and_variance_with_ema(ema_decay), opt),
    aggregator_has_aux=True)` (its state is that process's), as Optax builds it. Read
    the statistics with
    [`eqopt.experimental.aggregating.get_unbiased_mean_and_variance_ema`][]`(state)`.
    It is an [`eqopt.experimental.aggregating.Aggregator`][].

    Optax: `optax.experimental.aggregating.add_mean_variance_to_opt`.

    **Arguments:**

    - `opt`: the optimiser to run on the mean gradient.
    - `ema_decay`: $\beta$, the decay of the moving averages, in $[0, 1)$.
    - `per_elt_axis`: the per-element axis (or axes).
    - `accumulation_steps`: the number of micro-batches per step of `opt`.
    """

    opt: GradientTransformation
    ema_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    per_elt_axis: int | tuple[int, ...] = eqx.field(
        static=True, converter=as_axes, default=0
    )
    accumulation_steps: int = eqx.field(static=True, default=1)
    is_aggregator = True

    def __check_init__(self):
        check_hyperparameters("add_mean_variance_to_opt", self, ema_decay=UNIT)
        check_accumulation_steps("add_mean_variance_to_opt", self.accumulation_steps)

    def as_process(self) -> Process:
        """The equivalent [`eqopt.experimental.aggregating.process`][]."""
        return Process(
            Identity(),
            PerElementMeanAndSumSqDiffGrads(self.per_elt_axis, self.accumulation_steps),
            Chain((TrackPerElementMeanAndVarianceWithEMA(self.ema_decay), self.opt)),
            aggregator_has_aux=True,
        )

    def init(self, params: Params) -> tuple[OptState, OptState, OptState]:
        return self.as_process().init(params)

    def update(
        self,
        updates: Updates,
        state: tuple[OptState, OptState, OptState],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, tuple[OptState, OptState, OptState]]:
        return self.as_process().update(updates, state, params, **extra_args)


get_per_element_mean_and_sum_sq_diff_grads = PerElementMeanAndSumSqDiffGrads
track_per_element_mean_and_variance_with_ema = TrackPerElementMeanAndVarianceWithEMA
add_mean_variance_to_opt = AddMeanVarianceToOpt

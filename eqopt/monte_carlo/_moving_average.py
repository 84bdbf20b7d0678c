r"""The moving-average baseline control variate."""

from collections.abc import Iterator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, Real

from .._checks import check_hyperparameters, UNIT
from .._hyperparams import as_scalar
from ._base import DistParams, Function
from ._control_variate import AbstractControlVariate
from ._validation import as_real_scalar


class MovingAverageBaselineState(eqx.Module):
    """State of [`eqopt.monte_carlo.MovingAverageBaseline`][]: the moving average and
    the number of updates so far.

    Like Optax's `(value, i)` tuple, it unpacks (`value, count = state`) and indexes
    (`state[0]`).
    """

    value: Float[Array, ""]
    count: Int[Array, ""]

    def __iter__(self) -> Iterator[Array]:
        return iter((self.value, self.count))

    def __getitem__(self, index: int) -> Array:
        return (self.value, self.count)[index]


def _as_state(
    state: MovingAverageBaselineState
    | tuple[Real[ArrayLike, ""], Real[ArrayLike, ""]]
    | None,
) -> MovingAverageBaselineState:
    """The state as a Module: Optax's `(value, i)` tuples and `None` (a fresh start)
    are accepted."""
    if state is None:
        state = (0.0, 0)
    if isinstance(state, MovingAverageBaselineState):
        return state
    value, count = state
    return MovingAverageBaselineState(
        value=as_scalar(value), count=jnp.asarray(count, jnp.int32)
    )


class MovingAverageBaseline(AbstractControlVariate):
    r"""A baseline: the control variate $h(x) = b$, a moving average of past values of
    $f$, whose expectation is $b$ itself.

    It changes only the score-function estimator, whose per-sample Jacobians become
    $(f(x) - b)\nabla_\theta \log p(x;\theta)$ (the pathwise and measure-valued
    estimators do not see a constant). `update_state` folds in the mean of $f$ over
    this step's samples:

    $$
    \begin{aligned}
    \beta_i &= \min\!\big(\beta, \tfrac{1 + i}{10 + i}\big)
        \quad(\text{with the early-training heuristic, else } \beta_i = \beta), \\
    b_{i+1} &= \beta_i\, b_i + (1 - \beta_i)\, \tfrac1N \textstyle\sum_n f(x_n), \\
    b_{i+1} &\leftarrow b_{i+1} / (1 - \beta_i^{\,i+1})
        \quad(\text{with zero-debiasing}).
    \end{aligned}
    $$

    !!! info

        This is Optax 0.2.6's rule, kept exactly: the debiasing divides the stored
        average itself (not a separate copy), at every step. The baseline is held
        constant (`stop_gradient`).

    Returned by [`eqopt.monte_carlo.moving_avg_baseline`][].

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar (a static field).
    - `decay`: $\beta$, in $[0, 1)$ (an array leaf).
    - `zero_debias`: whether to debias the average (a static field).
    - `use_decay_early_training_heuristic`: whether to use
        $\min(\beta, (1 + i)/(10 + i))$ early in training (a static field).
    """

    function: Function = eqx.field(static=True)
    decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    zero_debias: bool = eqx.field(static=True, default=True)
    use_decay_early_training_heuristic: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_hyperparameters("moving_avg_baseline", self, decay=UNIT)

    def init(self) -> MovingAverageBaselineState:
        return _as_state(None)

    def __call__(
        self, params: DistParams, sample: Float[Array, "..."], state: Any = None
    ) -> Float[Array, ""]:
        return _as_state(state).value

    def expected_value(self, params: DistParams, state: Any = None) -> Float[Array, ""]:
        return _as_state(state).value

    def update_state(
        self,
        params: DistParams,
        samples: Float[Array, "num_samples ..."],
        state: Any = None,
    ) -> MovingAverageBaselineState:
        state = _as_state(state)
        value = state.value
        values = jax.vmap(lambda x: as_real_scalar(self.function(x), value.dtype))(
            samples
        )
        dtype = jnp.promote_types(value.dtype, values.dtype)
        value, values = value.astype(dtype), values.astype(dtype)
        i = state.count.astype(dtype)
        decay = self.decay.astype(dtype)
        if self.use_decay_early_training_heuristic:
            decay = jnp.minimum(decay, (1 + i) / (10 + i))
        updated = decay * value + (1 - decay) * jnp.mean(values)
        if self.zero_debias:
            updated = updated / (1 - decay ** (i + 1))
        return MovingAverageBaselineState(
            value=jax.lax.stop_gradient(updated), count=state.count + 1
        )


def moving_avg_baseline(
    function: Function,
    decay: Real[ArrayLike, ""] = 0.99,
    zero_debias: bool = True,
    use_decay_early_training_heuristic: bool = True,
) -> MovingAverageBaseline:
    r"""A moving-average baseline control variate.

    It reduces the variance of the score-function estimator and has no effect on the
    pathwise or measure-valued estimators. See
    [`eqopt.monte_carlo.MovingAverageBaseline`][] for the update rule.

    Optax: `optax.monte_carlo.moving_avg_baseline` (Optax 0.2.6). As there, the result
    unpacks into three functions,
    `control_variate, expected_value, update_state = moving_avg_baseline(f)`, and the
    state may be given as Optax's `(value, i)` tuple; the state returned is a
    [`eqopt.monte_carlo.MovingAverageBaselineState`][], which unpacks like that tuple.
    A state of `None` starts from `(0.0, 0)`.

    **Arguments:**

    - `function`: $f$, mapping one sample to a scalar.
    - `decay`: the decay rate of the moving average, in $[0, 1)$.
    - `zero_debias`: whether to debias the moving average.
    - `use_decay_early_training_heuristic`: whether to override the decay early in
        training with $\min(\beta, (1 + i)/(10 + i))$, which stabilises training
        (adapted from TensorFlow).

    **Returns:**

    A [`eqopt.monte_carlo.MovingAverageBaseline`][].
    """
    return MovingAverageBaseline(
        function, decay, zero_debias, use_decay_early_training_heuristic
    )

"""Reduce a wrapped optimiser's learning rate itself when the loss plateaus."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._adapted import current_values, locate, substitute
from ._base import GradientTransformation
from ._custom_types import OptState, Params, Updates
from ._hyperparams import HYPERPARAMETER_DICT
from ._inject import _as_state_value
from ._transforms.plateau import ReduceLROnPlateauState, ReduceOnPlateau


class ReduceLearningRateOnPlateauState(eqx.Module):
    """State of [`eqopt.ReduceLearningRateOnPlateau`][].

    - `hyperparams`: the current learning rate (by name: `state.hyperparams
        ["learning_rate"]`), the one used at the last step. Replacing it (with
        `eqx.tree_at` or `eqopt.tree_utils.tree_set_hyperparams`) takes effect at the
        next step, and later reductions multiply the new value.
    - `plateau_state`: the plateau detector's state (best value, counters, scale).
    - `inner_state`: the wrapped optimiser's state.
    """

    hyperparams: dict[str, Array] = eqx.field(
        metadata={HYPERPARAMETER_DICT: _as_state_value}
    )
    plateau_state: ReduceLROnPlateauState
    inner_state: OptState


class ReduceLearningRateOnPlateau(GradientTransformation):
    r"""Multiply the wrapped optimiser's learning rate by `factor` when a monitored
    value stops improving: the learning rate itself changes, not the updates.

    `plateau` (an [`eqopt.contrib.reduce_on_plateau`][eqopt.contrib.ReduceOnPlateau])
    decides when: it averages `accumulation_size` values of the extra argument `value`,
    and after `patience` averages without improvement its scale drops by `factor`
    (then a `cooldown`). Each drop multiplies the current learning rate $\eta$ by the
    same factor, $\eta \leftarrow \eta\, s_t / s_{t-1}$, and the wrapped optimiser runs
    with it:

    ```python
    opt = eqopt.reduce_learning_rate_on_plateau(
        eqopt.adamw(1e-3), eqopt.contrib.reduce_on_plateau(factor=0.5, patience=5)
    )
    updates, state = opt.update(grads, state, params, value=loss)
    state.hyperparams["learning_rate"]            # the current learning rate
    ```

    Optax's `contrib.reduce_on_plateau`, chained after an optimiser, scales the updates
    instead. The two agree for optimisers whose update is proportional to the learning
    rate (SGD, Adam, AdamW, Lion...), and differ where the learning rate also enters
    the state (Schedule-Free's averaging weights, Prodigy's and D-Adaptation's distance
    estimates, `lookahead`'s slow weights). Here the learning rate is a number in the
    state: read, checkpointed, logged and changed like any leaf.

    **Arguments:**

    - `opt`: the optimiser whose learning rate is reduced.
    - `plateau`: the plateau detector (its `factor`, `patience`, `rtol`, `atol`,
        `cooldown`, `accumulation_size`, `min_scale`); the default is
        `eqopt.contrib.reduce_on_plateau()`.
    - `fields`: the names of the scalar hyperparameters reduced (every match in
        `opt`: all groups of a partition, for instance).
    """

    opt: GradientTransformation
    plateau: ReduceOnPlateau = ReduceOnPlateau()
    fields: tuple[str, ...] = eqx.field(
        static=True, default=("learning_rate",), converter=tuple
    )

    def __check_init__(self):
        locate(self.opt, self.fields, "reduce_learning_rate_on_plateau")

    def init(self, params: Params) -> ReduceLearningRateOnPlateauState:
        located = locate(self.opt, self.fields, "reduce_learning_rate_on_plateau")
        return ReduceLearningRateOnPlateauState(
            hyperparams=current_values(located),
            plateau_state=self.plateau.init(params),
            inner_state=self.opt.init(params),
        )

    def update(
        self,
        updates: Updates,
        state: ReduceLearningRateOnPlateauState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ReduceLearningRateOnPlateauState]:
        located = locate(self.opt, self.fields, "reduce_learning_rate_on_plateau")
        _, plateau_state = self.plateau.update({}, state.plateau_state, **extra_args)
        old, new = state.plateau_state.scale, plateau_state.scale
        ratio = jnp.where(old > 0, new / jnp.where(old > 0, old, 1), 1)
        values = {k: h * ratio.astype(h.dtype) for k, h in state.hyperparams.items()}
        opt = substitute(self.opt, located, values)
        updates, inner_state = opt.update(
            updates, state.inner_state, params, **extra_args
        )
        return updates, ReduceLearningRateOnPlateauState(
            values, plateau_state, inner_state
        )


reduce_learning_rate_on_plateau = ReduceLearningRateOnPlateau

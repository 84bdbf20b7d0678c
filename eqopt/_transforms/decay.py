"""Decoupled weight decay."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
from jaxtyping import Array, Float

from .._base import AbstractSchedule, EmptyState, GradientTransformation
from .._checks import is_known_zero
from .._custom_types import Params, Updates
from .._hyperparams import as_hyperparameter
from .._masking import freeze_mask, FrozenMask, mask_tree
from .._tree import cast_per_dtype, map_leaves, require_params, to_dtype, upcast
from .scaling import advance, current_value, ScaleByScheduleState, schedule_state


class AddDecayedWeights(GradientTransformation):
    r"""Add the parameters, scaled by the weight decay: $u \leftarrow g + \lambda\,\theta$.

    Followed by a learning rate, this is decoupled weight decay (AdamW).

    Optax: `optax.add_decayed_weights`.

    **Arguments:**

    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay: a pytree of bools with the structure of the
        parameters (or a prefix of it), or a function of the parameters returning one.
        `True` means decay. `None` decays every parameter.

    ??? cite "References"

        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    weight_decay: Float[Array, ""] | AbstractSchedule = eqx.field(
        converter=as_hyperparameter, default=0.0
    )
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def init(self, params: Params) -> ScaleByScheduleState | EmptyState:
        return schedule_state(self.weight_decay)

    def update(
        self,
        updates: Updates,
        state: ScaleByScheduleState | EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByScheduleState | EmptyState]:
        require_params("add_decayed_weights", params)
        if is_known_zero(self.weight_decay):
            # A weight decay of 0, closed over: no pass over the parameters (Optax skips
            # a Python 0.0 too). Traced (a jit argument, a hypergradient), it is kept.
            return updates, advance(state)
        weight_decay = current_value(self.weight_decay, state)
        decay_in = cast_per_dtype(weight_decay)

        @no_type_check
        def rule(g, p, decay_this):
            if not decay_this:
                return g, p, decay_this
            x = upcast(g)
            (decay,) = decay_in(x.dtype)
            u = x + decay * to_dtype(p, x.dtype)
            return to_dtype(u, g.dtype), p, decay_this

        names = ("updates", "params", "mask")
        masks = mask_tree(self.mask, params)
        updates = map_leaves(rule, updates, params, masks, names=names)[0]
        return updates, advance(state)


add_decayed_weights = AddDecayedWeights

# Optax's names for their (empty) states.
AddDecayedWeightsState = EmptyState

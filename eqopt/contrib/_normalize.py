"""`normalize`: divide the updates by their global norm (SAM's adversarial step)."""

from typing import Any, no_type_check

from .._base import EmptyState, GradientTransformation
from .._custom_types import Params, Updates
from .._numerics import safe_sqrt
from .._tree import global_norm_squared, map_leaves, to_dtype, upcast


#: The state of [`eqopt.contrib.normalize`][]: empty (Optax: `NormalizeState`, the
#: same class as `EmptyState`).
NormalizeState = EmptyState


class Normalize(GradientTransformation):
    r"""Divide the updates by their global norm: $u = g / \|g\|_2$.

    The norm is taken over every leaf together, in float32 (or wider); an all-zero $g$
    gives NaN, as in Optax. Used as SAM's adversarial direction:
    `chain(normalize(), sgd(rho))`.

    Optax: `optax.contrib.normalize`.

    ??? cite "References"

        Foret et al., *Sharpness-Aware Minimization for Efficiently Improving
        Generalization*, ICLR 2021.
    """

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        norm = safe_sqrt(global_norm_squared(updates))

        @no_type_check
        def rule(g):
            x = upcast(g)
            return (to_dtype(x / norm.astype(x.real.dtype), g.dtype),)

        return map_leaves(rule, updates)[0], state


normalize = Normalize

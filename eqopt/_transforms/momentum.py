"""Momentum."""

from typing import Any, no_type_check

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Moments, Params, Updates
from .._hyperparams import as_scalar
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast, zeros_like_params


class TraceState(eqx.Module):
    """State of `Trace`: the momentum buffer."""

    trace: Moments


class Trace(GradientTransformation):
    r"""Heavy-ball (or Nesterov) momentum.

    $$
    t_k = g_k + \mu\, t_{k-1}, \qquad u_k = t_k \quad\text{or, with Nesterov,}\quad
    u_k = g_k + \mu\, t_k.
    $$

    Optax: `optax.trace`.

    **Arguments:**

    - `decay`: $\mu$, the momentum coefficient.
    - `nesterov`: whether to use Nesterov momentum.
    - `accumulator_dtype`: dtype of the buffer; `None` uses each parameter's dtype.

    ??? cite "References"

        Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
        Sutskever et al., *On the importance of initialization and momentum in deep
        learning*, ICML 2013.
    """

    decay: Float[Array, ""] = eqx.field(converter=as_scalar)
    nesterov: bool = eqx.field(static=True, default=False)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters("trace", self, decay=NONNEGATIVE)

    def init(self, params: Params) -> TraceState:
        return TraceState(trace=zeros_like_params(params, self.accumulator_dtype))

    def update(
        self,
        updates: Updates,
        state: TraceState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, TraceState]:
        decay_in = cast_per_dtype(self.decay)

        @no_type_check
        def rule(g, t):
            x = upcast(g)
            (decay,) = decay_in(x.dtype)
            t_new = x + decay * to_dtype(t, x.dtype)
            u = x + decay * t_new if self.nesterov else t_new
            return to_dtype(u, g.dtype), to_dtype(t_new, t.dtype)

        names = ("updates", "state.trace")
        updates, trace = map_leaves(rule, updates, state.trace, names=names)
        return updates, TraceState(trace=trace)


trace = Trace

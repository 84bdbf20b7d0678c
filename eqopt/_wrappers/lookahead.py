"""Lookahead: fast weights that a slow copy pulls back every few steps."""

import warnings
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Count, OptState, Params, Updates
from .._hyperparams import as_scalar
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast
from ..tree_utils._arithmetic import tree_where


class LookaheadParams(eqx.Module):
    """The fast and slow parameters of [`eqopt.Lookahead`][].

    Compute gradients at `fast`; evaluate (and infer) with `slow`, which generalises
    better. `eqopt.apply_updates(params, updates)` updates both.

    Optax: `optax.LookaheadParams`.

    **Fields:**

    - `fast`: the fast parameters (take gradients here).
    - `slow`: the slow parameters (use them for evaluation).
    """

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> "LookaheadParams":
        """Fast and slow parameters both equal to `params`."""
        return cls(fast=params, slow=params)


class LookaheadState(eqx.Module):
    """State of `Lookahead`: the fast optimiser's state and the number of fast steps
    since the last synchronisation."""

    fast_state: OptState
    steps_since_sync: Count


@no_type_check
def _lookahead_rule(alpha, sync, u, u_again, fast, slow):
    r"""One leaf: with $d = \theta_f + u - \theta_s$, the slow update is
    $[\text{sync}]\,\alpha d$ and the fast one $u - [\text{sync}]\,(1 - \alpha) d$."""
    x = upcast(u)
    (a,) = alpha(x.dtype)
    difference = to_dtype(fast, x.dtype) + x - to_dtype(slow, x.dtype)
    zero = jnp.zeros_like(difference)
    slow_update = jnp.where(sync, a * difference, zero)
    fast_update = x - jnp.where(sync, (1 - a) * difference, zero)
    # `u` is passed twice so that a `None` update gives `None` for both outputs.
    return to_dtype(fast_update, u.dtype), to_dtype(slow_update, u.dtype), fast, slow


class Lookahead(GradientTransformation):
    r"""Lookahead: $k$ steps of a fast optimiser, then the slow weights move toward them.

    $$
    \theta_f \leftarrow \theta_f + T(g) \text{ at each step; every } k \text{ steps: }
    \theta_s \leftarrow \theta_s + \alpha (\theta_f - \theta_s), \quad
    \theta_f \leftarrow \theta_s.
    $$

    Parameters are [`eqopt.LookaheadParams`][] and updates are too: gradients are
    taken at `params.fast`, and the updates must be applied unmodified. Both steps of
    a synchronisation are merged into the one update, as in Optax.

    Optax: `optax.lookahead`.

    **Arguments:**

    - `fast_optimizer`: the inner optimiser $T$; its hyperparameters stay leaves.
    - `sync_period`: $k$, fast steps between synchronisations (at least 1, static).
    - `slow_step_size`: $\alpha$, the slow step size (a leaf).
    - `reset_state`: reset the fast optimiser's state at each synchronisation.

    ??? cite "References"

        Zhang, Lucas, Hinton and Ba, *Lookahead Optimizer: k steps forward, 1 step
        back*, NeurIPS 2019.
    """

    fast_optimizer: GradientTransformation
    sync_period: int = eqx.field(static=True)
    slow_step_size: Float[Array, ""] = eqx.field(converter=as_scalar)
    reset_state: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.sync_period < 1:
            raise ValueError(
                "`lookahead(sync_period=...)` must be at least 1; "
                f"got sync_period={self.sync_period}."
            )
        check_hyperparameters("lookahead", self, slow_step_size=NONNEGATIVE)

    def init(self, params: Params) -> LookaheadState:
        if isinstance(params, LookaheadParams):
            fast = params.fast
        else:  # as Optax: only the fast parameters were passed
            warnings.warn(
                "`lookahead.init` got parameters that are not `LookaheadParams`; "
                "continuing as if they were the fast parameters.",
                stacklevel=2,
            )
            fast = params
        return LookaheadState(
            fast_state=self.fast_optimizer.init(fast),
            steps_since_sync=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates: Updates,
        state: LookaheadState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[LookaheadParams, LookaheadState]:
        if not isinstance(params, LookaheadParams):
            raise ValueError(
                "`lookahead.update` needs `params`, a `LookaheadParams(fast, slow)`; "
                f"got {type(params).__name__}."
            )
        updates, fast_state = self.fast_optimizer.update(
            updates, state.fast_state, params.fast, **extra_args
        )
        sync = state.steps_since_sync == self.sync_period - 1
        alpha = cast_per_dtype(self.slow_step_size)
        fast_updates, slow_updates, _, _ = map_leaves(
            lambda *leaves: _lookahead_rule(alpha, sync, *leaves),
            updates,
            updates,
            params.fast,
            params.slow,
            names=("updates", "updates", "params.fast", "params.slow"),
        )
        if self.reset_state:
            fresh = self.fast_optimizer.init(params.fast)
            fast_state = tree_where(sync, fresh, fast_state)
        steps = (state.steps_since_sync + 1) % self.sync_period
        return LookaheadParams(fast=fast_updates, slow=slow_updates), LookaheadState(
            fast_state=fast_state, steps_since_sync=steps
        )


lookahead = Lookahead

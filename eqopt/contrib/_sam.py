"""SAM (sharpness-aware minimisation): adversarial steps, then an outer step."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp

from .._base import GradientTransformation
from .._checks import require_extra_arg
from .._custom_types import Count, OptState, Params, Updates
from .._hyperparams import warn_python_number_hyperparameters
from .._tree import (
    compute_dtype,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from .._update import apply_updates
from ..tree_utils._arithmetic import tree_where


class SAMState(eqx.Module):
    """State of [`eqopt.contrib.SAM`][]: Optax's fields.

    - `steps_since_sync`: adversarial steps taken since the last outer update.
    - `opt_state`: the outer optimiser's state.
    - `adv_state`: the adversarial optimiser's state.
    - `cache`: the outer parameters at the start of the cycle (`None` in opaque mode;
        zero until the first update, as `init` reads no parameter values).
    """

    steps_since_sync: Count
    opt_state: OptState
    adv_state: OptState
    cache: Params | None


@no_type_check
def _upcast(g: Any) -> tuple[Any]:
    return (upcast(g),)


@no_type_check
def _cast_like(u: Any, g: Any) -> tuple[Any, Any]:
    return to_dtype(u, g.dtype), g


@no_type_check
def _negate(u: Any) -> tuple[Any]:
    return (-u,)


@no_type_check
def _cache_rule(first: Any, p: Any, c: Any) -> Any:
    """The cycle's outer parameters: `p` at the first step of a cycle, else `c`."""
    if not (eqx.is_inexact_array(p) and eqx.is_array(c)):
        return c
    return jnp.where(first, to_dtype(p, c.dtype), c)


@no_type_check
def _transparent_rule(last, u_outer, u_adv, p, c):
    r"""One leaf: at the last step of a cycle, the outer step taken from the cycle's
    start, $c - \theta + u$; otherwise the adversarial step $-a$."""
    dtype = jnp.result_type(compute_dtype(u_outer), compute_dtype(p))
    outer = to_dtype(c, dtype) - to_dtype(p, dtype) + to_dtype(u_outer, dtype)
    adversarial = -to_dtype(u_adv, dtype)
    return (to_dtype(jnp.where(last, outer, adversarial), u_outer.dtype),)


class SAM(GradientTransformation):
    r"""SAM, sharpness-aware minimisation: adversarial steps, then an outer step.

    Each cycle of `sync_period` ($k$) calls takes $k - 1$ steps of the adversarial
    optimiser $A$ (ascent: its updates are negated), then one step of the outer
    optimiser $O$, with the last gradient, from the parameters the cycle started at:

    $$
    \theta^{(0)} = \theta_t, \quad
    \theta^{(i+1)} = \theta^{(i)} - A\big(\nabla f(\theta^{(i)})\big), \quad
    \theta_{t+1} = \theta_t + O\big(\nabla f(\theta^{(k-1)})\big).
    $$

    The paper's SAM is $k = 2$ with $A$ normalised gradient ascent of radius $\rho$:
    `sam(sgd(lr), chain(normalize(), sgd(rho)))`.

    In the default (transparent) mode each call takes one step of the cycle, and the
    caller sees the adversarial parameters. With `opaque_mode=True` each call runs
    the whole cycle, calling the extra argument `grad_fn(params, i)` for the
    gradient at the $i$-th adversarial point, and returns the outer update only (use
    it when anything else, BatchNorm statistics say, changes at each call):

    ```python
    updates, state = opt.update(grads, state, params, grad_fn=lambda p, i: grad(p))
    ```

    Optax: `optax.contrib.sam`. Both optimisers are Module fields, so their
    hyperparameters ($\rho$, learning rates) are leaves. Extra keyword arguments
    other than `grad_fn` are passed on to both optimisers. Differences: `init`
    reads no parameter values (the cache is zero until the first update), the
    state selections are `where`s (Optax's `c * x + (1 - c) * y` turns an infinite
    discarded value into NaN), and with `sync_period=1` the transparent mode is the
    outer optimiser, as the opaque mode is (Optax's transparent mode then steps
    from the previous parameters).

    **Arguments:**

    - `optimizer`: the outer optimiser $O$.
    - `adv_optimizer`: the adversarial optimiser $A$.
    - `sync_period`: $k \ge 1$, calls per cycle (static).
    - `reset_state`: whether to reset $A$'s state at the end of each cycle.
    - `opaque_mode`: whether each call runs the whole cycle (needs `grad_fn`).
    - `batch_axis_name`: in opaque mode, an axis name over which to `lax.pmean` the
        adversarial gradients (under `pmap`/`shard_map`), or `None`.

    ??? cite "References"

        Foret, Kleiner, Mobahi and Neyshabur, *Sharpness-Aware Minimization for
        Efficiently Improving Generalization*, ICLR 2021.
    """

    optimizer: GradientTransformation
    adv_optimizer: GradientTransformation
    sync_period: int = eqx.field(static=True, default=2)
    reset_state: bool = eqx.field(static=True, default=True)
    opaque_mode: bool = eqx.field(static=True, default=False)
    batch_axis_name: str | None = eqx.field(static=True, default=None)

    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    def __check_init__(self):
        if self.sync_period < 1:
            raise ValueError(
                "`sam(sync_period=...)` must be at least 1; "
                f"got sync_period={self.sync_period!r}."
            )

    def init(self, params: Params) -> SAMState:
        return SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=self.optimizer.init(params),
            adv_state=self.adv_optimizer.init(params),
            cache=None if self.opaque_mode else zeros_like_params(params),
        )

    def update(
        self,
        updates: Updates,
        state: SAMState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, SAMState]:
        require_params("sam", params)
        warn_python_number_hyperparameters(updates, sam=self)
        grad_fn = extra_args.pop("grad_fn", None)
        # Both optimisers compute in float32 (or wider): their updates are rounded to
        # the gradients' dtype once, at the end.
        (upcast_updates,) = map_leaves(_upcast, updates)
        if self.opaque_mode:
            require_extra_arg(
                "sam",
                "grad_fn",
                grad_fn,
                "`grad_fn(params, i)` returning the gradient at the i-th "
                "adversarial point (`opaque_mode=True`)",
            )
            new_updates, state = self._opaque_update(
                upcast_updates, state, params, grad_fn, extra_args
            )
        else:
            new_updates, state = self._transparent_update(
                upcast_updates, state, params, extra_args
            )
        new_updates, _ = map_leaves(_cast_like, new_updates, updates)
        return new_updates, state

    def _transparent_update(
        self, updates: Updates, state: SAMState, params: Params, extra_args: dict
    ) -> tuple[Updates, SAMState]:
        first = state.steps_since_sync == 0
        last = state.steps_since_sync == self.sync_period - 1
        adv_updates, adv_state = self.adv_optimizer.update(
            updates, state.adv_state, params, **extra_args
        )
        cache = jax.tree.map(
            lambda p, c: _cache_rule(first, p, c),
            params,
            state.cache,
            is_leaf=lambda x: x is None,
        )
        outer_updates, opt_state = self.optimizer.update(
            updates, state.opt_state, cache, **extra_args
        )
        (new_updates,) = map_leaves(
            lambda u, a, p, c: _transparent_rule(last, u, a, p, c),
            outer_updates,
            adv_updates,
            params,
            cache,
            names=("updates", "adversarial updates", "params", "state.cache"),
        )
        restart = self.adv_optimizer.init(params) if self.reset_state else None
        adv_state = tree_where(
            last, state.adv_state if restart is None else restart, adv_state
        )
        return new_updates, SAMState(
            steps_since_sync=(state.steps_since_sync + 1) % self.sync_period,
            opt_state=tree_where(last, opt_state, state.opt_state),
            adv_state=adv_state,
            cache=cache,
        )

    def _opaque_update(
        self,
        updates: Updates,
        state: SAMState,
        params: Params,
        grad_fn: Callable[[Params, int], Updates],
        extra_args: dict,
    ) -> tuple[Updates, SAMState]:
        adv_params, adv_updates, adv_state = params, updates, state.adv_state
        for i in range(self.sync_period - 1):
            adv_updates, adv_state = self.adv_optimizer.update(
                adv_updates, adv_state, adv_params, **extra_args
            )
            (adv_updates,) = map_leaves(_negate, adv_updates)
            adv_params = apply_updates(adv_params, adv_updates)
            (adv_updates,) = map_leaves(_upcast, grad_fn(adv_params, i))
            if self.batch_axis_name is not None:
                adv_updates = jax.lax.pmean(adv_updates, self.batch_axis_name)
        if self.reset_state:
            adv_state = self.adv_optimizer.init(params)
        updates, opt_state = self.optimizer.update(
            adv_updates, state.opt_state, params, **extra_args
        )
        return updates, SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=opt_state,
            adv_state=adv_state,
            cache=None,
        )


sam = SAM

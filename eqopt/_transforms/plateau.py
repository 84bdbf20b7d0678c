"""Reduce the learning rate when a monitored value stops improving."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._base import GradientTransformation
from .._checks import (
    check_hyperparameters,
    check_value,
    Interval,
    NONNEGATIVE,
    require_extra_arg,
)
from .._custom_types import Count, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import safe_increment
from .._tree import cast_per_dtype, float_dtype, map_leaves, to_dtype, upcast


@no_type_check
def as_count(x: Int[ArrayLike, ""]) -> Int[Array, ""]:
    """An integer setting (a number of steps) as an int32 array leaf: compared with the
    state's counters at run time, so changing it does not recompile."""
    return jnp.asarray(x, jnp.int32)


class ReduceLROnPlateauState(eqx.Module):
    """State of [`eqopt.contrib.ReduceOnPlateau`][]: Optax's fields.

    - `scale`: the current factor on the updates.
    - `best_value`: the best (accumulated) value seen.
    - `plateau_count`: accumulations without improvement since the last reset.
    - `cooldown_count`: accumulations left in the cooldown.
    - `count`: values accumulated so far in the current accumulation.
    - `avg_value`: their running mean.
    """

    scale: Float[Array, ""]
    best_value: Float[Array, ""]
    plateau_count: Count
    cooldown_count: Count
    count: Count
    avg_value: Float[Array, ""]


_FACTOR = Interval(0.0, 1.0, closed_low=False)
_RTOL = Interval(0.0, 1.0, closed_high=True)


class ReduceOnPlateau(GradientTransformation):
    r"""Scale the updates by a factor that drops when a monitored value plateaus.

    `update` takes the value (a loss, a validation metric) as the extra argument
    `value` and averages `accumulation_size` of them into $\bar v$. Then, with $b$ the
    best average so far, the average improves when

    $$
    \bar v < (1 - \text{rtol})\, b - \text{atol};
    $$

    after `patience` averages in a row without improvement the scale is multiplied
    by `factor` (down to `min_scale`), and the next `cooldown` averages are ignored.
    The updates are multiplied by the scale:
    `chain(adam(lr), reduce_on_plateau(...))`, and
    `opt.update(grads, state, params, value=loss)`.

    Optax: `optax.contrib.reduce_on_plateau`, with its state
    [`eqopt.contrib.ReduceLROnPlateauState`][]. `factor`, `rtol`, `atol` and
    `min_scale` are float leaves; `patience`, `cooldown` and `accumulation_size` are
    int32 leaves (changing them does not recompile). Unlike Optax's, `init` stores
    the scale and values in float32 or wider (Optax: bfloat16 for bfloat16
    parameters, where the scale $0.1$ is $0.10009765625$), and a missing `value` is a
    `ValueError` naming it.

    **Arguments:**

    - `factor`: the factor in $(0, 1)$ applied to the scale on a plateau.
    - `patience`: averages without improvement before the scale drops.
    - `rtol`: relative tolerance of an improvement, in $[0, 1]$.
    - `atol`: absolute tolerance of an improvement, $\ge 0$ (not both zero).
    - `cooldown`: averages ignored after each drop.
    - `accumulation_size`: values averaged before each comparison (1 for a
        validation value; more for noisy minibatch losses).
    - `min_scale`: the scale never drops below it.

    ??? cite "References"

        PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau`; Keras's
        `ReduceLROnPlateau` callback.
    """

    factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.1)
    patience: Int[Array, ""] = eqx.field(converter=as_count, default=10)
    rtol: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-4)
    atol: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    cooldown: Int[Array, ""] = eqx.field(converter=as_count, default=0)
    accumulation_size: Int[Array, ""] = eqx.field(converter=as_count, default=1)
    min_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)

    def __check_init__(self):
        owner = "reduce_on_plateau"
        check_hyperparameters(owner, self, factor=_FACTOR, rtol=_RTOL, atol=NONNEGATIVE)
        for name in ("patience", "cooldown"):
            check_value(owner, name, getattr(self, name), NONNEGATIVE)
        check_value(
            owner, "accumulation_size", self.accumulation_size, Interval(1, jnp.inf)
        )
        try:
            both_zero = float(self.rtol) == 0 and float(self.atol) == 0
        except (TypeError, ValueError):  # traced
            both_zero = False
        if both_zero:
            raise ValueError(
                "`reduce_on_plateau(rtol=..., atol=...)`: at least one must be "
                "positive; got rtol=0.0 and atol=0.0."
            )

    def init(self, params: Params) -> ReduceLROnPlateauState:
        low, high = float_dtype(params, "lowest"), float_dtype(params, "highest")
        return ReduceLROnPlateauState(
            scale=jnp.ones([], low),
            best_value=jnp.full([], jnp.inf, high),
            plateau_count=jnp.zeros([], jnp.int32),
            cooldown_count=jnp.zeros([], jnp.int32),
            count=jnp.zeros([], jnp.int32),
            avg_value=jnp.zeros([], high),
        )

    def update(
        self,
        updates: Updates,
        state: ReduceLROnPlateauState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ReduceLROnPlateauState]:
        value = extra_args.get("value")
        require_extra_arg(
            "reduce_on_plateau",
            "value",
            value,
            "the monitored value (a loss or a validation metric)",
        )
        dtype = state.avg_value.dtype
        count = safe_increment(state.count)
        avg = (
            state.count.astype(dtype) * state.avg_value + jnp.asarray(value, dtype)
        ) / count.astype(dtype)
        state = self._after_accumulation(
            count == self.accumulation_size, avg, count, state
        )
        scale = cast_per_dtype(state.scale)
        (updates,) = map_leaves(lambda g: _scale_rule(scale, g), updates)
        return updates, state

    def _after_accumulation(
        self,
        full: Any,
        avg: Array,
        count: Array,
        state: ReduceLROnPlateauState,
    ) -> ReduceLROnPlateauState:
        """The state after accumulating `avg`; where `full`, after comparing it with
        the best value and resetting the accumulation."""
        dtype = state.best_value.dtype
        rtol, atol = self.rtol.astype(dtype), self.atol.astype(dtype)
        improved = avg < (1 - rtol) * state.best_value - atol
        best = jnp.where(improved, avg, state.best_value)
        plateau = jnp.where(improved, 0, safe_increment(state.plateau_count))
        in_cooldown = state.cooldown_count > 0
        reduce = (plateau == self.patience) & ~in_cooldown
        scale_dtype = state.scale.dtype
        reduced = jnp.maximum(
            state.scale * self.factor.astype(scale_dtype),
            self.min_scale.astype(scale_dtype),
        )
        kept = jnp.maximum(state.scale, self.min_scale.astype(scale_dtype))
        scale = jnp.where(in_cooldown, state.scale, jnp.where(reduce, reduced, kept))
        plateau = jnp.where(in_cooldown | reduce, 0, plateau)
        cooldown = jnp.where(
            in_cooldown,
            state.cooldown_count - 1,
            jnp.where(reduce, self.cooldown, 0),
        )
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            scale=jnp.where(full, scale, state.scale),
            best_value=jnp.where(full, best, state.best_value),
            plateau_count=jnp.where(full, plateau, state.plateau_count).astype(
                jnp.int32
            ),
            cooldown_count=jnp.where(full, cooldown, state.cooldown_count).astype(
                jnp.int32
            ),
            count=jnp.where(full, zero, count),
            avg_value=jnp.where(full, jnp.zeros([], avg.dtype), avg),
        )


@no_type_check
def _scale_rule(scale, g):
    """`scale * g`, computed in float32 or wider."""
    x = upcast(g)
    (s,) = scale(x.dtype)
    return (to_dtype(s * x, g.dtype),)


reduce_on_plateau = ReduceOnPlateau

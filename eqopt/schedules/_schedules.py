"""Schedules as callable Modules: values are array leaves, step counts are static ints.

Float settings (`init_value`, `end_value`, `power`, `alpha`, `decay_rate`...) are leaves,
so a schedule can be vmapped over, differentiated and optimised. Step counts
(`transition_steps`, `decay_steps`, boundaries...) decide the shape of the schedule and
are static Python ints, checked at construction.
"""

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, check_steps, check_value, NONNEGATIVE
from .._custom_types import ScalarLike
from .._hyperparams import as_optional_scalar, as_scalar, as_schedule
from .._numerics import safe_pow


Count = Real[ArrayLike, "*batch"]
Value = Float[Array, "*batch"]


def _broadcast(value: Array, count: Count) -> Value:
    return jnp.broadcast_to(value, jnp.shape(count))


class ConstantSchedule(AbstractSchedule):
    r"""A constant: $\alpha(t) = v$. Optax: `optax.constant_schedule`.

    **Arguments:**

    - `value`: $v$.
    """

    value: Float[Array, ""] = eqx.field(converter=as_scalar)

    def __call__(self, count: Count) -> Value:
        return _broadcast(self.value, count)


class LinearSchedule(AbstractSchedule):
    r"""Linear interpolation from `init_value` to `end_value`.

    $$
    \alpha(t) = v_0 + (v_1 - v_0)\,\frac{\min(\max(t - b, 0), T)}{T}
    $$

    constant before $b$ = `transition_begin` and after $b + T$. With `transition_steps`
    $T \le 0$ the schedule is the constant $v_0$, as in Optax.

    Optax: `optax.linear_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `end_value`: $v_1$.
    - `transition_steps`: $T$, the length of the ramp.
    - `transition_begin`: $b$, the step at which it starts.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    end_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    transition_steps: int = eqx.field(static=True)
    transition_begin: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_steps("linear_schedule", transition_begin=self.transition_begin)

    def __call__(self, count: Count) -> Value:
        return _polynomial(self, 1, count)


class PolynomialSchedule(AbstractSchedule):
    r"""Polynomial decay from `init_value` to `end_value`.

    $$
    \alpha(t) = (v_0 - v_1)\left(1 - \frac{\min(\max(t - b, 0), T)}{T}\right)^p + v_1
    $$

    With $T \le 0$ the schedule is the constant $v_0$, as in Optax.
    Optax: `optax.polynomial_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `end_value`: $v_1$.
    - `power`: $p$.
    - `transition_steps`: $T$.
    - `transition_begin`: $b$.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    end_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    power: Float[Array, ""] = eqx.field(converter=as_scalar)
    transition_steps: int = eqx.field(static=True)
    transition_begin: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_steps("polynomial_schedule", transition_begin=self.transition_begin)

    def __call__(self, count: Count) -> Value:
        return _polynomial(self, self.power, count)


def _polynomial(
    schedule: LinearSchedule | PolynomialSchedule, power, count: Count
) -> Value:
    steps = schedule.transition_steps
    if steps <= 0:
        return _broadcast(schedule.init_value, count)
    with jax.numpy_dtype_promotion("standard"):  # explicit, whatever the config
        dtype = jnp.result_type(schedule.init_value, schedule.end_value)
    init, end = schedule.init_value.astype(dtype), schedule.end_value.astype(dtype)
    t = jnp.clip(jnp.asarray(count) - schedule.transition_begin, 0, steps)
    frac = 1 - t.astype(dtype) / steps
    decay = frac if isinstance(power, int) else safe_pow(frac, power.astype(dtype))
    return (init - end) * decay + end


class CosineDecaySchedule(AbstractSchedule):
    r"""Cosine decay from `init_value` to `alpha * init_value` over `decay_steps`.

    $$
    \alpha(t) = v_0\left((1 - a)\left(\tfrac12\left(1 + \cos\frac{\pi \min(t, T)}{T}
    \right)\right)^p + a\right)
    $$

    Optax: `optax.cosine_decay_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `decay_steps`: $T > 0$.
    - `alpha`: $a$, the final value as a fraction of $v_0$.
    - `exponent`: $p$.

    ??? cite "References"

        Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
        ICLR 2017.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    decay_steps: int = eqx.field(static=True)
    alpha: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    exponent: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)

    def __check_init__(self):
        if not self.decay_steps > 0:
            raise ValueError(
                "`cosine_decay_schedule(decay_steps=...)` must be a positive number of "
                f"steps; got decay_steps={self.decay_steps!r}."
            )

    def __call__(self, count: Count) -> Value:
        dtype = jnp.result_type(float)
        t = jnp.minimum(jnp.asarray(count).astype(dtype), float(self.decay_steps))
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / self.decay_steps))
        alpha = self.alpha.astype(cosine.dtype)
        decayed = (1 - alpha) * safe_pow(cosine, self.exponent.astype(dtype)) + alpha
        return self.init_value * decayed.astype(self.init_value.dtype)


class ExponentialDecay(AbstractSchedule):
    r"""Exponential decay: $\alpha(t) = v_0\, r^{(t - b)/T}$ for $t > b$, else $v_0$.

    With `staircase`, the exponent is rounded down to an integer. With `end_value`, the
    value is clipped to it (from below when $r < 1$, from above when $r > 1$). With
    $T \le 0$ or $r = 0$ the schedule is the constant $v_0$, as in Optax.

    Optax: `optax.exponential_decay`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `transition_steps`: $T$.
    - `decay_rate`: $r \ge 0$.
    - `transition_begin`: $b$.
    - `staircase`: whether to decay in discrete steps.
    - `end_value`: optional bound on the value.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    transition_steps: int = eqx.field(static=True)
    decay_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    transition_begin: int = eqx.field(static=True, default=0)
    staircase: bool = eqx.field(static=True, default=False)
    end_value: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )

    def __check_init__(self):
        check_steps("exponential_decay", transition_begin=self.transition_begin)
        check_hyperparameters("exponential_decay", self, decay_rate=NONNEGATIVE)

    def __call__(self, count: Count) -> Value:
        if self.transition_steps <= 0:
            return _broadcast(self.init_value, count)
        t = jnp.asarray(count) - self.transition_begin
        p = t / self.transition_steps
        if self.staircase:
            p = jnp.floor(p)
        rate = self.decay_rate
        is_zero = rate == 0
        rate = jnp.where(is_zero, 1, rate)  # r = 0 means "constant" (as in Optax)
        decayed = self.init_value * jnp.power(rate, p.astype(rate.dtype))
        value = jnp.where((t <= 0) | is_zero, self.init_value, decayed)
        if self.end_value is not None:
            end = self.end_value
            value = jnp.where(
                is_zero,
                value,
                jnp.where(rate < 1, jnp.maximum(value, end), jnp.minimum(value, end)),
            )
        return value


def _as_scales(
    boundaries_and_scales: Mapping[int, ScalarLike] | None,
) -> dict[int, Float[Array, ""]] | None:
    if boundaries_and_scales is None:
        return None
    return {int(b): as_scalar(s) for b, s in boundaries_and_scales.items()}


class PiecewiseConstantSchedule(AbstractSchedule):
    r"""A constant multiplied by `scale` at each boundary it passes.

    $\alpha(t) = v_0 \prod_{b_i \le t} s_i$.

    Optax: `optax.piecewise_constant_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `boundaries_and_scales`: a dict from boundary step $b_i$ (a static int) to scale
        $s_i \ge 0$ (a leaf).
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    boundaries_and_scales: dict[int, Float[Array, ""]] | None = eqx.field(
        converter=_as_scales, default=None
    )

    def __check_init__(self):
        for boundary, scale in (self.boundaries_and_scales or {}).items():
            name = f"boundaries_and_scales[{boundary}]"
            check_value("piecewise_constant_schedule", name, scale, NONNEGATIVE)

    def __call__(self, count: Count) -> Value:
        value = _broadcast(self.init_value, count)
        for boundary, scale in sorted((self.boundaries_and_scales or {}).items()):
            passed = jnp.asarray(count) >= boundary
            value = jnp.where(passed, value * scale.astype(value.dtype), value)
        return value


class WarmupCosineDecaySchedule(AbstractSchedule):
    r"""Linear warmup from `init_value` to `peak_value`, then cosine decay to `end_value`.

    $$
    \alpha(t) = \begin{cases}
      v_0 + (v_p - v_0)\, t / W & t < W \\
      v_e + (v_p - v_e) \left(\tfrac12\left(1 + \cos \frac{\pi \min(t - W, T - W)}{T - W}
      \right)\right)^p & t \ge W
    \end{cases}
    $$

    Optax: `optax.warmup_cosine_decay_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `peak_value`: $v_p$.
    - `warmup_steps`: $W$.
    - `decay_steps`: $T$, the total length *including* warmup; $T > W$.
    - `end_value`: $v_e$.
    - `exponent`: $p$.

    ??? cite "References"

        Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
        ICLR 2017.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    warmup_steps: int = eqx.field(static=True)
    decay_steps: int = eqx.field(static=True)
    end_value: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    exponent: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)

    def __check_init__(self):
        check_steps("warmup_cosine_decay_schedule", warmup_steps=self.warmup_steps)
        if not self.decay_steps > self.warmup_steps:
            raise ValueError(
                "`warmup_cosine_decay_schedule(decay_steps=...)` counts the warmup too, "
                "so it must exceed `warmup_steps`; got "
                f"decay_steps={self.decay_steps!r}, warmup_steps={self.warmup_steps!r}."
            )

    def __call__(self, count: Count) -> Value:
        peak = self.peak_value
        is_zero = peak == 0
        alpha = jnp.where(is_zero, 0, self.end_value / jnp.where(is_zero, 1, peak))
        warmup = LinearSchedule(self.init_value, peak, self.warmup_steps)
        decay = CosineDecaySchedule(
            peak, self.decay_steps - self.warmup_steps, alpha, self.exponent
        )
        return JoinSchedules((warmup, decay), (self.warmup_steps,))(count)


def _as_schedules(
    schedules: Sequence[AbstractSchedule | Callable],
) -> tuple[AbstractSchedule, ...]:
    return tuple(as_schedule(s) for s in schedules)


class JoinSchedules(AbstractSchedule):
    r"""Run `schedules[i]` from `boundaries[i - 1]` on, with its count restarted at zero.

    $\alpha(t) = \alpha_i(t - b_{i-1})$ for $b_{i-1} \le t < b_i$.

    Optax: `optax.join_schedules`.

    **Arguments:**

    - `schedules`: the schedules (Modules, or functions of the step).
    - `boundaries`: the steps at which each next schedule takes over (static ints).
    """

    schedules: tuple[AbstractSchedule, ...] = eqx.field(converter=_as_schedules)
    boundaries: tuple[int, ...] = eqx.field(static=True, converter=tuple)

    def __check_init__(self):
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                "`join_schedules` needs one boundary fewer than schedules; got "
                f"{len(self.schedules)} schedules and boundaries={self.boundaries!r}."
            )

    def __call__(self, count: Count) -> Value:
        count = jnp.asarray(count)
        value = self.schedules[0](count)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            value = jnp.where(count < boundary, value, schedule(count - boundary))
        return value


constant_schedule = ConstantSchedule
linear_schedule = LinearSchedule
polynomial_schedule = PolynomialSchedule
cosine_decay_schedule = CosineDecaySchedule
exponential_decay = ExponentialDecay
piecewise_constant_schedule = PiecewiseConstantSchedule
warmup_cosine_decay_schedule = WarmupCosineDecaySchedule
join_schedules = JoinSchedules

"""Piecewise interpolated schedules, and the one-cycle schedules built from them.

The value at each boundary is the running product of the scales; between two
boundaries it moves from one such value to the next, linearly or along half a cosine.
Boundaries (and the fractions `pct_start`, `pct_final` that place them) decide the
schedule's shape and are static; the values and factors are leaves.
"""

from collections.abc import Mapping
from typing import no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._base import AbstractSchedule
from .._checks import (
    check_hyperparameters,
    check_value,
    Interval,
    NONNEGATIVE,
    POSITIVE,
)
from .._hyperparams import as_scalar
from ._schedules import _as_scales, Count, Value


_INTERPOLATE_TYPES = ("linear", "cosine")


@no_type_check
def _linear(start: Array, end: Array, pct: Array) -> Array:
    return (end - start) * pct + start


@no_type_check
def _cosine(start: Array, end: Array, pct: Array) -> Array:
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)


@no_type_check
def _piecewise_interpolate(
    interpolate_type: str,
    init_value: Array,
    boundaries_and_scales: Mapping[int, Array],
    count: Count,
) -> Value:
    r"""The value at `count`: $v_i = v_0 \prod_{j \le i} s_j$ at boundary $b_i$,
    interpolated in between, $0$ before step $0$, $v_n$ from the last boundary on."""
    interpolate = _linear if interpolate_type == "linear" else _cosine
    items = sorted(boundaries_and_scales.items())
    scales = [scale for _, scale in items]
    with jax.numpy_dtype_promotion("standard"):  # explicit, whatever the config
        dtype = jnp.result_type(init_value, *scales)
    values = jnp.cumprod(jnp.stack([x.astype(dtype) for x in (init_value, *scales)]))
    t = jnp.reshape(count, (-1, 1))  # each count (a row) against every interval
    bounds = np.asarray([[0] + [boundary for boundary, _ in items]], t.dtype)
    starts, ends = bounds[:, :-1], bounds[:, 1:]
    sizes = np.maximum(ends - starts, 1)
    inside = (starts <= t) & (t < ends)
    pct = (t - starts).astype(dtype) / sizes.astype(dtype)
    interpolated = interpolate(values[None, :-1], values[None, 1:], pct)
    between = jnp.sum(jnp.where(inside, interpolated, 0), axis=1)
    after = jnp.where(t[:, 0] >= bounds[0, -1], values[-1], 0)
    return jnp.reshape(between + after, jnp.shape(count))


class PiecewiseInterpolateSchedule(AbstractSchedule):
    r"""Interpolate between values that are scaled at each boundary.

    With boundaries $0 = b_0 < b_1 < \dots < b_n$ and scales $s_i$, the value at
    $b_i$ is $v_i = v_0 \prod_{j=1}^{i} s_j$ and in between

    $$
    \alpha(t) = \begin{cases}
      v_{i-1} + (v_i - v_{i-1})\, \tau & \text{linear} \\
      v_i + \tfrac12 (v_{i-1} - v_i) (1 + \cos \pi\tau) & \text{cosine}
    \end{cases}
    \qquad \tau = \frac{t - b_{i-1}}{b_i - b_{i-1}}
    $$

    for $b_{i-1} \le t < b_i$; $\alpha(t) = v_n$ for $t \ge b_n$ (and $0$ for
    $t < 0$, as in Optax). Note that the scales multiply: the values interpolated are
    the running products, not the scales themselves.

    Optax: `optax.piecewise_interpolate_schedule`.

    **Arguments:**

    - `interpolate_type`: `"linear"` or `"cosine"`.
    - `init_value`: $v_0$.
    - `boundaries_and_scales`: a dict from boundary step $b_i$ (a static int) to scale
        $s_i \ge 0$ (a leaf).
    """

    interpolate_type: str = eqx.field(static=True)
    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    boundaries_and_scales: dict[int, Float[Array, ""]] | None = eqx.field(
        converter=_as_scales, default=None
    )

    def __check_init__(self):
        if self.interpolate_type not in _INTERPOLATE_TYPES:
            raise ValueError(
                "`piecewise_interpolate_schedule(interpolate_type=...)` must be "
                f"'linear' or 'cosine'; got interpolate_type={self.interpolate_type!r}."
            )
        for boundary, scale in (self.boundaries_and_scales or {}).items():
            name = f"boundaries_and_scales[{boundary}]"
            check_value("piecewise_interpolate_schedule", name, scale, NONNEGATIVE)

    def __call__(self, count: Count) -> Value:
        return _piecewise_interpolate(
            self.interpolate_type,
            self.init_value,
            self.boundaries_and_scales or {},
            count,
        )


@no_type_check
def _check_onecycle(owner: str, schedule, **fractions: float) -> None:
    """Range checks shared by both one-cycle schedules."""
    if not schedule.transition_steps > 0:
        raise ValueError(
            f"`{owner}(transition_steps=...)` must be a positive number of steps; "
            f"got transition_steps={schedule.transition_steps!r}."
        )
    low = 0.0
    for name, fraction in fractions.items():  # in [0, 1] and in increasing order
        check_value(
            owner, name, np.asarray(fraction), Interval(low, 1.0, closed_high=True)
        )
        low = fraction
    check_hyperparameters(
        owner, schedule, div_factor=POSITIVE, final_div_factor=POSITIVE
    )


class LinearOnecycleSchedule(AbstractSchedule):
    r"""The one-cycle schedule with three linear phases.

    With $T$ = `transition_steps`, $v_p$ = `peak_value`, $d$ = `div_factor` and
    $d_f$ = `final_div_factor`, the value rises linearly from $v_p / d$ to $v_p$ over
    the first `pct_start` of the $T$ steps, falls linearly back to $v_p / d$ by
    `pct_final` of them, then falls linearly to $v_p / (d\, d_f)$ at step $T$, where
    it stays. It is a [`eqopt.schedules.PiecewiseInterpolateSchedule`][] with
    boundaries $\lfloor p_s T \rfloor$, $\lfloor p_f T \rfloor$, $T$ and scales
    $d$, $1/d$, $1/d_f$.

    Optax: `optax.linear_onecycle_schedule`.

    **Arguments:**

    - `transition_steps`: $T > 0$.
    - `peak_value`: $v_p$.
    - `pct_start`: $p_s \in [0, 1]$, the fraction of the steps spent rising (static).
    - `pct_final`: $p_f \in [p_s, 1]$, the fraction after which the last phase begins
        (static).
    - `div_factor`: $d > 0$.
    - `final_div_factor`: $d_f > 0$.

    ??? cite "References"

        Smith and Topin, *Super-Convergence: Very Fast Training of Neural Networks
        Using Large Learning Rates*, 2017, arXiv:1708.07120.
    """

    transition_steps: int = eqx.field(static=True)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    pct_start: float = eqx.field(static=True, default=0.3)
    pct_final: float = eqx.field(static=True, default=0.85)
    div_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=25.0)
    final_div_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e4)

    def __check_init__(self):
        _check_onecycle(
            "linear_onecycle_schedule",
            self,
            pct_start=self.pct_start,
            pct_final=self.pct_final,
        )

    def __call__(self, count: Count) -> Value:
        steps, d = self.transition_steps, self.div_factor
        boundaries_and_scales = {  # a dict literal: a repeated boundary keeps its last
            int(self.pct_start * steps): d,
            int(self.pct_final * steps): 1.0 / d,
            steps: 1.0 / self.final_div_factor,
        }
        init_value = self.peak_value / d
        return _piecewise_interpolate(
            "linear", init_value, boundaries_and_scales, count
        )


class CosineOnecycleSchedule(AbstractSchedule):
    r"""The one-cycle schedule with two cosine phases.

    With $T$ = `transition_steps`, $v_p$ = `peak_value`, $d$ = `div_factor` and
    $d_f$ = `final_div_factor`, the value rises along half a cosine from $v_p / d$ to
    $v_p$ over the first `pct_start` of the $T$ steps, then falls along half a cosine
    to $v_p / (d\, d_f)$ at step $T$, where it stays. It is a
    [`eqopt.schedules.PiecewiseInterpolateSchedule`][] with boundaries
    $\lfloor p_s T \rfloor$, $T$ and scales $d$, $1/(d\, d_f)$.

    Optax: `optax.cosine_onecycle_schedule`.

    **Arguments:**

    - `transition_steps`: $T > 0$.
    - `peak_value`: $v_p$.
    - `pct_start`: $p_s \in [0, 1]$, the fraction of the steps spent rising (static).
    - `div_factor`: $d > 0$.
    - `final_div_factor`: $d_f > 0$.

    ??? cite "References"

        Smith and Topin, *Super-Convergence: Very Fast Training of Neural Networks
        Using Large Learning Rates*, 2017, arXiv:1708.07120.
    """

    transition_steps: int = eqx.field(static=True)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    pct_start: float = eqx.field(static=True, default=0.3)
    div_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=25.0)
    final_div_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e4)

    def __check_init__(self):
        _check_onecycle("cosine_onecycle_schedule", self, pct_start=self.pct_start)

    def __call__(self, count: Count) -> Value:
        steps, d = self.transition_steps, self.div_factor
        boundaries_and_scales = {
            int(self.pct_start * steps): d,
            steps: 1.0 / (d * self.final_div_factor),
        }
        init_value = self.peak_value / d
        return _piecewise_interpolate(
            "cosine", init_value, boundaries_and_scales, count
        )


piecewise_interpolate_schedule = PiecewiseInterpolateSchedule
linear_onecycle_schedule = LinearOnecycleSchedule
cosine_onecycle_schedule = CosineOnecycleSchedule

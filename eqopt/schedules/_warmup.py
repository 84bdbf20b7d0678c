"""Schedules that warm up linearly, then hold or decay, and SGDR's warm restarts.

Each is a join of the schedules in `_schedules.py`, built from this Module's leaves when
called, so that its fields are named like Optax's arguments and stay leaves.
"""

from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, check_steps, NONNEGATIVE
from .._hyperparams import as_optional_scalar, as_scalar
from ._schedules import (
    Count,
    ExponentialDecay,
    JoinSchedules,
    LinearSchedule,
    Value,
    WarmupCosineDecaySchedule,
)


class WarmupConstantSchedule(AbstractSchedule):
    r"""Linear warmup from `init_value` to `peak_value`, then constant.

    $$
    \alpha(t) = v_0 + (v_p - v_0)\, \frac{\min(t, W)}{W}
    $$

    With $W = 0$ the schedule is the constant $v_0$, as in Optax (whose
    `linear_schedule` it is).

    Optax: `optax.warmup_constant_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `peak_value`: $v_p$.
    - `warmup_steps`: $W \ge 0$.
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    warmup_steps: int = eqx.field(static=True)

    def __check_init__(self):
        check_steps("warmup_constant_schedule", warmup_steps=self.warmup_steps)

    def __call__(self, count: Count) -> Value:
        return LinearSchedule(self.init_value, self.peak_value, self.warmup_steps)(
            count
        )


class WarmupExponentialDecaySchedule(AbstractSchedule):
    r"""Linear warmup from `init_value` to `peak_value`, then exponential decay.

    $$
    \alpha(t) = \begin{cases}
      v_0 + (v_p - v_0)\, t / W & t < W \\
      v_p\, r^{(t - W - b)/T} & t \ge W
    \end{cases}
    $$

    where the second phase is [`eqopt.schedules.ExponentialDecay`][] (constant $v_p$
    until $W + b$, rounded exponent with `staircase`, bounded by `end_value`).

    Optax: `optax.warmup_exponential_decay_schedule`.

    **Arguments:**

    - `init_value`: $v_0$.
    - `peak_value`: $v_p$.
    - `warmup_steps`: $W \ge 0$.
    - `transition_steps`: $T$.
    - `decay_rate`: $r \ge 0$.
    - `transition_begin`: $b \ge 0$, counted from the end of the warmup.
    - `staircase`: whether to decay in discrete steps.
    - `end_value`: optional bound on the value (from below when $r < 1$, from above
        when $r > 1$).
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    warmup_steps: int = eqx.field(static=True)
    transition_steps: int = eqx.field(static=True)
    decay_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    transition_begin: int = eqx.field(static=True, default=0)
    staircase: bool = eqx.field(static=True, default=False)
    end_value: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )

    def __check_init__(self):
        owner = "warmup_exponential_decay_schedule"
        check_steps(
            owner,
            warmup_steps=self.warmup_steps,
            transition_begin=self.transition_begin,
        )
        check_hyperparameters(owner, self, decay_rate=NONNEGATIVE)

    def __call__(self, count: Count) -> Value:
        warmup = LinearSchedule(self.init_value, self.peak_value, self.warmup_steps)
        decay = ExponentialDecay(
            self.peak_value,
            self.transition_steps,
            self.decay_rate,
            self.transition_begin,
            self.staircase,
            self.end_value,
        )
        return JoinSchedules((warmup, decay), (self.warmup_steps,))(count)


class SGDRSchedule(AbstractSchedule):
    r"""Stochastic gradient descent with warm restarts: warmup-cosine cycles in turn.

    Cycle $k$ is a [`eqopt.schedules.WarmupCosineDecaySchedule`][] of length $T_k$
    (its `decay_steps`, warmup included), run from step $T_1 + \dots + T_{k-1}$ with its
    count restarted at zero; the last cycle holds its end value afterwards.

    Optax: `optax.sgdr_schedule` (built by [`eqopt.schedules.sgdr_schedule`][] from
    Optax's list of keyword-argument dicts).

    **Arguments:**

    - `cycles`: the cycles, at least one. Change a value with
        `eqx.tree_at(lambda s: s.cycles[1].peak_value, schedule, new)`.

    ??? cite "References"

        Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
        ICLR 2017.
    """

    cycles: tuple[WarmupCosineDecaySchedule, ...] = eqx.field(converter=tuple)

    def __check_init__(self):
        if not self.cycles:
            raise ValueError(
                "`sgdr_schedule(cosine_kwargs=...)` needs at least one cycle; got "
                "cosine_kwargs=[] (cycles=())."
            )

    def __call__(self, count: Count) -> Value:
        ends = accumulate(cycle.decay_steps for cycle in self.cycles)
        return JoinSchedules(self.cycles, tuple(ends)[:-1])(count)


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> SGDRSchedule:
    r"""SGDR from Optax's arguments: one warmup-cosine cycle per dict of keyword
    arguments.

    Optax: `optax.sgdr_schedule`.

    **Arguments:**

    - `cosine_kwargs`: for each cycle, the keyword arguments of
        [`eqopt.schedules.WarmupCosineDecaySchedule`][] (`init_value`, `peak_value`,
        `warmup_steps`, `decay_steps`, and optionally `end_value`, `exponent`).

    **Returns:**

    An [`eqopt.schedules.SGDRSchedule`][].
    """
    return SGDRSchedule(
        tuple(WarmupCosineDecaySchedule(**kwargs) for kwargs in cosine_kwargs)
    )


warmup_constant_schedule = WarmupConstantSchedule
warmup_exponential_decay_schedule = WarmupExponentialDecaySchedule

"""Schedules: callable Modules mapping a step count to a value (Optax: `optax.schedules`)."""

from .._base import (
    AbstractSchedule as AbstractSchedule,
    FunctionSchedule as FunctionSchedule,
)
from .._custom_types import (
    Schedule as Schedule,
)
from .._inject import (
    inject_hyperparams as inject_hyperparams,
    inject_stateful_hyperparams as inject_stateful_hyperparams,
    InjectHyperparams as InjectHyperparams,
    InjectHyperparamsState as InjectHyperparamsState,
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
    StatefulSchedule as StatefulSchedule,
    WrappedSchedule as WrappedSchedule,
    WrappedScheduleState as WrappedScheduleState,
)
from ._onecycle import (
    cosine_onecycle_schedule as cosine_onecycle_schedule,
    CosineOnecycleSchedule as CosineOnecycleSchedule,
    linear_onecycle_schedule as linear_onecycle_schedule,
    LinearOnecycleSchedule as LinearOnecycleSchedule,
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
    PiecewiseInterpolateSchedule as PiecewiseInterpolateSchedule,
)
from ._schedules import (
    constant_schedule as constant_schedule,
    ConstantSchedule as ConstantSchedule,
    cosine_decay_schedule as cosine_decay_schedule,
    CosineDecaySchedule as CosineDecaySchedule,
    exponential_decay as exponential_decay,
    ExponentialDecay as ExponentialDecay,
    join_schedules as join_schedules,
    JoinSchedules as JoinSchedules,
    linear_schedule as linear_schedule,
    LinearSchedule as LinearSchedule,
    piecewise_constant_schedule as piecewise_constant_schedule,
    PiecewiseConstantSchedule as PiecewiseConstantSchedule,
    polynomial_schedule as polynomial_schedule,
    PolynomialSchedule as PolynomialSchedule,
    warmup_cosine_decay_schedule as warmup_cosine_decay_schedule,
    WarmupCosineDecaySchedule as WarmupCosineDecaySchedule,
)
from ._warmup import (
    sgdr_schedule as sgdr_schedule,
    SGDRSchedule as SGDRSchedule,
    warmup_constant_schedule as warmup_constant_schedule,
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
    WarmupConstantSchedule as WarmupConstantSchedule,
    WarmupExponentialDecaySchedule as WarmupExponentialDecaySchedule,
)
from ._wsd import (
    warmup_stable_decay_schedule as warmup_stable_decay_schedule,
    WarmupStableDecaySchedule as WarmupStableDecaySchedule,
)

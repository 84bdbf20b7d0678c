"""Wrappers: transformations that hold another transformation."""

from .ema_params import (
    ema_params as ema_params,
    ema_params_of as ema_params_of,
    EmaParams as EmaParams,
    EmaParamsState as EmaParamsState,
)
from .finite import (
    apply_if_finite as apply_if_finite,
    ApplyIfFinite as ApplyIfFinite,
    ApplyIfFiniteState as ApplyIfFiniteState,
    skip_large_updates as skip_large_updates,
    skip_not_finite as skip_not_finite,
)
from .flatten import Flatten as Flatten, flatten as flatten
from .lookahead import (
    Lookahead as Lookahead,
    lookahead as lookahead,
    LookaheadParams as LookaheadParams,
    LookaheadState as LookaheadState,
)
from .monitor import (
    measure_with_ema as measure_with_ema,
    MeasureWithEMA as MeasureWithEMA,
    Monitor as Monitor,
    monitor as monitor,
    MonitorState as MonitorState,
    Snapshot as Snapshot,
    snapshot as snapshot,
    SnapshotState as SnapshotState,
)
from .multi_steps import (
    apply_every as apply_every,
    ApplyEvery as ApplyEvery,
    ApplyEveryK as ApplyEveryK,
    MultiSteps as MultiSteps,
    MultiStepsState as MultiStepsState,
    ShouldSkipUpdateFunction as ShouldSkipUpdateFunction,
)
from .stateless import (
    Stateless as Stateless,
    stateless as stateless,
    stateless_with_tree_map as stateless_with_tree_map,
    StatelessWithTreeMap as StatelessWithTreeMap,
    with_extra_args_support as with_extra_args_support,
)

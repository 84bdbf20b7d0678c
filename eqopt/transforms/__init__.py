"""Gradient transformations, as in `optax.transforms`; re-exports only.

Every name here is also at the top level (`eqopt.transforms.clip is eqopt.clip`).
"""

from .._combine import (
    chain as chain,
    named_chain as named_chain,
)
from .._conditional import (
    conditionally_mask as conditionally_mask,
    conditionally_transform as conditionally_transform,
    ConditionallyMaskState as ConditionallyMaskState,
    ConditionallyTransformState as ConditionallyTransformState,
)
from .._masked import (
    freeze as freeze,
    masked as masked,
    MaskedNode as MaskedNode,
    MaskedState as MaskedState,
)
from .._partition import (
    partition as partition,
    PartitionState as PartitionState,
    selective_transform as selective_transform,
)
from .._transforms.clipping import (
    clip as clip,
    clip_by_global_norm as clip_by_global_norm,
)
from .._transforms.clipping_per import (
    adaptive_grad_clip as adaptive_grad_clip,
    clip_by_block_rms as clip_by_block_rms,
    per_example_global_norm_clip as per_example_global_norm_clip,
    per_example_layer_norm_clip as per_example_layer_norm_clip,
    unitwise_clip as unitwise_clip,
    unitwise_norm as unitwise_norm,
)
from .._transforms.decay import (
    add_decayed_weights as add_decayed_weights,
)
from .._transforms.misc import (
    ema as ema,
    EmaState as EmaState,
    keep_params_nonnegative as keep_params_nonnegative,
    NonNegativeParamsState as NonNegativeParamsState,
    zero_nans as zero_nans,
    ZeroNansState as ZeroNansState,
)
from .._transforms.momentum import (
    trace as trace,
    TraceState as TraceState,
)
from .._transforms.noise import (
    add_noise as add_noise,
    AddNoiseState as AddNoiseState,
)
from .._wrappers import (
    apply_if_finite as apply_if_finite,
    ApplyIfFiniteState as ApplyIfFiniteState,
    flatten as flatten,
    measure_with_ema as measure_with_ema,
    monitor as monitor,
    MonitorState as MonitorState,
    MultiSteps as MultiSteps,
    MultiStepsState as MultiStepsState,
    ShouldSkipUpdateFunction as ShouldSkipUpdateFunction,
    skip_large_updates as skip_large_updates,
    skip_not_finite as skip_not_finite,
    snapshot as snapshot,
    SnapshotState as SnapshotState,
)

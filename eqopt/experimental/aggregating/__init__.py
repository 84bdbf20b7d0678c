"""Per-example gradient aggregation: Optax's `optax.experimental.aggregating`.

Aggregators take per-element updates (every leaf with a leading batch axis, from
`jax.vmap(jax.grad(loss), (None, 0))`) and return one update with the shapes of the
parameters; `process` runs one between a preprocessing and a postprocessing
transformation. Each is a Module, its float hyperparameters leaves.
"""

from ._aggregator import (
    AggregatedUpdates as AggregatedUpdates,
    Aggregator as Aggregator,
    AggregatorUpdateFn as AggregatorUpdateFn,
    MaybeAxis as MaybeAxis,
    PerElementUpdates as PerElementUpdates,
    Process as Process,
    process as process,
)
from ._averaging import (
    accumulate_avg_updates as accumulate_avg_updates,
    AccumulateAvgUpdates as AccumulateAvgUpdates,
    AccumulateAvgUpdatesState as AccumulateAvgUpdatesState,
    average_incrementally_updates as average_incrementally_updates,
    average_per_element_updates as average_per_element_updates,
    AverageIncrementallyUpdates as AverageIncrementallyUpdates,
    AveragePerElementUpdates as AveragePerElementUpdates,
)
from ._mean_variance import (
    add_mean_variance_to_opt as add_mean_variance_to_opt,
    AddMeanVarianceToOpt as AddMeanVarianceToOpt,
    get_batch_size_from_per_elt_updates as get_batch_size_from_per_elt_updates,
    get_per_element_mean_and_sum_sq_diff_grads as get_per_element_mean_and_sum_sq_diff_grads,
    get_unbiased_mean_and_variance_ema as get_unbiased_mean_and_variance_ema,
    PerElementMeanAndSumSqDiffGrads as PerElementMeanAndSumSqDiffGrads,
    PerElementMeanAndSumSqDiffGradsState as PerElementMeanAndSumSqDiffGradsState,
    PerElementMeanAndVarianceEMAState as PerElementMeanAndVarianceEMAState,
    track_per_element_mean_and_variance_with_ema as track_per_element_mean_and_variance_with_ema,
    TrackPerElementMeanAndVarianceWithEMA as TrackPerElementMeanAndVarianceWithEMA,
)

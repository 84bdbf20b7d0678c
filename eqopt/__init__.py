"""eqopt: gradient processing and optimisation for JAX, as Equinox Modules.

Every public `init`, `update` and schedule call is checked at trace time with jaxtyping
and beartype, by an import hook over the whole package, installed here once and left
installed, so that sub-packages loaded later (below) are checked too.

The core (transformations, optimisers, schedules, tree utilities) is imported with the
package; the other sub-packages (`losses`, `monte_carlo`, `projections`...) and the
names re-exported from them (`eqopt.huber_loss`...) are imported on first use, which
keeps `import eqopt` fast (`benchmarks/bench_import.py`).
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

from jaxtyping import install_import_hook

from . import _typecheck  # noqa: F401  (the hook's typechecker, imported unchecked)


install_import_hook("eqopt", "eqopt._typecheck.lazy_beartype")

from . import (
    schedules as schedules,
    transforms as transforms,
    tree as tree,
    tree_utils as tree_utils,
)
from ._alias import (
    AbstractOptimiser as AbstractOptimiser,
    AdaBelief as AdaBelief,
    adabelief as adabelief,
    Adam as Adam,
    adam as adam,
    Adamax as Adamax,
    adamax as adamax,
    AdamaxW as AdamaxW,
    adamaxw as adamaxw,
    AdamW as AdamW,
    adamw as adamw,
    AMSGrad as AMSGrad,
    amsgrad as amsgrad,
    Fromage as Fromage,
    fromage as fromage,
    LAMB as LAMB,
    lamb as lamb,
    LARS as LARS,
    lars as lars,
    Lion as Lion,
    lion as lion,
    nadam as nadam,
    nadamw as nadamw,
    noisy_sgd as noisy_sgd,
    NoisySGD as NoisySGD,
    optimistic_adam as optimistic_adam,
    optimistic_adam_v2 as optimistic_adam_v2,
    optimistic_gradient_descent as optimistic_gradient_descent,
    OptimisticAdam as OptimisticAdam,
    OptimisticAdamV2 as OptimisticAdamV2,
    OptimisticGradientDescent as OptimisticGradientDescent,
    polyak_sgd as polyak_sgd,
    PolyakSGD as PolyakSGD,
    RAdam as RAdam,
    radam as radam,
    RMSProp as RMSProp,
    rmsprop as rmsprop,
    Rprop as Rprop,
    rprop as rprop,
    SGD as SGD,
    sgd as sgd,
    sign_sgd as sign_sgd,
    SignSGD as SignSGD,
    Signum as Signum,
    signum as signum,
    Yogi as Yogi,
    yogi as yogi,
)
from ._alias.accumulators import (
    Adadelta as Adadelta,
    adadelta as adadelta,
    Adagrad as Adagrad,
    adagrad as adagrad,
    Adan as Adan,
    adan as adan,
    Novograd as Novograd,
    novograd as novograd,
    SM3 as SM3,
    sm3 as sm3,
)
from ._alias.factored import (
    Adafactor as Adafactor,
    adafactor as adafactor,
)
from ._base import (
    EmptyState as EmptyState,
    GradientTransformation as GradientTransformation,
    GradientTransformationExtraArgs as GradientTransformationExtraArgs,
    Identity as Identity,
    identity as identity,
    init_empty_state as init_empty_state,
    set_to_zero as set_to_zero,
    SetToZero as SetToZero,
)
from ._beyond import (
    adam_mini as adam_mini,
    AdamMini as AdamMini,
    Cautious as Cautious,
    cautious as cautious,
    Kron as Kron,
    kron as kron,
    Mars as Mars,
    mars as mars,
    scale_by_adam_mini as scale_by_adam_mini,
    scale_by_kron as scale_by_kron,
    scale_by_mars as scale_by_mars,
    scale_by_shampoo as scale_by_shampoo,
    scale_by_soap as scale_by_soap,
    ScaleByAdamMini as ScaleByAdamMini,
    ScaleByAdamMiniState as ScaleByAdamMiniState,
    ScaleByKron as ScaleByKron,
    ScaleByKronState as ScaleByKronState,
    ScaleByMars as ScaleByMars,
    ScaleByMarsState as ScaleByMarsState,
    ScaleByShampoo as ScaleByShampoo,
    ScaleByShampooState as ScaleByShampooState,
    ScaleBySoap as ScaleBySoap,
    ScaleBySoapState as ScaleBySoapState,
    Shampoo as Shampoo,
    shampoo as shampoo,
    Soap as Soap,
    soap as soap,
)
from ._combine import (
    Chain as Chain,
    chain as chain,
    named_chain as named_chain,
    NamedChain as NamedChain,
)
from ._conditional import (
    conditionally_mask as conditionally_mask,
    conditionally_transform as conditionally_transform,
    ConditionallyMask as ConditionallyMask,
    ConditionallyMaskState as ConditionallyMaskState,
    ConditionallyTransform as ConditionallyTransform,
    ConditionallyTransformState as ConditionallyTransformState,
)
from ._custom_types import (
    MaskOrFn as MaskOrFn,
    OptState as OptState,
    Params as Params,
    ScalarOrSchedule as ScalarOrSchedule,
    Schedule as Schedule,
    TransformInitFn as TransformInitFn,
    TransformUpdateExtraArgsFn as TransformUpdateExtraArgsFn,
    TransformUpdateFn as TransformUpdateFn,
    Updates as Updates,
)
from ._hypergradient import (
    hypergradient_descent as hypergradient_descent,
    HypergradientDescent as HypergradientDescent,
    HypergradientDescentState as HypergradientDescentState,
)
from ._inject import (
    inject_hyperparams as inject_hyperparams,
    inject_stateful_hyperparams as inject_stateful_hyperparams,
    InjectHyperparams as InjectHyperparams,
    InjectHyperparamsState as InjectHyperparamsState,
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
    WrappedSchedule as WrappedSchedule,
)
from ._linear_algebra import (
    global_norm as global_norm,
    matrix_inverse_pth_root as matrix_inverse_pth_root,
    power_iteration as power_iteration,
)
from ._linesearch import (
    BacktrackingLinesearchInfo as BacktrackingLinesearchInfo,
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
    ScaleByBacktrackingLinesearch as ScaleByBacktrackingLinesearch,
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from ._masked import (
    freeze as freeze,
    Masked as Masked,
    masked as masked,
    MaskedNode as MaskedNode,
    MaskedState as MaskedState,
)
from ._nnls import nnls as nnls
from ._numerics import (
    safe_increment as safe_increment,
    safe_int32_increment as safe_int32_increment,
    safe_norm as safe_norm,
    safe_root_mean_squares as safe_root_mean_squares,
)
from ._partition import (
    multi_transform as multi_transform,
    MultiTransformState as MultiTransformState,
    Partition as Partition,
    partition as partition,
    PartitionState as PartitionState,
    selective_transform as selective_transform,
)
from ._plateau import (
    reduce_learning_rate_on_plateau as reduce_learning_rate_on_plateau,
    ReduceLearningRateOnPlateau as ReduceLearningRateOnPlateau,
    ReduceLearningRateOnPlateauState as ReduceLearningRateOnPlateauState,
)
from ._state_sharding import (
    state_shardings as state_shardings,
    update_shardings as update_shardings,
)
from ._train_state import TrainState as TrainState
from ._transforms.accumulators import (
    scale_by_adadelta as scale_by_adadelta,
    scale_by_adan as scale_by_adan,
    scale_by_novograd as scale_by_novograd,
    scale_by_rss as scale_by_rss,
    scale_by_sm3 as scale_by_sm3,
    ScaleByAdaDelta as ScaleByAdaDelta,
    ScaleByAdaDeltaState as ScaleByAdaDeltaState,
    ScaleByAdan as ScaleByAdan,
    ScaleByAdanState as ScaleByAdanState,
    ScaleByNovograd as ScaleByNovograd,
    ScaleByNovogradState as ScaleByNovogradState,
    ScaleByRSS as ScaleByRSS,
    ScaleByRssState as ScaleByRssState,
    ScaleBySM3 as ScaleBySM3,
    ScaleBySM3State as ScaleBySM3State,
)
from ._transforms.adam_variants import (
    scale_by_adamax as scale_by_adamax,
    scale_by_amsgrad as scale_by_amsgrad,
    scale_by_belief as scale_by_belief,
    scale_by_radam as scale_by_radam,
    scale_by_yogi as scale_by_yogi,
    ScaleByAdamax as ScaleByAdamax,
    ScaleByAMSGrad as ScaleByAMSGrad,
    ScaleByAmsgradState as ScaleByAmsgradState,
    ScaleByBelief as ScaleByBelief,
    ScaleByBeliefState as ScaleByBeliefState,
    ScaleByRAdam as ScaleByRAdam,
    ScaleByYogi as ScaleByYogi,
)
from ._transforms.adaptive import (
    scale_by_adam as scale_by_adam,
    scale_by_rms as scale_by_rms,
    scale_by_stddev as scale_by_stddev,
    ScaleByAdam as ScaleByAdam,
    ScaleByAdamState as ScaleByAdamState,
    ScaleByRMS as ScaleByRMS,
    ScaleByRmsState as ScaleByRmsState,
    ScaleByRmsWithCountState as ScaleByRmsWithCountState,
    ScaleByRStdDevState as ScaleByRStdDevState,
    ScaleByRStdDevWithCountState as ScaleByRStdDevWithCountState,
    ScaleByStddev as ScaleByStddev,
)
from ._transforms.clipping import (
    Clip as Clip,
    clip as clip,
    clip_by_global_norm as clip_by_global_norm,
    ClipByGlobalNorm as ClipByGlobalNorm,
    ClipByGlobalNormState as ClipByGlobalNormState,
    ClipState as ClipState,
)
from ._transforms.clipping_per import (
    adaptive_grad_clip as adaptive_grad_clip,
    AdaptiveGradClip as AdaptiveGradClip,
    AdaptiveGradClipState as AdaptiveGradClipState,
    clip_by_block_rms as clip_by_block_rms,
    ClipByBlockRMS as ClipByBlockRMS,
    per_example_global_norm_clip as per_example_global_norm_clip,
    per_example_layer_norm_clip as per_example_layer_norm_clip,
)
from ._transforms.decay import (
    add_decayed_weights as add_decayed_weights,
    AddDecayedWeights as AddDecayedWeights,
    AddDecayedWeightsState as AddDecayedWeightsState,
)
from ._transforms.factored import (
    FactoredState as FactoredState,
    scale_by_factored_rms as scale_by_factored_rms,
    ScaleByFactoredRMS as ScaleByFactoredRMS,
)
from ._transforms.misc import (
    Centralize as Centralize,
    centralize as centralize,
    EMA as EMA,
    ema as ema,
    EmaState as EmaState,
    keep_params_nonnegative as keep_params_nonnegative,
    KeepParamsNonnegative as KeepParamsNonnegative,
    NonNegativeParamsState as NonNegativeParamsState,
    scale_gradient as scale_gradient,
    zero_nans as zero_nans,
    ZeroNans as ZeroNans,
    ZeroNansState as ZeroNansState,
)
from ._transforms.momentum import (
    Trace as Trace,
    trace as trace,
    TraceState as TraceState,
)
from ._transforms.noise import (
    add_noise as add_noise,
    AddNoise as AddNoise,
    AddNoiseState as AddNoiseState,
)
from ._transforms.optimistic import (
    scale_by_optimistic_gradient as scale_by_optimistic_gradient,
    ScaleByOptimisticGradient as ScaleByOptimisticGradient,
    ScaleByOptimisticGradientState as ScaleByOptimisticGradientState,
)
from ._transforms.polyak import (
    scale_by_polyak as scale_by_polyak,
    ScaleByPolyak as ScaleByPolyak,
)
from ._transforms.scaling import (
    Scale as Scale,
    scale as scale,
    scale_by_learning_rate as scale_by_learning_rate,
    scale_by_schedule as scale_by_schedule,
    ScaleByLearningRate as ScaleByLearningRate,
    ScaleBySchedule as ScaleBySchedule,
    ScaleByScheduleState as ScaleByScheduleState,
    ScaleState as ScaleState,
)
from ._transforms.sign import (
    scale_by_lion as scale_by_lion,
    scale_by_rprop as scale_by_rprop,
    scale_by_sign as scale_by_sign,
    ScaleByLion as ScaleByLion,
    ScaleByLionState as ScaleByLionState,
    ScaleByRprop as ScaleByRprop,
    ScaleByRpropState as ScaleByRpropState,
    ScaleBySign as ScaleBySign,
)
from ._transforms.trust_ratio import (
    normalize_by_update_norm as normalize_by_update_norm,
    NormalizeByUpdateNorm as NormalizeByUpdateNorm,
    scale_by_distance_over_gradients as scale_by_distance_over_gradients,
    scale_by_param_block_norm as scale_by_param_block_norm,
    scale_by_param_block_rms as scale_by_param_block_rms,
    scale_by_trust_ratio as scale_by_trust_ratio,
    ScaleByDistanceOverGradients as ScaleByDistanceOverGradients,
    ScaleByDistanceOverGradientsState as ScaleByDistanceOverGradientsState,
    ScaleByParamBlockNorm as ScaleByParamBlockNorm,
    ScaleByParamBlockRMS as ScaleByParamBlockRMS,
    ScaleByTrustRatio as ScaleByTrustRatio,
    ScaleByTrustRatioState as ScaleByTrustRatioState,
)
from ._unroll import unroll as unroll, unrolled_meta_grad as unrolled_meta_grad
from ._update import (
    apply_updates as apply_updates,
    incremental_update as incremental_update,
    periodic_update as periodic_update,
)
from ._wrappers import (
    apply_every as apply_every,
    apply_if_finite as apply_if_finite,
    ApplyEvery as ApplyEvery,
    ApplyEveryK as ApplyEveryK,
    ApplyIfFinite as ApplyIfFinite,
    ApplyIfFiniteState as ApplyIfFiniteState,
    ema_params as ema_params,
    ema_params_of as ema_params_of,
    EmaParams as EmaParams,
    EmaParamsState as EmaParamsState,
    Flatten as Flatten,
    flatten as flatten,
    Lookahead as Lookahead,
    lookahead as lookahead,
    LookaheadParams as LookaheadParams,
    LookaheadState as LookaheadState,
    measure_with_ema as measure_with_ema,
    MeasureWithEMA as MeasureWithEMA,
    Monitor as Monitor,
    monitor as monitor,
    MonitorState as MonitorState,
    MultiSteps as MultiSteps,
    MultiStepsState as MultiStepsState,
    ShouldSkipUpdateFunction as ShouldSkipUpdateFunction,
    skip_large_updates as skip_large_updates,
    skip_not_finite as skip_not_finite,
    Snapshot as Snapshot,
    snapshot as snapshot,
    SnapshotState as SnapshotState,
    Stateless as Stateless,
    stateless as stateless,
    stateless_with_tree_map as stateless_with_tree_map,
    StatelessWithTreeMap as StatelessWithTreeMap,
    with_extra_args_support as with_extra_args_support,
)
from .schedules import (
    constant_schedule as constant_schedule,
    cosine_decay_schedule as cosine_decay_schedule,
    cosine_onecycle_schedule as cosine_onecycle_schedule,
    exponential_decay as exponential_decay,
    join_schedules as join_schedules,
    linear_onecycle_schedule as linear_onecycle_schedule,
    linear_schedule as linear_schedule,
    piecewise_constant_schedule as piecewise_constant_schedule,
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
    polynomial_schedule as polynomial_schedule,
    sgdr_schedule as sgdr_schedule,
    warmup_constant_schedule as warmup_constant_schedule,
    warmup_cosine_decay_schedule as warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
    warmup_stable_decay_schedule as warmup_stable_decay_schedule,
)
from .tree import (
    bias_correction as bias_correction,
    update_infinity_moment as update_infinity_moment,
    update_moment as update_moment,
    update_moment_per_elem_norm as update_moment_per_elem_norm,
)
from .tree_utils import (
    tree_map_params as tree_map_params,
)


__version__ = importlib.metadata.version("eqopt")


#: Sub-packages imported on first use: `eqopt.losses`, ...
_LAZY_SUBPACKAGES = (
    "assignment",
    "contrib",
    "experimental",
    "interop",
    "losses",
    "microbatching",
    "monte_carlo",
    "perturbations",
    "projections",
    "second_order",
    "utils",
)
#: Names re-exported from those sub-packages, imported on first use, by sub-package.
_LAZY_NAMES = {
    "convex_kl_divergence": "losses",
    "cosine_distance": "losses",
    "cosine_similarity": "losses",
    "ctc_loss": "losses",
    "ctc_loss_with_forward_probs": "losses",
    "generalized_kl_divergence": "losses",
    "hinge_loss": "losses",
    "huber_loss": "losses",
    "kl_divergence": "losses",
    "l2_loss": "losses",
    "log_cosh": "losses",
    "microbatch": "microbatching",
    "multi_normal": "utils",
    "ntxent": "losses",
    "safe_softmax_cross_entropy": "losses",
    "sigmoid_binary_cross_entropy": "losses",
    "sigmoid_focal_loss": "losses",
    "smooth_labels": "losses",
    "softmax_cross_entropy": "losses",
    "softmax_cross_entropy_with_integer_labels": "losses",
    "squared_error": "losses",
    # L-BFGS and the zoom line search (imported on first use: `lbfgs`'s default line
    # search is built then, not at `import eqopt`).
    "LBFGS": "_alias.lbfgs",
    "lbfgs": "_alias.lbfgs",
    "ScaleByLBFGS": "_transforms.lbfgs",
    "scale_by_lbfgs": "_transforms.lbfgs",
    "ScaleByLBFGSState": "_transforms.lbfgs",
    "ScaleByZoomLinesearch": "_linesearch.zoom",
    "scale_by_zoom_linesearch": "_linesearch.zoom",
    "ScaleByZoomLinesearchState": "_linesearch.zoom",
    "ZoomLinesearchInfo": "_linesearch.zoom",
    "value_and_grad_from_state": "_linesearch.value_and_grad",
}


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _LAZY_NAMES:
        module = importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}")
        value = getattr(module, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBPACKAGES, *_LAZY_NAMES})


if TYPE_CHECKING:  # the same names, for static type checkers and IDEs
    from . import (
        assignment as assignment,
        contrib as contrib,
        experimental as experimental,
        interop as interop,
        losses as losses,
        microbatching as microbatching,
        monte_carlo as monte_carlo,
        perturbations as perturbations,
        projections as projections,
        second_order as second_order,
        utils as utils,
    )
    from ._alias.lbfgs import (
        LBFGS as LBFGS,
        lbfgs as lbfgs,
    )
    from ._linesearch.value_and_grad import (
        value_and_grad_from_state as value_and_grad_from_state,
    )
    from ._linesearch.zoom import (
        scale_by_zoom_linesearch as scale_by_zoom_linesearch,
        ScaleByZoomLinesearch as ScaleByZoomLinesearch,
        ScaleByZoomLinesearchState as ScaleByZoomLinesearchState,
        ZoomLinesearchInfo as ZoomLinesearchInfo,
    )
    from ._transforms.lbfgs import (
        scale_by_lbfgs as scale_by_lbfgs,
        ScaleByLBFGS as ScaleByLBFGS,
        ScaleByLBFGSState as ScaleByLBFGSState,
    )
    from .losses import (
        convex_kl_divergence as convex_kl_divergence,
        cosine_distance as cosine_distance,
        cosine_similarity as cosine_similarity,
        ctc_loss as ctc_loss,
        ctc_loss_with_forward_probs as ctc_loss_with_forward_probs,
        generalized_kl_divergence as generalized_kl_divergence,
        hinge_loss as hinge_loss,
        huber_loss as huber_loss,
        kl_divergence as kl_divergence,
        l2_loss as l2_loss,
        log_cosh as log_cosh,
        ntxent as ntxent,
        safe_softmax_cross_entropy as safe_softmax_cross_entropy,
        sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy,
        sigmoid_focal_loss as sigmoid_focal_loss,
        smooth_labels as smooth_labels,
        softmax_cross_entropy as softmax_cross_entropy,
        softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
        squared_error as squared_error,
    )
    from .microbatching import microbatch as microbatch
    from .utils import (
        multi_normal as multi_normal,
    )

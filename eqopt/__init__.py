"""eqopt: gradient processing and optimisation for JAX, as Equinox Modules.

Every public `init`, `update` and schedule call is checked at trace time with jaxtyping
and beartype (installed here, once, as an import hook over the whole package).
"""

import importlib.metadata

from jaxtyping import install_import_hook


with install_import_hook("eqopt", "beartype.beartype"):
    from . import (
        assignment as assignment,
        losses as losses,
        monte_carlo as monte_carlo,
        perturbations as perturbations,
        projections as projections,
        schedules as schedules,
        second_order as second_order,
        tree as tree,
        tree_utils as tree_utils,
        utils as utils,
    )
    from ._alias import (
        AbstractOptimiser as AbstractOptimiser,
        Adam as Adam,
        adam as adam,
        AdamW as AdamW,
        adamw as adamw,
        Fromage as Fromage,
        fromage as fromage,
        LAMB as LAMB,
        lamb as lamb,
        LARS as LARS,
        lars as lars,
        Lion as Lion,
        lion as lion,
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
    )
    from ._base import (
        EmptyState as EmptyState,
        GradientTransformation as GradientTransformation,
        Identity as Identity,
        identity as identity,
        set_to_zero as set_to_zero,
        SetToZero as SetToZero,
    )
    from ._combine import (
        Chain as Chain,
        chain as chain,
        named_chain as named_chain,
        NamedChain as NamedChain,
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
    )
    from ._transforms.decay import (
        add_decayed_weights as add_decayed_weights,
        AddDecayedWeights as AddDecayedWeights,
    )
    from ._transforms.momentum import (
        Trace as Trace,
        trace as trace,
        TraceState as TraceState,
    )
    from ._transforms.scaling import (
        Scale as Scale,
        scale as scale,
        scale_by_learning_rate as scale_by_learning_rate,
        scale_by_schedule as scale_by_schedule,
        ScaleByLearningRate as ScaleByLearningRate,
        ScaleBySchedule as ScaleBySchedule,
        ScaleByScheduleState as ScaleByScheduleState,
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
    from ._update import apply_updates as apply_updates
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
    from .schedules import (
        constant_schedule as constant_schedule,
        cosine_decay_schedule as cosine_decay_schedule,
        exponential_decay as exponential_decay,
        join_schedules as join_schedules,
        linear_schedule as linear_schedule,
        piecewise_constant_schedule as piecewise_constant_schedule,
        polynomial_schedule as polynomial_schedule,
        warmup_cosine_decay_schedule as warmup_cosine_decay_schedule,
    )


__version__ = importlib.metadata.version("eqopt")

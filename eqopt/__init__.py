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
        RMSProp as RMSProp,
        rmsprop as rmsprop,
        SGD as SGD,
        sgd as sgd,
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
    from ._alias.factored import Adafactor as Adafactor, adafactor as adafactor
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
    from ._transforms.factored import (
        clip_by_block_rms as clip_by_block_rms,
        ClipByBlockRMS as ClipByBlockRMS,
        EMA as EMA,
        ema as ema,
        EmaState as EmaState,
        FactoredState as FactoredState,
        scale_by_factored_rms as scale_by_factored_rms,
        scale_by_param_block_rms as scale_by_param_block_rms,
        ScaleByFactoredRMS as ScaleByFactoredRMS,
        ScaleByParamBlockRMS as ScaleByParamBlockRMS,
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

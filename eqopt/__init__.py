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

from . import _typecheck  # noqa: E402, F401  (the hook's typechecker, imported unchecked)


install_import_hook("eqopt", "eqopt._typecheck.lazy_beartype")

if True:  # noqa: SIM108 (keeps the re-exports indented as one block)
    from . import (
        schedules as schedules,
        tree as tree,
        tree_utils as tree_utils,
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
    from ._inject import (
        inject_hyperparams as inject_hyperparams,
        inject_stateful_hyperparams as inject_stateful_hyperparams,
        InjectHyperparams as InjectHyperparams,
        InjectHyperparamsState as InjectHyperparamsState,
        InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
        WrappedSchedule as WrappedSchedule,
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
    from ._update import apply_updates as apply_updates
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


#: Sub-packages imported on first use: `eqopt.losses`, ...
_LAZY_SUBPACKAGES = (
    "assignment",
    "interop",
    "losses",
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
    "ntxent": "losses",
    "safe_softmax_cross_entropy": "losses",
    "sigmoid_binary_cross_entropy": "losses",
    "sigmoid_focal_loss": "losses",
    "smooth_labels": "losses",
    "softmax_cross_entropy": "losses",
    "softmax_cross_entropy_with_integer_labels": "losses",
    "squared_error": "losses",
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
        interop as interop,
        losses as losses,
        monte_carlo as monte_carlo,
        perturbations as perturbations,
        projections as projections,
        second_order as second_order,
        utils as utils,
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

"""Today's optimisers, as Optax's `optax.contrib` has them (Muon, Schedule-Free, Prodigy...).

Each has Optax's name, arguments, defaults and numbers, and is an Equinox Module whose
float hyperparameters are leaves (see the API pages for the update rules and papers).
"""

from .._transforms.plateau import (
    reduce_on_plateau as reduce_on_plateau,
    ReduceLROnPlateauState as ReduceLROnPlateauState,
    ReduceOnPlateau as ReduceOnPlateau,
)
from ._acprop import (
    ACProp as ACProp,
    acprop as acprop,
    scale_by_acprop as scale_by_acprop,
    ScaleByACProp as ScaleByACProp,
)
from ._ademamix import (
    AdEMAMix as AdEMAMix,
    ademamix as ademamix,
    scale_by_ademamix as scale_by_ademamix,
    scale_by_simplified_ademamix as scale_by_simplified_ademamix,
    ScaleByAdemamix as ScaleByAdemamix,
    ScaleByAdemamixState as ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMix as ScaleBySimplifiedAdEMAMix,
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
    simplified_ademamix as simplified_ademamix,
    SimplifiedAdEMAMix as SimplifiedAdEMAMix,
)
from ._adopt import (
    Adopt as Adopt,
    adopt as adopt,
    scale_by_adopt as scale_by_adopt,
    ScaleByAdopt as ScaleByAdopt,
)
from ._cocob import (
    COCOB as COCOB,
    cocob as cocob,
    COCOBState as COCOBState,
    scale_by_cocob as scale_by_cocob,
    ScaleByCOCOB as ScaleByCOCOB,
)
from ._complex_valued import (
    split_real_and_imaginary as split_real_and_imaginary,
    SplitRealAndImaginary as SplitRealAndImaginary,
    SplitRealAndImaginaryState as SplitRealAndImaginaryState,
)
from ._dadapt_adamw import (
    dadapt_adamw as dadapt_adamw,
    DAdaptAdamW as DAdaptAdamW,
    DAdaptAdamWState as DAdaptAdamWState,
)
from ._dog import (
    DoG as DoG,
    dog as dog,
    DoGState as DoGState,
    DoWG as DoWG,
    dowg as dowg,
    DoWGState as DoWGState,
)
from ._galore import (
    GaLore as GaLore,
    galore as galore,
    GaLoreDimensionNumbers as GaLoreDimensionNumbers,
    GaLoreState as GaLoreState,
    scale_by_galore as scale_by_galore,
    ScaleByGaLore as ScaleByGaLore,
)
from ._madgrad import (
    Madgrad as Madgrad,
    madgrad as madgrad,
    MadgradState as MadgradState,
    scale_by_madgrad as scale_by_madgrad,
    ScaleByMadgrad as ScaleByMadgrad,
)
from ._mechanic import (
    MechanicState as MechanicState,
    Mechanize as Mechanize,
    mechanize as mechanize,
)
from ._momo import (
    Momo as Momo,
    momo as momo,
    momo_adam as momo_adam,
    MomoAdam as MomoAdam,
    MomoAdamState as MomoAdamState,
    MomoState as MomoState,
)
from ._muon import (
    Muon as Muon,
    muon as muon,
    MuonDimensionNumbers as MuonDimensionNumbers,
    MuonState as MuonState,
    scale_by_muon as scale_by_muon,
    ScaleByMuon as ScaleByMuon,
    ScaleByShape as ScaleByShape,
)
from ._normalize import (
    Normalize as Normalize,
    normalize as normalize,
    NormalizeState as NormalizeState,
)
from ._privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
    DifferentiallyPrivateAggregate as DifferentiallyPrivateAggregate,
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
    DPSGD as DPSGD,
    dpsgd as dpsgd,
)
from ._prodigy import (
    Prodigy as Prodigy,
    prodigy as prodigy,
    ProdigyState as ProdigyState,
)
from ._sam import (
    SAM as SAM,
    sam as sam,
    SAMState as SAMState,
)
from ._schedule_free import (
    schedule_free as schedule_free,
    schedule_free_adamw as schedule_free_adamw,
    schedule_free_eval_params as schedule_free_eval_params,
    schedule_free_sgd as schedule_free_sgd,
    ScheduleFree as ScheduleFree,
    ScheduleFreeAdamW as ScheduleFreeAdamW,
    ScheduleFreeSGD as ScheduleFreeSGD,
    ScheduleFreeState as ScheduleFreeState,
)
from ._sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
    HutchinsonEstimatorDiagHessian as HutchinsonEstimatorDiagHessian,
    HutchinsonState as HutchinsonState,
    Sophia as Sophia,
    sophia as sophia,
    SophiaState as SophiaState,
)

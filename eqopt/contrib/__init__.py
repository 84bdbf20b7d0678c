"""Today's optimisers, as Optax's `optax.contrib` has them (Muon, Schedule-Free, Prodigy...).

Each has Optax's name, arguments, defaults and numbers, and is an Equinox Module whose
float hyperparameters are leaves (see the API pages for the update rules and papers).
"""

# Muon, AdEMAMix, ADOPT, normalize, complex
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
from ._complex_valued import (
    split_real_and_imaginary as split_real_and_imaginary,
    SplitRealAndImaginary as SplitRealAndImaginary,
    SplitRealAndImaginaryState as SplitRealAndImaginaryState,
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

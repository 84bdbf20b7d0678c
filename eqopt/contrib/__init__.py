"""Today's optimisers, as Optax's `optax.contrib` has them (Muon, Schedule-Free, Prodigy...).

Each has Optax's name, arguments, defaults and numbers, and is an Equinox Module whose
float hyperparameters are leaves (see the API pages for the update rules and papers).
"""

# Learning-rate-free: Prodigy, D-Adaptation, DoG, DoWG, Mechanic, COCOB, MoMo
from ._cocob import (
    cocob as cocob,
    COCOBState as COCOBState,
    scale_by_cocob as scale_by_cocob,
)
from ._dadapt_adamw import (
    dadapt_adamw as dadapt_adamw,
    DAdaptAdamWState as DAdaptAdamWState,
)
from ._dog import dog as dog, DoGState as DoGState, dowg as dowg, DoWGState as DoWGState
from ._mechanic import MechanicState as MechanicState, mechanize as mechanize
from ._momo import (
    momo as momo,
    momo_adam as momo_adam,
    MomoAdamState as MomoAdamState,
    MomoState as MomoState,
)
from ._prodigy import prodigy as prodigy, ProdigyState as ProdigyState

"""Optimisers Optax lacks, each from its paper: MARS, Adam-mini, cautious masking, SOAP,
Shampoo, PSGD-Kron.

One optimiser a file (its transformation and the optimiser built on it); re-exports only.
"""

from .adam_mini import (
    adam_mini as adam_mini,
    AdamMini as AdamMini,
    scale_by_adam_mini as scale_by_adam_mini,
    ScaleByAdamMini as ScaleByAdamMini,
    ScaleByAdamMiniState as ScaleByAdamMiniState,
)
from .cautious import Cautious as Cautious, cautious as cautious
from .mars import (
    Mars as Mars,
    mars as mars,
    scale_by_mars as scale_by_mars,
    ScaleByMars as ScaleByMars,
    ScaleByMarsState as ScaleByMarsState,
)
from .psgd_kron import (
    Kron as Kron,
    kron as kron,
    scale_by_kron as scale_by_kron,
    ScaleByKron as ScaleByKron,
    ScaleByKronState as ScaleByKronState,
)
from .shampoo import (
    scale_by_shampoo as scale_by_shampoo,
    ScaleByShampoo as ScaleByShampoo,
    ScaleByShampooState as ScaleByShampooState,
    Shampoo as Shampoo,
    shampoo as shampoo,
)
from .soap import (
    scale_by_soap as scale_by_soap,
    ScaleBySoap as ScaleBySoap,
    ScaleBySoapState as ScaleBySoapState,
    Soap as Soap,
    soap as soap,
)

"""eqopt.perturbations (Optax: `optax.perturbations`): perturbed smoothing of functions."""

from ._make_pert import (
    make_perturbed_fun as make_perturbed_fun,
    PerturbedFun as PerturbedFun,
)
from ._noise import (
    AbstractNoiseDistribution as AbstractNoiseDistribution,
    Gumbel as Gumbel,
    Normal as Normal,
)

"""eqopt.assignment (Optax: `optax.assignment`): the linear assignment problem."""

from ._hungarian import (
    base_hungarian_algorithm as base_hungarian_algorithm,
    hungarian_algorithm as hungarian_algorithm,
)

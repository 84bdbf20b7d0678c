"""eqopt.second_order (Optax: `optax.second_order`): curvature of a loss."""

from ._hessian import (
    fisher_diag as fisher_diag,
    hessian_diag as hessian_diag,
    hvp as hvp,
)

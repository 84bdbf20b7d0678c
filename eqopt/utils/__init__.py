"""eqopt.utils (Optax: `optax.utils`)."""

from ._multi_normal import (
    multi_normal as multi_normal,
    MultiNormalDiag as MultiNormalDiag,
)

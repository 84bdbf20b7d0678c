"""eqopt.interop: eqopt transformations as Optax ones, and Optax ones as eqopt Modules.

Optax is an optional extra (`pip install eqopt[optax]`): it is imported by these
functions when they are called, never by `import eqopt`.
"""

from ._optax import (
    from_optax as from_optax,
    FromOptax as FromOptax,
    to_optax as to_optax,
)

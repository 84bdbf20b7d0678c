"""`ema_params` (not in Optax): an average of the parameters kept beside the wrapped
optimiser, whose updates it returns unchanged. So Optax's wrapped optimiser is the
reference for the updates (the parity test compares updates only); the averages are
checked against float64 NumPy loops in `tests/test_ema_params.py`. `h` is the inner
learning rate. Every state leaf that is not a scalar (the inner moments, the average)
has its parameter's shape and layout.
"""

import jax.numpy as jnp
import optax

import eqopt

from .case import Case


CASES: tuple[Case, ...] = (
    Case(
        "ema_params-adamw",
        lambda h: eqopt.ema_params(eqopt.adamw(h, weight_decay=0.1), decay=0.9),
        lambda h: optax.adamw(h, weight_decay=0.1),
    ),
    Case(
        "ema_params-sgd_momentum-warmup-ema_float32",
        lambda h: eqopt.ema_params(
            eqopt.sgd(h, momentum=0.9),
            decay=0.99,
            debias="warmup",
            ema_dtype=jnp.float32,
        ),
        lambda h: optax.sgd(h, momentum=0.9),
        h=0.02,
    ),
    Case(
        "ema_params-adam-no_debias",
        lambda h: eqopt.ema_params(eqopt.adam(h), decay=0.5, debias=None),
        lambda h: optax.adam(h),
        h=0.05,
    ),
)

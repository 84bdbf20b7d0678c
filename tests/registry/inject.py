"""`inject_hyperparams` around a few optimisers, and Optax transformations wrapped by
`eqopt.interop.from_optax`."""

import optax

import eqopt

from .case import _mask, Case


#: Built once: `from_optax` wrappers of the same Optax object are equal (one compile).
_OPTAX_SCALE = optax.scale(-0.25)

CASES: tuple[Case, ...] = (
    Case(
        "inject_hyperparams-adam",
        lambda h: eqopt.inject_hyperparams(eqopt.adam)(learning_rate=h),
        lambda h: optax.inject_hyperparams(optax.adam)(learning_rate=h),
    ),
    Case(
        "inject_hyperparams-adamw-schedule-static_args",
        lambda h: eqopt.inject_hyperparams(eqopt.adamw, static_args="mask")(
            learning_rate=h,
            b1=eqopt.linear_schedule(0.9, 0.5, 6),
            weight_decay=0.1,
            mask=_mask,
        ),
        lambda h: optax.inject_hyperparams(optax.adamw, static_args="mask")(
            learning_rate=h,
            b1=optax.linear_schedule(0.9, 0.5, 6),
            weight_decay=0.1,
            mask=_mask,
        ),
    ),
    Case(
        "inject_hyperparams-sgd-momentum",
        lambda h: eqopt.inject_hyperparams(eqopt.sgd)(learning_rate=h, momentum=0.9),
        lambda h: optax.inject_hyperparams(optax.sgd)(learning_rate=h, momentum=0.9),
    ),
    # Optax's closures are static fields: no swept hyperparameter (`h=None`). A scale by
    # a power of two is exact in any dtype, so the bfloat16 test holds for Optax's code.
    Case(
        "from_optax-scale",
        lambda h: eqopt.interop.from_optax(_OPTAX_SCALE),
        lambda h: _OPTAX_SCALE,
        h=None,
    ),
)

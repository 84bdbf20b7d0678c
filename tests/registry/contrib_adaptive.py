"""Learning-rate-free optimisers of `eqopt.contrib`: Prodigy, D-Adaptation, DoG, DoWG,
Mechanic, COCOB and MoMo."""

import optax

import eqopt
from eqopt import contrib

from .case import _mask, Case, value_args


# float32 hyperparameter leaves against Optax's double-precision constants (`1 - b2`,
# `1 - sqrt(b2)`): ~1e-5 relative per step, compounded by the adaptive step sizes.
_LEAF_ROUNDING = 1e-4


CASES: tuple[Case, ...] = (
    Case(
        "prodigy",
        # A larger first estimate than the default 1e-6, so that twelve steps move.
        lambda h: contrib.prodigy(estim_lr0=1e-3, estim_lr_coef=h),
        lambda h: optax.contrib.prodigy(estim_lr0=1e-3, estim_lr_coef=h),
        1.0,
        rtol=_LEAF_ROUNDING,
    ),
    Case(
        "prodigy-schedule-weight_decay-safeguard",
        lambda h: contrib.prodigy(
            eqopt.linear_schedule(h, h / 10, 8, 2),
            (0.8, 0.99),
            0.9,
            estim_lr0=1e-3,
            weight_decay=0.1,
            safeguard_warmup=True,
        ),
        lambda h: optax.contrib.prodigy(
            optax.linear_schedule(h, h / 10, 8, 2),
            (0.8, 0.99),
            0.9,
            estim_lr0=1e-3,
            weight_decay=0.1,
            safeguard_warmup=True,
        ),
        1.0,
        rtol=_LEAF_ROUNDING,
    ),
    Case(
        "dadapt_adamw",
        lambda h: contrib.dadapt_adamw(h, estim_lr0=1e-3, weight_decay=0.1),
        lambda h: optax.contrib.dadapt_adamw(h, estim_lr0=1e-3, weight_decay=0.1),
        1.0,
        rtol=_LEAF_ROUNDING,
    ),
    Case(
        "dog",
        lambda h: contrib.dog(init_step=("heuristic", h)),
        lambda h: optax.contrib.dog(init_step=("heuristic", h)),
        1e-2,
    ),
    Case(
        "dog-learning_rate-weight_decay-mask",
        lambda h: contrib.dog(
            0.5, init_step=("learning_rate", h), weight_decay=0.1, mask=_mask
        ),
        lambda h: optax.contrib.dog(
            0.5, init_step=("learning_rate", h), weight_decay=0.1, mask=_mask
        ),
        1e-2,
    ),
    Case(
        "dog-distance",
        lambda h: contrib.dog(init_step=("distance", h)),
        lambda h: optax.contrib.dog(init_step=("distance", h)),
        1e-2,
    ),
    Case("dowg", lambda h: contrib.dowg(h), lambda h: optax.contrib.dowg(h), 1.0),
    Case(
        "dowg-init_estim_sq_dist-weight_decay",
        lambda h: contrib.dowg(0.5, h, weight_decay=0.1, mask=_mask),
        lambda h: optax.contrib.dowg(0.5, h, weight_decay=0.1, mask=_mask),
        1e-2,
    ),
    Case(
        "mechanize-sgd",
        # The base optimiser's learning rate is a leaf inside Mechanic.
        lambda h: contrib.mechanize(eqopt.sgd(h, 0.9)),
        lambda h: optax.contrib.mechanize(optax.sgd(h, 0.9)),
        0.1,
        # Mechanic's `r`, `m`, `v`, `s` have shape `(num_betas,)`, no parameter's.
        moments_like_params=False,
    ),
    Case(
        "mechanize-adam-weight_decay",
        lambda h: contrib.mechanize(eqopt.adam(0.1), weight_decay=h, num_betas=3),
        lambda h: optax.contrib.mechanize(optax.adam(0.1), weight_decay=h, num_betas=3),
        0.1,
        moments_like_params=False,
    ),
    Case(
        "scale_by_cocob",
        lambda h: contrib.scale_by_cocob(alpha=h),
        lambda h: optax.contrib.scale_by_cocob(alpha=h),
        10.0,
    ),
    Case(
        "cocob",
        lambda h: contrib.cocob(alpha=h),
        lambda h: optax.contrib.cocob(alpha=h),
        10.0,
    ),
    Case(
        "cocob-weight_decay-mask",
        lambda h: contrib.cocob(0.5, weight_decay=h, mask=_mask),
        lambda h: optax.contrib.cocob(0.5, weight_decay=h, mask=_mask),
        0.1,
    ),
    Case(
        "momo",
        contrib.momo,
        optax.contrib.momo,
        0.5,
        extra_args=value_args,
    ),
    Case(
        "momo-adapt_lower_bound-weight_decay",
        lambda h: contrib.momo(h, 0.8, weight_decay=0.1, adapt_lower_bound=True),
        lambda h: optax.contrib.momo(h, 0.8, weight_decay=0.1, adapt_lower_bound=True),
        0.5,
        extra_args=value_args,
    ),
    Case(
        "momo_adam",
        contrib.momo_adam,
        optax.contrib.momo_adam,
        0.1,
        rtol=_LEAF_ROUNDING,
        extra_args=value_args,
    ),
    Case(
        "momo_adam-adapt_lower_bound-weight_decay",
        lambda h: contrib.momo_adam(h, weight_decay=0.1, adapt_lower_bound=True),
        lambda h: optax.contrib.momo_adam(h, weight_decay=0.1, adapt_lower_bound=True),
        0.1,
        rtol=_LEAF_ROUNDING,
        extra_args=value_args,
    ),
)

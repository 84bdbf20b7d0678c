"""Adam's family: Adamax(W), AMSGrad, AdaBelief, Yogi, RAdam, NAdam(W), and `nu_dtype`."""

import jax.numpy as jnp
import optax

import eqopt

from .case import Case


# `float32(0.999)` is not 0.999, and Optax computes RAdam's rho_inf from the double; a
# b2 that is exactly a float32 gives both the same numbers (see `eqopt.ScaleByRAdam`).
_B2 = 0.99609375

CASES: tuple[Case, ...] = (
    # Transformations: `h` is b1.
    Case(
        "scale_by_adamax",
        lambda h: eqopt.scale_by_adamax(h),
        lambda h: optax.scale_by_adamax(h),
        0.9,
        False,
    ),
    Case(
        "scale_by_amsgrad",
        lambda h: eqopt.scale_by_amsgrad(h),
        lambda h: optax.scale_by_amsgrad(h),
        0.9,
        False,
    ),
    Case(
        "scale_by_amsgrad-no_bias_correction-eps_root",
        lambda h: eqopt.scale_by_amsgrad(
            h, eps_root=1e-8, bias_correction_mu=False, bias_correction_nu=False
        ),
        lambda h: optax.scale_by_amsgrad(
            h, eps_root=1e-8, bias_correction_mu=False, bias_correction_nu=False
        ),
        0.9,
        False,
    ),
    Case(
        "scale_by_belief",
        lambda h: eqopt.scale_by_belief(h),
        lambda h: optax.scale_by_belief(h),
        0.9,
        False,
    ),
    Case(
        "scale_by_belief-nesterov",
        lambda h: eqopt.scale_by_belief(h, nesterov=True),
        lambda h: optax.scale_by_belief(h, nesterov=True),
        0.9,
        False,
    ),
    Case(
        "scale_by_yogi",
        lambda h: eqopt.scale_by_yogi(h, eps_root=1e-8, initial_accumulator_value=1e-3),
        lambda h: optax.scale_by_yogi(h, eps_root=1e-8, initial_accumulator_value=1e-3),
        0.9,
        False,
    ),
    Case(
        "scale_by_radam",
        lambda h: eqopt.scale_by_radam(h, _B2),
        lambda h: optax.scale_by_radam(h, _B2),
        0.9,
        False,
    ),
    Case(
        "scale_by_radam-nesterov",
        lambda h: eqopt.scale_by_radam(h, _B2, nesterov=True),
        lambda h: optax.scale_by_radam(h, _B2, nesterov=True),
        0.9,
        False,
    ),
    # Optimisers: `h` is the learning rate.
    Case("adamax", eqopt.adamax, optax.adamax),
    Case(
        "adamaxw",
        lambda h: eqopt.adamaxw(h, weight_decay=0.1),
        lambda h: optax.adamaxw(h, weight_decay=0.1),
    ),
    Case("amsgrad", eqopt.amsgrad, optax.amsgrad),
    Case("adabelief", eqopt.adabelief, optax.adabelief),
    Case("yogi", eqopt.yogi, optax.yogi),
    Case(
        "radam",
        lambda h: eqopt.radam(h, b2=_B2),
        lambda h: optax.radam(h, b2=_B2),
    ),
    Case("nadam", eqopt.nadam, optax.nadam),
    Case(
        "nadamw",
        lambda h: eqopt.nadamw(h, weight_decay=0.1),
        lambda h: optax.nadamw(h, weight_decay=0.1),
    ),
    # `nu_dtype` (not in Optax): with float32 parameters a float32 second moment is
    # Adam's; the bfloat16 generic test then keeps `nu` in float32.
    Case(
        "adam-nu_dtype",
        lambda h: eqopt.adam(h, nu_dtype=jnp.float32),
        optax.adam,
    ),
    Case(
        "amsgrad-nu_dtype",
        lambda h: eqopt.amsgrad(h, nu_dtype=jnp.float32),
        optax.amsgrad,
    ),
)

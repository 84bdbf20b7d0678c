"""The foundation's transformations and optimisers, and Adam with every schedule."""

import jax.numpy as jnp
import optax

import eqopt

from .case import _mask, Case, SCHEDULE_NAMES, SCHEDULES


def _adam_with_schedule(name):
    return Case(
        f"adam-{name}-schedule",
        lambda h: eqopt.adam(SCHEDULES[name][0](h)),
        lambda h: optax.adam(SCHEDULES[name][1](h)),
    )


CASES: tuple[Case, ...] = (
    # Transformations.
    Case(
        "identity", lambda h: eqopt.identity(), lambda h: optax.identity(), None, False
    ),
    Case(
        "set_to_zero",
        lambda h: eqopt.set_to_zero(),
        lambda h: optax.set_to_zero(),
        None,
        False,
    ),
    Case("scale", lambda h: eqopt.scale(-h), lambda h: optax.scale(-h)),
    Case(
        "scale_by_learning_rate",
        eqopt.scale_by_learning_rate,
        optax.scale_by_learning_rate,
    ),
    Case(
        "scale_by_learning_rate-noflip",
        lambda h: eqopt.scale_by_learning_rate(h, flip_sign=False),
        lambda h: optax.scale_by_learning_rate(h, flip_sign=False),
        descends=False,
    ),
    Case(
        "scale_by_schedule",
        lambda h: eqopt.scale_by_schedule(eqopt.linear_schedule(-h, -h / 10, 10)),
        lambda h: optax.scale_by_schedule(optax.linear_schedule(-h, -h / 10, 10)),
    ),
    Case(
        "scale_by_adam",
        lambda h: eqopt.scale_by_adam(b1=h),
        lambda h: optax.scale_by_adam(b1=h),
        0.9,
        False,
    ),
    Case(
        "scale_by_adam-nesterov-eps_root",
        lambda h: eqopt.scale_by_adam(b2=h, eps_root=1e-8, nesterov=True),
        lambda h: optax.scale_by_adam(b2=h, eps_root=1e-8, nesterov=True),
        0.99,
        False,
    ),
    Case(
        "scale_by_rms",
        lambda h: eqopt.scale_by_rms(h),
        lambda h: optax.scale_by_rms(h),
        0.9,
        False,
    ),
    Case(
        "scale_by_rms-debiased-eps_outside",
        lambda h: eqopt.scale_by_rms(
            h, 1e-6, 0.1, eps_in_sqrt=False, bias_correction=True
        ),
        lambda h: optax.scale_by_rms(
            h, 1e-6, 0.1, eps_in_sqrt=False, bias_correction=True
        ),
        0.9,
        False,
    ),
    Case(
        "scale_by_stddev",
        lambda h: eqopt.scale_by_stddev(h, 1e-4),
        lambda h: optax.scale_by_stddev(h, 1e-4),
        0.9,
        False,
    ),
    Case(
        "scale_by_stddev-debiased",
        lambda h: eqopt.scale_by_stddev(h, 1e-4, 0.1, bias_correction=True),
        lambda h: optax.scale_by_stddev(h, 1e-4, 0.1, bias_correction=True),
        0.9,
        False,
    ),
    Case("trace", lambda h: eqopt.trace(h), lambda h: optax.trace(h), 0.9, False),
    Case(
        "trace-nesterov",
        lambda h: eqopt.trace(h, True),
        lambda h: optax.trace(h, True),
        0.9,
        False,
    ),
    Case(
        "add_decayed_weights",
        eqopt.add_decayed_weights,
        optax.add_decayed_weights,
        0.1,
        False,
    ),
    Case(
        "add_decayed_weights-mask",
        lambda h: eqopt.add_decayed_weights(h, _mask),
        lambda h: optax.add_decayed_weights(h, _mask),
        0.1,
        False,
    ),
    Case("clip", eqopt.clip, optax.clip, 0.5, False),
    Case(
        "clip_by_global_norm",
        eqopt.clip_by_global_norm,
        optax.clip_by_global_norm,
        1.0,
        False,
    ),
    Case(
        "chain",
        lambda h: eqopt.chain(
            eqopt.clip_by_global_norm(1.0), eqopt.scale_by_adam(), eqopt.scale(-h)
        ),
        lambda h: optax.chain(
            optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.scale(-h)
        ),
    ),
    Case(
        "named_chain",
        lambda h: eqopt.named_chain(
            ("clip", eqopt.clip(1.0)), ("sgd", eqopt.sgd(h, 0.5))
        ),
        lambda h: optax.named_chain(
            ("clip", optax.clip(1.0)), ("sgd", optax.sgd(h, 0.5))
        ),
    ),
    # Optimisers.
    Case("sgd", eqopt.sgd, optax.sgd),
    Case("sgd-momentum", lambda h: eqopt.sgd(h, 0.9), lambda h: optax.sgd(h, 0.9)),
    Case(
        "sgd-nesterov",
        lambda h: eqopt.sgd(h, 0.9, True),
        lambda h: optax.sgd(h, 0.9, True),
    ),
    Case("adam", eqopt.adam, optax.adam),
    Case(
        "adam-nesterov",
        lambda h: eqopt.adam(h, nesterov=True),
        lambda h: optax.adam(h, nesterov=True),
    ),
    Case(
        "adam-mu_dtype",
        lambda h: eqopt.adam(h, mu_dtype=jnp.bfloat16),
        lambda h: optax.adam(h, mu_dtype=jnp.bfloat16),
        # The first moment is stored in bfloat16: a 1e-7 difference before rounding
        # (see test_parity_with_optax) can flip a bfloat16 rounding, 0.4% apart. For
        # the same reason the result is piecewise constant in `h`: no finite differences.
        rtol=1e-2,
        atol=1e-3,  # 1% of the update scale (the learning rate, 0.1)
        smooth=False,
    ),
    Case(
        "adamw",
        lambda h: eqopt.adamw(h, weight_decay=0.1),
        lambda h: optax.adamw(h, weight_decay=0.1),
    ),
    Case(
        "adamw-mask",
        lambda h: eqopt.adamw(h, weight_decay=0.1, mask=_mask),
        lambda h: optax.adamw(h, weight_decay=0.1, mask=_mask),
    ),
    Case(
        "adamw-weight_decay-schedule",
        lambda h: eqopt.adamw(h, weight_decay=eqopt.linear_schedule(0.1, 0.0, 5)),
        lambda h: optax.adamw(h, weight_decay=optax.linear_schedule(0.1, 0.0, 5)),
    ),
    Case("rmsprop", eqopt.rmsprop, optax.rmsprop, 0.01),
    Case(
        "rmsprop-centered-momentum",
        lambda h: eqopt.rmsprop(h, centered=True, momentum=0.9, eps=1e-4),
        lambda h: optax.rmsprop(h, centered=True, momentum=0.9, eps=1e-4),
        0.01,
    ),
    Case(
        "rmsprop-nesterov-debiased",
        lambda h: eqopt.rmsprop(h, momentum=0.5, nesterov=True, bias_correction=True),
        lambda h: optax.rmsprop(h, momentum=0.5, nesterov=True, bias_correction=True),
        0.01,
    ),
)

#: Adam with a learning rate from every kind of schedule: Optax parity and hypergradients.
SCHEDULED: tuple[Case, ...] = tuple(
    _adam_with_schedule(name) for name in SCHEDULE_NAMES
)

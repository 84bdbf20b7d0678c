"""The one registry of optimisers and transformations under test.

Each `Case` builds an eqopt transformation and (where Optax has it) the Optax reference
from one swept hyperparameter value `h` (a learning rate, a decay, a threshold...). A new
optimiser gets every generic test by being added here.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqopt


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Any], eqopt.GradientTransformation]
    reference: Callable[[Any], Any] | None
    #: The value of the swept hyperparameter; `None` if the case has none.
    h: float | None = 0.1
    #: Whether the result is a descent method (so a loss should go down).
    descends: bool = True
    #: Multiplicative factors for sweeps and retracing tests that keep `h` in range.
    factors: tuple[float, ...] = (0.5, 0.8, 1.0)
    #: Relative tolerance of the Optax comparison, if not the float32 default (say why).
    rtol: float | None = None
    atol: float | None = None
    #: Whether the trained result is a smooth function of `h` (finite differences apply).
    smooth: bool = True


def _mask(params):
    # Decay only matrices (arrays with at least two dimensions), a typical use.
    return jax.tree.map(lambda x: eqx.is_array(x) and x.ndim >= 2, params)


# A schedule of every kind, each peaking around `h`: name -> (eqopt, optax) builders.
SCHEDULES = {
    "constant": (
        lambda h: eqopt.constant_schedule(h),
        lambda h: optax.constant_schedule(h),
    ),
    "linear": (
        lambda h: eqopt.linear_schedule(h, h / 10, 8, 2),
        lambda h: optax.linear_schedule(h, h / 10, 8, 2),
    ),
    "polynomial": (
        lambda h: eqopt.polynomial_schedule(h, h / 10, 2.0, 8, 1),
        lambda h: optax.polynomial_schedule(h, h / 10, 2.0, 8, 1),
    ),
    "cosine": (
        lambda h: eqopt.cosine_decay_schedule(h, 8, 0.1, 1.5),
        lambda h: optax.cosine_decay_schedule(h, 8, 0.1, 1.5),
    ),
    "exponential": (
        lambda h: eqopt.exponential_decay(h, 3, 0.5, 1, True, h / 4),
        lambda h: optax.exponential_decay(h, 3, 0.5, 1, True, h / 4),
    ),
    "piecewise": (
        lambda h: eqopt.piecewise_constant_schedule(h, {3: 0.5, 6: 0.2}),
        lambda h: optax.piecewise_constant_schedule(h, {3: 0.5, 6: 0.2}),
    ),
    "warmup_cosine": (
        lambda h: eqopt.warmup_cosine_decay_schedule(h / 10, h, 3, 10, h / 20),
        lambda h: optax.warmup_cosine_decay_schedule(h / 10, h, 3, 10, h / 20),
    ),
    "join": (
        lambda h: eqopt.join_schedules(
            [eqopt.linear_schedule(0.0, h, 3), eqopt.constant_schedule(h / 2)], [3]
        ),
        lambda h: optax.join_schedules(
            [optax.linear_schedule(0.0, h, 3), optax.constant_schedule(h / 2)], [3]
        ),
    ),
}


SCHEDULE_NAMES = tuple(SCHEDULES)


def _adam_with_schedule(name):
    return Case(
        f"adam-{name}-schedule",
        lambda h: eqopt.adam(SCHEDULES[name][0](h)),
        lambda h: optax.adam(SCHEDULES[name][1](h)),
    )


REGISTRY: tuple[Case, ...] = (
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

WITH_HYPERPARAMETER = tuple(c for c in REGISTRY if c.h is not None)
WITH_REFERENCE = tuple(c for c in REGISTRY + SCHEDULED if c.reference is not None)
DESCENDING = tuple(c for c in REGISTRY if c.descends)
SMOOTH = tuple(c for c in WITH_HYPERPARAMETER + SCHEDULED if c.smooth)


def ids(case: Case) -> str:
    return case.id

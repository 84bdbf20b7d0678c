"""Schedule-Free, SAM, Sophia and reduce_on_plateau (`eqopt.contrib`)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqopt
from eqopt import contrib

from .case import Case, InFloat32, value_args


class Normalize(eqopt.GradientTransformation):
    """Gradients divided by their global norm (SAM's adversarial direction), with a
    norm whose derivative is finite at zero. (`eqopt.contrib.normalize` is another
    family's; this stand-in keeps these cases independent of it.)"""

    def init(self, params):
        return eqopt.EmptyState()

    def update(self, updates, state, params=None, **extra_args: Any):
        leaves = [u for u in jax.tree.leaves(updates) if eqx.is_inexact_array(u)]
        squared = sum(jnp.sum(u.astype(jnp.float32) ** 2) for u in leaves)
        # Zero gradients stay zero (Optax's `normalize` makes them NaN).
        norm = jnp.sqrt(jnp.where(squared > 0, squared, 1.0))
        return jax.tree.map(
            lambda u: None if u is None else (u / norm.astype(u.dtype)),
            updates,
            is_leaf=lambda x: x is None,
        ), state


def _optax_normalize():
    def update(updates, state, params=None):
        norm = optax.tree.norm(updates)
        return jax.tree.map(lambda u: u / norm, updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _obj_fn(loss, params, grads):
    return dict(obj_fn=InFloat32(loss))


def _grad_fn(loss, params, grads):
    return dict(grad_fn=lambda p, i: eqx.filter_grad(InFloat32(loss))(p))


# SAM's opaque mode is tested in `tests/test_contrib_schedule_free.py` (parity, an
# Equinox model, sweeps, hypergradients), not here: its adversarial point is a
# parameter vector in the parameters' dtype (as in Optax), so in bfloat16 the update
# is not the float32 update rounded, which the generic bfloat16 test asserts.
OPAQUE_SAM = (
    lambda h: contrib.sam(
        eqopt.sgd(h),
        eqopt.chain(Normalize(), eqopt.sgd(0.05)),
        sync_period=3,
        opaque_mode=True,
    ),
    lambda h: optax.contrib.sam(
        optax.sgd(h),
        optax.chain(_optax_normalize(), optax.sgd(0.05)),
        sync_period=3,
        opaque_mode=True,
    ),
)


CASES: tuple[Case, ...] = (
    # Schedule-Free.
    Case(
        "schedule_free-sgd",
        lambda h: contrib.schedule_free(eqopt.sgd(h), h),
        lambda h: optax.contrib.schedule_free(optax.sgd(h), h),
    ),
    Case(
        "schedule_free-b1",
        lambda h: contrib.schedule_free(eqopt.sgd(0.1), 0.1, b1=h),
        lambda h: optax.contrib.schedule_free(optax.sgd(0.1), 0.1, b1=h),
        0.9,
    ),
    Case(
        "schedule_free-adam-warmup",
        lambda h: contrib.schedule_free(
            eqopt.adam(eqopt.warmup_constant_schedule(0.0, h, 3), b1=0.0),
            eqopt.warmup_constant_schedule(0.0, h, 3),
            b1=0.8,
            weight_lr_power=1.5,
        ),
        lambda h: optax.contrib.schedule_free(
            optax.adam(optax.warmup_constant_schedule(0.0, h, 3), b1=0.0),
            optax.warmup_constant_schedule(0.0, h, 3),
            b1=0.8,
            weight_lr_power=1.5,
        ),
    ),
    Case(
        "schedule_free_adamw",
        lambda h: contrib.schedule_free_adamw(h, warmup_steps=3, weight_decay=1e-2),
        lambda h: optax.contrib.schedule_free_adamw(
            h, warmup_steps=3, weight_decay=1e-2
        ),
        # The update is the difference of two interpolations of parameter-sized
        # iterates: float32 rounding of `1 - b1` (a leaf here, a double in Optax)
        # shows at ~1e-7 of the parameters, so up to ~1e-5 of a small update.
        rtol=1e-4,
        atol=1e-6,
    ),
    Case(
        "schedule_free_adamw-b1",
        lambda h: contrib.schedule_free_adamw(0.05, b1=h),
        lambda h: optax.contrib.schedule_free_adamw(0.05, b1=h),
        0.9,
        rtol=1e-4,
        atol=1e-6,
    ),
    Case(
        "schedule_free_sgd",
        lambda h: contrib.schedule_free_sgd(h, warmup_steps=2, weight_decay=1e-3),
        lambda h: optax.contrib.schedule_free_sgd(h, warmup_steps=2, weight_decay=1e-3),
    ),
    # SAM.
    Case(
        "sam",
        lambda h: contrib.sam(eqopt.sgd(h), eqopt.chain(Normalize(), eqopt.sgd(0.05))),
        lambda h: optax.contrib.sam(
            optax.sgd(h), optax.chain(_optax_normalize(), optax.sgd(0.05))
        ),
    ),
    Case(
        "sam-rho",
        lambda h: contrib.sam(eqopt.sgd(0.1), eqopt.chain(Normalize(), eqopt.sgd(h))),
        lambda h: optax.contrib.sam(
            optax.sgd(0.1), optax.chain(_optax_normalize(), optax.sgd(h))
        ),
        0.05,
    ),
    Case(
        "sam-adam-sync3-no-reset",
        lambda h: contrib.sam(
            eqopt.adam(h), eqopt.sgd(0.02, momentum=0.5), 3, reset_state=False
        ),
        lambda h: optax.contrib.sam(
            optax.adam(h), optax.sgd(0.02, momentum=0.5), 3, reset_state=False
        ),
    ),
    # Sophia.
    Case(
        "sophia",
        lambda h: contrib.sophia(h, update_interval=3),
        lambda h: optax.contrib.sophia(h, update_interval=3),
        extra_args=_obj_fn,
    ),
    Case(
        "sophia-gamma",
        # No clipping, so that the update is a smooth function of `gamma`.
        lambda h: contrib.sophia(
            0.02, 0.9, 0.5, 0.1, gamma=h, clip_threshold=None, update_interval=2
        ),
        lambda h: optax.contrib.sophia(
            0.02, 0.9, 0.5, 0.1, gamma=h, clip_threshold=None, update_interval=2
        ),
        1.0,
        extra_args=_obj_fn,
    ),
    Case(
        "hutchinson_estimator_diag_hessian",
        lambda h: contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(3)),
        lambda h: optax.contrib.hutchinson_estimator_diag_hessian(
            jax.random.PRNGKey(3)
        ),
        None,
        False,
        extra_args=_obj_fn,
    ),
    # reduce_on_plateau (on SGD, so that it descends): a plateau within the 12 steps.
    Case(
        "reduce_on_plateau",
        lambda h: eqopt.chain(
            eqopt.sgd(h), contrib.reduce_on_plateau(0.5, 2, rtol=0.05, cooldown=1)
        ),
        lambda h: optax.chain(
            optax.sgd(h), optax.contrib.reduce_on_plateau(0.5, 2, rtol=0.05, cooldown=1)
        ),
        extra_args=value_args,
    ),
    Case(
        "reduce_on_plateau-factor-accumulated",
        lambda h: eqopt.chain(
            eqopt.sgd(0.1),
            contrib.reduce_on_plateau(h, 1, rtol=0.02, accumulation_size=2),
        ),
        lambda h: optax.chain(
            optax.sgd(0.1),
            optax.contrib.reduce_on_plateau(h, 1, rtol=0.02, accumulation_size=2),
        ),
        0.5,
        extra_args=value_args,
    ),
)

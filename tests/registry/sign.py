"""Sign-based and trust-ratio transformations and optimisers."""

import jax
import optax

import eqopt

from .case import _mask, Case


def _dog_reference(h):
    """Optax's DoG, with each update reshaped to its gradient's shape: Optax multiplies
    every gradient by a step of shape `(1,)` (its sum of squares is `jnp.zeros(1)`), a
    rank promotion, so the update of a 0-d leaf comes out with shape `(1,)`."""
    inner = optax.scale_by_distance_over_gradients(reps_rel=h, global_scale=-1.0)

    def update(updates, state, params=None):
        with jax.numpy_rank_promotion("allow"):
            new, state = inner.update(updates, state, params)
        return jax.tree.map(lambda u, g: u.reshape(g.shape), new, updates), state

    return optax.GradientTransformation(inner.init, update)


def _trust_ratio_mask(params):
    # The trust ratio on matrices only; vectors and scalars keep their plain step.
    return _mask(params)


CASES: tuple[Case, ...] = (
    # Transformations.
    Case(
        "scale_by_sign",
        lambda h: eqopt.scale_by_sign(),
        lambda h: optax.scale_by_sign(),
        None,
        False,
    ),
    Case(
        "scale_by_lion",
        lambda h: eqopt.scale_by_lion(b1=h),
        lambda h: optax.scale_by_lion(b1=h),
        0.9,
        False,
        # The sign is piecewise constant in `b1` and `b2`: zero hypergradients, and
        # finite differences that are zero too (a test that could not fail).
        smooth=False,
        hypergradients_vanish=True,
    ),
    Case(
        "scale_by_lion-smooth",
        lambda h: eqopt.scale_by_lion(b1=h, mode="smooth", smooth_beta=2.0),
        lambda h: optax.scale_by_lion(b1=h, mode="smooth", smooth_beta=2.0),
        0.9,
        False,
    ),
    Case(
        "scale_by_lion-refined",
        lambda h: eqopt.scale_by_lion(b1=h, mode="refined"),
        lambda h: optax.scale_by_lion(b1=h, mode="refined"),
        0.9,
        False,
    ),
    Case(
        "scale_by_rprop",
        eqopt.scale_by_rprop,
        optax.scale_by_rprop,
        0.1,
        False,
    ),
    Case(
        "scale_by_trust_ratio",
        lambda h: eqopt.scale_by_trust_ratio(0.1, h, 1e-3),
        lambda h: optax.scale_by_trust_ratio(0.1, h, 1e-3),
        0.5,
        False,
    ),
    Case(
        "scale_by_param_block_norm",
        eqopt.scale_by_param_block_norm,
        optax.scale_by_param_block_norm,
        # Above the norms of two leaves (0.68, 1.42), so that `min_scale` acts there
        # (with half the gradient entries zero, the 0-d leaf's alone may have none).
        2.0,
        False,
    ),
    Case(
        "scale_by_param_block_rms",
        eqopt.scale_by_param_block_rms,
        optax.scale_by_param_block_rms,
        0.8,  # above the RMS of two leaves (0.68, 0.75)
        False,
    ),
    Case(
        "normalize_by_update_norm",
        lambda h: eqopt.normalize_by_update_norm(-h),
        lambda h: optax.normalize_by_update_norm(-h),
    ),
    Case(
        "scale_by_distance_over_gradients",
        lambda h: eqopt.scale_by_distance_over_gradients(reps_rel=h, global_scale=-1.0),
        _dog_reference,
        1e-2,
    ),
    # Optimisers.
    Case("lion", eqopt.lion, optax.lion, 0.01),
    Case(
        "lion-mask",
        lambda h: eqopt.lion(h, weight_decay=0.5, mask=_mask),
        lambda h: optax.lion(h, weight_decay=0.5, mask=_mask),
        0.01,
    ),
    Case("sign_sgd", eqopt.sign_sgd, optax.sign_sgd, 0.01),
    Case("signum", eqopt.signum, optax.signum, 0.01),
    Case("rprop", eqopt.rprop, optax.rprop, 0.01),
    Case(
        "lamb",
        lambda h: eqopt.lamb(h, weight_decay=0.1),
        lambda h: optax.lamb(h, weight_decay=0.1),
    ),
    Case(
        "lamb-mask",
        lambda h: eqopt.lamb(h, weight_decay=0.1, mask=_mask),
        lambda h: optax.lamb(h, weight_decay=0.1, mask=_mask),
    ),
    Case(
        "lars",
        lambda h: eqopt.lars(h, weight_decay=0.1, trust_coefficient=0.1),
        lambda h: optax.lars(h, weight_decay=0.1, trust_coefficient=0.1),
    ),
    Case(
        "lars-masks",
        lambda h: eqopt.lars(
            h, 0.1, _mask, 0.1, 1e-3, _trust_ratio_mask, 0.5, nesterov=True
        ),
        lambda h: optax.lars(
            h, 0.1, _mask, 0.1, 1e-3, _trust_ratio_mask, 0.5, nesterov=True
        ),
    ),
    Case("fromage", eqopt.fromage, optax.fromage),
    Case(
        "fromage-schedule",
        lambda h: eqopt.fromage(eqopt.linear_schedule(h, h / 10, 8)),
        lambda h: optax.fromage(optax.linear_schedule(h, h / 10, 8)),
    ),
)

"""Adafactor and its blocks, and the accumulator-based optimisers (Adagrad, SM3,
Adadelta, Adan, NovoGrad)."""

import jax
import optax

import eqopt

from .case import _mask, Case


def _vectors(tree):
    return jax.tree.map(lambda x: x.reshape(1) if x.ndim == 0 else x, tree)


def _on_vectors(tx):
    """Optax's `tx` seeing each 0-d leaf as a 1-element vector.

    Optax's SM3 fails on 0-d leaves (an `IndexError`); eqopt treats them as 1-element
    vectors, so this is the reference for the test tree, which has a scalar leaf.
    """

    def update(updates, state, params=None):
        params = None if params is None else _vectors(params)
        new, state = tx.update(_vectors(updates), state, params)
        return jax.tree.map(lambda n, u: n.reshape(u.shape), new, updates), state

    return optax.GradientTransformation(lambda p: tx.init(_vectors(p)), update)


CASES: tuple[Case, ...] = (
    # Transformations. The test tree's matrices are (4, 3) and (2, 2, 2): with
    # `min_dim_size_to_factor=2` both are factored, the vector and scalar are not.
    Case(
        "scale_by_factored_rms",
        lambda h: eqopt.scale_by_factored_rms(decay_rate=h, min_dim_size_to_factor=2),
        lambda h: optax.scale_by_factored_rms(decay_rate=h, min_dim_size_to_factor=2),
        0.8,
        False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_factored_rms-unfactored",
        lambda h: eqopt.scale_by_factored_rms(False, h, epsilon=1e-10),
        lambda h: optax.scale_by_factored_rms(False, h, epsilon=1e-10),
        0.8,
        False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_rss",
        lambda h: eqopt.scale_by_rss(h),
        lambda h: optax.scale_by_rss(h),
        0.1,
        False,
    ),
    Case(
        "scale_by_sm3",
        lambda h: eqopt.scale_by_sm3(h),
        lambda h: _on_vectors(optax.scale_by_sm3(h)),
        0.9,
        False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_sm3-decayed",
        lambda h: eqopt.scale_by_sm3(0.5, h),
        lambda h: _on_vectors(optax.scale_by_sm3(0.5, h)),
        0.9,
        False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_adadelta",
        lambda h: eqopt.scale_by_adadelta(h),
        lambda h: optax.scale_by_adadelta(h),
        0.9,
        False,
    ),
    Case(
        "scale_by_adan",
        lambda h: eqopt.scale_by_adan(h),
        lambda h: optax.scale_by_adan(h),
        0.98,
        False,
    ),
    Case(
        "scale_by_novograd",
        lambda h: eqopt.scale_by_novograd(h, weight_decay=0.01),
        lambda h: optax.scale_by_novograd(h, weight_decay=0.01),
        0.9,
        False,
    ),
    # Optimisers.
    Case(
        "adafactor",
        lambda h: eqopt.adafactor(h, min_dim_size_to_factor=2),
        lambda h: optax.adafactor(h, min_dim_size_to_factor=2),
        moments_like_params=False,
        # Block-RMS clipping has a kink at the threshold, and Adafactor's first
        # update, g / sqrt(g^2 + 1e-30), has an RMS of exactly 1, the default
        # threshold: no finite differences. `adafactor-unfactored-...` (no clipping)
        # checks them, and tests/test_factored_and_accumulators.py the clipping.
        smooth=False,
    ),
    Case(
        "adafactor-unfactored-momentum-weight_decay",
        lambda h: eqopt.adafactor(
            h,
            clipping_threshold=None,
            momentum=0.9,
            # The momentum in the parameters' dtype: Optax's default, float32, rounds
            # float64 finite differences.
            dtype_momentum=None,
            weight_decay_rate=0.01,
            factored=False,
            weight_decay_mask=_mask,
        ),
        lambda h: optax.adafactor(
            h,
            clipping_threshold=None,
            momentum=0.9,
            # The momentum in the parameters' dtype: Optax's default, float32, rounds
            # float64 finite differences.
            dtype_momentum=None,
            weight_decay_rate=0.01,
            factored=False,
            weight_decay_mask=_mask,
        ),
        moments_like_params=False,
    ),
    Case("adagrad", eqopt.adagrad, optax.adagrad),
    Case(
        "sm3",
        eqopt.sm3,
        lambda h: _on_vectors(optax.sm3(h)),
        moments_like_params=False,
    ),
    Case(
        "adadelta",
        lambda h: eqopt.adadelta(h),
        lambda h: optax.adadelta(h),
        1.0,
    ),
    Case(
        "adadelta-weight_decay-mask",
        lambda h: eqopt.adadelta(h, weight_decay=0.01, weight_decay_mask=_mask),
        lambda h: optax.adadelta(h, weight_decay=0.01, weight_decay_mask=_mask),
        1.0,
    ),
    Case("adan", eqopt.adan, optax.adan),
    Case(
        "adan-weight_decay-mask",
        lambda h: eqopt.adan(h, weight_decay=0.01, mask=_mask),
        lambda h: optax.adan(h, weight_decay=0.01, mask=_mask),
    ),
    Case(
        "novograd",
        lambda h: eqopt.novograd(h, weight_decay=0.01),
        lambda h: optax.novograd(h, weight_decay=0.01),
    ),
)

"""ACProp, MADGRAD and GaLore from `eqopt.contrib` (DP-SGD, which takes per-example
gradients, is tested in `tests/test_contrib_misc.py`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqopt
import eqopt.contrib as contrib

from .case import _mask, Case


def _galore_dims(params):
    """Project 3-d weights as `(rows of axes 0, 1) x (axis 2)` matrices and 2-d ones
    transposed; a function, so that it fits any model's parameters."""

    def dims(x, make):
        if not eqx.is_array(x) or x.ndim < 2:
            return None
        return make((0, 1), 2) if x.ndim == 3 else make(1, 0)

    return jax.tree.map(lambda x: dims(x, contrib.GaLoreDimensionNumbers), params)


def _optax_galore_dims(params):
    return jax.tree.map(
        lambda x: (
            None
            if x.ndim < 2
            else optax.contrib.GaLoreDimensionNumbers(
                *(((0, 1), 2) if x.ndim == 3 else (1, 0))
            )
        ),
        params,
    )


def _copying_x0(make):
    """Optax's MADGRAD, with `init` given a copy of the parameters: Optax's state holds
    the parameters' own buffers as `x0` (`jax.tree.map(lambda x: x, params)`), so a
    step that donates parameters and state (as the benchmarks do) deletes them. The
    numbers are Optax's."""

    def reference(h):
        inner = make(h)
        return optax.GradientTransformationExtraArgs(
            lambda params: inner.init(jax.tree.map(jnp.copy, params)), inner.update
        )

    return reference


CASES: tuple[Case, ...] = (
    # ACProp.
    Case(
        "scale_by_acprop",
        lambda h: contrib.scale_by_acprop(b1=h),
        lambda h: optax.contrib.scale_by_acprop(b1=h),
        0.9,
        False,
    ),
    Case("acprop", contrib.acprop, optax.contrib.acprop, 0.01),
    Case(
        "acprop-mask",
        lambda h: contrib.acprop(h, b2=0.99, eps=1e-4, weight_decay=0.1, mask=_mask),
        lambda h: optax.contrib.acprop(
            h, b2=0.99, eps=1e-4, weight_decay=0.1, mask=_mask
        ),
        0.01,
    ),
    # MADGRAD.
    Case(
        "scale_by_madgrad",
        contrib.scale_by_madgrad,
        _copying_x0(optax.contrib.scale_by_madgrad),
        0.05,
    ),
    Case("madgrad", contrib.madgrad, _copying_x0(optax.contrib.madgrad), 0.05),
    Case(
        "madgrad-weight_decay",
        lambda h: contrib.madgrad(h, momentum=0.5, weight_decay=0.1),
        _copying_x0(lambda h: optax.contrib.madgrad(h, momentum=0.5, weight_decay=0.1)),
        0.05,
    ),
    # GaLore. The projector is refreshed from the gradients every `update_proj_gap`
    # steps; derivatives treat it as a constant, which is exact while only the first
    # step's (hyperparameter-independent) gradient sets it.
    Case(
        "scale_by_galore",
        lambda h: contrib.scale_by_galore(rank=2, scale=h),
        lambda h: optax.contrib.scale_by_galore(rank=2, scale=h),
        0.5,
        False,
        moments_like_params=False,
    ),
    Case(
        "galore",
        contrib.galore,
        optax.contrib.galore,
        0.05,
        moments_like_params=False,
    ),
    Case(
        "galore-refresh",
        lambda h: contrib.galore(h, rank=2, update_proj_gap=4, weight_decay=0.1),
        lambda h: optax.contrib.galore(h, rank=2, update_proj_gap=4, weight_decay=0.1),
        0.05,
        # Refreshed from later gradients, which depend on `h`, the projector is a
        # constant to derivatives but not to finite differences.
        smooth=False,
        moments_like_params=False,
    ),
    Case(
        "galore-dimension_numbers",
        lambda h: contrib.galore(
            h,
            rank=1,
            base_optimizer=eqopt.scale_by_lion(),
            weight_dimension_numbers=_galore_dims,
        ),
        lambda h: optax.contrib.galore(
            h,
            rank=1,
            base_optimizer=optax.scale_by_lion(),
            weight_dimension_numbers=_optax_galore_dims,
        ),
        0.05,
        moments_like_params=False,
    ),
)

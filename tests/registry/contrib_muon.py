"""`eqopt.contrib`'s Muon, AdEMAMix, ADOPT, `normalize` and `split_real_and_imaginary`."""

import equinox as eqx
import jax
import optax

import eqopt
import eqopt.contrib

from .case import _mask, Case


def _matrices(params):
    """Muon's leaves in a masked case: the 2D arrays."""
    return jax.tree.map(lambda x: eqx.is_array(x) and x.ndim == 2, params)


def _dims(dimension_numbers):
    """A function of the parameters (or updates) giving Muon's dimension numbers: the
    usual matrix for 2D leaves, a batch of matrices over the first axis for 3D ones
    (the registry's `(2, 2, 2)` leaf), `None` (Adam) elsewhere."""

    def dims(params):
        def one(x):
            if not eqx.is_array(x) or x.ndim < 2:
                return None
            if x.ndim == 2:
                return dimension_numbers()
            return dimension_numbers(reduction_axis=1, output_axis=2)

        return jax.tree.map(one, params)

    return dims


_EQOPT_DIMS = _dims(eqopt.contrib.MuonDimensionNumbers)
_OPTAX_DIMS = _dims(optax.contrib.MuonDimensionNumbers)


def _merged_dims(dimension_numbers):
    """Dimension numbers merging axes: a 3D leaf's axes 0 and 2 are its reduction axes
    (one matrix of 4 x 2); a matrix is used transposed."""

    def dims(params):
        def one(x):
            if not eqx.is_array(x) or x.ndim < 2:
                return None
            if x.ndim == 2:
                return dimension_numbers(reduction_axis=1, output_axis=0)
            return dimension_numbers(reduction_axis=(0, 2), output_axis=1)

        return jax.tree.map(one, params)

    return dims


_EQOPT_MERGED = _merged_dims(eqopt.contrib.MuonDimensionNumbers)
_OPTAX_MERGED = _merged_dims(optax.contrib.MuonDimensionNumbers)


def _b3(schedules):
    return schedules.linear_schedule(0.9, 0.999, 8)


def _alpha(schedules):
    return schedules.linear_schedule(0.0, 5.0, 8)


# Muon's state holds its Newton-Schulz coefficients (Optax's `MuonState.ns_coeffs`),
# which are not laid out like a parameter: the generic sharding test checks Muon's
# numbers and parameter layouts, and `test_contrib_muon.py` its momentum's layout.
CASES: tuple[Case, ...] = (
    # Transformations (Muon's only on matrices: other leaves pass through `masked`).
    Case(
        "contrib.scale_by_muon",
        lambda h: eqopt.masked(eqopt.contrib.scale_by_muon(beta=h), _matrices),
        # Optax's default `weight_dimension_numbers=None` fails on a tree of several
        # leaves (it maps `None`, or one `MuonDimensionNumbers`, as a prefix of the
        # updates); eqopt's means "every leaf is a matrix".
        lambda h: optax.masked(
            optax.contrib.scale_by_muon(beta=h, weight_dimension_numbers=_OPTAX_DIMS),
            _matrices,
        ),
        0.9,
        False,
        moments_like_params=False,
    ),
    Case(
        "contrib.scale_by_muon-dims-adaptive-aol",
        lambda h: eqopt.masked(
            eqopt.contrib.scale_by_muon(
                beta=h,
                nesterov=False,
                adaptive=True,
                preconditioning="aol",
                weight_dimension_numbers=_EQOPT_DIMS,
            ),
            _mask,
        ),
        lambda h: optax.masked(
            optax.contrib.scale_by_muon(
                beta=h,
                nesterov=False,
                adaptive=True,
                preconditioning="aol",
                weight_dimension_numbers=_OPTAX_DIMS,
            ),
            _mask,
        ),
        0.9,
        False,
        moments_like_params=False,
        # `adaptive=True` scales by <G, O>: updates of order 1e4, whose float32 matrix
        # products round differently with the CPU's kernels (3.3e-5 relative on an AMD
        # EPYC, under 1e-5 on the machine before). In float64 the two libraries agree
        # to 1e-14 relative over the 12 steps.
        rtol=1e-4,
    ),
    Case(
        "contrib.scale_by_ademamix",
        lambda h: eqopt.contrib.scale_by_ademamix(h, b3=0.99, alpha=2.0),
        lambda h: optax.contrib.scale_by_ademamix(h, b3=0.99, alpha=2.0),
        0.9,
        False,
    ),
    Case(
        "contrib.scale_by_simplified_ademamix",
        lambda h: eqopt.contrib.scale_by_simplified_ademamix(h, alpha=1.0),
        lambda h: optax.contrib.scale_by_simplified_ademamix(h, alpha=1.0),
        0.9,
        False,
    ),
    Case(
        "contrib.scale_by_adopt",
        lambda h: eqopt.contrib.scale_by_adopt(h, b2=0.99),
        lambda h: optax.contrib.scale_by_adopt(h, b2=0.99),
        0.9,
        False,
    ),
    Case(
        "contrib.normalize",
        lambda h: eqopt.contrib.normalize(),
        lambda h: optax.contrib.normalize(),
        None,
        False,
    ),
    Case(
        "contrib.split_real_and_imaginary",
        lambda h: eqopt.contrib.split_real_and_imaginary(eqopt.adam(h)),
        lambda h: optax.contrib.split_real_and_imaginary(optax.adam(h)),
    ),
    # Optimisers.
    Case(
        "contrib.muon",
        eqopt.contrib.muon,
        optax.contrib.muon,
        0.02,
        moments_like_params=False,
    ),
    Case(
        "contrib.muon-decay-mask-dims",
        lambda h: eqopt.contrib.muon(
            h,
            weight_decay=0.1,
            weight_decay_mask=_mask,
            adam_weight_decay=0.01,
            muon_weight_dimension_numbers=_EQOPT_DIMS,
        ),
        lambda h: optax.contrib.muon(
            h,
            weight_decay=0.1,
            weight_decay_mask=_mask,
            adam_weight_decay=0.01,
            muon_weight_dimension_numbers=_OPTAX_DIMS,
        ),
        0.02,
        moments_like_params=False,
    ),
    Case(
        "contrib.muon-options",
        lambda h: eqopt.contrib.muon(
            h,
            ns_coeffs="dion",
            beta=0.9,
            nesterov=False,
            adaptive=True,
            preconditioning="schatten",
            adam_b1=0.8,
            adam_b2=0.99,
            adam_eps_root=1e-8,
            adam_learning_rate=eqopt.linear_schedule(h / 2, h / 10, 8),
            muon_weight_dimension_numbers=_EQOPT_MERGED,
            consistent_rms=0.2,
        ),
        lambda h: optax.contrib.muon(
            h,
            ns_coeffs="dion",
            beta=0.9,
            nesterov=False,
            adaptive=True,
            preconditioning="schatten",
            adam_b1=0.8,
            adam_b2=0.99,
            adam_eps_root=1e-8,
            adam_learning_rate=optax.linear_schedule(h / 2, h / 10, 8),
            muon_weight_dimension_numbers=_OPTAX_MERGED,
            consistent_rms=0.2,
        ),
        0.02,
        moments_like_params=False,
    ),
    Case("contrib.ademamix", eqopt.contrib.ademamix, optax.contrib.ademamix, 0.01),
    Case(
        "contrib.ademamix-schedules",
        lambda h: eqopt.contrib.ademamix(
            h,
            b3=_b3(eqopt),
            alpha=_alpha(eqopt),
            weight_decay=0.1,
            mask=_mask,
        ),
        lambda h: optax.contrib.ademamix(
            h,
            b3=_b3(optax),
            alpha=_alpha(optax),
            weight_decay=0.1,
            mask=_mask,
        ),
        0.01,
    ),
    Case(
        "contrib.simplified_ademamix",
        lambda h: eqopt.contrib.simplified_ademamix(h, alpha=2.0, weight_decay=0.1),
        lambda h: optax.contrib.simplified_ademamix(h, alpha=2.0, weight_decay=0.1),
        0.01,
    ),
    Case("contrib.adopt", eqopt.contrib.adopt, optax.contrib.adopt, 0.01),
    Case(
        "contrib.adopt-nesterov-no_clipping",
        lambda h: eqopt.contrib.adopt(h, b2=0.99, nesterov=True, use_clipping=False),
        lambda h: optax.contrib.adopt(h, b2=0.99, nesterov=True, use_clipping=False),
        0.01,
    ),
)

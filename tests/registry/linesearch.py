"""Line searches and Polyak steps: transformations that read the objective through
`update`'s extra arguments (`value`, `grad`, `value_fn`)."""

import optax

import eqopt

from .case import Case, linesearch_args, value_args


def _backtracking(lib, store_grad):
    return lambda h: lib.chain(
        lib.sgd(h),
        lib.scale_by_backtracking_linesearch(15, store_grad=store_grad),
    )


CASES: tuple[Case, ...] = (
    Case(
        "backtracking_linesearch",
        _backtracking(eqopt, False),
        _backtracking(optax, False),
        1.0,
        # The accepted step is `h * eta0 * decrease_factor**k` with `k` piecewise
        # constant in `h`: the result is piecewise smooth, and finite differences
        # across a change of `k` are meaningless.
        smooth=False,
        extra_args=linesearch_args,
    ),
    Case(
        "backtracking_linesearch-store_grad",
        _backtracking(eqopt, True),
        _backtracking(optax, True),
        1.0,
        smooth=False,  # as above
        extra_args=linesearch_args,
    ),
    Case(
        "scale_by_polyak",
        lambda h: eqopt.scale_by_polyak(f_min=h),
        lambda h: optax.scale_by_polyak(f_min=h),
        -1.0,
        False,
        extra_args=value_args,
    ),
    Case(
        "polyak_sgd",
        lambda h: eqopt.polyak_sgd(scaling=h),
        lambda h: optax.polyak_sgd(scaling=h),
        1.0,
        extra_args=value_args,
    ),
)

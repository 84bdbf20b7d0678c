"""Line searches and Polyak steps: transformations that read the objective through
`update`'s extra arguments (`value`, `grad`, `value_fn`)."""

from typing import Any

import equinox as eqx
import jax
import optax

import eqopt
from eqopt._tree import upcast

from .case import Case


class InFloat32(eqx.Module):
    """The objective at parameters upcast to float32 (or wider): bfloat16 parameters
    meet the test losses' float32 data without a promotion (the suite runs with strict
    promotion). A Module, so that each call's wrapper is the same compiled function."""

    loss: Any

    def __call__(self, params):
        return self.loss(
            jax.tree.map(lambda x: upcast(x) if eqx.is_inexact_array(x) else x, params)
        )


def linesearch_args(loss, params, grads):
    """Optax's documented call: `value`, `grad` and `value_fn`."""
    value_fn = InFloat32(loss)
    return dict(value=value_fn(params), grad=grads, value_fn=value_fn)


def value_args(loss, params, grads):
    return dict(value=InFloat32(loss)(params))


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

"""What a registry entry is, and the schedules every family may use."""

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import optax

import eqopt
from eqopt._tree import upcast


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
    #: Whether the output is piecewise constant in every float hyperparameter (the sign
    #: of something, as `scale_by_lion`): hypergradients are then exactly zero, and the
    #: meta-step test checks that instead of taking a step that cannot move anything.
    hypergradients_vanish: bool = False
    #: Whether every non-scalar state leaf has its parameter's shape (and so its
    #: layout, checked by `test_sharding.py`); not for factored or per-axis statistics
    #: (Adafactor's row and column means, SM3's per-axis accumulators) nor `flatten`'s
    #: one flat vector, whose state is checked there for its numbers only.
    moments_like_params: bool = True
    #: The keyword arguments `update` needs besides gradients, state and parameters, as
    #: a function of the loss, the parameters and the gradients: `value`, `grad` and
    #: `value_fn` for a line search, `value` for `reduce_on_plateau`, a `grad_fn` for
    #: SAM... `None` for the many transformations that need none.
    extra_args: Callable[[Callable, Any, Any], dict] | None = None

    def update(self, opt, state, params, loss, grads=None):
        """One `opt.update` as a user calls it: the gradient of `loss` at `params` (or
        `grads`, if given) and this case's extra arguments."""
        if grads is None:
            grads = eqx.filter_grad(loss)(params)
        extra = {} if self.extra_args is None else self.extra_args(loss, params, grads)
        return opt.update(grads, state, params, **extra)


class InFloat32(eqx.Module):
    """The objective at parameters upcast to float32 (or wider): bfloat16 parameters
    meet the test losses' float32 data without a promotion (the suite runs with strict
    promotion), for the cases whose `update` evaluates the objective itself. A Module,
    so that each call's wrapper is the same compiled function."""

    loss: Any

    def __call__(self, params):
        return self.loss(
            jax.tree.map(lambda x: upcast(x) if eqx.is_inexact_array(x) else x, params)
        )


def value_args(loss, params, grads):
    """`update`'s extra argument `value` (Polyak steps, MoMo, `reduce_on_plateau`)."""
    return dict(value=InFloat32(loss)(params))


def linesearch_args(loss, params, grads):
    """Optax's documented call of a line search: `value`, `grad` and `value_fn`."""
    value_fn = InFloat32(loss)
    return dict(value=value_fn(params), grad=grads, value_fn=value_fn)


def _mask(params):
    # Decay only matrices (arrays with at least two dimensions), a typical use.
    return jax.tree.map(lambda x: eqx.is_array(x) and x.ndim >= 2, params)


def _sgdr_cycles(h):
    return [
        dict(init_value=h / 10, peak_value=h, warmup_steps=2, decay_steps=5),
        dict(
            init_value=h / 10,
            peak_value=h / 2,
            warmup_steps=1,
            decay_steps=4,
            end_value=h / 20,
        ),
    ]


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
    "piecewise_interpolate": (
        lambda h: eqopt.piecewise_interpolate_schedule("cosine", h, {2: 0.5, 6: 0.2}),
        lambda h: optax.piecewise_interpolate_schedule("cosine", h, {2: 0.5, 6: 0.2}),
    ),
    "linear_onecycle": (
        lambda h: eqopt.linear_onecycle_schedule(10, h, 0.3, 0.7, 5.0, 10.0),
        lambda h: optax.linear_onecycle_schedule(10, h, 0.3, 0.7, 5.0, 10.0),
    ),
    "cosine_onecycle": (
        lambda h: eqopt.cosine_onecycle_schedule(10, h, 0.3, 5.0, 10.0),
        lambda h: optax.cosine_onecycle_schedule(10, h, 0.3, 5.0, 10.0),
    ),
    "warmup_constant": (
        lambda h: eqopt.warmup_constant_schedule(h / 10, h, 4),
        lambda h: optax.warmup_constant_schedule(h / 10, h, 4),
    ),
    "warmup_exponential": (
        lambda h: eqopt.warmup_exponential_decay_schedule(
            h / 10, h, 3, 3, 0.5, 1, False, h / 4
        ),
        lambda h: optax.warmup_exponential_decay_schedule(
            h / 10, h, 3, 3, 0.5, 1, False, h / 4
        ),
    ),
    "sgdr": (
        lambda h: eqopt.sgdr_schedule(_sgdr_cycles(h)),
        lambda h: optax.sgdr_schedule(_sgdr_cycles(h)),
    ),
}


SCHEDULE_NAMES = tuple(SCHEDULES)

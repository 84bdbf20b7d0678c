"""L-BFGS and the zoom line search: optimisers whose `update` needs the objective.

Each case passes the line search's extra arguments as Optax's documentation does:
`update(grad, state, params, value=value, grad=grad, value_fn=loss)`.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqopt

from .case import Case


class _AtLeastFloat32(eqx.Module):
    """The loss of the generic tests, evaluated at parameters rounded up to float32:
    its data are float32 and the tests run with strict dtype promotion, so it is not
    defined at bfloat16 parameters (a line search evaluates the objective, not only
    its gradient). A no-op for float32 and float64 parameters."""

    loss: Callable

    def __call__(self, params):
        up = jax.tree.map(
            lambda x: x.astype(jnp.float32) if _is_bfloat16(x) else x, params
        )
        return self.loss(up)


def _is_bfloat16(x):
    return eqx.is_array(x) and x.dtype == jnp.bfloat16


def _line_search_args(loss, params, grads):
    value_fn = _AtLeastFloat32(loss)
    return dict(value=value_fn(params), grad=grads, value_fn=value_fn)


CASES: tuple[Case, ...] = (
    Case(
        "lbfgs",
        lambda h: eqopt.lbfgs(learning_rate=h),
        lambda h: optax.lbfgs(learning_rate=h),
        0.5,
        extra_args=_line_search_args,
        moments_like_params=False,  # the memory stacks `memory_size` of each parameter
    ),
    Case(
        "lbfgs-default",
        lambda h: eqopt.lbfgs(),
        lambda h: optax.lbfgs(),
        None,
        extra_args=_line_search_args,
        moments_like_params=False,
    ),
    Case(
        "lbfgs-no_linesearch",
        lambda h: eqopt.lbfgs(learning_rate=h, memory_size=3, linesearch=None),
        lambda h: optax.lbfgs(learning_rate=h, memory_size=3, linesearch=None),
        0.1,
        moments_like_params=False,
    ),
    Case(
        "scale_by_zoom_linesearch",
        lambda h: eqopt.chain(
            eqopt.sgd(h), eqopt.scale_by_zoom_linesearch(max_linesearch_steps=15)
        ),
        lambda h: optax.chain(
            optax.sgd(h), optax.scale_by_zoom_linesearch(max_linesearch_steps=15)
        ),
        1.0,
        extra_args=_line_search_args,
    ),
    Case(
        "scale_by_zoom_linesearch-max_learning_rate",
        lambda h: eqopt.chain(
            eqopt.sgd(1.0),
            eqopt.scale_by_zoom_linesearch(8, max_learning_rate=h, curv_rtol=0.5),
        ),
        lambda h: optax.chain(
            optax.sgd(1.0),
            optax.scale_by_zoom_linesearch(8, max_learning_rate=h, curv_rtol=0.5),
        ),
        0.3,
        extra_args=_line_search_args,
    ),
)

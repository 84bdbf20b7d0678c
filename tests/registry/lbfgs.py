"""L-BFGS and the zoom line search: optimisers whose `update` needs the objective.

Each case passes the line search's extra arguments as Optax's documentation does:
`update(grad, state, params, value=value, grad=grad, value_fn=loss)`.
"""

import optax

import eqopt

from .case import Case, linesearch_args


CASES: tuple[Case, ...] = (
    Case(
        "lbfgs",
        lambda h: eqopt.lbfgs(learning_rate=h),
        lambda h: optax.lbfgs(learning_rate=h),
        0.5,
        extra_args=linesearch_args,
        moments_like_params=False,  # the memory stacks `memory_size` of each parameter
    ),
    Case(
        "lbfgs-default",
        lambda h: eqopt.lbfgs(),
        lambda h: optax.lbfgs(),
        None,
        extra_args=linesearch_args,
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
        extra_args=linesearch_args,
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
        extra_args=linesearch_args,
    ),
)

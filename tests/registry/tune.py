"""Optimisers that tune themselves: hypergradient descent around other optimisers."""

import optax

import eqopt

from .case import Case, value_args


CASES: tuple[Case, ...] = (
    # `h` is the wrapped optimiser's (starting) learning rate.
    Case(
        "hypergradient_descent-sgd",
        lambda h: eqopt.hypergradient_descent(eqopt.sgd(h, momentum=0.5), 0.05),
        None,
    ),
    Case(
        "hypergradient_descent-adam-additive",
        lambda h: eqopt.hypergradient_descent(eqopt.adam(h), 1e-3, mode="additive"),
        None,
        h=0.05,
    ),
    Case(
        "reduce_learning_rate_on_plateau-adam",
        lambda h: eqopt.reduce_learning_rate_on_plateau(
            eqopt.adam(h), eqopt.contrib.reduce_on_plateau(factor=0.5, patience=2)
        ),
        # Adam is proportional to its learning rate: Optax's update scaling agrees.
        lambda h: optax.chain(
            optax.adam(h), optax.contrib.reduce_on_plateau(factor=0.5, patience=2)
        ),
        extra_args=value_args,
    ),
)

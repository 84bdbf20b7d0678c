"""Optimisers that tune themselves: hypergradient descent around other optimisers."""

import eqopt

from .case import Case


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
)

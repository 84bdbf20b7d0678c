"""Shampoo, blocked and grafted (Distributed Shampoo; issue: beyond Optax).

No Optax reference: `tests/test_shampoo.py` checks it against a float64 NumPy
implementation of the papers' equations; here it gets every generic test. Its state
holds per-block statistics and roots (`moments_like_params=False`).

Autodiff treats the roots as constants of the statistics (`stop_gradient`, see
`ScaleByShampoo`): with the roots computed once, on the first step, from the first
gradient (which no hyperparameter changes) and `precondition_frequency` beyond the
tests' 10 steps, hypergradients are exact and match finite differences ("shampoo",
"scale_by_shampoo"); with roots recomputed within the run (from statistics that
depend on `h`) they omit that dependence (`smooth=False`).
"""

import eqopt

from .case import _mask, Case


CASES: tuple[Case, ...] = (
    # `h` is the learning rate, or `b1` for the bare transformation.
    Case(
        "shampoo",
        lambda h: eqopt.shampoo(
            h, precondition_frequency=100, start_preconditioning_step=0
        ),
        None,
        h=0.05,
        moments_like_params=False,
    ),
    Case(
        "shampoo-blocked-graft_sgd",
        lambda h: eqopt.shampoo(
            h,
            weight_decay=0.1,
            mask=_mask,
            block_size=2,
            precondition_frequency=2,
            start_preconditioning_step=1,
            graft="sgd",
        ),
        None,
        h=0.05,
        smooth=False,
        moments_like_params=False,
    ),
    Case(
        "shampoo-newton-graft_adagrad",
        lambda h: eqopt.shampoo(
            h,
            precondition_frequency=3,
            start_preconditioning_step=1,
            graft="adagrad",
            matrix_root="newton",
        ),
        None,
        h=0.05,
        smooth=False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_shampoo",
        lambda h: eqopt.scale_by_shampoo(
            b1=h, precondition_frequency=100, start_preconditioning_step=0
        ),
        None,
        0.9,
        False,
        moments_like_params=False,
    ),
)

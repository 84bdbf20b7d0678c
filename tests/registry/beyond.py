"""Optimisers Optax lacks (issue 14): MARS, Adam-mini, cautious masking, SOAP.

No Optax reference: each is checked against a float64 NumPy implementation of its
paper's equations in `tests/test_beyond.py`; here they get every generic test.
"""

import eqopt

from .case import _mask, Case


def _two_blocks(path, leaf):
    """Two blocks along axis 0 where that axis splits evenly, else one per leaf."""
    return 2 if leaf.ndim >= 1 and leaf.shape[0] % 2 == 0 else 1


CASES: tuple[Case, ...] = (
    # MARS: `h` is the learning rate, or `gamma` for the bare transformation.
    Case("mars", lambda h: eqopt.mars(h, gamma=0.1), None, h=0.05),
    Case(
        "mars-mask",
        lambda h: eqopt.mars(h, weight_decay=0.1, mask=_mask, b1=0.9, b2=0.999),
        None,
        h=0.05,
    ),
    Case("scale_by_mars", lambda h: eqopt.scale_by_mars(gamma=h), None, 0.5, False),
    # Adam-mini: `h` is the learning rate, or `b1` for the bare transformation.
    # One second moment per block: state of shape `(blocks,)`, not the parameters'.
    Case("adam_mini", eqopt.adam_mini, None, h=0.05, moments_like_params=False),
    Case(
        "adam_mini-blocks",
        lambda h: eqopt.adam_mini(
            h, weight_decay=0.1, mask=_mask, block_fn=_two_blocks
        ),
        None,
        h=0.05,
        moments_like_params=False,
    ),
    Case(
        "scale_by_adam_mini",
        lambda h: eqopt.scale_by_adam_mini(b1=h),
        None,
        0.9,
        False,
        moments_like_params=False,
    ),
    # Cautious: `h` is the wrapped optimiser's learning rate.
    Case(
        "cautious-adamw",
        lambda h: eqopt.cautious(eqopt.adamw(h, weight_decay=0.1)),
        None,
        h=0.05,
    ),
    Case(
        "cautious-c_adamw",
        lambda h: eqopt.chain(
            eqopt.cautious(eqopt.scale_by_adam(), descent=False),
            eqopt.add_decayed_weights(0.1),
            eqopt.scale_by_learning_rate(h),
        ),
        None,
        h=0.05,
    ),
    Case(
        "cautious-sgd_momentum",
        lambda h: eqopt.cautious(eqopt.sgd(h, momentum=0.9)),
        None,
        h=0.02,
    ),
)

# SOAP: `h` is the learning rate, or `b1` for the bare transformation. Its state holds
# per-axis matrices (statistics and eigenbases), not moments like the parameters.
# One-sided (the shorter axis) or `max_precond_dim=3`: the statistics of the other axis
# of `w` (4 x 3 here, 8 x 6 in `test_sharding.py`) are rank-deficient after the first
# gradient, and Adam scales the rounding-level components along their null space to
# O(1) (see `ScaleBySoap`), so vmapped or sharded runs would differ from separate ones
# there by rounding alone. Both sides are checked against the float64 reference.
# Autodiff treats the eigenbases as constants: with `precondition_frequency` beyond the
# tests' 10 steps they are fixed after the first step (by the initial gradient, which
# no hyperparameter changes), so hypergradients are exact and match finite
# differences; with refreshes within the run they omit the bases' dependence on `h`.
CASES += (
    Case(
        "soap",
        lambda h: eqopt.soap(h, precondition_frequency=100, one_sided=True),
        None,
        h=0.05,
        moments_like_params=False,
    ),
    Case(
        "soap-refresh",
        lambda h: eqopt.soap(
            h,
            0.9,
            0.99,
            0.9,
            weight_decay=0.1,
            mask=_mask,
            precondition_frequency=2,
            one_sided=True,
        ),
        None,
        h=0.05,
        smooth=False,
        moments_like_params=False,
    ),
    Case(
        "soap-max_precond_dim",
        lambda h: eqopt.soap(h, precondition_frequency=3, max_precond_dim=3),
        None,
        h=0.05,
        smooth=False,
        moments_like_params=False,
    ),
    Case(
        "scale_by_soap",
        lambda h: eqopt.scale_by_soap(b1=h, precondition_frequency=100, one_sided=True),
        None,
        0.9,
        False,
        moments_like_params=False,
    ),
)

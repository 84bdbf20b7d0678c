"""PSGD-Kron (Li 2018, 2024; `psgd_jax`'s `kron`), not in Optax.

Checked against a float64 NumPy implementation of the equations in
`tests/test_psgd_kron.py`; here it gets every generic test. Its state holds per-axis
factors (triangular matrices, diagonal vectors), not moments like the parameters.
The random update decisions are drawn from a key in the state, the same in every run
of a vmapped sweep, so swept, sharded and resumed runs match separate ones.
"""

import eqopt

from .case import _mask, Case


CASES: tuple[Case, ...] = (
    # `h` is the learning rate. Probability 1: the factors are refitted every step,
    # a smooth function of `h` (triangular solves, and the norm bound's choice of
    # column constant under small changes), so hypergradients match finite differences.
    Case(
        "kron",
        lambda h: eqopt.kron(h, preconditioner_update_probability=1.0),
        None,
        h=0.05,
        moments_like_params=False,
    ),
    # Diagonal factors only for the small axes (`max_size_triangular=3`: the test
    # problems' longer axes fall back to diagonal), weight decay on matrices, and
    # random update decisions (probability 0.5). The decisions do not depend on `h`,
    # and the trained result stays smooth in it.
    Case(
        "kron-diag",
        lambda h: eqopt.kron(
            h,
            0.9,
            0.1,
            _mask,
            preconditioner_update_probability=0.5,
            max_size_triangular=3,
            key=3,
        ),
        None,
        h=0.05,
        moments_like_params=False,
    ),
    # `h` is `b1` for the bare transformation (no descent method on its own).
    Case(
        "scale_by_kron",
        lambda h: eqopt.scale_by_kron(b1=h, preconditioner_update_probability=1.0),
        None,
        0.9,
        False,
        moments_like_params=False,
    ),
)

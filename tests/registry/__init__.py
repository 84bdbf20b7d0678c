"""The one registry of optimisers and transformations under test.

Each `Case` builds an eqopt transformation and (where Optax has it) the Optax reference
from one swept hyperparameter value `h` (a learning rate, a decay, a threshold...). A new
optimiser gets every generic test by being added to its family's module here, and that
module's `CASES` to `REGISTRY` below.
"""

from . import (
    adam,
    beyond,
    combine,
    contrib_adaptive,
    contrib_misc,
    contrib_muon,
    contrib_schedule_free,
    core,
    ema,
    factored,
    inject,
    lbfgs,
    linesearch,
    misc,
    psgd_kron,
    shampoo,
    sign,
    tune,
    wrappers,
)
from .case import Case as Case, SCHEDULE_NAMES as SCHEDULE_NAMES, SCHEDULES as SCHEDULES


REGISTRY: tuple[Case, ...] = (
    core.CASES
    + adam.CASES
    + beyond.CASES
    + combine.CASES
    + contrib_muon.CASES
    + factored.CASES
    + inject.CASES
    + linesearch.CASES
    + lbfgs.CASES
    + misc.CASES
    + shampoo.CASES
    + sign.CASES
    + tune.CASES
    + wrappers.CASES
    + contrib_schedule_free.CASES
    + contrib_misc.CASES
    + contrib_adaptive.CASES
    + ema.CASES
    + psgd_kron.CASES
)
SCHEDULED: tuple[Case, ...] = core.SCHEDULED

WITH_HYPERPARAMETER = tuple(c for c in REGISTRY if c.h is not None)
WITH_REFERENCE = tuple(c for c in REGISTRY + SCHEDULED if c.reference is not None)
DESCENDING = tuple(c for c in REGISTRY if c.descends)
SMOOTH = tuple(c for c in WITH_HYPERPARAMETER + SCHEDULED if c.smooth)


def ids(case: Case) -> str:
    return case.id

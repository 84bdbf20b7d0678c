"""Line searches: transformations that choose a step size by evaluating the objective.

The backtracking line search is imported with `eqopt`; the zoom line search and L-BFGS
on first use (see `eqopt._LAZY_NAMES`).
"""

from .backtracking import (
    BacktrackingLinesearchInfo as BacktrackingLinesearchInfo,
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
    ScaleByBacktrackingLinesearch as ScaleByBacktrackingLinesearch,
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)

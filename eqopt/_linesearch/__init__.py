"""Line searches: transformations that choose a step size by evaluating the objective."""

from .backtracking import (
    BacktrackingLinesearchInfo as BacktrackingLinesearchInfo,
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
    ScaleByBacktrackingLinesearch as ScaleByBacktrackingLinesearch,
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)

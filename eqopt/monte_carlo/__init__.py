"""eqopt.monte_carlo (Optax 0.2.6: `optax.monte_carlo`)."""

from ._base import AbstractEstimator as AbstractEstimator
from ._control_delta import (
    control_delta_method as control_delta_method,
    ControlDeltaMethod as ControlDeltaMethod,
)
from ._control_variate import AbstractControlVariate as AbstractControlVariate
from ._control_variates_jacobians import (
    control_variates_jacobians as control_variates_jacobians,
    ControlVariatesEstimator as ControlVariatesEstimator,
    estimate_control_variate_coefficients as estimate_control_variate_coefficients,
)
from ._measure_valued import (
    measure_valued_jacobians as measure_valued_jacobians,
    MeasureValuedEstimator as MeasureValuedEstimator,
)
from ._moving_average import (
    moving_avg_baseline as moving_avg_baseline,
    MovingAverageBaseline as MovingAverageBaseline,
    MovingAverageBaselineState as MovingAverageBaselineState,
)
from ._pathwise import (
    pathwise_jacobians as pathwise_jacobians,
    PathwiseEstimator as PathwiseEstimator,
)
from ._score_function import (
    score_function_jacobians as score_function_jacobians,
    ScoreFunctionEstimator as ScoreFunctionEstimator,
)

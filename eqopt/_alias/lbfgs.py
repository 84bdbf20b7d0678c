"""L-BFGS with a zoom line search, Optax's `lbfgs`."""

from typing import Any, no_type_check

import equinox as eqx

from .._base import GradientTransformation, Identity
from .._combine import Chain
from .._hyperparams import as_optional_hyperparameter
from .._linesearch.zoom import ScaleByZoomLinesearch
from .._transforms.lbfgs import ScaleByLBFGS
from .._transforms.scaling import Scale, ScaleByLearningRate
from .base import AbstractOptimiser, LearningRate


@no_type_check
def _default_linesearch() -> ScaleByZoomLinesearch:
    return ScaleByZoomLinesearch(max_linesearch_steps=20, initial_guess_strategy="one")


#: Optax's default, shown in the signature. Each `lbfgs()` builds its own copy, so that
#: its leaves take the float precision in force then (float64 under `jax_enable_x64`),
#: not the one in force when this module was first imported.
_DEFAULT_LINESEARCH = _default_linesearch()


@no_type_check
def _fresh_if_default(linesearch: Any) -> Any:
    return _default_linesearch() if linesearch is _DEFAULT_LINESEARCH else linesearch


class LBFGS(AbstractOptimiser):
    r"""L-BFGS: a quasi-Newton direction, scaled by a line search.

    $w_{k+1} = w_k - \eta_k P_k \nabla f(w_k)$, with $P_k$ the limited-memory
    inverse-Hessian approximation of [`eqopt.ScaleByLBFGS`][] and $\eta_k$ chosen by
    the line search (by default a zoom line search satisfying the strong Wolfe
    conditions, starting from $\eta = 1$: [`eqopt.ScaleByZoomLinesearch`][]).

    Its `update` takes the keyword arguments `value`, `grad` and `value_fn` of the line
    search, as in Optax:

    ```python
    opt = eqopt.lbfgs()
    state = opt.init(params)
    value_and_grad = eqopt.value_and_grad_from_state(f)
    for _ in range(10):
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = eqopt.apply_updates(params, updates)
    ```

    For full-batch (deterministic) problems; memory intensive for large models
    ($2m$ copies of the parameters).

    Optax: `optax.lbfgs`. Built as `chain(scale_by_lbfgs(memory_size,
    scale_init_precond), scale(-1.0) or scale_by_learning_rate(learning_rate),
    linesearch or identity())`.

    **Arguments:**

    - `learning_rate`: an optional global factor (a float, an array or a schedule);
        `None` (the default) leaves the step size to the line search.
    - `memory_size`: the number of past differences kept (static).
    - `scale_init_precond`: whether to scale the initial inverse Hessian (static).
    - `linesearch`: the line search (any transformation), or `None` for none.

    ??? cite "References"

        Nocedal and Wright, *Numerical Optimization*, Algorithms 7.4 and 7.5, 1999.

        Liu and Nocedal, *On the limited memory BFGS method for large scale
        optimization*, Mathematical Programming 1989.
    """

    learning_rate: LearningRate | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    memory_size: int = eqx.field(static=True, converter=int, default=10)
    scale_init_precond: bool = eqx.field(static=True, default=True)
    linesearch: GradientTransformation | None = eqx.field(
        converter=_fresh_if_default, default=_DEFAULT_LINESEARCH
    )

    def __check_init__(self):
        ScaleByLBFGS(self.memory_size)  # its checks

    def as_chain(self) -> Chain:
        if self.learning_rate is None:
            scaling = Scale(-1.0)
        else:
            scaling = ScaleByLearningRate(self.learning_rate)
        return Chain(
            (
                ScaleByLBFGS(self.memory_size, self.scale_init_precond),
                scaling,
                Identity() if self.linesearch is None else self.linesearch,
            )
        )


lbfgs = LBFGS

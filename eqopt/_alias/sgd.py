"""Stochastic gradient descent and RMSProp."""

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._base import Identity
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT_CLOSED
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar
from .._transforms.adaptive import ScaleByRMS, ScaleByStddev
from .._transforms.momentum import Trace
from .._transforms.scaling import ScaleByLearningRate
from .base import AbstractOptimiser, LearningRate


class SGD(AbstractOptimiser):
    r"""Stochastic gradient descent, with optional (Nesterov) momentum.

    $$
    t_k = g_k + \mu\, t_{k-1}, \qquad
    \theta_{k+1} = \theta_k - \eta_k\, t_k
    \quad(\text{Nesterov: } \theta_{k+1} = \theta_k - \eta_k (g_k + \mu\, t_k)).
    $$

    Optax: `optax.sgd`. Built as `chain(trace(momentum, nesterov),
    scale_by_learning_rate(learning_rate))`, without the trace when `momentum=None`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `momentum`: $\mu$, or `None` for plain SGD.
    - `nesterov`: whether to use Nesterov momentum.
    - `accumulator_dtype`: dtype of the momentum buffer; `None` uses the parameter's.

    ??? cite "References"

        Robbins and Monro, *A Stochastic Approximation Method*, 1951.
        Sutskever et al., *On the importance of initialization and momentum in deep
        learning*, ICML 2013.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    momentum: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    nesterov: bool = eqx.field(static=True, default=False)
    accumulator_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_hyperparameters("sgd", self, momentum=NONNEGATIVE)

    def as_chain(self) -> Chain:
        if self.momentum is None:
            first = Identity()
        else:
            first = Trace(self.momentum, self.nesterov, self.accumulator_dtype)
        return Chain((first, ScaleByLearningRate(self.learning_rate)))


class RMSProp(AbstractOptimiser):
    r"""RMSProp, optionally centred and with momentum.

    $u_t = -\eta_t\, g_t / \sqrt{v_t + \varepsilon}$ with the second moment of
    [`eqopt.ScaleByRMS`][] (or, centred, the variance of [`eqopt.ScaleByStddev`][]),
    followed by momentum [`eqopt.Trace`][] when `momentum` is given.

    Optax: `optax.rmsprop`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `decay`, `eps`, `initial_scale`, `eps_in_sqrt`, `bias_correction`: as in
        [`eqopt.ScaleByRMS`][].
    - `centered`: divide by the standard deviation rather than the root mean square.
    - `momentum`: momentum coefficient, or `None` for none.
    - `nesterov`: whether the momentum is Nesterov's.

    ??? cite "References"

        Hinton, *Overview of mini-batch gradient descent*, Lecture 6.5, 2012.
        Graves, *Generating Sequences With Recurrent Neural Networks*, 2013.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    initial_scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    eps_in_sqrt: bool = eqx.field(static=True, default=True)
    centered: bool = eqx.field(static=True, default=False)
    momentum: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    nesterov: bool = eqx.field(static=True, default=False)
    bias_correction: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters(
            "rmsprop", self, decay=UNIT_CLOSED, eps=NONNEGATIVE, momentum=NONNEGATIVE
        )

    def as_chain(self) -> Chain:
        scaling = ScaleByStddev if self.centered else ScaleByRMS
        momentum = (
            Identity() if self.momentum is None else Trace(self.momentum, self.nesterov)
        )
        return Chain(
            (
                scaling(
                    self.decay,
                    self.eps,
                    self.initial_scale,
                    self.eps_in_sqrt,
                    self.bias_correction,
                ),
                ScaleByLearningRate(self.learning_rate),
                momentum,
            )
        )


sgd = SGD
rmsprop = RMSProp

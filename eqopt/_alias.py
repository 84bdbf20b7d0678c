"""Popular optimisers, each a Module whose fields are the Optax factory's arguments.

Each optimiser is built from the transformations of `eqopt._transforms` by its
`as_chain` method, so its numbers are those of the blocks, and its state is the state of
that chain (a tuple, as in Optax: `state[0].mu` is Adam's first moment).
"""

import abc
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from ._base import AbstractSchedule, GradientTransformation, Identity
from ._checks import check_hyperparameters, NONNEGATIVE, UNIT, UNIT_CLOSED
from ._combine import Chain
from ._custom_types import OptState, Params, Updates
from ._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar
from ._masking import freeze_mask, FrozenMask
from ._transforms.adaptive import ScaleByAdam, ScaleByRMS, ScaleByStddev
from ._transforms.decay import AddDecayedWeights
from ._transforms.momentum import Trace
from ._transforms.scaling import ScaleByLearningRate


class AbstractOptimiser(GradientTransformation):
    """An optimiser defined as a chain of transformations built from its own fields.

    Subclasses declare their hyperparameters as fields and implement `as_chain`; `init`
    and `update` are those of the chain. Users change a hyperparameter on the optimiser
    itself: `eqx.tree_at(lambda o: o.learning_rate, opt, jnp.asarray(3e-4))`.
    """

    @abc.abstractmethod
    def as_chain(self) -> Chain:
        """The equivalent chain of transformations."""

    def init(self, params: Params) -> tuple[OptState, ...]:
        return self.as_chain().init(params)

    def update(
        self,
        updates: Updates,
        state: tuple[OptState, ...],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, tuple[OptState, ...]]:
        return self.as_chain().update(updates, state, params, **extra_args)


LearningRate = Float[Array, ""] | AbstractSchedule
_ADAM_RANGES = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE, eps_root=NONNEGATIVE)


@no_type_check
def _scale_by_adam(opt: "Adam | AdamW") -> ScaleByAdam:
    return ScaleByAdam(
        opt.b1, opt.b2, opt.eps, opt.eps_root, opt.mu_dtype, nesterov=opt.nesterov
    )


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


class Adam(AbstractOptimiser):
    r"""Adam: Adam's moment scaling followed by the learning rate.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)$, with the
    moments of [`eqopt.ScaleByAdam`][].

    Optax: `optax.adam`. Built as `chain(scale_by_adam(...),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`: as in
        [`eqopt.ScaleByAdam`][].

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adam", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        return Chain((_scale_by_adam(self), ScaleByLearningRate(self.learning_rate)))


class AdamW(AbstractOptimiser):
    r"""AdamW: Adam with decoupled weight decay.

    $u_t = -\eta_t \left(\hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)
    + \lambda\, \theta_t\right)$.

    The weight decay is multiplied by the learning rate, as in PyTorch and Optax.

    Optax: `optax.adamw`. Built as `chain(scale_by_adam(...),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`: as in
        [`eqopt.ScaleByAdam`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-4)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adamw", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        return Chain(
            (
                _scale_by_adam(self),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


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
adam = Adam
adamw = AdamW
rmsprop = RMSProp

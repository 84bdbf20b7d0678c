"""Optimisers built on Adam's variants: Adamax(W), AMSGrad, AdaBelief, Yogi and RAdam.

Each is its scaling from `eqopt._transforms.adam_variants` followed by the learning rate
(and, for AdamaxW, decoupled weight decay in between), as in Optax.
"""

from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, DTypeLike, Float

from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._transforms.adam_variants import (
    ScaleByAdamax,
    ScaleByAMSGrad,
    ScaleByBelief,
    ScaleByRAdam,
    ScaleByYogi,
)
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .base import AbstractOptimiser, LearningRate


_DECAYS = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE)
_DECAYS_AND_ROOT = dict(_DECAYS, eps_root=NONNEGATIVE)


class Adamax(AbstractOptimiser):
    r"""Adamax: Adam with the infinity norm in place of the second moment.

    $u_t = -\eta_t\, \hat m_t / v_t$, with $v_t = \max(|g_t| + \varepsilon,
    \beta_2 v_{t-1})$ as in [`eqopt.ScaleByAdamax`][].

    Optax: `optax.adamax`. Built as `chain(scale_by_adamax(b1, b2, eps),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`: as in [`eqopt.ScaleByAdamax`][].

    ??? cite "References"

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015
        (section 7.1).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)

    def __check_init__(self):
        check_hyperparameters("adamax", self, **_DECAYS)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByAdamax(self.b1, self.b2, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class AdamaxW(AbstractOptimiser):
    r"""AdamaxW: Adamax with decoupled weight decay.

    $u_t = -\eta_t \left(\hat m_t / v_t + \lambda\, \theta_t\right)$, with the moments
    of [`eqopt.ScaleByAdamax`][]; the weight decay is multiplied by the learning rate,
    as in [`eqopt.AdamW`][].

    Optax: `optax.adamaxw`. Built as `chain(scale_by_adamax(b1, b2, eps),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`: as in [`eqopt.ScaleByAdamax`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-4)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters("adamaxw", self, **_DECAYS)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByAdamax(self.b1, self.b2, self.eps),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class AMSGrad(AbstractOptimiser):
    r"""AMSGrad: Adam whose second moment never decreases.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v^{\max}_t + \bar\varepsilon} +
    \varepsilon)$, with $\hat v^{\max}_t$ the running maximum of Adam's $\hat v_t$, as in
    [`eqopt.ScaleByAMSGrad`][].

    Optax: `optax.amsgrad`. Built as `chain(scale_by_amsgrad(...),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `bias_correction_mu`,
        `bias_correction_nu`, `nu_dtype`: as in [`eqopt.ScaleByAMSGrad`][]
        (`nu_dtype`, keyword-only, is not in Optax).

    ??? cite "References"

        Reddi, Kale and Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    bias_correction_mu: bool = eqx.field(static=True, default=True)
    bias_correction_nu: bool = eqx.field(static=True, default=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("amsgrad", self, **_DECAYS_AND_ROOT)

    def as_chain(self) -> Chain:
        scaling = ScaleByAMSGrad(
            self.b1,
            self.b2,
            self.eps,
            self.eps_root,
            self.mu_dtype,
            self.bias_correction_mu,
            self.bias_correction_nu,
            nu_dtype=self.nu_dtype,
        )
        return Chain((scaling, ScaleByLearningRate(self.learning_rate)))


class AdaBelief(AbstractOptimiser):
    r"""AdaBelief: Adam scaled by the spread of the gradients around their mean.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat s_t} + \varepsilon)$, with $s_t$ the moving
    average of $|g_t - m_t|^2$ (plus $\bar\varepsilon$), as in [`eqopt.ScaleByBelief`][].

    Optax: `optax.adabelief`. Built as `chain(scale_by_belief(...),
    scale_by_learning_rate(learning_rate))`. Optax has no weight decay here, nor does
    eqopt: chain [`eqopt.AddDecayedWeights`][] for it.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `nesterov`: as in [`eqopt.ScaleByBelief`][].

    ??? cite "References"

        Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in
        Observed Gradients*, NeurIPS 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-16)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adabelief", self, **_DECAYS_AND_ROOT)

    def as_chain(self) -> Chain:
        scaling = ScaleByBelief(
            self.b1, self.b2, self.eps, self.eps_root, nesterov=self.nesterov
        )
        return Chain((scaling, ScaleByLearningRate(self.learning_rate)))


class Yogi(AbstractOptimiser):
    r"""Yogi: Adam whose second moment moves additively, by $\pm(1 - \beta_2)|g_t|^2$.

    $u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v_t} + \varepsilon)$, with $v_t$ as in
    [`eqopt.ScaleByYogi`][] (`eps_root=0`, both moments starting at `1e-6`, as Optax).

    Optax: `optax.yogi`. Built as `chain(scale_by_yogi(b1, b2, eps),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`: as in [`eqopt.ScaleByYogi`][].

    ??? cite "References"

        Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-3)

    def __check_init__(self):
        check_hyperparameters("yogi", self, **_DECAYS)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByYogi(self.b1, self.b2, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class RAdam(AbstractOptimiser):
    r"""RAdam: Rectified Adam, momentum SGD until the variance of Adam's adaptive step is
    tractable, then Adam with the rectification factor $r_t$.

    The update is $-\eta_t$ times that of [`eqopt.ScaleByRAdam`][] (whose docstring
    also says how its numbers relate to Optax's for `b2=0.999`).

    Optax: `optax.radam`. Built as `chain(scale_by_radam(...),
    scale_by_learning_rate(learning_rate))`. Optax has no weight decay here, nor does
    eqopt: chain [`eqopt.AddDecayedWeights`][] for it.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `eps_root`, `threshold`, `nesterov`: as in
        [`eqopt.ScaleByRAdam`][].

    ??? cite "References"

        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*,
        ICLR 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    threshold: Float[Array, ""] = eqx.field(converter=as_scalar, default=5.0)
    nesterov: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("radam", self, **_DECAYS_AND_ROOT)

    def as_chain(self) -> Chain:
        scaling = ScaleByRAdam(
            self.b1,
            self.b2,
            self.eps,
            self.eps_root,
            self.threshold,
            nesterov=self.nesterov,
        )
        return Chain((scaling, ScaleByLearningRate(self.learning_rate)))


adabelief = AdaBelief
adamax = Adamax
adamaxw = AdamaxW
amsgrad = AMSGrad
radam = RAdam
yogi = Yogi

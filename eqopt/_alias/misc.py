"""Noisy SGD and the optimistic optimisers."""

import warnings
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, ArrayLike, DTypeLike, Float

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, NONNEGATIVE
from .._combine import Chain
from .._custom_types import ScalarLike
from .._hyperparams import (
    as_hyperparameter,
    as_optional_scalar,
    as_scalar,
    is_scheduled,
)
from .._transforms.noise import AddNoise, as_key_data, KeyData, resolve_key
from .._transforms.optimistic import ScaleByOptimisticGradient
from .._transforms.scaling import ScaleByLearningRate
from .adam import _ADAM_RANGES, _scale_by_adam
from .base import AbstractOptimiser, LearningRate


class NoisySGD(AbstractOptimiser):
    r"""SGD on gradients with annealed Gaussian noise added.

    $$
    u_t = -\eta_t \left(g_t + \sigma_t\, \xi_t\right), \qquad
    \sigma_t^2 = \frac{\eta_\text{noise}}{t^\gamma}, \quad \xi_t \sim \mathcal{N}(0, I).
    $$

    The PRNG key is data (see [`eqopt.AddNoise`][]): a vmapped sweep over `eta` or
    the learning rate draws the same noise in every run.

    Optax: `optax.noisy_sgd` (the factory [`eqopt.noisy_sgd`][] takes Optax's `key`
    and deprecated `seed`). Built as `chain(add_noise(eta, gamma, key),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule.
    - `eta`: $\eta_\text{noise} \ge 0$, the initial variance of the noise.
    - `gamma`: $\gamma \ge 0$, the decay exponent of the variance.
    - `key`: the PRNG key, as in [`eqopt.AddNoise`][].

    ??? cite "References"

        Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep
        Networks*, 2015.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    eta: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.01)
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.55)
    key: KeyData = eqx.field(converter=as_key_data, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("noisy_sgd", self, eta=NONNEGATIVE, gamma=NONNEGATIVE)

    def as_chain(self) -> Chain:
        return Chain(
            (
                AddNoise(self.eta, self.gamma, key=self.key),
                ScaleByLearningRate(self.learning_rate),
            )
        )


def noisy_sgd(
    learning_rate: ScalarLike | AbstractSchedule | Callable,
    eta: ArrayLike = 0.01,
    gamma: ArrayLike = 0.55,
    key: ArrayLike | None = None,
    *,
    seed: int | None = None,
) -> NoisySGD:
    """SGD with annealed gradient noise: Optax's signature for [`eqopt.NoisySGD`][].

    **Arguments:**

    - `learning_rate`, `eta`, `gamma`: as in [`eqopt.NoisySGD`][].
    - `key`: the PRNG key (a key from `jax.random.key`, or an integer seed). `None`
        warns and uses the seed 0, as Optax.
    - `seed`: deprecated, as in Optax: use `key`.
    """
    return NoisySGD(learning_rate, eta, gamma, key=resolve_key("noisy_sgd", key, seed))


class OptimisticGradientDescent(AbstractOptimiser):
    r"""Optimistic gradient descent, for min-max games.

    $u_t = -\eta_t \left((\alpha + \beta)\, g_t - \beta\, g_{t-1}\right)$, with the
    gradients of [`eqopt.ScaleByOptimisticGradient`][].

    Optax: `optax.optimistic_gradient_descent`. Built as
    `chain(scale_by_optimistic_gradient(alpha, beta),
    scale_by_learning_rate(learning_rate))`. Optax types `alpha` and `beta` as
    schedules but uses them as constants; here they are constants.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule.
    - `alpha`: $\alpha$, the weight of the current gradient.
    - `beta`: $\beta$, the weight of the negative momentum.

    ??? cite "References"

        Mokhtari et al., *A Unified Analysis of Extra-gradient and Optimistic Gradient
        Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    alpha: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByOptimisticGradient(self.alpha, self.beta),
                ScaleByLearningRate(self.learning_rate),
            )
        )


class OptimisticAdam(AbstractOptimiser):
    r"""Optimistic Adam (deprecated in Optax: use [`eqopt.OptimisticAdamV2`][]).

    $u_t = -\left((\eta + o)\, a_t - o\, a_{t-1}\right)$, where $a_t$ is the Adam
    direction of [`eqopt.ScaleByAdam`][] and $o$ the optimism (the learning rate by
    default), as [`eqopt.ScaleByOptimisticGradient`][] with $\alpha = \eta$,
    $\beta = o$. Constructing it warns (`DeprecationWarning`), as in Optax.

    Optax: `optax.optimistic_adam`. Built as `chain(scale_by_adam(...),
    scale_by_optimistic_gradient(learning_rate, optimism), scale_by_learning_rate(1))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float or an array (not a schedule, as in Optax).
    - `optimism`: $o$; `None` uses the learning rate.
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`, `nu_dtype`: as in
        [`eqopt.ScaleByAdam`][] (`nesterov` defaults to `True` here; `nu_dtype`,
        keyword-only, is not in Optax).

    ??? cite "References"

        Daskalakis et al., *Training GANs with Optimism*, ICLR 2018.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    optimism: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    eps_root: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=True, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        warnings.warn(
            "`optimistic_adam` is deprecated, please use `optimistic_adam_v2` instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        if is_scheduled(self.learning_rate):
            raise ValueError(
                "`optimistic_adam(learning_rate=...)` does not support learning rate "
                "schedules; `optimistic_adam_v2` does."
            )
        check_hyperparameters("optimistic_adam", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        optimism = self.learning_rate if self.optimism is None else self.optimism
        return Chain(
            (
                _scale_by_adam(self),
                ScaleByOptimisticGradient(self.learning_rate, optimism),
                ScaleByLearningRate(1.0),
            )
        )


class OptimisticAdamV2(AbstractOptimiser):
    r"""Optimistic Adam: Adam's direction, extrapolated, then the learning rate.

    $u_t = -\eta_t \left((\alpha + \beta)\, a_t - \beta\, a_{t-1}\right)$, where $a_t$
    is the Adam direction of [`eqopt.ScaleByAdam`][].

    Optax: `optax.optimistic_adam_v2`. Built as `chain(scale_by_adam(...),
    scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule.
    - `alpha`, `beta`: as in [`eqopt.ScaleByOptimisticGradient`][].
    - `b1`, `b2`, `eps`, `eps_root`, `mu_dtype`, `nesterov`, `nu_dtype`: as in
        [`eqopt.ScaleByAdam`][] (`nesterov` defaults to `True` here; `nu_dtype`,
        keyword-only, is not in Optax).

    ??? cite "References"

        Daskalakis et al., *Training GANs with Optimism*, ICLR 2018.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    alpha: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0, kw_only=True)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0, kw_only=True)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9, kw_only=True)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999, kw_only=True)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8, kw_only=True)
    eps_root: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.0, kw_only=True
    )
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    nesterov: bool = eqx.field(static=True, default=True, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("optimistic_adam_v2", self, **_ADAM_RANGES)

    def as_chain(self) -> Chain:
        return Chain(
            (
                _scale_by_adam(self),
                ScaleByOptimisticGradient(self.alpha, self.beta),
                ScaleByLearningRate(self.learning_rate),
            )
        )


optimistic_gradient_descent = OptimisticGradientDescent
optimistic_adam = OptimisticAdam
optimistic_adam_v2 = OptimisticAdamV2

"""SGD with Polyak's step size."""

import equinox as eqx
from jaxtyping import Array, Float

from .._checks import check_hyperparameters, NONNEGATIVE
from .._combine import Chain
from .._hyperparams import as_hyperparameter, as_scalar
from .._transforms.polyak import check_variant, ScaleByPolyak
from .base import AbstractOptimiser, LearningRate
from .sgd import SGD


class PolyakSGD(AbstractOptimiser):
    r"""SGD with Polyak's step size: $u = -s\, \eta\, g$ with
    $\eta = \min\{(f(x) - f^\star) / (s^2 \|g\|^2 + \epsilon),\ \eta_{\max}\}$.

    That is [`eqopt.ScaleByPolyak`][] applied to $-s\,g$: as in Optax 0.2.8's code, the
    `scaling` $s$ enters the squared norm, so without `eps` or the cap the step is
    $-(f(x) - f^\star)\, g / (s \|g\|^2)$ (Optax's docstring writes $s \min\{\dots\}$).
    `"sps+"` uses $(f(x) - f^\star)_+$.

    `update` needs the objective's value as the keyword argument `value`:
    `opt.update(grad, state, params, value=value)`.

    Optax: `optax.polyak_sgd`. Built as `chain(sgd(scaling), scale_by_polyak(f_min,
    max_learning_rate, eps, variant))`.

    **Arguments:**

    - `max_learning_rate`: $\eta_{\max} \ge 0$.
    - `scaling`: $s$, a float, an array or a schedule.
    - `f_min`: $f^\star$, a guess of the objective's minimum (`0` for models that
        interpolate their data).
    - `eps`: $\epsilon \ge 0$.
    - `variant`: `"sps"` or `"sps+"`.

    ??? cite "References"

        Loizou et al., *Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate
        for Fast Convergence*, AISTATS 2021.
        Berrada et al., *Training Neural Networks for and by Interpolation*, ICML 2020.
        Garrigos et al., *Function Value Learning: Adaptive Learning Rates Based on the
        Polyak Stepsize and Function Splitting in ERM*, 2023.
    """

    max_learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    scaling: LearningRate = eqx.field(converter=as_hyperparameter, default=1.0)
    f_min: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    variant: str = eqx.field(static=True, default="sps")

    def __check_init__(self):
        check_variant("polyak_sgd", self.variant)
        check_hyperparameters(
            "polyak_sgd", self, max_learning_rate=NONNEGATIVE, eps=NONNEGATIVE
        )

    def as_chain(self) -> Chain:
        polyak = ScaleByPolyak(
            self.f_min, self.max_learning_rate, self.eps, self.variant
        )
        return Chain((SGD(self.scaling), polyak))


polyak_sgd = PolyakSGD

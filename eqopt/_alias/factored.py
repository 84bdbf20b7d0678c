"""Adafactor."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float, Int

from .._base import AbstractSchedule
from .._checks import check_hyperparameters, NONNEGATIVE, POSITIVE, UNIT_CLOSED
from .._combine import Chain
from .._hyperparams import (
    as_optional_hyperparameter,
    as_optional_scalar,
    as_scalar,
)
from .._masking import freeze_mask, FrozenMask
from .._transforms.clipping_per import ClipByBlockRMS
from .._transforms.decay import AddDecayedWeights
from .._transforms.factored import as_step, ScaleByFactoredRMS
from .._transforms.misc import EMA
from .._transforms.scaling import Scale, ScaleByLearningRate
from .._transforms.trust_ratio import ScaleByParamBlockRMS
from .base import AbstractOptimiser


class Adafactor(AbstractOptimiser):
    r"""Adafactor: the factored RMS scaling, clipped per block, scaled by the learning
    rate and by each parameter's RMS.

    $$
    u_t = -\eta_t \cdot \operatorname{rms}(\theta) \cdot
    \operatorname{clip}_c\!\left(g_t / \sqrt{\hat v_t}\right)
    $$

    with $\hat v_t$ the factored second moment of [`eqopt.ScaleByFactoredRMS`][] and
    the clipping of [`eqopt.ClipByBlockRMS`][]; optionally followed by momentum (an
    undebiased [`eqopt.EMA`][]) and decoupled weight decay. The learning rate is
    applied before the parameter scale and the weight decay, as in Optax.

    Optax: `optax.adafactor`. Built as `chain(scale_by_factored_rms(...),
    clip_by_block_rms(clipping_threshold), scale_by_learning_rate(learning_rate,
    flip_sign=False), scale_by_param_block_rms(), ema(momentum, debias=False),
    add_decayed_weights(weight_decay_rate, weight_decay_mask), scale(-1))`, each
    optional block left out when switched off.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array, a schedule or `None` (no scaling).
    - `min_dim_size_to_factor`, `decay_rate`, `factored`: as in
        [`eqopt.ScaleByFactoredRMS`][].
    - `decay_offset`: its `step_offset`.
    - `multiply_by_parameter_scale`: whether to scale by each parameter's RMS
        ([`eqopt.ScaleByParamBlockRMS`][]), making the learning rate relative.
    - `clipping_threshold`: $c > 0$, or `None` for no clipping.
    - `momentum`: the decay of the momentum, in $[0, 1]$, or `None` for none.
    - `dtype_momentum`: the momentum's dtype; `None` uses each parameter's dtype.
    - `weight_decay_rate`: a float, an array, a schedule or `None` (no decay).
    - `eps`: the `epsilon` of [`eqopt.ScaleByFactoredRMS`][].
    - `weight_decay_mask`: which parameters to decay, as in
        [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost*, ICML 2018.
    """

    learning_rate: Float[Array, ""] | AbstractSchedule | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    min_dim_size_to_factor: int = eqx.field(static=True, default=128)
    decay_rate: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.8)
    decay_offset: Int[Array, ""] = eqx.field(converter=as_step, default=0)
    multiply_by_parameter_scale: bool = eqx.field(static=True, default=True)
    clipping_threshold: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1.0
    )
    momentum: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    dtype_momentum: DTypeLike | None = eqx.field(static=True, default=jnp.float32)
    weight_decay_rate: Float[Array, ""] | AbstractSchedule | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-30)
    factored: bool = eqx.field(static=True, default=True)
    weight_decay_mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "adafactor",
            self,
            clipping_threshold=POSITIVE,
            momentum=UNIT_CLOSED,
            eps=NONNEGATIVE,
        )

    def as_chain(self) -> Chain:
        blocks = [
            ScaleByFactoredRMS(
                self.factored,
                self.decay_rate,
                self.decay_offset,
                self.min_dim_size_to_factor,
                self.eps,
            )
        ]
        if self.clipping_threshold is not None:
            blocks.append(ClipByBlockRMS(self.clipping_threshold))
        if self.learning_rate is not None:
            blocks.append(ScaleByLearningRate(self.learning_rate, flip_sign=False))
        if self.multiply_by_parameter_scale:
            blocks.append(ScaleByParamBlockRMS())
        if self.momentum is not None:
            blocks.append(
                EMA(self.momentum, debias=False, accumulator_dtype=self.dtype_momentum)
            )
        if self.weight_decay_rate is not None:
            blocks.append(
                AddDecayedWeights(self.weight_decay_rate, self.weight_decay_mask)
            )
        blocks.append(Scale(-1.0))
        return Chain(tuple(blocks))


adafactor = Adafactor

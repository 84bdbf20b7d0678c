"""An exponential moving average of the parameters (Polyak averaging), for evaluation."""

import functools as ft
from typing import Any, Literal, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._base import GradientTransformation
from .._checks import check_hyperparameters, UNIT_CLOSED
from .._custom_types import Count, OptState, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import bias_correction, safe_increment
from .._tree import compute_dtype, map_leaves, require_params, to_dtype
from .._update import apply_updates
from ..tree_utils._leaves import is_none


#: The warm-up decay of TensorFlow's `ExponentialMovingAverage(num_updates=...)`:
#: $d_t = \min(d, (1 + t) / (10 + t))$.
_WARMUP_OFFSET = 10.0

_DEBIAS_MODES = ("bias_correction", "warmup")


@no_type_check
def _as_debias(x: Any) -> str | None:
    """`True` is `"bias_correction"` and `False` is `None` (as `eqopt.ema`'s `debias`);
    other values are checked in `__check_init__`."""
    if x is True:
        return "bias_correction"
    if x is False:
        return None
    return x


@no_type_check
def _canonical_dtype(dtype: DTypeLike | None) -> Any:
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


class EmaParamsState(eqx.Module):
    """State of [`eqopt.EmaParams`][].

    **Fields:**

    - `inner_state`: the state of the wrapped optimiser.
    - `ema`: the average of the parameters, already debiased: one array (of
        `ema_dtype`) per floating-point array leaf of the parameters, `None` at every
        other leaf (integer arrays, functions, `None`). Read it as a model with
        [`eqopt.ema_params_of`][].
    - `count`: the number of averaging steps taken.
    """

    inner_state: OptState
    ema: Any
    count: Count


@no_type_check
def _weights(debias: str | None, decay: Array, count: Array, dtype) -> tuple:
    r"""$(1 - w_t, w_t)$, the weights of the old average and of the new parameters at
    step $t$ = `count` (1 at the first step), in `dtype`."""
    d = decay.astype(dtype)
    if debias == "warmup":
        t = (count - 1).astype(dtype)  # the number of earlier averaging steps
        d = jnp.minimum(d, (1 + t) / (_WARMUP_OFFSET + t))
        return d, 1 - d
    if debias is None:
        return d, 1 - d
    # Adam's bias correction, as a running update of the debiased average:
    # w_t = (1 - d) / (1 - d^t), which is 1 at t = 1 and 1 / t in the limit d -> 1.
    t = count.astype(dtype)
    correction = bias_correction(d, count)
    is_one = correction == 0  # d = 1 (or d^t rounds to 1): the running mean
    w = jnp.where(is_one, 1 / t, (1 - d) / jnp.where(is_one, 1, correction))
    return 1 - w, w


@no_type_check
def _average(weights, ema, new):
    r"""One leaf: $\bar\theta \leftarrow (1 - w)\,\bar\theta + w\,\theta$, computed in
    the wider of the two dtypes (at least float32) and kept in the average's dtype;
    `weights(dtype)` gives $(1 - w, w)$."""
    with jax.numpy_dtype_promotion("standard"):  # explicit, whatever the config
        wider = jnp.promote_types(ema.dtype, new.dtype)
    dtype = compute_dtype(jnp.zeros((), wider))
    k, w = weights(dtype)
    out = k * to_dtype(ema, dtype) + w * to_dtype(new, dtype)
    return to_dtype(out, ema.dtype), new


class EmaParams(GradientTransformation):
    r"""An exponential moving average of the parameters, kept beside any optimiser.

    Each `update` runs the wrapped optimiser `opt` (its updates are returned
    unchanged, bit for bit), forms the new parameters $\theta_t = \theta_{t-1} + u_t$
    as [`eqopt.apply_updates`][] would, and averages them:

    $$
    \bar\theta_t = (1 - w_t)\, \bar\theta_{t-1} + w_t\, \theta_t, \qquad
    \bar\theta_0 = \theta_0,
    $$

    where the weight $w_t$ of the new parameters depends on `debias`:

    - `"bias_correction"` (or `True`, the default): Adam's bias correction,
        $w_t = \frac{1 - d}{1 - d^t}$. This is exactly the average started at zero and
        divided by $1 - d^t$,
        $m_t = d\, m_{t-1} + (1 - d)\, \theta_t$, $m_0 = 0$,
        $\bar\theta_t = m_t / (1 - d^t)$, i.e. the mean of $\theta_1, \dots, \theta_t$
        weighted by $d^{t-s}$; stored already divided, so that reading it needs
        neither $d$ nor $t$. At $t = 1$ it is $\theta_1$; with $d = 1$ it is the
        plain running mean of all iterates (Polyak–Ruppert averaging).
    - `"warmup"`: the warm-up decay of TensorFlow's `ExponentialMovingAverage`
        (`num_updates`) and timm's `ModelEma`,
        $w_t = 1 - d_t$ with $d_t = \min\!\left(d, \frac{1 + n}{10 + n}\right)$, where
        $n = t - 1$ is the number of earlier averaging steps (so $d_1 = 0.1$).
    - `None` (or `False`): a plain moving average, $w_t = 1 - d$ (Optax's
        `incremental_update` with step size $1 - d$), which remembers $\theta_0$ with
        weight $d^t$.

    Both corrections answer the same problem, an early average dominated by the
    initial parameters, so `debias` is one option rather than two flags that would
    need a rule for their combination. Bias correction is the default: it is unbiased
    from the first step for every $d$ and needs no tuning; `"warmup"` reproduces
    TensorFlow/timm checkpoints' averages.

    The state holds the average of the floating-point array leaves of the parameters
    only; get a full model (for an Equinox model: a callable one, with its activation
    functions, integer arrays and other fields) with [`eqopt.ema_params_of`][]:

    ```python
    opt = eqopt.ema_params(eqopt.adamw(1e-3), decay=0.999)
    state = opt.init(model)
    ...  # updates, state = opt.update(grads, state, model); model = apply_updates(...)
    model_eval = eqopt.ema_params_of(state, model)
    ```

    Not in Optax.

    **Arguments:**

    - `opt`: the wrapped optimiser; its hyperparameters stay leaves
        (`eqx.tree_at(lambda m: m.opt.learning_rate, opt, ...)`).
    - `decay`: $d \in [0, 1]$, a leaf (vmapped, differentiated, changed without
        recompiling).
    - `debias`: `"bias_correction"` (`True`), `"warmup"` or `None` (`False`), static.
    - `ema_dtype`: the dtype of the average; `None` (the default) uses each
        parameter's dtype. Averages of bfloat16 parameters should be float32: a
        bfloat16 average with $d = 0.999$ rounds most steps away.

    `update` needs `params`. The average is computed in float32 or wider and stored in
    `ema_dtype`.

    ??? cite "References"

        Polyak and Juditsky, *Acceleration of Stochastic Approximation by Averaging*,
        SIAM Journal on Control and Optimization 30(4), 1992.

        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015
        (Section 3, bias correction).

        TensorFlow, `tf.train.ExponentialMovingAverage` (the `num_updates` warm-up);
        Wightman, *PyTorch Image Models* (`timm.utils.ModelEma`).
    """

    opt: GradientTransformation
    decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    debias: Literal["bias_correction", "warmup"] | None = eqx.field(
        static=True, converter=_as_debias, default="bias_correction"
    )
    ema_dtype: DTypeLike | None = eqx.field(
        static=True, converter=_canonical_dtype, default=None
    )

    def __check_init__(self):
        if self.debias is not None and self.debias not in _DEBIAS_MODES:
            raise ValueError(
                "`ema_params(debias=...)` must be `'bias_correction'` (or `True`), "
                f"`'warmup'` or `None` (or `False`); got debias={self.debias!r}."
            )
        if self.ema_dtype is not None and not jnp.issubdtype(
            self.ema_dtype, jnp.inexact
        ):
            raise ValueError(
                "`ema_params(ema_dtype=...)` must be a floating-point dtype or `None`; "
                f"got ema_dtype={self.ema_dtype!r}."
            )
        check_hyperparameters("ema_params", self, decay=UNIT_CLOSED)

    def init(self, params: Params) -> EmaParamsState:
        return EmaParamsState(
            inner_state=self.opt.init(params),
            ema=jax.tree.map(self._copy, params, is_leaf=is_none),
            count=jnp.zeros([], jnp.int32),
        )

    @no_type_check
    def _copy(self, p):
        """A fresh copy of a floating leaf in `ema_dtype` (never the parameter's own
        buffer, so that parameters and state can both be donated); `None` elsewhere."""
        if not eqx.is_inexact_array(p):
            return None
        return jnp.array(p, dtype=self.ema_dtype or p.dtype, copy=True)

    def update(
        self,
        updates: Updates,
        state: EmaParamsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmaParamsState]:
        require_params("ema_params.update", params)
        updates, inner_state = self.opt.update(
            updates, state.inner_state, params, **extra_args
        )
        new_params = apply_updates(params, updates)
        count = safe_increment(state.count)
        # Once per dtype, not once per leaf.
        weights = ft.cache(
            lambda dtype: _weights(self.debias, self.decay, count, dtype)
        )
        ema, _ = map_leaves(
            lambda e, p: _average(weights, e, p),
            state.ema,
            new_params,
            names=("state.ema", "params"),
        )
        return updates, EmaParamsState(inner_state=inner_state, ema=ema, count=count)


ema_params = EmaParams


def ema_params_of(state: OptState, params: Params | None = None) -> Params:
    r"""The averaged parameters of [`eqopt.EmaParams`][], as a model for evaluation.

    **Arguments:**

    - `state`: an [`eqopt.EmaParamsState`][], or any optimiser state holding exactly
        one (an `ema_params` inside a `chain`, `MultiSteps`...).
    - `params`: the parameters or model to fill in (the one being trained, or any of
        the same structure). Each floating-point array leaf is replaced by its average,
        cast to that leaf's dtype; every other leaf (activation functions, integer
        arrays, strings, `None`) is kept as it is. `None` returns the averages as they
        are stored (in `ema_dtype`), with `None` at the leaves that are not averaged:
        `eqx.combine(ema_params_of(state), model)` is then the model.

    **Returns:**

    The averaged parameters, with the structure of `params` (an Equinox model is
    returned as a model of the same class, ready to call).
    """
    found = [
        x
        for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, EmaParamsState))
        if isinstance(x, EmaParamsState)
    ]
    if len(found) != 1:
        raise ValueError(
            "`ema_params_of(state, ...)` needs the state of an `ema_params` optimiser "
            f"(an `EmaParamsState`, or a state holding exactly one); `state` holds "
            f"{len(found)}."
        )
    ema = found[0].ema
    if params is None:
        return ema

    @no_type_check
    def fill(average, p):
        return to_dtype(average, p.dtype), p

    averaged, _ = map_leaves(fill, ema, params, names=("state.ema", "params"))
    # `map_leaves` keeps `ema`'s `None` where a leaf is not averaged: take `params`'s.
    return jax.tree.map(
        lambda a, p: p if a is None else a, averaged, params, is_leaf=is_none
    )

"""Schedule-Free learning: interpolation and averaging in place of momentum and decay."""

import abc
import functools as ft
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import LearningRate
from .._alias.sgd import SGD
from .._base import GradientTransformation
from .._checks import check_hyperparameters, Interval, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, OptState, Params, Updates
from .._hyperparams import (
    as_hyperparameter,
    as_optional_hyperparameter,
    as_scalar,
    is_scheduled,
    value_at,
    warn_python_number_hyperparameters,
)
from .._numerics import safe_increment
from .._transforms.adaptive import ScaleByRMS
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import (
    cast,
    compute_dtype,
    float_dtype,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ..schedules._warmup import WarmupConstantSchedule


#: `b1` in `(0, 1]`: the interpolation divides by it.
_B1 = Interval(0.0, 1.0, closed_low=False, closed_high=True)


class ScheduleFreeState(eqx.Module):
    """State of [`eqopt.contrib.ScheduleFree`][]: Optax's fields.

    - `b1`: $\\beta_1$ of the last update (what `schedule_free_eval_params` needs).
    - `weight_sum`: $\\sum_i w_i$, the total averaging weight so far.
    - `step_count`: the number of updates plus one (it starts at 1, as in Optax).
    - `max_lr`: the largest learning rate seen so far.
    - `base_optimizer_state`: the base optimiser's state.
    - `z`: the base optimiser's iterate $z_t$ (zero until the first update, which
        starts it at the parameters: `init` reads no parameter values).
    """

    b1: Float[Array, ""]
    weight_sum: Float[Array, ""]
    step_count: Count
    max_lr: Float[Array, ""]
    base_optimizer_state: OptState
    z: Params


@no_type_check
def _averaging_weight(weight: Array, total: Array) -> Array:
    r"""$c_t = w_t / \sum_{i \le t} w_i$, with Optax's conventions: $0/0 = 0$ (a
    warmup starting at a zero learning rate), NaN in, NaN out.

    The division is by a total replaced by 1 where it is 0 (where the weight is 0 too),
    so that the derivative is finite there.
    """
    safe_total = jnp.where(total == 0, jnp.ones_like(total), total)
    ratio = jnp.nan_to_num(weight / safe_total, nan=0.0, posinf=jnp.inf)
    return jnp.where(jnp.isnan(weight) | jnp.isnan(total), jnp.nan, ratio)


@no_type_check
def _upcast(g: Array) -> tuple[Array]:
    return (upcast(g),)


@no_type_check
def _schedule_free_rule(scalars, first, u, y, z):
    r"""One leaf: with $u$ the base update, $y$ the parameters and $z$ the iterate,

    $z' = z + u$, $x = (y - (1 - \beta_1) z) / \beta_1$,
    $x' = (1 - c) x + c z'$, $y' = \beta_1 x' + (1 - \beta_1) z'$; the update is
    $y' - y$. Before the first update $z$ is the parameters.
    """
    dtype = jnp.result_type(compute_dtype(u), compute_dtype(y), compute_dtype(z))
    b1, ck = scalars(dtype)
    z_old = jnp.where(first, to_dtype(y, z.dtype), z)
    y_, z_old_ = to_dtype(y, dtype), to_dtype(z_old, dtype)
    # The new iterate, unrounded: it is stored in `z.dtype` (`state_dtype`), but this
    # step's update uses it as computed (Optax uses the rounded one: the same numbers
    # unless `state_dtype` is narrower than the parameters).
    z_new_ = z_old_ + to_dtype(u, dtype)
    x = (y_ - (1 - b1) * z_old_) / b1
    x = (1 - ck) * x + ck * z_new_
    new_y = b1 * x + (1 - b1) * z_new_
    return to_dtype(new_y - y_, y.dtype), y, to_dtype(z_new_, z.dtype)


class ScheduleFree(GradientTransformation):
    r"""Schedule-Free: make any base optimiser schedule-free.

    The base optimiser (without momentum) moves an iterate $z$; the parameters
    handed back are an interpolation $y$ between $z$ and a weighted average $x$ of
    the $z$'s, where gradients are taken. For gradient descent:

    $$
    \begin{aligned}
    y_t &= (1 - \beta_1) z_t + \beta_1 x_t, \\
    z_{t+1} &= z_t - \gamma_t \nabla f(y_t), \\
    x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
    c_{t+1} = \frac{w_{t+1}}{\sum_{i \le t+1} w_i}, \quad
    w_i = \big(\max_{j \le i} \gamma_j\big)^{p},
    \end{aligned}
    $$

    with $p$ the `weight_lr_power`. Evaluate (test loss, inference) at $x$, which
    [`eqopt.contrib.schedule_free_eval_params`][] recovers from $y$ and the state.
    No learning-rate decay is needed: use a warmup and a constant learning rate, and
    switch the base optimiser's momentum off (`b1=0` for Adam).

    The schedule of `learning_rate` is evaluated at `step_count`, which starts at 1
    (as in Optax); the base optimiser evaluates its own at its own count.

    Optax: `optax.contrib.schedule_free`. The state is Optax's
    [`eqopt.contrib.ScheduleFreeState`][], with two differences: `init` reads no
    parameter values (`z` is zero until the first update sets it from the
    parameters, so `init` runs on `jax.ShapeDtypeStruct`s), and the scalars `b1`,
    `weight_sum`, `max_lr` are float32 or wider (Optax: the parameters' lowest
    dtype, bfloat16 for bfloat16 parameters). `state.b1` is `b1` of the last update.

    **Arguments:**

    - `base_optimizer`: the base optimiser (a Module field: its hyperparameters stay
        leaves).
    - `learning_rate`: $\gamma_t$, the learning rate (with warmup, without decay): a
        float, an array or a schedule. It sets the averaging weights only; the base
        optimiser has its own.
    - `b1`: $\beta_1 \in (0, 1]$, the interpolation between $z$ and $x$.
    - `weight_lr_power`: $p$, the power of the learning rate in the averaging
        weights (which down-weights the warmup).
    - `state_dtype`: the dtype of $z$; `None` keeps each parameter's.

    ??? cite "References"

        Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, *The Road Less
        Scheduled*, NeurIPS 2024.
    """

    base_optimizer: GradientTransformation
    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    weight_lr_power: Float[Array, ""] = eqx.field(converter=as_scalar, default=2.0)
    state_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    def __check_init__(self):
        check_hyperparameters("schedule_free", self, b1=_B1)

    def init(self, params: Params) -> ScheduleFreeState:
        dtype = float_dtype(params, "lowest")
        return ScheduleFreeState(
            b1=jnp.asarray(self.b1, dtype),
            weight_sum=jnp.zeros([], dtype),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], dtype),
            base_optimizer_state=self.base_optimizer.init(params),
            z=zeros_like_params(params, self.state_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScheduleFreeState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScheduleFreeState]:
        require_params("schedule_free", params)
        warn_python_number_hyperparameters(updates, schedule_free=self)
        dtype = state.max_lr.dtype
        lr = jnp.asarray(value_at(self.learning_rate, state.step_count), dtype)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr ** self.weight_lr_power.astype(dtype)
        weight_sum = state.weight_sum + weight
        ck = _averaging_weight(weight, weight_sum)
        # The base optimiser computes in float32 (or wider) too: its update is not
        # rounded to bfloat16 before it moves `z`.
        (upcast_updates,) = map_leaves(_upcast, updates)
        base_updates, base_state = self.base_optimizer.update(
            upcast_updates, state.base_optimizer_state, params, **extra_args
        )

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(leaf_dtype):
            return cast(leaf_dtype, self.b1, ck)

        first = state.step_count == 1
        updates, _, z = map_leaves(
            lambda u, y, z: _schedule_free_rule(scalars, first, u, y, z),
            base_updates,
            params,
            state.z,
            names=("updates", "params", "state.z"),
        )
        return updates, ScheduleFreeState(
            b1=jnp.asarray(self.b1, state.b1.dtype),
            weight_sum=weight_sum,
            step_count=safe_increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )


@no_type_check
def _find_state(state: Any) -> ScheduleFreeState:
    """`state` itself if it is a `ScheduleFreeState`, else the one inside it."""
    if isinstance(state, ScheduleFreeState):
        return state
    is_sf = lambda x: isinstance(x, ScheduleFreeState)  # noqa: E731
    found = [x for x in jax.tree.leaves(state, is_leaf=is_sf) if is_sf(x)]
    if len(found) != 1:
        raise ValueError(
            "`schedule_free_eval_params(state, params)` needs the state of a "
            "`schedule_free` optimiser (a `ScheduleFreeState`, or a state holding "
            f"exactly one); got {type(state).__name__} holding {len(found)}."
        )
    return found[0]


@no_type_check
def _eval_rule(b1: Array, started: Array, y: Any, z: Any) -> Any:
    r"""$x = (y - (1 - \beta_1) z) / \beta_1$ for a floating leaf; `y` elsewhere."""
    if not (eqx.is_inexact_array(y) and eqx.is_array(z)):
        return y
    dtype = jnp.result_type(compute_dtype(y), compute_dtype(z))
    (b1,) = cast(dtype, b1)
    y_, z_ = to_dtype(y, dtype), to_dtype(z, dtype)
    x = (y_ - (1 - b1) * z_) / b1
    return to_dtype(jnp.where(started, x, y_), y.dtype)


def schedule_free_eval_params(state: Any, params: Params) -> Params:
    r"""The parameters to evaluate a [`eqopt.contrib.ScheduleFree`][] model at.

    $x_t = (y_t - (1 - \beta_1) z_t) / \beta_1$, from the parameters $y_t$ (what the
    optimiser's updates give) and the state's $z_t$ and $\beta_1$.

    Optax: `optax.contrib.schedule_free_eval_params`. Unlike Optax's, it works on
    Equinox models (non-floating and `None` leaves are returned as they are), finds
    the `ScheduleFreeState` inside a larger state (a chain's tuple), returns each
    leaf in its parameter's dtype, and before the first update returns the parameters.

    **Arguments:**

    - `state`: the state of a `schedule_free` optimiser (or a state holding exactly
        one `ScheduleFreeState`).
    - `params`: the current parameters $y_t$.

    **Returns:**

    The evaluation parameters $x_t$, with the structure of `params`.

    **Raises:**

    `ValueError` when `state` holds no (or several) `ScheduleFreeState`.

    ??? cite "References"

        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024.
    """
    sf = _find_state(state)
    started = sf.step_count > 1
    return jax.tree.map(
        lambda y, z: _eval_rule(sf.b1, started, y, z),
        params,
        sf.z,
        is_leaf=lambda x: x is None,
    )


class AbstractScheduleFreeOptimiser(GradientTransformation):
    """A Schedule-Free optimiser built from its own fields: `init` and `update` are
    those of the [`eqopt.contrib.ScheduleFree`][] that `as_schedule_free` builds, so
    the state is a `ScheduleFreeState`, as in Optax."""

    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    @abc.abstractmethod
    def as_schedule_free(self) -> ScheduleFree:
        """The equivalent `schedule_free(base_optimizer, ...)`."""

    def init(self, params: Params) -> ScheduleFreeState:
        return self.as_schedule_free().init(params)

    def update(
        self,
        updates: Updates,
        state: ScheduleFreeState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScheduleFreeState]:
        warn_python_number_hyperparameters(updates, **{type(self).__name__: self})
        return self.as_schedule_free().update(updates, state, params, **extra_args)


@no_type_check
def _with_warmup(learning_rate: Any, warmup_steps: int | None) -> Any:
    """`learning_rate`, or a linear warmup from 0 to it over `warmup_steps`."""
    if warmup_steps is None:
        return learning_rate
    return WarmupConstantSchedule(0.0, learning_rate, warmup_steps)


@no_type_check
def _check_warmup(owner: str, learning_rate: Any, warmup_steps: int | None) -> None:
    if warmup_steps is None:
        return
    if warmup_steps < 0:
        raise ValueError(
            f"`{owner}(warmup_steps=...)` must be a non-negative number of steps or "
            f"`None`; got warmup_steps={warmup_steps!r}."
        )
    if is_scheduled(learning_rate):
        raise ValueError(
            f"`{owner}(learning_rate=...)` must be a number when `warmup_steps` is "
            "given (the warmup is a schedule peaking at it); got a schedule. Pass "
            "`warmup_steps=None` and a schedule with its own warmup instead."
        )


class ScheduleFreeAdamW(AbstractScheduleFreeOptimiser):
    r"""Schedule-Free AdamW: [`eqopt.contrib.ScheduleFree`][] around Adam without
    momentum (RMS scaling with bias correction), decoupled weight decay and the
    learning rate.

    The base update is $u_t = -\gamma_t \big(g_t / (\sqrt{\hat v_t} + \varepsilon)
    + \lambda y_t\big)$ with $v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2$ and
    $\hat v_t = v_t / (1 - \beta_2^t)$; `schedule_free` turns it into the update of
    $y$ (see there). With `warmup_steps`, $\gamma_t$ rises linearly from 0 to
    `learning_rate` over that many steps, then stays there.

    Optax: `optax.contrib.schedule_free_adamw`. Built as `schedule_free(chain(
    scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr)), lr, b1,
    weight_lr_power, state_dtype)`, with `lr = warmup_constant_schedule(0,
    learning_rate, warmup_steps)` when `warmup_steps` is given. Every float argument
    (the warmup's peak included) is a leaf.

    **Arguments:**

    - `learning_rate`: the (peak) learning rate $\gamma$: a float or an array (a
        schedule too when `warmup_steps=None`).
    - `warmup_steps`: length of the linear warmup (static), or `None`.
    - `b1`: $\beta_1 \in (0, 1]$, Schedule-Free's interpolation.
    - `b2`: $\beta_2$, decay of the second moment.
    - `eps`: $\varepsilon$, added to the root of the second moment.
    - `weight_decay`: $\lambda$, decoupled weight decay.
    - `weight_lr_power`, `state_dtype`: as in [`eqopt.contrib.ScheduleFree`][].

    ??? cite "References"

        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024.
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0025)
    warmup_steps: int | None = eqx.field(static=True, default=None)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    weight_lr_power: Float[Array, ""] = eqx.field(converter=as_scalar, default=2.0)
    state_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_warmup("schedule_free_adamw", self.learning_rate, self.warmup_steps)
        check_hyperparameters(
            "schedule_free_adamw", self, b1=_B1, b2=UNIT, eps=NONNEGATIVE
        )

    def as_schedule_free(self) -> ScheduleFree:
        lr = _with_warmup(self.learning_rate, self.warmup_steps)
        base = Chain(
            (
                ScaleByRMS(self.b2, self.eps, eps_in_sqrt=False, bias_correction=True),
                AddDecayedWeights(self.weight_decay),
                ScaleByLearningRate(lr),
            )
        )
        return ScheduleFree(base, lr, self.b1, self.weight_lr_power, self.state_dtype)


class ScheduleFreeSGD(AbstractScheduleFreeOptimiser):
    r"""Schedule-Free SGD: [`eqopt.contrib.ScheduleFree`][] around plain SGD.

    The base update is $u_t = -\gamma_t (g_t + \lambda y_t)$ (the weight decay is
    multiplied by the learning rate, as in PyTorch); `schedule_free` turns it into the
    update of $y$. With `warmup_steps`, $\gamma_t$ rises linearly from 0 to
    `learning_rate` over that many steps, then stays there.

    Optax: `optax.contrib.schedule_free_sgd`. Built as `schedule_free(sgd(lr), lr,
    b1, weight_lr_power, state_dtype)`, with `chain(add_decayed_weights(
    weight_decay), sgd(lr))` when `weight_decay` is given, and `lr` the warmup
    schedule when `warmup_steps` is. Every float argument is a leaf.

    **Arguments:**

    - `learning_rate`: the (peak) learning rate $\gamma$: a float or an array (a
        schedule too when `warmup_steps=None`).
    - `warmup_steps`: length of the linear warmup (static), or `None`.
    - `b1`: $\beta_1 \in (0, 1]$, Schedule-Free's interpolation.
    - `weight_decay`: $\lambda$, or `None` for none (static: it decides the chain).
    - `weight_lr_power`, `state_dtype`: as in [`eqopt.contrib.ScheduleFree`][].

    ??? cite "References"

        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter, default=1.0)
    warmup_steps: int | None = eqx.field(static=True, default=None)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    weight_decay: LearningRate | None = eqx.field(
        converter=as_optional_hyperparameter, default=None
    )
    weight_lr_power: Float[Array, ""] = eqx.field(converter=as_scalar, default=2.0)
    state_dtype: DTypeLike | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_warmup("schedule_free_sgd", self.learning_rate, self.warmup_steps)
        check_hyperparameters("schedule_free_sgd", self, b1=_B1)

    def as_schedule_free(self) -> ScheduleFree:
        lr = _with_warmup(self.learning_rate, self.warmup_steps)
        base: GradientTransformation = SGD(lr)
        if self.weight_decay is not None:
            base = Chain((AddDecayedWeights(self.weight_decay), base))
        return ScheduleFree(base, lr, self.b1, self.weight_lr_power, self.state_dtype)


schedule_free = ScheduleFree
schedule_free_adamw = ScheduleFreeAdamW
schedule_free_sgd = ScheduleFreeSGD

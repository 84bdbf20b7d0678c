"""Sophia: clipped momentum over an estimate of the Hessian's diagonal."""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, DTypeLike, Float, PRNGKeyArray

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, require_extra_arg, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, OptState, Params, Updates
from .._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import bias_correction, safe_increment
from .._transforms.adaptive import decay_weights, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import (
    cast,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ..tree_utils._random import tree_random_like


class HutchinsonState(eqx.Module):
    """State of [`eqopt.contrib.HutchinsonEstimatorDiagHessian`][]: the PRNG key
    (Optax's field)."""

    key: PRNGKeyArray


@no_type_check
def _times(h: Array, r: Array) -> tuple[Array]:
    return (h * r,)


class HutchinsonEstimatorDiagHessian(GradientTransformation):
    r"""Hutchinson's estimate of the diagonal of the Hessian of `obj_fn`.

    $$
    \widehat{\operatorname{diag}(H)} = r \odot (H r), \qquad
    r_i \in \{-1, +1\} \text{ uniformly (Rademacher)},
    $$

    unbiased but noisy; $Hr$ is one forward-over-reverse Hessian-vector product. The
    incoming updates are ignored: the output is the estimate. `update` needs the
    parameters and the extra argument `obj_fn(params) -> scalar loss`; a fresh key is
    split from the state's at each call.

    Optax: `optax.contrib.hutchinson_estimator_diag_hessian`. Unlike Optax's, it
    works on Equinox models: only floating leaves get random signs and a derivative
    (the others get `None`).

    **Arguments:**

    - `random_seed`: the PRNG key (a typed or raw key) to start from; `None` is
        `jax.random.PRNGKey(0)`.

    ??? cite "References"

        Hutchinson, *A stochastic estimator of the trace of the influence matrix for
        Laplacian smoothing splines*, 1989.
        Chapelle and Erhan, *Improved preconditioner for Hessian free optimization*,
        2011.
    """

    random_seed: PRNGKeyArray | None = None

    def init(self, params: Params) -> HutchinsonState:
        key = jr.PRNGKey(0) if self.random_seed is None else self.random_seed
        # A copy: the state must not alias the optimiser's own leaf (donation).
        return HutchinsonState(key=jnp.array(key, copy=True))

    def update(
        self,
        updates: Updates,
        state: HutchinsonState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, HutchinsonState]:
        require_params("hutchinson_estimator_diag_hessian", params)
        obj_fn = extra_args.get("obj_fn")
        require_extra_arg(
            "hutchinson_estimator_diag_hessian",
            "obj_fn",
            obj_fn,
            "`obj_fn(params) -> loss`, the scalar objective whose Hessian diagonal "
            "is estimated",
        )
        key, subkey = jr.split(state.key)
        diff, static = eqx.partition(params, eqx.is_inexact_array)
        signs = tree_random_like(subkey, diff, jr.rademacher, dtype=jnp.float32)
        lowest = _lowest_dtype(diff)
        signs = jax.tree.map(lambda r: r.astype(lowest), signs)

        @no_type_check
        def objective(d):
            return obj_fn(eqx.combine(d, static))

        hvp = jax.jvp(jax.grad(objective), (diff,), (signs,))[1]
        (product,) = map_leaves(_times, hvp, signs, names=("hvp", "signs"))
        return product, HutchinsonState(key=key)


@no_type_check
def _lowest_dtype(tree: Any) -> Any:
    """The lowest floating dtype among the leaves (Optax's `tree.dtype(_, "lowest")`)."""
    dtypes = [jnp.dtype(x.dtype) for x in jax.tree.leaves(tree)]
    return min(dtypes, key=lambda d: jnp.finfo(d).bits) if dtypes else jnp.float32


class SophiaState(eqx.Module):
    """State of Sophia: Optax's fields.

    - `count`: the number of updates.
    - `mu`: the momentum (exponential moving average of the gradients).
    - `nu`: the exponential moving average of the Hessian diagonal estimates.
    - `hessian_fn_state`: the state of `hessian_diagonal_fn`.
    """

    count: Count
    mu: Moments
    nu: Moments
    hessian_fn_state: OptState


@no_type_check
def _sophia_rule(scalars, clip, g, mu, nu):
    r"""One leaf: $m \leftarrow \beta_1 m + (1 - \beta_1) g$, then
    $\operatorname{clip}(\hat m / \max(\gamma \nu, \varepsilon), \pm c)$."""
    x = upcast(g)
    w1, eps, gamma, correction, threshold = scalars(x.dtype)
    m = ema(w1, mu, x)
    u = (m / correction) / jnp.maximum(gamma * to_dtype(nu, x.dtype), eps)
    if clip:
        u = jnp.clip(u, -threshold, threshold)
    return to_dtype(u, g.dtype), to_dtype(m, mu.dtype), nu


class ScaleBySophia(GradientTransformation):
    r"""Sophia's scaling: the bias-corrected momentum over $\gamma$ times a moving
    average of the Hessian diagonal, clipped element-wise.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \\
    u_t &= \operatorname{clip}\Big(\frac{m_t / (1 - \beta_1^t)}
        {\max(\gamma\, h_{t-1}, \varepsilon)}, -c, c\Big), \\
    h_t &= \beta_2 h_{t-1} + (1 - \beta_2)\, \hat h_t
        \quad \text{when } (t - 1) \bmod k = 0 \text{, else } h_{t-1},
    \end{aligned}
    $$

    where $\hat h_t$ comes from `hessian_diagonal_fn` (given the gradients, the
    parameters and `update`'s extra keyword arguments), every $k$ steps only (a
    `lax.cond`: the estimate costs a Hessian-vector product).

    Optax: `optax.contrib.sophia`'s first block (`scale_by_sophia`, which
    `optax.contrib` does not export).

    **Arguments:** as in [`eqopt.contrib.Sophia`][].
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.965)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.01)
    clip_threshold: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1.0
    )
    update_interval: int = eqx.field(static=True, default=10)
    hessian_diagonal_fn: GradientTransformation = HutchinsonEstimatorDiagHessian()
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    verbose: bool = eqx.field(static=True, default=False)
    print_win_rate_every_n_steps: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_sophia("scale_by_sophia", self)

    def init(self, params: Params) -> SophiaState:
        return SophiaState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params),
            hessian_fn_state=self.hessian_diagonal_fn.init(params),
        )

    def update(
        self,
        updates: Updates,
        state: SophiaState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, SophiaState]:
        require_params("sophia", params)
        count = safe_increment(state.count)
        clip = self.clip_threshold is not None

        @ft.cache  # once per leaf dtype, not once per leaf
        @no_type_check
        def scalars(dtype):
            b1, eps, gamma = cast(dtype, self.b1, self.eps, self.gamma)
            threshold = cast(dtype, self.clip_threshold)[0] if clip else None
            return decay_weights(b1), eps, gamma, bias_correction(b1, count), threshold

        grads = updates
        names = ("updates", "state.mu", "state.nu")
        updates, mu, _ = map_leaves(
            lambda g, m, n: _sophia_rule(scalars, clip, g, m, n),
            grads,
            state.mu,
            state.nu,
            names=names,
        )
        if self.verbose and clip and self.print_win_rate_every_n_steps > 0:
            _print_win_rate(
                updates, self.clip_threshold, count, self.print_win_rate_every_n_steps
            )

        @no_type_check
        def refresh(hessian_fn_state, nu):
            estimate, hessian_fn_state = self.hessian_diagonal_fn.update(
                grads, hessian_fn_state, params, **extra_args
            )
            (nu,) = map_leaves(
                lambda h, n: (_ema_rule(self.b2, h, n),),
                estimate,
                nu,
                names=("hessian diagonal", "state.nu"),
            )
            return hessian_fn_state, nu

        hessian_fn_state, nu = jax.lax.cond(
            state.count % self.update_interval == 0,
            refresh,
            lambda h, n: (h, n),
            state.hessian_fn_state,
            state.nu,
        )
        return updates, SophiaState(
            count=count, mu=mu, nu=nu, hessian_fn_state=hessian_fn_state
        )


@no_type_check
def _ema_rule(b2: Array, h: Array, nu: Array) -> Array:
    r"""$\nu \leftarrow \beta_2 \nu + (1 - \beta_2) \hat h$, stored in `nu`'s dtype."""
    x = upcast(h)
    (b2,) = cast(x.dtype, b2)
    return to_dtype(ema(decay_weights(b2), nu, x), nu.dtype)


@no_type_check
def _print_win_rate(updates: Any, threshold: Array, count: Array, every: int) -> None:
    """Print the fraction of unclipped elements (Sophia's "win rate") every `every`
    steps, as Optax's `verbose=True` does."""
    leaves = [u for u in jax.tree.leaves(updates) if eqx.is_inexact_array(u)]
    inside = sum(jnp.sum(jnp.abs(u) < threshold.astype(u.dtype)) for u in leaves)
    size = sum(u.size for u in leaves)
    jax.lax.cond(
        count % every == 0,
        lambda: jax.debug.print("Sophia optimizer win rate: {}", inside / size),
        lambda: None,
    )


@no_type_check
def check_sophia(owner: str, opt: Any) -> None:
    check_hyperparameters(
        owner, opt, b1=UNIT, b2=UNIT, eps=NONNEGATIVE, gamma=NONNEGATIVE
    )
    check_hyperparameters(owner, opt, clip_threshold=NONNEGATIVE)
    if opt.update_interval < 1:
        raise ValueError(
            f"`{owner}(update_interval=...)` must be at least 1; "
            f"got update_interval={opt.update_interval!r}."
        )


class Sophia(AbstractOptimiser):
    r"""Sophia: a light second-order optimiser, the momentum divided by a running
    estimate of the Hessian's diagonal and clipped element-wise.

    $$
    \theta_{t+1} = \theta_t - \eta_t \left(\operatorname{clip}\Big(
        \frac{\hat m_t}{\max(\gamma\, h_{t-1}, \varepsilon)}, -c, c\Big)
        + \lambda \theta_t\right),
    $$

    with $\hat m_t$ the bias-corrected momentum of rate $\beta_1$ and $h_t$ the
    moving average (rate $\beta_2$) of Hutchinson's estimate of the Hessian diagonal,
    refreshed every `update_interval` steps (see `ScaleBySophia` in the source, and
    [`eqopt.contrib.HutchinsonEstimatorDiagHessian`][]). Where the curvature is
    small or negative the clip bounds the step by $\eta c$.

    The default `hessian_diagonal_fn` needs the extra argument `obj_fn`, the loss as
    a function of the parameters alone: `opt.update(grads, state, params,
    obj_fn=lambda p: loss(p, batch))`. Its PRNG key is in the state
    (`state[0].hessian_fn_state.key`).

    Optax: `optax.contrib.sophia`. Built as `chain(scale_by_sophia(...),
    add_decayed_weights(weight_decay, weight_decay_mask),
    scale_by_learning_rate(learning_rate))`; every float argument ($\gamma$ —
    the paper's $\rho$ —, $c$, the betas, $\eta$, $\lambda$) is a leaf.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`: $\beta_1$, decay of the momentum.
    - `b2`: $\beta_2$, decay of the Hessian-diagonal average (per refresh: the
        effective decay per step is about $1 - (1 - \beta_2)/k$).
    - `eps`: $\varepsilon$, the floor of the denominator.
    - `weight_decay`: $\lambda$, decoupled weight decay.
    - `weight_decay_mask`: which parameters to decay (a pytree of bools or a
        function of the parameters), as in [`eqopt.AddDecayedWeights`][].
    - `gamma`: $\gamma$, the scale of the Hessian diagonal.
    - `clip_threshold`: $c$, or `None` for no clipping.
    - `update_interval`: $k$, steps between Hessian-diagonal refreshes (static).
    - `hessian_diagonal_fn`: the transformation estimating the Hessian diagonal (a
        Module field: its own settings are leaves).
    - `mu_dtype`: dtype of the momentum; `None` uses each parameter's.
    - `verbose`: whether to print the win rate (the fraction of unclipped elements).
    - `print_win_rate_every_n_steps`: how often to print it (0: never).

    ??? cite "References"

        Liu, Li, Hall, Liang and Ma, *Sophia: A Scalable Stochastic Second-order
        Optimizer for Language Model Pre-training*, ICLR 2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.965)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.99)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-4)
    weight_decay_mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.01)
    clip_threshold: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1.0
    )
    update_interval: int = eqx.field(static=True, default=10)
    hessian_diagonal_fn: GradientTransformation = HutchinsonEstimatorDiagHessian()
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    verbose: bool = eqx.field(static=True, default=False)
    print_win_rate_every_n_steps: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_sophia("sophia", self)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleBySophia(
                    self.b1,
                    self.b2,
                    self.eps,
                    self.gamma,
                    self.clip_threshold,
                    self.update_interval,
                    self.hessian_diagonal_fn,
                    self.mu_dtype,
                    self.verbose,
                    self.print_win_rate_every_n_steps,
                ),
                AddDecayedWeights(self.weight_decay, self.weight_decay_mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


hutchinson_estimator_diag_hessian = HutchinsonEstimatorDiagHessian
sophia = Sophia

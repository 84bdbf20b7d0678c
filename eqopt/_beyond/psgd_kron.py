"""PSGD-Kron: preconditioned SGD with a Kronecker-factored whitening preconditioner
(Li 2018, 2024; the `kron` optimiser of `psgd_jax`)."""

import math
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import AbstractSchedule, GradientTransformation
from .._checks import check_hyperparameters, check_value, POSITIVE, UNIT, UNIT_CLOSED
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import (
    as_hyperparameter,
    as_optional_scalar,
    as_scalar,
    is_scheduled,
    value_at,
)
from .._masking import freeze_mask, FrozenMask
from .._numerics import bias_correction, safe_increment
from .._transforms.clipping_per import clip_rms
from .._transforms.decay import AddDecayedWeights
from .._transforms.noise import as_key_data, KeyData
from .._transforms.scaling import ScaleByLearningRate
from .._tree import (
    cast_per_dtype,
    compute_dtype,
    map_leaves,
    map_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ..schedules._schedules import ExponentialDecay
from ._kronecker import laid_out_like, outer, replicated


#: `psgd_jax`'s `precond_update_prob_schedule()`: probability 1 for 250 steps, then
#: $e^{-0.001 (t - 250)}$, at least 0.03 (reached after about 3,750 steps).
DEFAULT_UPDATE_PROBABILITY = ExponentialDecay(
    1.0, 1, math.exp(-0.001), 250, False, 0.03
)
_MEMORY_SAVE_MODES = (None, "one_diag", "all_diag")
_KRON_RANGES = dict(b1=UNIT, precond_lr=UNIT_CLOSED, max_update_rms=POSITIVE)


class ScaleByKronState(eqx.Module):
    """State of [`eqopt.ScaleByKron`][].

    - `count`: the number of `update` calls.
    - `mu`: the momentum, like the parameters.
    - `preconditioners`: per leaf, a tuple with one factor $Q_k$ per axis: a
        $d_k \\times d_k$ upper-triangular matrix, or a vector of length $d_k$ (a
        diagonal factor); a scalar leaf has one 0-d factor.
    - `key`: the PRNG key (raw `uint32` key data) of the next step.
    """

    count: Count
    mu: Moments
    preconditioners: Any
    key: KeyData


@no_type_check
def _triangular_axes(
    shape: tuple[int, ...], max_size: int, min_ndim: int, memory_save_mode: str | None
) -> tuple[bool, ...]:
    """For each axis, whether its factor is triangular (else diagonal), as `psgd_jax`
    decides: diagonal for axes of length 1 or above `max_size`, for leaves of fewer
    than `min_ndim` dimensions, and by `memory_save_mode` (`"one_diag"`: the longest
    axis, the last if tied; `"all_diag"`: every axis). A scalar leaf: `(False,)`."""
    if not shape:
        return (False,)
    diagonal = [
        d == 1
        or d > max_size
        or len(shape) < min_ndim
        or memory_save_mode == "all_diag"
        for d in shape
    ]
    if memory_save_mode == "one_diag":
        diagonal[max(range(len(shape)), key=lambda k: (shape[k], k))] = True
    return tuple(not d for d in diagonal)


@no_type_check
def _on_axis(q: Array, k: int, ndim: int) -> Array:
    """A diagonal factor shaped to broadcast along axis `k` of an `ndim`-array."""
    return q.reshape((1,) * k + q.shape + (1,) * (ndim - k - 1)) if ndim else q


@no_type_check
def _along(x: Array, k: int, q: Array) -> Array:
    """`x` with axis `k` multiplied by the factor `q`: by the matrix ($x \\times_k q$,
    row $i$ of the result being $\\sum_j q_{ij} x_j$) or elementwise by the vector."""
    if q.ndim < 2:
        return x * _on_axis(q, k, x.ndim)
    return jnp.moveaxis(jnp.tensordot(x, q, axes=[[k], [1]]), -1, k)


@no_type_check
def _solve_along(x: Array, k: int, q: Array) -> Array:
    """`x` with axis `k` multiplied by $Q^{-\\top}$: a triangular solve $Y Q = X$ with
    axis `k` of $X$ as its columns (elementwise division for a diagonal factor)."""
    if q.ndim < 2:
        return x / _on_axis(q, k, x.ndim)
    moved = jnp.moveaxis(x, k, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    solved = lax.linalg.triangular_solve(q, flat, left_side=False, lower=False)
    return jnp.moveaxis(solved.reshape(moved.shape), -1, k)


@no_type_check
def _max_abs(x: Array) -> Array:
    r"""$\max |x|$, differentiated through the (first) entry that attains it. The
    derivative of `jnp.max` divides by the number of entries equal to the maximum, as
    compiled it can recompute them differently (and find none: 0/0)."""
    flat = jnp.abs(x).reshape(-1)
    return lax.dynamic_index_in_dim(flat, jnp.argmax(flat), keepdims=False)


@no_type_check
def _spectral_norm_lower_bound(s: Array) -> Array:
    r"""A cheap lower bound of the spectral norm of a symmetric matrix $S$ (Li's
    `norm_lower_bound`): with $B = S / \max|S|$ and $b_j$ its column of largest norm,
    $\max|S| \, \|B y\| / \|y\|$ for $y = B b_j$ (one step of power iteration; within
    a factor $\sqrt 2$ of the norm in Li's experiments). For a symmetric matrix the two
    branches of `psgd_jax`'s version coincide; this is one of them. Zero for $S = 0$."""
    scale = _max_abs(s)
    nonzero = scale > 0
    b = s / jnp.where(nonzero, scale, jnp.ones_like(scale))
    j = jnp.argmax(jnp.sum(b * b, axis=0))
    y = b @ lax.dynamic_index_in_dim(b, j, 1, keepdims=False)
    y_norm = jnp.sqrt(jnp.sum(y * y))
    by_norm = jnp.sqrt(jnp.sum(jnp.square(b @ y)))
    ratio = by_norm / jnp.where(y_norm > 0, y_norm, jnp.ones_like(y_norm))
    return jnp.where(nonzero, scale * ratio, jnp.zeros_like(scale))


@no_type_check
def _update_factors(qs: tuple, g: Array, v: Array, lr: Array) -> tuple:
    r"""One step of the whitening fit of every factor, from the old factors:
    $A = G \times_k Q_k$, $\bar B = V \times_k Q_k^{-\top}$, then per factor
    $Q_k \leftarrow Q_k - \frac{\mu}{\|T_1 + T_2\|} \operatorname{triu}(T_1 - T_2)
    Q_k$ with $T_1 = A_{(k)} A_{(k)}^\top$, $T_2 = \bar B_{(k)} \bar B_{(k)}^\top$
    (a diagonal factor: $q_k \leftarrow q_k - \mu (t_1 - t_2) \odot q_k / \max|t_1 +
    t_2|$, with the diagonals $t$ of those products)."""
    a, conj_b = g, v
    for k, q in enumerate(qs):
        a, conj_b = _along(a, k, q), _solve_along(conj_b, k, q)
    tiny = jnp.finfo(a.dtype).tiny
    new = []
    for k, q in enumerate(qs):
        if a.ndim == 0:
            t1, t2 = a * a, conj_b * conj_b
        elif q.ndim < 2:
            others = tuple(i for i in range(a.ndim) if i != k)
            t1, t2 = jnp.sum(a * a, axis=others), jnp.sum(conj_b * conj_b, axis=others)
        else:
            t1, t2 = outer(a, k), outer(conj_b, k)
        if q.ndim < 2:
            step = lr * (t1 - t2) * q / (_max_abs(t1 + t2) + tiny)
        else:
            bound = _spectral_norm_lower_bound(t1 + t2)
            step = lr / (bound + tiny) * (jnp.triu(t1 - t2) @ q)
        new.append(q - step)
    return tuple(new)


@no_type_check
def _precondition(qs: tuple, m: Array) -> Array:
    r"""$P M$ with $P = Q^\top Q$: each axis $k$ multiplied by $Q_k^\top Q_k$ (by
    $q_k^2$ for a diagonal factor)."""
    for k, q in enumerate(qs):
        p = q * q if q.ndim < 2 else q.T @ q
        m = _along(m, k, p)
    return m


class ScaleByKron(GradientTransformation):
    r"""Rescale updates by PSGD-Kron: momentum preconditioned by a Kronecker-factored
    preconditioner $P = Q^\top Q$ fitted to whiten the gradients.

    Per leaf, $Q = Q_1 \otimes \cdots \otimes Q_n$ has one factor per axis: an
    upper-triangular $d_k \times d_k$ matrix, or a diagonal one (stored as a vector).
    With $t$ the step and $G_t$ the gradient:

    $$
    \begin{aligned}
    M_t &= \beta_1 M_{t-1} + (1 - \beta_1)\, G_t, \qquad
    \hat M_t = M_t / (1 - \beta_1^t), \\
    A &= \hat M_t \times_1 Q_1 \cdots \times_n Q_n \quad (Q_1 \hat M_t Q_2^\top
        \text{ for a matrix}), \\
    \bar B &= V \times_1 Q_1^{-\top} \cdots \times_n Q_n^{-\top} \quad
        (Q_1^{-\top} V Q_2^{-1}), \qquad V \sim \mathcal{N}(0, I), \\
    Q_k &\leftarrow Q_k - \frac{\mu}{\lVert T_1 + T_2 \rVert_2}
        \operatorname{triu}(T_1 - T_2)\, Q_k, \qquad
        T_1 = A_{(k)} A_{(k)}^\top, \quad T_2 = \bar B_{(k)} \bar B_{(k)}^\top, \\
    U_t &= \hat M_t \times_1 Q_1^\top Q_1 \cdots \times_n Q_n^\top Q_n \quad
        (Q_1^\top Q_1 \hat M_t Q_2^\top Q_2),
    \end{aligned}
    $$

    where $X_{(k)}$ is $X$ unfolded along axis $k$ (so $T_1$ sums over the other
    axes), $\mu$ is `precond_lr`, and the $Q_k$ step (all factors from the same old
    $A$, $\bar B$) is taken only with probability $p_t$ (the
    `preconditioner_update_probability`), before preconditioning. This is a
    stochastic step on Li's whitening criterion $\mathbb{E}[h^\top P h + v^\top P^{-1}
    v]$, whose minimiser satisfies $P\,\mathbb{E}[h h^\top] P = I$: the fitted $P$
    whitens the (momentum) gradients. $\lVert\cdot\rVert_2$ is Li's cheap lower bound
    of the spectral norm (a single power-iteration step; it makes the step
    scale-free and keeps $Q_k$ invertible for $\mu \le 1$). A diagonal factor takes
    the diagonal analogue: $q_k \leftarrow q_k - \mu\, (t_1 - t_2) \odot q_k /
    \max|t_1 + t_2|$ with $t_1$, $t_2$ the diagonals of $T_1$, $T_2$. A common scale
    of $T_1$ and $T_2$ (a normalisation by the other axes' sizes) cancels in this
    normalised step, so none is applied.

    Conventions, those of `psgd_jax`'s `kron` (the implementation practitioners use):

    - The factors are fitted to the bias-corrected momentum $\hat M_t$ (`kron`'s
        `momentum_before_precond_update=True`), not the raw gradient, and no damping
        or noise is added to it (`kron` adds none).
    - Factors start as the identity. An axis gets a diagonal factor if its length is
        1 or above `max_size_triangular`, if the leaf has fewer than
        `min_ndim_triangular` dimensions (by default: 1-D leaves, whose one factor is
        then diagonal), or by `memory_save_mode`; a scalar leaf has one scalar factor.
    - The probability (a schedule is evaluated at the step $t$, counting from 1, as
        in `kron`) decides by $u < p_t$ with $u \sim U[0, 1)$, one draw per step for
        the whole tree.
    - Each leaf's update is scaled down to a root mean square of at most
        `max_update_rms` ($1.1$, as `kron_torch` does: whitened momentum has an RMS
        near 1, and the cap bounds the steps while the factors are still far from
        it); `None` leaves $U_t = P \hat M_t$.
    - Not done: `kron`'s occasional rebalancing of the factors' norms (it leaves $P$
        and every later step unchanged up to rounding) and `psgd_jax`'s "trust
        region" (elementwise soft clipping of $U_t$, an alternative to the RMS cap).

    Randomness: the key is data (the Module holds the initial key, the state the
    current one). Each step splits it into the next key, a key for the decision $u$
    and a key split once per array leaf, in leaf order, for the probes $V$. $u$ and
    $V$ are drawn in float32 whatever the parameters' dtype (so float64 and bfloat16
    runs see the same numbers) and cast to the preconditioner's dtype. A vmapped
    sweep draws the same numbers in every run; a resumed run those an uninterrupted
    one would.

    The factor update runs under `lax.cond`, only on the steps that take it (under
    `vmap` over the probability both branches run). With explicitly sharded
    parameters, leaves are gathered (replicated) for the fit and the preconditioning,
    and the results laid out like the parameters again. Autodiff goes through the
    factor updates (the triangular solves and the norm bound are
    differentiable almost everywhere); the update decisions are piecewise constant
    in the probability, whose hypergradient is therefore zero.

    Not in Optax.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the momentum, in $[0, 1)$.
    - `preconditioner_update_probability`: $p_t \in [0, 1]$, a float, an array or a
        schedule of the step; the default is `kron`'s anneal (1 for 250 steps, then
        $e^{-0.001(t - 250)}$, at least 0.03): `eqopt.exponential_decay(1.0, 1,
        exp(-0.001), 250, end_value=0.03)` (a
        [`eqopt.schedules.ExponentialDecay`][]).
    - `max_size_triangular`: the longest axis that gets a triangular factor (static).
    - `min_ndim_triangular`: the fewest dimensions a leaf needs for triangular
        factors (static).
    - `memory_save_mode`: `None`, `"one_diag"` (the longest axis of each leaf, the
        last if tied, gets a diagonal factor) or `"all_diag"` (every axis does)
        (static).
    - `mu_dtype`: dtype of the momentum; `None` uses each parameter's dtype.
    - `precond_dtype`: dtype of the factors; `None` is each parameter's dtype, at least
        float32 (the triangular solves need it).
    - `precond_lr`: $\mu \in [0, 1]$, the step size of the factors' fit (`kron`:
        0.1).
    - `key`: the PRNG key: an integer seed, a key from `jax.random.key`, or its raw
        data; stored as raw data.
    - `max_update_rms`: $c > 0$, the largest root mean square of a leaf's update,
        or `None` for no cap.

    ??? cite "References"

        X.-L. Li, *Preconditioned Stochastic Gradient Descent*, IEEE Transactions on
        Neural Networks and Learning Systems 29(5), 2018 (arXiv:1512.04202).

        X.-L. Li, *Stochastic Hessian Fittings with Lie Groups*, 2024
        (arXiv:2402.11858), and his reference code `psgd_torch`; the JAX port
        `psgd_jax` (E. Walker) and its `kron` optimiser.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    preconditioner_update_probability: Float[Array, ""] | AbstractSchedule = eqx.field(
        converter=as_hyperparameter, default=DEFAULT_UPDATE_PROBABILITY
    )
    max_size_triangular: int = eqx.field(static=True, default=8192)
    min_ndim_triangular: int = eqx.field(static=True, default=2)
    memory_save_mode: str | None = eqx.field(static=True, default=None)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    precond_lr: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.1, kw_only=True
    )
    key: KeyData = eqx.field(converter=as_key_data, default=0, kw_only=True)
    max_update_rms: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1.1, kw_only=True
    )

    def __check_init__(self):
        check_kron_ranges("scale_by_kron", self)

    def init(self, params: Params) -> ScaleByKronState:
        @no_type_check
        def factors(p):
            dtype = self.precond_dtype or compute_dtype(p)
            if p.ndim == 0:
                return (jnp.ones((), dtype),)
            triangular = self._triangular(p.shape)
            return tuple(
                jnp.eye(d, dtype=dtype) if tri else jnp.ones((d,), dtype)
                for d, tri in zip(p.shape, triangular)
            )

        return ScaleByKronState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            preconditioners=map_params(factors, params),
            key=jnp.array(self.key, copy=True),
        )

    def _triangular(self, shape: tuple[int, ...]) -> tuple[bool, ...]:
        return _triangular_axes(
            shape,
            self.max_size_triangular,
            self.min_ndim_triangular,
            self.memory_save_mode,
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByKronState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByKronState]:
        count = safe_increment(state.count)
        probability = value_at(self.preconditioner_update_probability, count)
        next_key, decide_key, probe_key = jr.split(jr.wrap_key_data(state.key), 3)
        u = jr.uniform(decide_key, (), jnp.float32)
        refit = u < to_dtype(jnp.asarray(probability), jnp.float32)
        n = sum(eqx.is_inexact_array(g) for g in jax.tree.leaves(updates))
        leaf_keys = iter(jr.split(probe_key, n))  # consumed in leaf order by `rule`
        b1_in = cast_per_dtype(self.b1, self.precond_lr)
        cap_in = (
            None if self.max_update_rms is None else cast_per_dtype(self.max_update_rms)
        )

        @no_type_check
        def rule(g, mu, qs):
            x = upcast(g)
            b1, _ = b1_in(x.dtype)
            # Computed replicated, if explicitly sharded: the fit meets replicated
            # factors and probes, and reduces over every axis.
            x, mu_in = replicated(x), replicated(mu)
            mu_new = b1 * to_dtype(mu_in, x.dtype) + (1 - b1) * x
            m_hat = mu_new / bias_correction(b1, count)
            probe_key = next(leaf_keys)
            precond_dtype = qs[0].dtype
            _, lr = b1_in(precond_dtype)

            def fit(qs):
                v = jr.normal(probe_key, g.shape, jnp.float32)
                v = replicated(to_dtype(v, precond_dtype))
                return _update_factors(qs, to_dtype(m_hat, precond_dtype), v, lr)

            qs = lax.cond(refit, fit, lambda qs: qs, qs)
            u = _precondition(qs, to_dtype(m_hat, precond_dtype))
            if cap_in is not None:  # `kron_torch`'s cap of the update's RMS
                u = clip_rms(u, cap_in(u.dtype)[0])
            return (
                laid_out_like(to_dtype(u, g.dtype), g),
                laid_out_like(to_dtype(mu_new, mu.dtype), mu),
                qs,
            )

        names = ("updates", "state.mu", "state.preconditioners")
        updates, mu, qs = map_leaves(
            rule,
            updates,
            state.mu,
            state.preconditioners,
            names=names,
            check_shapes=False,
        )
        return updates, ScaleByKronState(count, mu, qs, jr.key_data(next_key))


@no_type_check
def check_kron_ranges(owner: str, opt: Any) -> None:
    """The range checks shared by `scale_by_kron` and `kron`."""
    check_hyperparameters(owner, opt, **_KRON_RANGES)
    probability = opt.preconditioner_update_probability
    if not is_scheduled(probability):  # a schedule's values are not checked
        check_value(
            owner, "preconditioner_update_probability", probability, UNIT_CLOSED
        )
    for name in ("max_size_triangular", "min_ndim_triangular"):
        value = getattr(opt, name)
        if not isinstance(value, int) or value < 0:
            raise ValueError(
                f"`{owner}({name}=...)` must be a non-negative integer; "
                f"got {name}={value!r}."
            )
    if opt.memory_save_mode not in _MEMORY_SAVE_MODES:
        raise ValueError(
            f"`{owner}(memory_save_mode=...)` must be one of {_MEMORY_SAVE_MODES}; "
            f"got memory_save_mode={opt.memory_save_mode!r}."
        )


class Kron(AbstractOptimiser):
    r"""PSGD-Kron: momentum preconditioned by a Kronecker-factored whitening
    preconditioner, with decoupled weight decay.

    $\theta_{t+1} = \theta_t - \eta_t \left(U_t + \lambda\, \theta_t\right)$ with
    $U_t$ from [`eqopt.ScaleByKron`][].

    Not in Optax. Built as `chain(scale_by_kron(...), add_decayed_weights(
    weight_decay, mask), scale_by_learning_rate(learning_rate))`, as `psgd_jax`'s
    `kron` (which leaves out the decay when `weight_decay` is 0; here it is a leaf,
    always there). Defaults are `kron`'s (`learning_rate=1e-3`, `b1=0.9`,
    `weight_decay=0`, `max_size_triangular=8192`, `min_ndim_triangular=2`, the
    annealed update probability, `precond_lr=0.1`; the RMS cap 1.1 is `kron_torch`'s).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `preconditioner_update_probability`, `max_size_triangular`,
        `min_ndim_triangular`, `memory_save_mode`, `mu_dtype`, `precond_dtype`,
        `precond_lr`, `key`, `max_update_rms`: as in [`eqopt.ScaleByKron`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        X.-L. Li, *Preconditioned Stochastic Gradient Descent*, IEEE TNNLS 2018
        (arXiv:1512.04202); *Stochastic Hessian Fittings with Lie Groups*, 2024
        (arXiv:2402.11858).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter, default=1e-3)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    preconditioner_update_probability: Float[Array, ""] | AbstractSchedule = eqx.field(
        converter=as_hyperparameter, default=DEFAULT_UPDATE_PROBABILITY
    )
    max_size_triangular: int = eqx.field(static=True, default=8192)
    min_ndim_triangular: int = eqx.field(static=True, default=2)
    memory_save_mode: str | None = eqx.field(static=True, default=None)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    precond_lr: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.1, kw_only=True
    )
    key: KeyData = eqx.field(converter=as_key_data, default=0, kw_only=True)
    max_update_rms: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1.1, kw_only=True
    )

    def __check_init__(self):
        check_kron_ranges("kron", self)

    def as_chain(self) -> Chain:
        scaling = ScaleByKron(
            self.b1,
            self.preconditioner_update_probability,
            self.max_size_triangular,
            self.min_ndim_triangular,
            self.memory_save_mode,
            self.mu_dtype,
            self.precond_dtype,
            precond_lr=self.precond_lr,
            key=self.key,
            max_update_rms=self.max_update_rms,
        )
        return Chain(
            (
                scaling,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_kron = ScaleByKron
kron = Kron

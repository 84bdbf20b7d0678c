"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024)."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, check_steps, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, safe_increment
from .._transforms.adaptive import adam_denominator, adam_scalars, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import (
    cast,
    compute_dtype,
    map_leaves,
    map_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ._kronecker import laid_out_like, outer, preconditioned_axes, replicated


_SOAP_RANGES = dict(b1=UNIT, b2=UNIT, shampoo_beta=UNIT, eps=NONNEGATIVE)


class ScaleBySoapState(eqx.Module):
    """State of [`eqopt.ScaleBySoap`][].

    - `count`: the number of `update` calls (the first only sets the preconditioner,
        so Adam's step is `count - 1`).
    - `mu`: the first moment, like the parameters (in their own basis).
    - `nu`: the second moment, like the parameters, in the rotated basis.
    - `stats`: per leaf, a tuple with one statistic $L_k = \\mathrm{EMA}(G_{(k)}
        G_{(k)}^\\top)$ per axis $k$ (`None` for an axis that is not preconditioned;
        `()` for a leaf that gets plain Adam).
    - `bases`: per leaf, the matching eigenbases $Q_k$ (orthogonal matrices).
    """

    count: Count
    mu: Moments
    nu: Moments
    stats: Any
    bases: Any


@no_type_check
def _rotate(x: Array, bases: tuple, transpose: bool = False) -> Array:
    r"""$x$ with each preconditioned axis $k$ multiplied by $Q_k$: into the eigenbasis
    ($Q_L^\top X Q_R$ for a matrix), or back out of it with `transpose`
    ($Q_L X Q_R^\top$)."""
    for k, q in enumerate(bases):
        if q is not None:
            contracted = 1 if transpose else 0
            x = jnp.moveaxis(jnp.tensordot(x, q, axes=[[k], [contracted]]), -1, k)
    return x


@no_type_check
def _eigenbasis(stat: Array) -> Array:
    """Eigenvectors of a symmetric matrix, by decreasing eigenvalue."""
    _, q = jnp.linalg.eigh(stat)
    return q[:, ::-1]


@no_type_check
def _refresh(stat: Array, q: Array, nu: Array, k: int) -> tuple[Array, Array]:
    r"""One step of power iteration with a QR decomposition, $Q \leftarrow
    \operatorname{QR}(L Q)$, after ordering $Q$'s columns (and `nu` along axis `k`) by
    decreasing estimated eigenvalue $\operatorname{diag}(Q^\top L Q)$."""
    estimates = jnp.sum(q * (stat @ q), axis=0)
    order = jnp.argsort(-estimates, stable=True)
    q, nu = q[:, order], jnp.take(nu, order, axis=k)
    q, _ = jnp.linalg.qr(stat @ q)
    return q, nu


class ScaleBySoap(GradientTransformation):
    r"""Rescale updates by SOAP: Adam in the eigenbasis of Shampoo's preconditioner.

    For a matrix leaf with gradient $G_t$ and eigenbases $Q_L$, $Q_R$ (for higher
    dimensions, one basis per axis, $G_{(k)}$ being $G$ unfolded along axis $k$):

    $$
    \begin{aligned}
    G_t' &= Q_L^\top G_t Q_R, &
    M_t &= \beta_1 M_{t-1} + (1 - \beta_1)\, G_t, \qquad
    M_t' = Q_L^\top M_t Q_R, \\
    V_t &= \beta_2 V_{t-1} + (1 - \beta_2)\, G_t' \odot G_t', &
    U_t &= Q_L \left(\frac{M_t' / (1 - \beta_1^t)}{\sqrt{V_t / (1 - \beta_2^t)}
        + \varepsilon}\right) Q_R^\top, \\
    L_t &= \beta_s L_{t-1} + (1 - \beta_s)\, G_t G_t^\top, &
    R_t &= \beta_s R_{t-1} + (1 - \beta_s)\, G_t^\top G_t,
    \end{aligned}
    $$

    and every `precondition_frequency` steps, $Q_L \leftarrow \operatorname{QR}(L_t
    Q_L)$ and $Q_R \leftarrow \operatorname{QR}(R_t Q_R)$ (one step of power
    iteration, the paper's Algorithm 4), after ordering each basis by decreasing
    estimated eigenvalue $\operatorname{diag}(Q^\top L Q)$ and permuting $V$ to
    match. The first moment lives in the parameters' basis (the paper's Algorithm 3),
    the second in the rotated one.

    As in the authors' code: the first call only initialises the statistics from
    $G_1$ and the bases by an eigendecomposition (`eigh`), and returns a zero update
    (so the projection never uses the gradient it projects), and Adam's step count
    $t$ starts at the second call; leaves with fewer than two dimensions get plain
    Adam, and an axis longer than `max_precond_dim` is not rotated (a matrix with both
    axes longer is plain Adam). $\varepsilon$ is added to $\sqrt{\hat v}$ (Adam's
    form; the authors add it to $\sqrt{v}$ before bias correction).

    Rank-deficient statistics (a matrix with more rows than its first gradient has
    independent columns) have eigenvectors along which the rotated gradient is zero
    up to rounding; Adam's normalisation scales such components as any other (its
    first step is sign-like), as in the authors' code, so runs that differ in
    rounding only (vmapped, sharded) can differ there. `one_sided=True` rotates only
    the shorter side, whose statistic has full rank.

    The basis updates run under `lax.switch`, only on the steps that need them (under
    `vmap` over hyperparameters every branch runs). With explicitly sharded
    parameters, rotated leaves are gathered (replicated) for the rotations and the
    results laid out like the parameters again. Autodiff treats the bases as
    constants (`stop_gradient` on the statistics they come from): the derivatives of
    `eigh` and `qr` are unbounded where eigenvalues coincide, as they do for the
    rank-deficient statistics of the first steps. Hypergradients are then exact
    while the bases are fixed, and otherwise omit the bases' dependence.

    Not in Optax.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the second moment, in $[0, 1)$.
    - `shampoo_beta`: $\beta_s$, decay of the statistics $L$, $R$, in $[0, 1)$;
        `None` uses $\beta_2$ (the authors' default).
    - `eps`: $\varepsilon \ge 0$.
    - `precondition_frequency`: $f \ge 1$, the number of steps between basis
        updates (static).
    - `max_precond_dim`: the longest axis that gets a preconditioner (static).
    - `mu_dtype`: dtype of the first moment; `None` uses each parameter's dtype.
    - `nu_dtype`: dtype of the second moment; `None` uses each parameter's dtype.
    - `precond_dtype`: dtype of the statistics and bases; `None` is each parameter's
        dtype, at least float32 (`eigh` and `qr` need it).
    - `one_sided`: rotate only each leaf's shortest preconditioned axis (the first
        if tied), the one-sided variant the paper discusses to save memory and time:
        one $d \times d$ statistic and basis per leaf, for the smaller $d$.

    ??? cite "References"

        Vyas et al., *SOAP: Improving and Stabilizing Shampoo using Adam*, ICLR 2025
        (arXiv:2409.11321), Algorithms 3 and 4.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    shampoo_beta: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    precondition_frequency: int = eqx.field(static=True, default=10)
    max_precond_dim: int = eqx.field(static=True, default=10000)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    one_sided: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_soap_ranges("scale_by_soap", self)

    def init(self, params: Params) -> ScaleBySoapState:
        @no_type_check
        def per_axis(make):
            def leaf(p):
                dtype = self.precond_dtype or compute_dtype(p)
                axes = preconditioned_axes(
                    p.shape, self.max_precond_dim, self.one_sided
                )
                return tuple(
                    make(d, dtype) if on else None for d, on in zip(p.shape, axes)
                )

            return leaf

        return ScaleBySoapState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=zeros_like_params(params, self.nu_dtype),
            stats=map_params(per_axis(lambda d, t: jnp.zeros((d, d), t)), params),
            bases=map_params(per_axis(lambda d, t: jnp.eye(d, dtype=t)), params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleBySoapState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleBySoapState]:
        first = state.count == 0
        # Adam's step: the first call takes none (its bias corrections would be 0).
        step = jnp.maximum(state.count, 1)
        refresh = jnp.logical_and(~first, step % self.precondition_frequency == 0)
        branch = jnp.where(first, 1, jnp.where(refresh, 2, 0))
        shampoo_beta = self.b2 if self.shampoo_beta is None else self.shampoo_beta
        scalars = adam_scalars(step, self.b1, self.b2, self.eps)

        @no_type_check
        def rule(g, mu, nu, stats, bases):
            x = upcast(g)
            w1, w2, c1, c2, _, eps = scalars(x.dtype)
            if stats:  # rotated: computed replicated, if explicitly sharded
                x, mu_in, nu_in = replicated(x), replicated(mu), replicated(nu)
            else:
                mu_in, nu_in = mu, nu
            q = tuple(None if b is None else lax.stop_gradient(b) for b in bases)
            mu_new = ema(w1, mu_in, x)
            nu_new = ema(w2, nu_in, abs_sq(_rotate(x, q)))
            m_hat = _rotate(mu_new / c1, q)
            n = m_hat / adam_denominator(nu_new / c2, jnp.zeros_like(eps), eps)
            u = jnp.where(first, jnp.zeros_like(x), _rotate(n, q, transpose=True))
            mu_new = jnp.where(first, to_dtype(mu_in, x.dtype), mu_new)
            nu_new = jnp.where(first, to_dtype(nu_in, x.dtype), nu_new)
            stats, bases, nu_new = self._precondition(
                x, stats, bases, nu_new, branch, shampoo_beta
            )
            return (
                laid_out_like(to_dtype(u, g.dtype), g),
                laid_out_like(to_dtype(mu_new, mu.dtype), mu),
                laid_out_like(to_dtype(nu_new, nu.dtype), nu),
                stats,
                bases,
            )

        names = ("updates", "state.mu", "state.nu", "state.stats", "state.bases")
        updates, mu, nu, stats, bases = map_leaves(
            rule,
            updates,
            state.mu,
            state.nu,
            state.stats,
            state.bases,
            names=names,
            check_shapes=False,
        )
        count = safe_increment(state.count)
        return updates, ScaleBySoapState(count, mu, nu, stats, bases)

    def _precondition(self, x, stats, bases, nu, branch, shampoo_beta):
        """The statistics' EMA, then (by `branch`) the bases kept, initialised by
        `eigh`, or refreshed by power iteration (with `nu` reordered)."""
        if not stats:
            return stats, bases, nu
        precond_dtype = next(s.dtype for s in stats if s is not None)
        (beta,) = cast(precond_dtype, shampoo_beta)
        x_stat = to_dtype(x, beta.dtype)
        stats = tuple(
            None if s is None else beta * s + (1 - beta) * outer(x_stat, k)
            for k, s in enumerate(stats)
        )
        frozen = lax.stop_gradient(stats)

        @no_type_check
        def keep(bases, nu):
            return bases, nu

        @no_type_check
        def initialise(bases, nu):
            return tuple(None if s is None else _eigenbasis(s) for s in frozen), nu

        @no_type_check
        def power_iteration(bases, nu):
            new = []
            for k, (s, q) in enumerate(zip(frozen, bases)):
                if s is None:
                    new.append(None)
                    continue
                q, nu_k = _refresh(s, q, to_dtype(nu, s.dtype), k)
                nu = to_dtype(nu_k, nu.dtype)
                new.append(q)
            return tuple(new), nu

        bases, nu = lax.switch(branch, (keep, initialise, power_iteration), bases, nu)
        return stats, bases, nu


@no_type_check
def check_soap_ranges(owner: str, opt: Any) -> None:
    """The range checks shared by `scale_by_soap` and `soap`."""
    check_hyperparameters(owner, opt, **_SOAP_RANGES)
    check_steps(owner, max_precond_dim=opt.max_precond_dim)
    if opt.precondition_frequency < 1:
        raise ValueError(
            f"`{owner}(precondition_frequency=...)` must be a positive number of "
            f"steps; got precondition_frequency={opt.precondition_frequency!r}."
        )


class Soap(AbstractOptimiser):
    r"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner, with decoupled
    weight decay.

    $\theta_{t+1} = \theta_t - \eta_t \left(U_t + \lambda\, \theta_t\right)$ with
    $U_t$ from [`eqopt.ScaleBySoap`][] (the first call's update is zero: it only
    sets the preconditioner).

    Not in Optax. Built as `chain(scale_by_soap(...), add_decayed_weights(
    weight_decay, mask), scale_by_learning_rate(learning_rate))`. Defaults are the
    authors' (`betas=(0.95, 0.95)`, `weight_decay=0.01`, `precondition_frequency=10`,
    `max_precond_dim=10000`; they use a learning rate of `3e-3`). The authors decay
    the parameters after the step ($\theta \leftarrow (\theta - \eta U)(1 - \eta
    \lambda)$); here the decay is AdamW's, a difference of order $\eta^2 \lambda$.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `shampoo_beta`, `eps`, `precondition_frequency`, `max_precond_dim`,
        `mu_dtype`, `nu_dtype`, `precond_dtype`, `one_sided`: as in
        [`eqopt.ScaleBySoap`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Vyas et al., *SOAP: Improving and Stabilizing Shampoo using Adam*, ICLR 2025
        (arXiv:2409.11321).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    shampoo_beta: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.01)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    precondition_frequency: int = eqx.field(static=True, default=10)
    max_precond_dim: int = eqx.field(static=True, default=10000)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    one_sided: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_soap_ranges("soap", self)

    def as_chain(self) -> Chain:
        scaling = ScaleBySoap(
            self.b1,
            self.b2,
            self.shampoo_beta,
            self.eps,
            self.precondition_frequency,
            self.max_precond_dim,
            self.mu_dtype,
            nu_dtype=self.nu_dtype,
            precond_dtype=self.precond_dtype,
            one_sided=self.one_sided,
        )
        return Chain(
            (
                scaling,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_soap = ScaleBySoap
soap = Soap

"""Shampoo (Gupta et al. 2018) in its practical, blocked and grafted form (Anil et al.
2020; Shi et al. 2023)."""

import math
from collections.abc import Callable
from typing import Any, NamedTuple, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import (
    check_hyperparameters,
    check_steps,
    NONNEGATIVE,
    POSITIVE,
    UNIT,
    UNIT_CLOSED,
)
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._linear_algebra import matrix_inverse_pth_root
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, safe_increment, safe_sqrt
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
from ._kronecker import laid_out_like, preconditioned_axes, replicated


_SHAMPOO_RANGES = dict(
    b1=UNIT, b2=UNIT_CLOSED, eps=POSITIVE, graft_b2=UNIT, graft_eps=NONNEGATIVE
)
_GRAFTS = ("adam", "adagrad", "sgd")
_MATRIX_ROOTS = ("eigh", "newton")
_NEWTON_POWERS = (1, 2, 4, 8)  # what `matrix_inverse_pth_root` supports
_HIGHEST = lax.Precision.HIGHEST
# The floor of the largest eigenvalue in the relative ridge (`matrix_inverse_pth_root`'s).
_MIN_EIGENVALUE = 1e-16


class ScaleByShampooState(eqx.Module):
    """State of [`eqopt.ScaleByShampoo`][].

    - `count`: the number of `update` calls.
    - `mu`: the first moment of the gradients, like the parameters.
    - `nu`: the graft's second moment (Adam's or AdaGrad's), like the parameters;
        `None` for `graft="sgd"`.
    - `stats`: per leaf, a tuple with, for each axis $k$, the statistics $L_k$ of
        every block (an array of shape `blocks + (s_k, s_k)`, `blocks` being the
        number of blocks along each axis and $s_k$ a block's length along axis $k$),
        or `None` for an axis that is not preconditioned; `()` for a leaf that takes
        the graft direction only.
    - `roots`: per leaf, the matching inverse roots $(L_k + \\epsilon_k I)^{-1/p}$,
        identities until first computed.
    """

    count: Count
    mu: Moments
    nu: Moments | None
    stats: Any
    roots: Any


class _Blocks(NamedTuple):
    """How a leaf is split: per axis, whether it is preconditioned, the number of
    blocks along it and their (padded) length."""

    axes: tuple[bool, ...]
    counts: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def order(self) -> int:
        return sum(self.axes)


@no_type_check
def _blocks(shape: tuple[int, ...], block_size: int, max_dim: int | None) -> Any:
    """The blocking of a leaf of `shape`, or `None` for a leaf that takes the graft
    direction only. Preconditioned: axes of length 2 to `max_dim` of leaves of two or
    more dimensions. An axis of length $d$ is split into $n = \\lceil d / b \\rceil$
    blocks of $\\lceil d / n \\rceil$ entries (the last one shorter if $n$ does not
    divide $d$), $b$ being `block_size`."""
    limit = math.inf if max_dim is None else max_dim
    axes = tuple(
        a and d > 1 for a, d in zip(preconditioned_axes(shape, limit, False), shape)
    )
    if not any(axes):
        return None
    counts = tuple(-(-d // block_size) for d in shape)
    sizes = tuple(-(-d // n) for d, n in zip(shape, counts))
    return _Blocks(axes, counts, sizes)


@no_type_check
def _to_blocks(x: Array, blocks: _Blocks) -> Array:
    """`x` (zero-padded to whole blocks) as an array of shape `counts + sizes`."""
    r = x.ndim
    pad = [(0, n * s - d) for d, n, s in zip(x.shape, blocks.counts, blocks.sizes)]
    if any(after for _, after in pad):
        x = jnp.pad(x, pad)
    x = x.reshape([v for n, s in zip(blocks.counts, blocks.sizes) for v in (n, s)])
    return x.transpose([*range(0, 2 * r, 2), *range(1, 2 * r, 2)])


@no_type_check
def _from_blocks(x: Array, blocks: _Blocks, shape: tuple[int, ...]) -> Array:
    """The inverse of `_to_blocks`: an array of `shape`, the padding dropped."""
    r = len(shape)
    x = x.transpose([i for k in range(r) for i in (k, r + k)])
    x = x.reshape([n * s for n, s in zip(blocks.counts, blocks.sizes)])
    return x[tuple(slice(0, d) for d in shape)]


@no_type_check
def _block_outer(x: Array, k: int) -> Array:
    r"""$G_{(k)} G_{(k)}^\top$ of every block of `x` (shape `counts + sizes`): each
    block contracted with itself over every block axis but `k`."""
    r = x.ndim // 2
    left = list(range(2 * r))
    right = left.copy()
    right[r + k] = 2 * r
    out = [*range(r), r + k, 2 * r]
    return jnp.einsum(x, left, x, right, out, precision=_HIGHEST)


@no_type_check
def _precondition_axis(x: Array, root: Array, k: int) -> Array:
    """Every block of `x` with its block axis `k` multiplied by the block's (symmetric)
    `root`."""
    r = x.ndim // 2
    index = list(range(2 * r))
    out = index.copy()
    out[r + k] = 2 * r
    return jnp.einsum(
        x, index, root, [*range(r), r + k, 2 * r], out, precision=_HIGHEST
    )


@no_type_check
def _eigh_roots(a: Array, p: int, eps: Array, relative: bool) -> Array:
    r"""$(A + \epsilon' I)^{-1/p}$ of a stack of symmetric matrices by an
    eigendecomposition $A = Q \operatorname{diag}(\lambda) Q^\top$, eigenvalues
    rounded below zero clipped to zero; $\epsilon' = \epsilon \max(\lambda_{\max},
    10^{-16})$ if `relative`, else $\epsilon$."""
    w, q = jnp.linalg.eigh(a)
    w = jnp.maximum(w, 0)
    ridge = eps * jnp.maximum(w[..., -1:], _MIN_EIGENVALUE) if relative else eps
    scale = (w + ridge) ** (-1.0 / p)
    return jnp.einsum("...ij,...j,...kj->...ik", q, scale, q, precision=_HIGHEST)


@no_type_check
def _newton_root(a: Array, p: int, eps: Array, relative: bool) -> Array:
    """The same root by `matrix_inverse_pth_root`'s coupled Newton iteration, whose
    ridge is relative to the largest eigenvalue found by power iteration (which has
    no answer for a zero matrix: a zero statistic gets the root of the ridge alone,
    as with `eigh`)."""
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    if not relative:
        return matrix_inverse_pth_root(a + eps * eye, p, ridge_epsilon=0.0)[0]
    zero = jnp.all(a == 0)
    root, _ = matrix_inverse_pth_root(jnp.where(zero, eye, a), p, ridge_epsilon=eps)
    ridge_root = (eps * _MIN_EIGENVALUE) ** (-1.0 / p)
    return jnp.where(zero, ridge_root * eye, root)


@no_type_check
def _inverse_roots(stat: Array, p: int, eps: Array, relative: bool, newton: bool):
    """The inverse `p`-th root of every block's statistic (shape `counts + (s, s)`)."""
    s = stat.shape[-1]
    flat = stat.reshape(-1, s, s)
    if newton and p in _NEWTON_POWERS:
        roots = jax.vmap(lambda a: _newton_root(a, p, eps, relative))(flat)
    else:
        roots = _eigh_roots(flat, p, eps, relative)
    return roots.reshape(stat.shape)


class ScaleByShampoo(GradientTransformation):
    r"""Rescale updates by Shampoo's Kronecker-factored preconditioner, blocked and
    grafted (Distributed Shampoo).

    For a matrix block $G_t$ of a leaf's gradient (for a leaf of more dimensions, one
    statistic $L_k$ per axis $k$, $G_{(k)}$ being the block unfolded along axis $k$):

    $$
    \begin{aligned}
    L_t &= \beta_2 L_{t-1} + (1 - \beta_2)\, G_t G_t^\top, &
    R_t &= \beta_2 R_{t-1} + (1 - \beta_2)\, G_t^\top G_t, \\
    M_t &= \beta_1 M_{t-1} + (1 - \beta_1)\, G_t, &
    \hat M_t &= M_t / (1 - \beta_1^t), \\
    P_t &= \hat L^{-1/4} \hat M_t \hat R^{-1/4}, &
    U_t &= \frac{\|D_t\|_F}{\|P_t\|_F}\, P_t,
    \end{aligned}
    $$

    where $\hat L = L + \epsilon' I$ and $\hat R = R + \epsilon' I$ are taken from the
    statistics of the last root computation, and $D_t$ is the block's graft direction:
    $\hat M_t$ (`"sgd"`), $\hat M_t / (\sqrt{V_t / (1 - \beta_v^t)} + \varepsilon)$
    with $V_t = \beta_v V_{t-1} + (1 - \beta_v) G_t^2$ (`"adam"`), or $\hat M_t /
    (\sqrt{V_t} + \varepsilon)$ with $V_t = V_{t-1} + G_t^2$ (`"adagrad"`). The
    exponent is $-1/(2k)$ for a block with $k$ preconditioned axes ($-1/4$ for a
    matrix, $-1/2$ when one axis only is). With $\beta_2 = 1$ the statistics are sums
    (weight $1$), the original Shampoo's.

    As practitioners run it (Anil et al.; Shi et al.):

    - **Blocking.** An axis of length $d$ longer than $b$ = `block_size` is split
        into $n = \lceil d / b \rceil$ blocks of $\lceil d / n \rceil$ entries (the
        last one shorter if needed); each block has its own statistics,
        roots and graft norm. Leaves of fewer than two dimensions, and leaves whose
        every axis is longer than `max_precond_dim` or of length one, take the graft
        direction $D_t$ only; an axis of length one or longer than `max_precond_dim`
        is not preconditioned (and not counted in the exponent).
    - **Amortised roots.** The roots are recomputed (under `lax.cond`) on the steps
        $t - 1 = s + j f$ ($s$ = `start_preconditioning_step`, $f$ =
        `precondition_frequency`, $j \ge 0$), from the statistics including $G_t$;
        the first $s$ steps take the graft direction $D_t$ (the roots are then
        unused identities).
    - **Ridge.** $\epsilon' = \epsilon \max(\lambda_{\max}(L), 10^{-16})$, relative
        to the largest eigenvalue of the statistic, as in Anil et al.'s implementation
        (so $\epsilon$ does not depend on the scale of the gradients); with
        `relative_eps=False`, $\epsilon' = \epsilon$, the paper's $L_0 = \epsilon I$
        (Gupta et al.). Eigenvalues rounded below zero are clipped to zero before. The
        statistics are not bias-corrected: grafting undoes any scalar factor of a
        block's direction (with a relative ridge, exactly). Directions that entered
        the first moment since the last roots (outside the statistics' range) are
        scaled by the ridge's root alone; float32 resolves a statistic's eigenvalues
        to about $10^{-7} s$ of the largest, so with a relative $\epsilon$ near that
        (the default $10^{-6}$) those components depend on rounding; a larger
        $\epsilon$ (say $10^{-4}$) or `precond_dtype=jnp.float64` avoids it.
    - **Grafting and moments.** The first moment is an average of the gradients,
        bias-corrected, preconditioned and grafted (Shi et al.'s Distributed Shampoo,
        so `graft="adam"` before `start_preconditioning_step` is Adam); the graft's
        second moment is of the raw gradients. (Anil et al.'s JAX implementation
        instead applies heavy-ball momentum to the grafted direction and grafts per
        parameter.)

    With `matrix_root="eigh"` the roots come from an eigendecomposition; with
    `"newton"`, from [`eqopt.matrix_inverse_pth_root`][]'s coupled Newton iteration
    (Anil et al.'s choice on accelerators; tolerance $10^{-6}$), for exponents
    $-1/2$, $-1/4$ and $-1/8$; blocks with three preconditioned axes ($-1/6$) use
    `eigh` even then. Statistics and roots are kept in `precond_dtype` and computed
    at `HIGHEST` matmul precision. With explicitly sharded parameters, preconditioned
    leaves are gathered (replicated) for the block products and the results laid out
    like the parameters again.

    Autodiff treats the roots as functions of $\epsilon$ only (`stop_gradient` on the
    statistics; with `"newton"`, on $\epsilon$ too, as `while_loop` has no reverse
    mode): the derivatives of `eigh` are unbounded where eigenvalues coincide, as they
    do for the rank-deficient statistics of the first steps. Hypergradients are exact
    while the roots are fixed and otherwise omit the statistics' dependence.

    Not in Optax.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the statistics, in $[0, 1]$ ($1$: sums).
    - `eps`: $\epsilon > 0$, the ridge added to the statistics before their roots.
    - `graft_b2`: $\beta_v$, decay of the Adam graft's second moment, in $[0, 1)$.
    - `graft_eps`: $\varepsilon \ge 0$ of the Adam or AdaGrad graft.
    - `block_size`: the longest block along an axis (static).
    - `precondition_frequency`: $f \ge 1$, the steps between root computations
        (static).
    - `start_preconditioning_step`: $s \ge 0$, the number of first steps that take
        the graft direction (static).
    - `graft`: `"adam"`, `"adagrad"` or `"sgd"`, the direction whose norm each
        block's step takes (static).
    - `matrix_root`: `"eigh"` or `"newton"` (static).
    - `relative_eps`: whether $\epsilon$ is relative to the statistic's largest
        eigenvalue (static).
    - `max_precond_dim`: the longest axis (before blocking) that is preconditioned;
        `None` for no limit (static).
    - `mu_dtype`, `nu_dtype`: dtypes of the first and graft second moments; `None`
        uses each parameter's dtype.
    - `precond_dtype`: dtype of the statistics and roots, float32 or wider; `None` is
        each parameter's dtype, at least float32.

    ??? cite "References"

        Gupta, Koren and Singer, *Shampoo: Preconditioned Stochastic Tensor
        Optimization*, ICML 2018 (arXiv:1802.09568), Algorithms 1 and 2.

        Anil, Gupta, Koren, Regan and Singer, *Scalable Second Order Optimization for
        Deep Learning*, 2020 (arXiv:2002.09018).

        Shi et al., *A Distributed Data-Parallel PyTorch Implementation of the
        Distributed Shampoo Optimizer for Training Neural Networks At-Scale*, 2023
        (arXiv:2309.06497), Algorithm 1.
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    graft_b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    graft_eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    block_size: int = eqx.field(static=True, default=1024, kw_only=True)
    precondition_frequency: int = eqx.field(static=True, default=10, kw_only=True)
    start_preconditioning_step: int = eqx.field(static=True, default=10, kw_only=True)
    graft: str = eqx.field(static=True, default="adam", kw_only=True)
    matrix_root: str = eqx.field(static=True, default="eigh", kw_only=True)
    relative_eps: bool = eqx.field(static=True, default=True, kw_only=True)
    max_precond_dim: int | None = eqx.field(static=True, default=None, kw_only=True)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_shampoo_options("scale_by_shampoo", self)

    @no_type_check
    def _blocks(self, shape):
        return _blocks(shape, self.block_size, self.max_precond_dim)

    def init(self, params: Params) -> ScaleByShampooState:
        @no_type_check
        def per_axis(make):
            def leaf(p):
                blocks = self._blocks(p.shape)
                if blocks is None:
                    return ()
                dtype = self.precond_dtype or compute_dtype(p)
                return tuple(
                    make(blocks.counts + (s, s), s, dtype) if on else None
                    for on, s in zip(blocks.axes, blocks.sizes)
                )

            return leaf

        eye = lambda shape, s, t: jnp.broadcast_to(jnp.eye(s, dtype=t), shape)
        nu = None if self.graft == "sgd" else zeros_like_params(params, self.nu_dtype)
        return ScaleByShampooState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=nu,
            stats=map_params(per_axis(lambda shape, s, t: jnp.zeros(shape, t)), params),
            roots=map_params(per_axis(eye), params),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByShampooState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByShampooState]:
        start = self.start_preconditioning_step
        shampoo_on = state.count >= start
        refresh = shampoo_on & (
            (state.count - start) % self.precondition_frequency == 0
        )
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.graft_b2, self.graft_eps)
        has_nu = self.graft != "sgd"

        @no_type_check
        def rule(g, mu, stats, roots, nu=None):
            x = upcast(g)
            w1, w2, c1, c2, _, graft_eps = scalars(x.dtype)
            if stats:  # preconditioned: computed replicated, if explicitly sharded
                x, mu_in = replicated(x), replicated(mu)
                nu_in = None if nu is None else replicated(nu)
            else:
                mu_in, nu_in = mu, nu
            mu_new = ema(w1, mu_in, x)
            m_hat = mu_new / c1
            if self.graft == "adam":
                nu_new = ema(w2, nu_in, abs_sq(x))
                direction = m_hat / adam_denominator(
                    nu_new / c2, jnp.zeros_like(graft_eps), graft_eps
                )
            elif self.graft == "adagrad":
                nu_new = to_dtype(nu_in, x.dtype) + abs_sq(x)
                direction = m_hat / (safe_sqrt(nu_new) + graft_eps)
            else:
                nu_new, direction = None, m_hat
            u = direction
            if stats:
                blocks = self._blocks(g.shape)
                stats, roots = self._statistics(x, stats, roots, blocks, refresh)
                shampoo = _grafted(m_hat, direction, roots, blocks)
                u = jnp.where(shampoo_on, shampoo, direction)
            out = (
                laid_out_like(to_dtype(u, g.dtype), g),
                laid_out_like(to_dtype(mu_new, mu.dtype), mu),
                stats,
                roots,
            )
            if nu is None:
                return out
            return out + (laid_out_like(to_dtype(nu_new, nu.dtype), nu),)

        trees = (updates, state.mu, state.stats, state.roots)
        names = ("updates", "state.mu", "state.stats", "state.roots")
        if has_nu:
            trees, names = trees + (state.nu,), names + ("state.nu",)
        updates, mu, stats, roots, *nu = map_leaves(
            rule, *trees, names=names, check_shapes=False
        )
        nu = nu[0] if has_nu else None
        return updates, ScaleByShampooState(count, mu, nu, stats, roots)

    @no_type_check
    def _statistics(self, x, stats, roots, blocks, refresh):
        """The statistics' moving averages, then (on `refresh` steps) their roots."""
        dtype = next(s.dtype for s in stats if s is not None)
        beta, eps = cast(dtype, self.b2, self.eps)
        weight = jnp.where(beta == 1, jnp.ones_like(beta), 1 - beta)
        xb = _to_blocks(to_dtype(x, dtype), blocks)
        stats = tuple(
            None if s is None else beta * s + weight * _block_outer(xb, k)
            for k, s in enumerate(stats)
        )
        frozen = lax.stop_gradient(stats)
        newton = self.matrix_root == "newton"
        if newton:
            eps = lax.stop_gradient(eps)
        p = 2 * blocks.order

        def compute(roots):
            return tuple(
                None
                if s is None
                else _inverse_roots(s, p, eps, self.relative_eps, newton)
                for s in frozen
            )

        roots = lax.cond(refresh, compute, lambda roots: roots, roots)
        return stats, roots


@no_type_check
def _grafted(m_hat: Array, direction: Array, roots: tuple, blocks: _Blocks) -> Array:
    """$\\hat M$ preconditioned block by block, each block rescaled to the norm of the
    graft direction's block (zero where the preconditioned block is zero)."""
    dtype = next(r.dtype for r in roots if r is not None)
    mb = _to_blocks(to_dtype(m_hat, dtype), blocks)
    for k, root in enumerate(roots):
        if root is not None:
            mb = _precondition_axis(mb, root, k)
    inner = tuple(range(mb.ndim // 2, mb.ndim))
    graft_sq = jnp.sum(
        abs_sq(_to_blocks(to_dtype(direction, dtype), blocks)), inner, keepdims=True
    )
    shampoo_sq = jnp.sum(abs_sq(mb), inner, keepdims=True)
    nonzero = shampoo_sq > 0
    ratio = graft_sq / jnp.where(nonzero, shampoo_sq, jnp.ones_like(shampoo_sq))
    scale = jnp.where(nonzero, safe_sqrt(ratio), jnp.zeros_like(ratio))
    return to_dtype(_from_blocks(mb * scale, blocks, m_hat.shape), m_hat.dtype)


@no_type_check
def check_shampoo_options(owner: str, opt: Any) -> None:
    """The range and option checks shared by `scale_by_shampoo` and `shampoo`."""
    check_hyperparameters(owner, opt, **_SHAMPOO_RANGES)
    check_steps(owner, start_preconditioning_step=opt.start_preconditioning_step)
    if opt.max_precond_dim is not None:
        check_steps(owner, max_precond_dim=opt.max_precond_dim)
    for name in ("block_size", "precondition_frequency"):
        value = getattr(opt, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{owner}({name}=...)` must be a positive int; got {name}={value!r}."
            )
    for name, allowed in (("graft", _GRAFTS), ("matrix_root", _MATRIX_ROOTS)):
        value = getattr(opt, name)
        if value not in allowed:
            raise ValueError(
                f"`{owner}({name}=...)` must be one of {allowed}; got {name}={value!r}."
            )
    dtype = opt.precond_dtype
    if dtype is not None and not (
        jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits >= 32
    ):
        raise ValueError(
            f"`{owner}(precond_dtype=...)` must be float32 or wider (eigendecompositions "
            f"and Newton's iteration need it), or `None`; got precond_dtype={dtype!r}."
        )


class Shampoo(AbstractOptimiser):
    r"""Shampoo, blocked and grafted (Distributed Shampoo), with decoupled weight decay.

    $\theta_{t+1} = \theta_t - \eta_t \left(U_t + \lambda\, \theta_t\right)$ with
    $U_t$ from [`eqopt.ScaleByShampoo`][].

    Not in Optax. Built as `chain(scale_by_shampoo(...), add_decayed_weights(
    weight_decay, mask), scale_by_learning_rate(learning_rate))`: the decay is
    decoupled (AdamW's), the default of Shi et al.'s implementation.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `graft_b2`, `graft_eps`, `block_size`,
        `precondition_frequency`, `start_preconditioning_step`, `graft`,
        `matrix_root`, `relative_eps`, `max_precond_dim`, `mu_dtype`, `nu_dtype`,
        `precond_dtype`: as in [`eqopt.ScaleByShampoo`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Gupta, Koren and Singer, *Shampoo: Preconditioned Stochastic Tensor
        Optimization*, ICML 2018 (arXiv:1802.09568).

        Anil, Gupta, Koren, Regan and Singer, *Scalable Second Order Optimization for
        Deep Learning*, 2020 (arXiv:2002.09018).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-6)
    graft_b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    graft_eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    block_size: int = eqx.field(static=True, default=1024, kw_only=True)
    precondition_frequency: int = eqx.field(static=True, default=10, kw_only=True)
    start_preconditioning_step: int = eqx.field(static=True, default=10, kw_only=True)
    graft: str = eqx.field(static=True, default="adam", kw_only=True)
    matrix_root: str = eqx.field(static=True, default="eigh", kw_only=True)
    relative_eps: bool = eqx.field(static=True, default=True, kw_only=True)
    max_precond_dim: int | None = eqx.field(static=True, default=None, kw_only=True)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)
    precond_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_shampoo_options("shampoo", self)

    def as_chain(self) -> Chain:
        scaling = ScaleByShampoo(
            self.b1,
            self.b2,
            self.eps,
            self.graft_b2,
            self.graft_eps,
            block_size=self.block_size,
            precondition_frequency=self.precondition_frequency,
            start_preconditioning_step=self.start_preconditioning_step,
            graft=self.graft,
            matrix_root=self.matrix_root,
            relative_eps=self.relative_eps,
            max_precond_dim=self.max_precond_dim,
            mu_dtype=self.mu_dtype,
            nu_dtype=self.nu_dtype,
            precond_dtype=self.precond_dtype,
        )
        return Chain(
            (
                scaling,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_shampoo = ScaleByShampoo
shampoo = Shampoo

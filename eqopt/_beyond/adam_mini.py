"""Adam-mini: one second moment per block of parameters (Zhang et al. 2024)."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, DTypeLike, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import abs_sq, safe_increment
from .._transforms.adaptive import adam_denominator, adam_scalars, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import compute_dtype, map_leaves, to_dtype, upcast, zeros_like_params
from ..tree_utils._leaves import is_none


_ADAM_MINI_RANGES = dict(b1=UNIT, b2=UNIT, eps=NONNEGATIVE)

#: `block_fn(path, leaf) -> number of blocks along axis 0`.
BlockFn = Callable[[str, Any], int]


class ScaleByAdamMiniState(eqx.Module):
    """State of [`eqopt.ScaleByAdamMini`][]: the step count, the first moment (like
    the parameters) and one second moment per block (`nu[path]` has shape
    `(number of blocks,)`)."""

    count: Count
    mu: Moments
    nu: Moments


@no_type_check
def _blocks(block_fn: BlockFn | None, path: Any, p: Any) -> int:
    """The number of blocks of leaf `p` along its axis 0, checked."""
    if block_fn is None:
        return 1
    where = jtu.keystr(path) or "<root>"
    n = block_fn(where, p)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"`scale_by_adam_mini(block_fn=...)` must return a positive int (a "
            f"number of blocks along axis 0); it returned {n!r} for the leaf at "
            f"`{where}` of shape {p.shape}."
        )
    if n > 1 and (p.ndim == 0 or p.shape[0] % n):
        need = (
            "a 0-d leaf is one block"
            if p.ndim == 0
            else (f"its axis 0 must split into {n} equal blocks")
        )
        raise ValueError(
            f"`scale_by_adam_mini(block_fn=...)` returned {n} blocks for the leaf at "
            f"`{where}` of shape {p.shape}: {need}."
        )
    return n


@no_type_check
def _block_nu(params: Params, block_fn: BlockFn | None, dtype: DTypeLike | None):
    def zeros(path, p):
        if not eqx.is_inexact_array(p):
            return None
        n = _blocks(block_fn, path, p)
        return jnp.zeros((n,), compute_dtype(p) if dtype is None else dtype)

    return jtu.tree_map_with_path(zeros, params, is_leaf=is_none)


@no_type_check
def _block_one_hot(x: Array, n: int) -> Array:
    """`(x.shape[0], n)`: row `i` of `x` is in block `i // (x.shape[0] / n)`."""
    rows = x.shape[0] // n
    block_of_row = jnp.arange(x.shape[0]) // rows
    return (block_of_row[:, None] == jnp.arange(n)[None, :]).astype(x.dtype)


@no_type_check
def _block_means(squares: Array, n: int) -> Array:
    """The mean of `squares` over each of `n` blocks of rows: shape `(n,)`.

    Written without reshaping `squares` (a reshape of an axis sharded over a mesh is
    not supported): sums over the other axes, then a one-hot reduction over rows.
    """
    if n == 1:
        return jnp.mean(squares)[None]
    row_sums = jnp.sum(squares, axis=tuple(range(1, squares.ndim)))
    block_sums = jnp.sum(row_sums[:, None] * _block_one_hot(squares, n), axis=0)
    return block_sums / (squares.size // n)


@no_type_check
def _per_element(block_values: Array, x: Array) -> Array:
    """Each block's value, broadcastable against `x` (a scalar for one block)."""
    n = block_values.shape[0]
    if n == 1:
        return block_values[0]
    rows = jnp.sum(_block_one_hot(x, n) * block_values[None, :], axis=1)
    return jnp.expand_dims(rows, tuple(range(1, x.ndim)))


class ScaleByAdamMini(GradientTransformation):
    r"""Rescale updates by Adam-mini: Adam with one second moment per block.

    Each leaf is split into blocks $B$ (the whole leaf by default); for each block,

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, &
    v_{B,t} &= \beta_2 v_{B,t-1} + (1 - \beta_2)\,
        \operatorname{mean}_{i \in B}\, g_{t,i}^2, \\
    u_{t,i} &= \frac{m_{t,i} / (1 - \beta_1^t)}{\sqrt{v_{B,t} / (1 - \beta_2^t)}
        + \varepsilon} \quad (i \in B).
    \end{aligned}
    $$

    The second moment is one number per block instead of one per parameter, which
    saves almost half of Adam's state.

    **Blocks.** `block_fn(path, leaf)` returns the number $n$ of equal blocks the
    leaf is cut into along its axis 0 (contiguous slices of `leaf.shape[0] / n`
    rows); `path` is the leaf's path as `jax.tree_util.keystr` writes it (for an
    Equinox model, `".layers[0].attention.query_proj.weight"`) and `leaf` may be a
    `jax.ShapeDtypeStruct` (only its shape and dtype may be read). The paper's rules
    for Transformers are: query and key weights by head, $n$ = the number of heads
    (an `eqx.nn.MultiheadAttention`'s `query_proj.weight` has shape
    `(num_heads * qk_size, query_size)`: heads are contiguous rows); value,
    attention-output and MLP weights by output neuron, $n$ = `leaf.shape[0]` (an
    `eqx.nn.Linear` weight has shape `(out, in)`); embeddings by token (also the
    rows). For example

    ```python
    def block_fn(path, leaf):
        if "query_proj.weight" in path or "key_proj.weight" in path:
            return num_heads
        return 1  # one block per leaf
    ```

    The default, `None`, is one block per leaf (the paper's first version). For
    per-parameter Adam on some leaves, partition the model with
    [`eqopt.partition`][] and give those leaves [`eqopt.Adam`][].

    The second moments are tiny, so they are kept in float32 or wider by default
    (`nu_dtype=None`), whatever the parameters' dtype.

    Not in Optax.

    **Arguments:**

    - `b1`: $\beta_1$, decay of the first moment, in $[0, 1)$.
    - `b2`: $\beta_2$, decay of the block second moments, in $[0, 1)$.
    - `eps`: $\varepsilon \ge 0$, added to the denominator.
    - `mu_dtype`: dtype of the first moment; `None` uses each parameter's dtype.
    - `block_fn`: `(path, leaf) -> number of blocks along axis 0`, or `None` (one
        block per leaf). Static: it decides the state's shapes.
    - `nu_dtype`: dtype of the block second moments; `None` is each parameter's
        dtype, at least float32.

    ??? cite "References"

        Zhang et al., *Adam-mini: Use Fewer Learning Rates To Gain More*, ICLR 2025
        (arXiv:2406.16793).
    """

    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    block_fn: BlockFn | None = eqx.field(static=True, default=None, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("scale_by_adam_mini", self, **_ADAM_MINI_RANGES)

    def init(self, params: Params) -> ScaleByAdamMiniState:
        return ScaleByAdamMiniState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            nu=_block_nu(params, self.block_fn, self.nu_dtype),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByAdamMiniState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByAdamMiniState]:
        count = safe_increment(state.count)
        scalars = adam_scalars(count, self.b1, self.b2, self.eps)

        @no_type_check
        def rule(g, mu, nu):
            x = upcast(g)
            w1, w2, c1, c2, _, eps = scalars(x.dtype)
            mu_new = ema(w1, mu, x)
            nu_new = ema(w2, nu, _block_means(abs_sq(x), nu.shape[0]))
            denominator = adam_denominator(nu_new / c2, jnp.zeros_like(eps), eps)
            u = (mu_new / c1) / _per_element(denominator, x)
            return (
                to_dtype(u, g.dtype),
                to_dtype(mu_new, mu.dtype),
                to_dtype(nu_new, nu.dtype),
            )

        names = ("updates", "state.mu", "state.nu")
        updates, mu, nu = map_leaves(
            rule, updates, state.mu, state.nu, names=names, check_shapes=False
        )
        return updates, ScaleByAdamMiniState(count, mu, nu)


class AdamMini(AbstractOptimiser):
    r"""Adam-mini: Adam with one second moment per block, and decoupled weight decay.

    $\theta_{t+1} = \theta_t - \eta_t \left(u_t + \lambda\, \theta_t\right)$ with
    $u_t$ from [`eqopt.ScaleByAdamMini`][].

    Not in Optax. Built as `chain(scale_by_adam_mini(b1, b2, eps, mu_dtype,
    block_fn=..., nu_dtype=...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `b1`, `b2`, `eps`, `mu_dtype`, `block_fn`, `nu_dtype`: as in
        [`eqopt.ScaleByAdamMini`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Zhang et al., *Adam-mini: Use Fewer Learning Rates To Gain More*, ICLR 2025
        (arXiv:2406.16793).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    b1: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    b2: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.999)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    block_fn: BlockFn | None = eqx.field(static=True, default=None, kw_only=True)
    nu_dtype: DTypeLike | None = eqx.field(static=True, default=None, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("adam_mini", self, **_ADAM_MINI_RANGES)

    def as_chain(self) -> Chain:
        scaling = ScaleByAdamMini(
            self.b1,
            self.b2,
            self.eps,
            self.mu_dtype,
            block_fn=self.block_fn,
            nu_dtype=self.nu_dtype,
        )
        return Chain(
            (
                scaling,
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_adam_mini = ScaleByAdamMini
adam_mini = AdamMini

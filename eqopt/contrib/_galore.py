"""GaLore: an optimiser run on low-rank projections of the gradients of matrices."""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax import lax
from jaxtyping import Array, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation
from .._combine import Chain
from .._custom_types import Count, OptState, Params, Updates
from .._hyperparams import as_hyperparameter, as_scalar
from .._masking import freeze_mask, FrozenMask
from .._numerics import safe_increment
from .._transforms.adaptive import ScaleByAdam
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import is_none, structure_mismatch, to_dtype, upcast


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a weight form the rows and the columns of the matrix GaLore
    projects.

    A weight stored with more than two axes (an attention projection of shape
    `(embed, heads, head_dim)`) is a linear map all the same: with `reduction_axis=0`
    and `output_axis=(1, 2)` it is projected as the `(embed, heads * head_dim)`
    matrix, and its update is reshaped back. Every axis must be in exactly one of the
    two. Negative axes count from the end.

    Optax: `optax.contrib.GaLoreDimensionNumbers` (the same `NamedTuple`).

    **Arguments:**

    - `reduction_axis`: the axis or axes of the rows (the input dimension).
    - `output_axis`: the axis or axes of the columns (the output dimension).
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


@no_type_check
def _is_dims_leaf(x: Any) -> bool:
    return x is None or isinstance(x, GaLoreDimensionNumbers)


@no_type_check
def _hashable_dims(dims: GaLoreDimensionNumbers) -> GaLoreDimensionNumbers:
    """Axes given as lists become tuples, so that the numbers can be a static field."""
    return GaLoreDimensionNumbers(
        *(a if isinstance(a, int) else tuple(a) for a in dims)
    )


@dataclasses.dataclass(frozen=True)
class FrozenDimensionNumbers:
    """A hashable pytree of `GaLoreDimensionNumbers` (and `None`)."""

    treedef: Any
    leaves: tuple[GaLoreDimensionNumbers | None, ...]

    @property
    def tree(self) -> Any:
        """The dimension numbers as the pytree they were given as."""
        return jtu.tree_unflatten(self.treedef, self.leaves)


@no_type_check
def _freeze_dimension_numbers(dims: Any) -> Any:
    """`weight_dimension_numbers` as a hashable static value: `None`, one
    `GaLoreDimensionNumbers`, a function of the parameters, or a frozen pytree."""
    if dims is None or isinstance(dims, FrozenDimensionNumbers):
        return dims
    if isinstance(dims, GaLoreDimensionNumbers):
        return _hashable_dims(dims)
    if callable(dims):
        return dims
    leaves, treedef = jtu.tree_flatten(dims, is_leaf=_is_dims_leaf)
    for leaf in leaves:
        if not _is_dims_leaf(leaf):
            raise TypeError(
                "`galore(weight_dimension_numbers=...)` must be `None`, a "
                "`GaLoreDimensionNumbers`, a pytree of them (with `None` for "
                "parameters not to project) or a function of the parameters returning "
                f"one; found a leaf {leaf!r}."
            )
    frozen = tuple(None if x is None else _hashable_dims(x) for x in leaves)
    return FrozenDimensionNumbers(treedef, frozen)


@dataclasses.dataclass(frozen=True)
class _MatrixView:
    """How a weight is seen as an `(m, n)` matrix, and back."""

    permutation: tuple[int, ...]
    permuted_shape: tuple[int, ...]
    m: int
    n: int

    @property
    def left(self) -> bool:
        """Whether to project the rows (an `(m, r)` projector), as for `m >= n`."""
        return self.m >= self.n

    def to_matrix(self, x: Array) -> Array:
        return x.transpose(self.permutation).reshape(self.m, self.n)

    def from_matrix(self, y: Array) -> Array:
        inverse = sorted(range(len(self.permutation)), key=self.permutation.__getitem__)
        return y.reshape(self.permuted_shape).transpose(inverse)


@no_type_check
def _matrix_view(shape: tuple[int, ...], dims: GaLoreDimensionNumbers) -> _MatrixView:
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"GaLore projects arrays of rank 2 or more; got a parameter of shape {shape} "
            f"with `weight_dimension_numbers` {dims}."
        )

    def axes(a):
        return tuple(x % ndim for x in ((a,) if isinstance(a, int) else a))

    rows, columns = axes(dims.reduction_axis), axes(dims.output_axis)
    if set(rows) & set(columns):
        raise ValueError(
            f"GaLore's reduction axes {rows} and output axes {columns} must be "
            f"disjoint; got `weight_dimension_numbers` {dims} for shape {shape}."
        )
    if len(set(rows) | set(columns)) != ndim:
        raise ValueError(
            f"GaLore's `weight_dimension_numbers` must name every axis; got reduction "
            f"axes {rows} and output axes {columns} for shape {shape}."
        )
    permutation = rows + columns
    return _MatrixView(
        permutation=permutation,
        permuted_shape=tuple(shape[a] for a in permutation),
        m=math.prod(shape[a] for a in rows),
        n=math.prod(shape[a] for a in columns),
    )


@no_type_check
def _default_base(base: GradientTransformation | None) -> GradientTransformation:
    """`base_optimizer=None` is `scale_by_adam()`, as in Optax."""
    return ScaleByAdam() if base is None else base


class GaLoreState(eqx.Module):
    """State of `ScaleByGaLore`: the step count, the state of the base optimiser (run
    on the low-rank gradients) and the projector of each parameter.

    A projected parameter's projector is `(m, r)` (rows projected, $m \\ge n$) or
    `(n, r)`; a parameter that is not projected has a `(0, 0)` one, as in Optax.
    """

    count: Count
    base_optimizer_state: OptState
    projector: Updates


class ScaleByGaLore(GradientTransformation):
    r"""Run a base optimiser on low-rank projections of the gradients of matrices
    (GaLore), and project its updates back.

    For a weight seen as an $m \times n$ matrix $G_t$ with $m \ge n$ (else the same on
    the right), every `update_proj_gap` steps the projector $P_t \in \mathbb{R}^{m
    \times r}$ is refreshed with the first $r$ left singular vectors of $G_t$
    ($r = \min(\text{rank}, m, n)$); in between it is kept. Then

    $$
    R_t = P_t^\top G_t, \qquad (N_t, S_t) = \text{base}(R_t, S_{t-1}), \qquad
    u_t = \alpha\, P_t N_t,
    $$

    where $\alpha$ is `scale` and the base optimiser's state $S$ has the shape of
    $R_t$, $r \times n$: that is the memory saved. Parameters that are not projected
    (by default those that are not matrices) go through the base optimiser unchanged,
    without the factor $\alpha$ (as Optax).

    The base optimiser gets no parameters (`params=None`): it must be a gradient
    scaling such as [`eqopt.ScaleByAdam`][], not one with weight decay; use
    [`eqopt.contrib.GaLore`][]'s `weight_decay` instead.

    The singular value decomposition is computed in float32 (or wider) and the
    projection and back-projection in that precision too; the projector is stored in
    the parameter's dtype. (Optax multiplies in the parameter's dtype, and decomposes
    float64 gradients in float32.) Derivatives (hypergradients) treat the projector as
    a constant: the SVD's derivative is undefined where singular values repeat or
    vanish, and the subspace is a choice of the method, not a smooth function of the
    hyperparameters.

    Optax: `optax.contrib.scale_by_galore`.

    **Arguments:**

    - `rank`: the target rank $r$ of the projections (clipped to $\min(m, n)$).
    - `update_proj_gap`: the number of steps between refreshes of the projectors (the
        first step refreshes).
    - `scale`: $\alpha$, the factor on the projected parameters' updates.
    - `base_optimizer`: the transformation run on the low-rank gradients; `None` is
        `scale_by_adam()`. Its hyperparameters are leaves of this Module.
    - `weight_dimension_numbers`: which parameters are projected, as matrices of which
        axes: `None` (every 2-d parameter, as it is), one
        [`eqopt.contrib.GaLoreDimensionNumbers`][] (every parameter of rank 2 or
        more), a pytree of them with the structure of the parameters (`None` for a
        parameter not to project), or a function of the parameters returning one.

    ??? cite "References"

        Zhao et al., *GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
        Projection*, ICML 2024.
    """

    rank: int = eqx.field(static=True, default=128)
    update_proj_gap: int = eqx.field(static=True, default=200)
    scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    base_optimizer: GradientTransformation | None = eqx.field(
        converter=_default_base, default=None
    )
    weight_dimension_numbers: Any = eqx.field(
        static=True, converter=_freeze_dimension_numbers, default=None
    )

    def __check_init__(self):
        _check_galore("scale_by_galore", self.rank, self.update_proj_gap)

    def _views(self, tree: Any) -> tuple[list, list, Any]:
        """The leaves of `tree` (`None` kept), a `_MatrixView` or `None` for each, and
        the tree structure."""
        flat, treedef = jtu.tree_flatten(tree, is_leaf=is_none)
        dims = self.weight_dimension_numbers
        if dims is None:
            per_leaf = [
                GaLoreDimensionNumbers() if _ndim(x) == 2 else None for x in flat
            ]
        elif isinstance(dims, GaLoreDimensionNumbers):
            per_leaf = [dims if _ndim(x) >= 2 else None for x in flat]
        else:
            dims_tree = dims.tree if isinstance(dims, FrozenDimensionNumbers) else None
            if dims_tree is None:  # a function of the parameters
                dims_tree = dims(tree)
            try:
                per_leaf = treedef.flatten_up_to(dims_tree)
            except (ValueError, TypeError) as e:
                raise structure_mismatch(
                    ("params", "weight_dimension_numbers"), (tree, dims_tree)
                ) from e
        views = [
            _matrix_view(x.shape, d) if d is not None and _ndim(x) is not None else None
            for x, d in zip(flat, per_leaf)
        ]
        return flat, views, treedef

    def init(self, params: Params) -> GaLoreState:
        flat, views, treedef = self._views(params)
        projectors, proxies = [], []
        for p, view in zip(flat, views):
            if not eqx.is_inexact_array(p):
                projectors.append(None)
                proxies.append(None)
            elif view is None:
                projectors.append(jnp.zeros((0, 0), p.dtype))
                proxies.append(jnp.zeros(p.shape, p.dtype))
            else:
                r = min(self.rank, view.m, view.n)
                shape = (view.m, r) if view.left else (view.n, r)
                projectors.append(jnp.zeros(shape, p.dtype))
                proxy = (r, view.n) if view.left else (view.m, r)
                proxies.append(jnp.zeros(proxy, p.dtype))
        return GaLoreState(
            count=jnp.zeros([], jnp.int32),
            base_optimizer_state=self.base_optimizer.init(treedef.unflatten(proxies)),
            projector=treedef.unflatten(projectors),
        )

    def update(
        self,
        updates: Updates,
        state: GaLoreState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, GaLoreState]:
        flat, views, treedef = self._views(updates)
        try:
            old_projectors = treedef.flatten_up_to(state.projector)
        except (ValueError, TypeError) as e:
            raise structure_mismatch(
                ("updates", "state.projector"), (updates, state.projector)
            ) from e
        refresh = state.count % self.update_proj_gap == 0
        low_rank, projectors, kept = [], [], []
        for g, view, old in zip(flat, views, old_projectors):
            if view is None or not eqx.is_inexact_array(g):
                low_rank.append(g)
                projectors.append(old)
                kept.append(None)
                continue
            # Under explicit sharding, the SVD and the products run on the whole
            # (replicated) matrix; the update is laid out like the gradient again.
            x = _replicated(upcast(g))
            matrix = view.to_matrix(x)
            r = min(self.rank, view.m, view.n)
            expected = (view.m, r) if view.left else (view.n, r)
            if old.shape != expected:
                raise ValueError(
                    f"`state.projector` has shape {old.shape} for a gradient of shape "
                    f"{g.shape}, where {expected} was expected: pass the state `init` "
                    "made for these parameters."
                )
            projector = _refreshed(refresh, matrix, old, r, view.left)
            low_rank.append(projector.T @ matrix if view.left else matrix @ projector)
            projectors.append(to_dtype(projector, old.dtype))
            kept.append(projector)
        low_rank_updates, base_state = self.base_optimizer.update(
            treedef.unflatten(low_rank), state.base_optimizer_state, None
        )
        scale = self.scale
        out = []
        for g, view, projector, n in zip(
            flat, views, kept, treedef.flatten_up_to(low_rank_updates)
        ):
            if projector is None:
                out.append(n)
                continue
            n = to_dtype(n, projector.dtype)
            full = projector @ n if view.left else n @ projector.T
            u = scale.astype(full.dtype) * view.from_matrix(full)
            out.append(_laid_out_like(to_dtype(u, g.dtype), g))
        new_state = GaLoreState(
            count=safe_increment(state.count),
            base_optimizer_state=base_state,
            projector=treedef.unflatten(projectors),
        )
        return treedef.unflatten(out), new_state


@no_type_check
def _ndim(x: Any) -> int | None:
    """The rank of an array leaf, or `None` for anything else."""
    return (
        x.ndim
        if eqx.is_inexact_array(x) or isinstance(x, jax.ShapeDtypeStruct)
        else None
    )


@no_type_check
def _spec(x: Any) -> Any:
    """The sharding spec in `x`'s type (explicit sharding), or `None` if it has none."""
    spec = getattr(jax.typeof(x).sharding, "spec", ())
    return spec if any(s is not None for s in spec) else None


@no_type_check
def _replicated(x: Array) -> Array:
    """`x`, resharded to be replicated if its type carries an explicit sharding."""
    if _spec(x) is None:
        return x
    return jax.sharding.reshard(x, jax.typeof(x).sharding.update(spec=jax.P()))


@no_type_check
def _laid_out_like(x: Array, like: Array) -> Array:
    """`x`, resharded to `like`'s explicit sharding, if it has one."""
    if _spec(like) is None:
        return x
    return jax.sharding.reshard(x, jax.typeof(like).sharding)


@no_type_check
def _refreshed(refresh: Array, matrix: Array, old: Array, r: int, left: bool) -> Array:
    """The projector: the leading `r` singular vectors of `matrix` when `refresh`, else
    the stored one; in the dtype of `matrix`."""

    @no_type_check
    def new(m):
        u, _, vh = jnp.linalg.svd(m, full_matrices=False)
        return u[:, :r] if left else vh[:r, :].T

    @no_type_check
    def keep(m):
        return to_dtype(old, m.dtype)

    return lax.cond(refresh, new, keep, lax.stop_gradient(matrix))


@no_type_check
def _check_galore(owner: str, rank: Any, update_proj_gap: Any) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise TypeError(f"`{owner}(rank=...)` must be an int; got {type(rank)}.")
    if rank <= 0:
        raise ValueError(f"`{owner}(rank=...)` must be positive; got rank={rank}.")
    if not isinstance(update_proj_gap, int) or update_proj_gap <= 0:
        raise ValueError(
            f"`{owner}(update_proj_gap=...)` must be a positive int; got "
            f"update_proj_gap={update_proj_gap!r}."
        )


class GaLore(AbstractOptimiser):
    r"""GaLore: a base optimiser (Adam by default) on low-rank projections of the
    gradients of matrices, with decoupled weight decay in the full space.

    $u_t = -\eta_t \left(\alpha P_t\, \text{base}(P_t^\top G_t) + \lambda\,
    \theta_t\right)$ for a projected matrix (see [`eqopt.contrib.ScaleByGaLore`][]).
    If the base optimiser includes a learning rate, set `learning_rate=1.0` here.

    Optax: `optax.contrib.galore`. Built as `chain(scale_by_galore(rank,
    update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `rank`, `update_proj_gap`, `scale`, `base_optimizer`,
        `weight_dimension_numbers`: as in [`eqopt.contrib.ScaleByGaLore`][].
    - `weight_decay`: $\lambda$, a float, an array or a schedule.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Zhao et al., *GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
        Projection*, ICML 2024.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    rank: int = eqx.field(static=True, default=128)
    update_proj_gap: int = eqx.field(static=True, default=200)
    scale: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    base_optimizer: GradientTransformation | None = eqx.field(
        converter=_default_base, default=None
    )
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    weight_dimension_numbers: Any = eqx.field(
        static=True, converter=_freeze_dimension_numbers, default=None
    )

    def __check_init__(self):
        _check_galore("galore", self.rank, self.update_proj_gap)

    def as_chain(self) -> Chain:
        return Chain(
            (
                ScaleByGaLore(
                    self.rank,
                    self.update_proj_gap,
                    self.scale,
                    self.base_optimizer,
                    self.weight_dimension_numbers,
                ),
                AddDecayedWeights(self.weight_decay, self.mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )


scale_by_galore = ScaleByGaLore
galore = GaLore

r"""Muon: momentum orthogonalised by Newton–Schulz iterations.

The orthogonalisation is written with `einsum` over the parameter's own axes (batch,
reduction and output axes kept as separate axes: a transpose, never a reshape), so the
result has the parameter's layout. Under a mesh with explicit axes (`jax.make_mesh`'s
default), a sharded matrix is gathered along its matrix axes (batch axes stay sharded),
orthogonalised on each device, and resharded back to the parameter's own sharding:
the step's outputs keep the parameters' shardings, where Optax's `x @ x.T` on sharded
contracting axes is an error (optax#1660).
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jaxtyping import Array, DTypeLike, Float

from .._alias.adam import AdamW
from .._alias.base import AbstractOptimiser, LearningRate
from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE, UNIT
from .._combine import Chain
from .._custom_types import Count, Moments, OptState, Params, Updates
from .._hyperparams import (
    as_hyperparameter,
    as_optional_hyperparameter,
    as_optional_scalar,
    as_scalar,
    warn_python_number_hyperparameters,
)
from .._masking import freeze_mask, FrozenMask, is_mask_function
from .._numerics import abs_sq, bias_correction, safe_increment, safe_sqrt
from .._partition import Partition, PartitionState
from .._transforms.adaptive import debiased_mean, decay_weights, ema
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import cast, is_none, map_leaves, to_dtype, upcast, zeros_like_params


_DEFAULT_NS_COEFFS = (3.4445, -4.7750, 2.0315)
_DION_NS_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
_NS_PRESETS = {"standard": _DEFAULT_NS_COEFFS, "dion": _DION_NS_COEFFS}
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
# The floor of the AOL and Schatten rescalings (Optax's default there, not `eps`).
_PRECONDITIONING_EPS = 1e-8


class MuonDimensionNumbers(NamedTuple):
    r"""Which axes of a weight are the matrix that Muon orthogonalises.

    A weight $W$ is used as $y = x W$: `reduction_axis` are the axes summed over (the
    matrix's rows), `output_axis` the axes of the output (its columns). Each may be one
    axis or several (merged into one); negative axes count from the end. Every other
    axis is a batch axis: each of its entries is a separate matrix, orthogonalised on
    its own. The default, `(0, 1)`, is a plain 2D matrix.

    Optax: `optax.contrib.MuonDimensionNumbers` (the same `NamedTuple`).

    **Arguments:**

    - `reduction_axis`: an axis or a sequence of axes.
    - `output_axis`: an axis or a sequence of axes.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


@no_type_check
def _is_dims_leaf(x: Any) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


@no_type_check
def _as_axes(axis: Any) -> tuple[int, ...]:
    return (int(axis),) if isinstance(axis, int | np.integer) else tuple(map(int, axis))


@no_type_check
def _hashable_dims(d: Any) -> Any:
    if d is None:
        return None
    return MuonDimensionNumbers(_as_axes(d.reduction_axis), _as_axes(d.output_axis))


@dataclasses.dataclass(frozen=True)
class FrozenDimensionNumbers:
    """A hashable pytree of `MuonDimensionNumbers` (or `None`), as a static field."""

    treedef: Any
    leaves: tuple[Any, ...]

    @property
    def tree(self) -> Any:
        """The dimension numbers as the pytree they were given as."""
        return jtu.tree_unflatten(self.treedef, self.leaves)


@no_type_check
def freeze_dimension_numbers(spec: Any) -> Any:
    """A user's dimension numbers (a tree, a function or `None`) as a static value."""
    if spec is None or isinstance(spec, FrozenDimensionNumbers):
        return spec
    if not isinstance(spec, MuonDimensionNumbers) and is_mask_function(spec):
        return spec
    leaves, treedef = jtu.tree_flatten(spec, is_leaf=_is_dims_leaf)
    for leaf in leaves:
        if leaf is not None and not isinstance(leaf, MuonDimensionNumbers):
            raise ValueError(
                "Muon's weight dimension numbers must be a pytree of "
                "`MuonDimensionNumbers` (or `None`), or a function returning one; got "
                f"a leaf {leaf!r}."
            )
    return FrozenDimensionNumbers(treedef, tuple(map(_hashable_dims, leaves)))


@dataclasses.dataclass(frozen=True)
class _Axes:
    """The normalised axes of one weight: batch, reduction, output (a leaf, static)."""

    batch: tuple[int, ...]
    reduction: tuple[int, ...]
    output: tuple[int, ...]
    fan_in: int
    fan_out: int


@no_type_check
def _axes(shape: tuple[int, ...], d: Any, where: str, owner: str) -> _Axes:
    """Check the dimension numbers `d` (`None`: a 2D matrix) against a weight's shape."""
    ndim = len(shape)
    if d is None:
        if ndim != 2:
            raise ValueError(
                f"`{owner}` orthogonalises matrices: the leaf at path `{where}` has "
                f"shape {shape}. Give its `MuonDimensionNumbers` (in "
                "`weight_dimension_numbers`) to say which axes form the matrix, or "
                "leave it to Adam (`muon`'s `muon_weight_dimension_numbers=None` there)."
            )
        d = MuonDimensionNumbers()
    if ndim < 2:
        raise ValueError(
            f"`{owner}`: Muon's parameters must have rank >= 2; the leaf at path "
            f"`{where}` has shape {shape} (dimension numbers {d})."
        )
    reduction = tuple(a % ndim for a in _as_axes(d.reduction_axis))
    output = tuple(a % ndim for a in _as_axes(d.output_axis))
    if set(reduction) & set(output) or not reduction or not output:
        raise ValueError(
            f"`{owner}`: the reduction axes {reduction} and output axes {output} of the "
            f"leaf at path `{where}` (shape {shape}) must be non-empty and disjoint."
        )
    batch = tuple(a for a in range(ndim) if a not in reduction + output)
    fan_in = math.prod(shape[a] for a in reduction)
    fan_out = math.prod(shape[a] for a in output)
    return _Axes(
        batch, tuple(sorted(reduction)), tuple(sorted(output)), fan_in, fan_out
    )


@no_type_check
def resolve_axes(spec: Any, updates: Any, owner: str) -> Any:
    """An `_Axes` (or `None`, for a non-array leaf) per leaf of `updates`."""
    tree = spec(updates) if callable(spec) else (None if spec is None else spec.tree)
    dims_def = jtu.tree_structure(tree, is_leaf=_is_dims_leaf)
    try:
        subtrees = dims_def.flatten_up_to(updates)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"`{owner}`: the weight dimension numbers do not fit the updates: they must "
            "be a pytree of `MuonDimensionNumbers` (or `None`) with the structure of "
            f"the parameters, or a prefix of it; got {tree!r}."
        ) from e
    per_leaf = []
    for d, sub in zip(jtu.tree_leaves(tree, is_leaf=_is_dims_leaf), subtrees):
        per_leaf += [d] * len(jtu.tree_leaves(sub, is_leaf=is_none))
    paths_leaves, treedef = jtu.tree_flatten_with_path(updates, is_leaf=is_none)
    out = []
    for (path, g), d in zip(paths_leaves, per_leaf):
        if eqx.is_inexact_array(g):
            out.append(_axes(g.shape, d, jtu.keystr(path) or "<root>", owner))
        else:
            out.append(None)
    return jtu.tree_unflatten(treedef, out)


@no_type_check
def _letters(start: str, n: int) -> str:
    return "".join(chr(ord(start) + i) for i in range(n))


@no_type_check
def _local(x: Array, axes: _Axes) -> tuple[Array, Any]:
    """`x` gathered along its matrix axes (batch axes stay sharded) under a mesh with
    explicit axes, and the sharding to return to; `(x, None)` otherwise."""
    sharding = jax.typeof(x).sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or AxisType.Explicit not in tuple(mesh.axis_types):
        return x, None
    spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
    local = tuple(s if a in axes.batch else None for a, s in enumerate(spec))
    if local == spec:
        return x, None
    return jax.sharding.reshard(x, NamedSharding(mesh, PartitionSpec(*local))), sharding


@no_type_check
def orthogonalize(
    x: Array,
    axes: _Axes,
    coeffs: Array,
    ns_steps: int,
    preconditioning: str,
    eps: Array,
    adaptive: bool = False,
) -> Array:
    r"""Newton–Schulz orthogonalisation of each matrix of `x`, in `x`'s layout.

    With $X$ the matrix (transposed so that it has no more rows than columns),
    $X \leftarrow a X + (b A + c A^2) X$ with $A = X X^\mathsf{H}$, for each row
    $(a, b, c)$ of the coefficients. With `adaptive`, the result is scaled by its
    inner product with the input, $\langle x, X_K \rangle$ (over the whole leaf).
    """
    x, sharding = _local(x, axes)
    # Rows: the shorter side (Optax transposes a matrix with more rows than columns).
    # The axes are put in the order (batch, rows, columns) for the iteration (a
    # transpose, no reshape: a sharded axis stays one axis), so that its products
    # are plain ones (XLA's CPU backend is slower on transposed operands).
    if axes.fan_in > axes.fan_out:
        rows, cols = axes.output, axes.reduction
    else:
        rows, cols = axes.reduction, axes.output
    order = axes.batch + rows + cols
    if order != tuple(range(x.ndim)):
        x = jnp.transpose(x, order)
    n_batch = len(axes.batch)
    batch = tuple(range(n_batch))
    rows = tuple(range(n_batch, n_batch + len(rows)))
    matrix_axes = tuple(range(n_batch, x.ndim))
    x0 = x
    xs = _letters("a", x.ndim)
    b = "".join(xs[i] for i in batch)
    r = "".join(xs[i] for i in rows)
    big_r = r.upper()
    t = "".join(chr(ord(c) + 13) for c in r)  # a third copy of the row letters
    xs_r = "".join(c.upper() if c in r else c for c in xs)
    brr = f"{b}{r}{big_r}"

    @no_type_check
    def gram(x, conj=True):
        return jnp.einsum(f"{xs},{xs_r}->{brr}", x, x.conj() if conj else x)

    @no_type_check
    def step(x, a, c):
        aa = jnp.einsum(f"{b}{r}{t},{b}{t}{big_r}->{brr}", a, a)
        poly = c[1] * a + c[2] * aa
        return c[0] * x + jnp.einsum(f"{brr},{xs_r}->{xs}", poly, x)

    if preconditioning == "frobenius":
        norm = safe_sqrt(jnp.sum(abs_sq(x), axis=matrix_axes, keepdims=True))
        x = x / (norm + eps)
    elif preconditioning == "spectral":
        x = x / (_spectral_norm(x, batch, rows, matrix_axes) + eps)
    coeffs = coeffs.astype(x.dtype)
    # One row of coefficients per step. The steps run in a `lax.scan`, not unrolled:
    # XLA's CPU backend runs the unrolled matrix products about 3x slower (Optax
    # unrolls); on a GPU the two are alike.
    schedule = jnp.broadcast_to(coeffs, (ns_steps, 3)) if coeffs.ndim == 1 else coeffs
    if preconditioning in ("aol", "schatten") and len(schedule):
        # The first step rescales with its own Gram matrix (Turbo-Muon's AOL, or
        # the Schatten-4 norm, whose Gram matrix is not conjugated).
        a = gram(x, conj=preconditioning != "schatten")
        if preconditioning == "aol":
            row_sums = jnp.sum(jnp.abs(a), axis=tuple(range(-len(rows), 0)))
            s = jax.lax.rsqrt(jnp.clip(row_sums, min=_PRECONDITIONING_EPS))
            x = jnp.einsum(f"{b}{r},{xs}->{xs}", s, x)
            a = jnp.einsum(f"{b}{r},{brr},{b}{big_r}->{brr}", s, a, s)
        else:
            size = len(rows)
            frob = safe_sqrt(jnp.sum(abs_sq(a), axis=tuple(range(-2 * size, 0))))
            s = jax.lax.rsqrt(jnp.clip(frob, min=_PRECONDITIONING_EPS))
            x = jnp.einsum(f"{b},{xs}->{xs}", s, x)
            a = jnp.einsum(f"{b},{brr}->{brr}", s * s, a)
        x = step(x, a, schedule[0])
        schedule = schedule[1:]

    @no_type_check
    def body(x, c):
        return step(x, gram(x), c), None

    x, _ = jax.lax.scan(body, x, schedule)
    if adaptive:
        # The sum of all entries as two products with vectors of ones, not a `sum`:
        # XLA's CPU backend fuses a reduction with every matrix product it depends on
        # (the whole iteration) into one fusion that runs 2-5x slower; products stay
        # separate. (Taken on the gathered matrices: no contraction of sharded axes.)
        c = "".join(xs[i] for i in matrix_axes if xs[i] not in r)
        product = x0.conj() * x
        ones_c = jnp.ones(tuple(x.shape[xs.index(k)] for k in c) + (1,), x.dtype)
        ones_r = jnp.ones((1,) + tuple(x.shape[xs.index(k)] for k in r), x.dtype)
        v = jnp.einsum(f"{xs},{c}z->{b}{r}z", product, ones_c)
        w = jnp.einsum(f"y{r},{b}{r}z->{b}yz", ones_r, v)
        total = w.reshape(()) if not b else jnp.sum(w)
        x = total * x
    if order != tuple(range(x.ndim)):
        x = jnp.transpose(x, tuple(int(i) for i in np.argsort(order)))
    if sharding is not None:
        x = jax.sharding.reshard(x, sharding)
    return x


@no_type_check
def _spectral_norm(x, batch, rows, matrix_axes):
    """The largest singular value of each matrix of `x` (axes in the order batch, rows,
    columns), shaped to divide `x`."""
    batch_shape = x.shape[: len(batch)]
    n_rows = math.prod(x.shape[a] for a in rows)
    matrices = x.reshape((math.prod(batch_shape), n_rows, -1))
    norms = jnp.linalg.norm(matrices, ord=2, axis=(-2, -1)).reshape(batch_shape)
    return jnp.expand_dims(norms, matrix_axes)


@no_type_check
def as_ns_coeffs(x: Any) -> Float[Array, "..."]:
    """Newton–Schulz coefficients (a preset name, a triple, or one triple per step) as a
    float array leaf."""
    if isinstance(x, str):
        if x not in _NS_PRESETS:
            raise ValueError(
                f"`muon(ns_coeffs=...)`: unknown preset {x!r}; the presets are "
                f"{list(_NS_PRESETS)}."
            )
        x = _NS_PRESETS[x]
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


@no_type_check
def _check_ns(owner: str, opt: Any) -> None:
    shape = opt.ns_coeffs.shape
    if len(shape) not in (1, 2) or shape[-1] != 3:
        raise ValueError(
            f"`{owner}(ns_coeffs=...)` must have shape (3,) or (n, 3); got shape "
            f"{shape}."
        )
    if isinstance(opt.ns_steps, bool) or not isinstance(opt.ns_steps, int | np.integer):
        raise ValueError(
            f"`{owner}(ns_steps=...)` must be a Python int (it decides the number of "
            f"iterations); got ns_steps={opt.ns_steps!r}."
        )
    if opt.ns_steps < 0:
        raise ValueError(f"`{owner}(ns_steps=...)` must be >= 0; got {opt.ns_steps}.")
    if len(shape) == 2 and shape[0] > opt.ns_steps:
        raise ValueError(
            f"`{owner}`: `ns_coeffs` has {shape[0]} rows (one per step) but "
            f"ns_steps={opt.ns_steps}: not enough steps for the coefficients."
        )
    if opt.preconditioning not in _PRECONDITIONINGS:
        raise ValueError(
            f"`{owner}(preconditioning=...)` must be one of {_PRECONDITIONINGS}; got "
            f"preconditioning={opt.preconditioning!r}."
        )


class MuonState(eqx.Module):
    """State of [`eqopt.contrib.scale_by_muon`][]: the step count, the momentum, and
    the Newton–Schulz coefficients at `init` (kept for Optax's field names; `update`
    uses the transformation's own `ns_coeffs` leaf)."""

    count: Count
    mu: Moments
    ns_coeffs: Float[Array, "..."]


class ScaleByMuon(GradientTransformation):
    r"""Rescale updates by Muon: the orthogonalised (Nesterov) momentum.

    $$
    \begin{aligned}
    m_t &= \beta m_{t-1} + (1 - \beta)\, g_t, \\
    \hat m_t &= \frac{\beta\, m_t}{1 - \beta^{t+1}} + \frac{(1 - \beta)\, g_t}
        {1 - \beta^t} \quad (\text{Nesterov; else } m_t / (1 - \beta^t)), \\
    X_0 &= \hat m_t / (\|\hat m_t\|_F + \varepsilon), \qquad
    X_{k+1} = a X_k + (b A_k + c A_k^2) X_k, \quad A_k = X_k X_k^\mathsf{H}, \\
    u_t &= X_K \quad (\text{adaptive: } \langle \hat m_t, X_K \rangle X_K).
    \end{aligned}
    $$

    Each matrix is taken with no more rows than columns (transposed otherwise), as
    given by its [`eqopt.contrib.MuonDimensionNumbers`][] (batch axes are separate
    matrices). The iteration is written over the weight's own axes, so the update has
    the parameter's layout; under a mesh with explicit axes it keeps the parameter's
    sharding (optax#1660: Optax's raises there). It runs in float32 (or wider) for
    bfloat16 parameters.

    Optax: `optax.contrib.scale_by_muon`. `ns_coeffs` is a float array leaf (vmapped,
    differentiated); `ns_steps` is static. `init` reads no parameter values.

    **Arguments:**

    - `ns_coeffs`: $(a, b, c)$, or one triple per step (shape `(n, 3)`, `n <=
        ns_steps`; then `n` steps are taken).
    - `ns_steps`: the number of iterations $K$ for a single triple.
    - `beta`: $\beta$, the momentum decay, in $[0, 1)$.
    - `eps`: $\varepsilon \ge 0$.
    - `mu_dtype`: dtype of the momentum; `None` uses each parameter's.
    - `nesterov`: Nesterov momentum (default `True`).
    - `adaptive`: scale by the dual norm $\langle \hat m_t, X_K \rangle$.
    - `preconditioning`: `"frobenius"` (divide by the Frobenius norm), `"spectral"`
        (by the largest singular value), `"aol"` (Turbo-Muon's row scaling in the first
        step) or `"schatten"` (Schatten-4 scaling in the first step).
    - `weight_dimension_numbers`: a pytree of `MuonDimensionNumbers` (or a prefix of
        the parameters' structure, or a function of the updates returning one); `None`
        means every leaf is a 2D matrix.

    ??? cite "References"

        Jordan, *modded-nanogpt: Speedrunning the NanoGPT baseline*, 2024.
        Bernstein and Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024.
        Liu et al., *Muon is Scalable for LLM Training*, 2025.
        Boissin et al., *Turbo-Muon: Accelerating Orthogonality-Based Optimization
        with Pre-Conditioning*, 2025.
        Ahn et al., *Dion: Distributed Orthonormalized Updates*, 2025.
        Grishina et al., *Accelerating Newton-Schulz Iteration for Orthogonalization
        via Chebyshev-type Polynomials*, 2025.
    """

    ns_coeffs: Float[Array, "..."] = eqx.field(
        converter=as_ns_coeffs, default=_DEFAULT_NS_COEFFS
    )
    ns_steps: int = eqx.field(static=True, default=5)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=True, kw_only=True)
    adaptive: bool = eqx.field(static=True, default=False, kw_only=True)
    preconditioning: str = eqx.field(static=True, default="frobenius", kw_only=True)
    weight_dimension_numbers: Any = eqx.field(
        static=True, default=None, kw_only=True, converter=freeze_dimension_numbers
    )

    def __check_init__(self):
        _check_ns("scale_by_muon", self)
        check_hyperparameters("scale_by_muon", self, beta=UNIT, eps=NONNEGATIVE)

    def init(self, params: Params) -> MuonState:
        return MuonState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_params(params, self.mu_dtype),
            ns_coeffs=jnp.array(self.ns_coeffs, copy=True),
        )

    def update(
        self,
        updates: Updates,
        state: MuonState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MuonState]:
        axes = resolve_axes(self.weight_dimension_numbers, updates, "scale_by_muon")
        count = safe_increment(state.count)
        per_dtype = {}

        @no_type_check
        def scalars(dtype):
            if dtype not in per_dtype:
                beta, eps, coeffs = cast(dtype, self.beta, self.eps, self.ns_coeffs)
                c1 = bias_correction(beta, count)
                next_c1 = (
                    bias_correction(beta, safe_increment(count))
                    if self.nesterov
                    else None
                )
                per_dtype[dtype] = (decay_weights(beta), c1, next_c1, eps, coeffs)
            return per_dtype[dtype]

        @no_type_check
        def rule(g, mu, ax):
            x = upcast(g)
            w, c1, next_c1, eps, coeffs = scalars(x.dtype)
            mu_new = ema(w, mu, x)
            mu_hat = debiased_mean(w, mu_new, x, c1, next_c1)
            u = orthogonalize(
                mu_hat,
                ax,
                coeffs,
                self.ns_steps,
                self.preconditioning,
                eps,
                self.adaptive,
            )
            return to_dtype(u, g.dtype), to_dtype(mu_new, mu.dtype), ax

        names = ("updates", "state.mu", "weight_dimension_numbers")
        updates, mu, _ = map_leaves(rule, updates, state.mu, axes, names=names)
        return updates, MuonState(count=count, mu=mu, ns_coeffs=state.ns_coeffs)


class ScaleByShape(GradientTransformation):
    r"""Scale each matrix's update by a factor of its shape (part of
    [`eqopt.contrib.muon`][]).

    $u \leftarrow \sqrt{\max(1, n_\text{out} / n_\text{in})}\, u$ (width transfer), or
    with `consistent_rms` $= \rho$, $u \leftarrow \rho \sqrt{\max(n_\text{in},
    n_\text{out})}\, u$ (an update RMS like AdamW's), where $n_\text{in}$,
    $n_\text{out}$ are the sizes of the reduction and output axes.

    Optax: `optax.contrib._muon.scale_by_shape` (not exported by Optax).

    **Arguments:**

    - `weight_dimension_numbers`: as in [`eqopt.contrib.scale_by_muon`][].
    - `consistent_rms`: $\rho$, or `None` for the width-transfer scaling.
    """

    weight_dimension_numbers: Any = eqx.field(
        static=True, default=None, converter=freeze_dimension_numbers
    )
    consistent_rms: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        axes = resolve_axes(self.weight_dimension_numbers, updates, "muon")

        @no_type_check
        def rule(g, ax):
            x = upcast(g)
            if self.consistent_rms is None:
                scale = jnp.sqrt(jnp.asarray(max(1.0, ax.fan_out / ax.fan_in), x.dtype))
            else:
                (rms,) = cast(x.dtype, self.consistent_rms)
                size = jnp.asarray(max(ax.fan_in, ax.fan_out), x.dtype)
                scale = jnp.sqrt(size) * rms
            return to_dtype(scale * x, g.dtype), ax

        names = ("updates", "weight_dimension_numbers")
        return map_leaves(rule, updates, axes, names=names)[0], state


@dataclasses.dataclass(frozen=True)
class _MuonLabels:
    """`params -> "muon"/"adam"` labels (hashable, so that rebuilding `muon` does not
    recompile): "muon" where the dimension numbers are given (by default: 2D leaves)."""

    spec: Any

    @no_type_check
    def __call__(self, params):
        if self.spec is None:
            return jax.tree.map(_default_label, params, is_leaf=is_none)
        tree = self.spec(params) if callable(self.spec) else self.spec.tree

        @no_type_check
        def fill(d, sub):
            label = "adam" if d is None else "muon"
            return jax.tree.map(
                lambda p: label if eqx.is_inexact_array(p) else None,
                sub,
                is_leaf=is_none,
            )

        try:
            return jax.tree.map(fill, tree, params, is_leaf=_is_dims_leaf)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "`muon(muon_weight_dimension_numbers=...)` does not fit the "
                "parameters: it must be a pytree of `MuonDimensionNumbers` (or `None` "
                "for Adam) with their structure, or a prefix of it."
            ) from e


@no_type_check
def _default_label(p: Any) -> str | None:
    if not eqx.is_inexact_array(p):
        return None
    return "muon" if p.ndim == 2 else "adam"


class Muon(AbstractOptimiser):
    r"""Muon: momentum orthogonalised by Newton–Schulz, with AdamW for the other leaves.

    On the matrices (2D leaves, or those given `MuonDimensionNumbers`):
    $u = -\eta_t \left(s \cdot \operatorname{NS}(\hat m_t) + \lambda \theta_t\right)$,
    with [`eqopt.contrib.scale_by_muon`][]'s orthogonalised momentum and the shape
    factor $s$ of [`eqopt.contrib.ScaleByShape`][]; on every other leaf, AdamW with
    `adam_b1`, `adam_b2`, `eps`, `adam_eps_root`, `adam_weight_decay` and
    `adam_learning_rate` (default: `learning_rate`).

    Optax: `optax.contrib.muon`. Built as `partition({"muon": chain(scale_by_muon,
    scale_by_shape, add_decayed_weights(weight_decay, weight_decay_mask),
    scale_by_learning_rate), "adam": adamw(...)}, labels)`: the state is Optax's
    `PartitionState`. Every float (the learning rates, `beta`, `eps`, the Adam
    settings, `ns_coeffs`) is a leaf.

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `ns_coeffs`: a triple, one triple per step, or a preset name (`"standard"`,
        `"dion"`).
    - `ns_steps`, `beta`, `eps`, `mu_dtype`, `nesterov`, `adaptive`,
        `preconditioning`: as in [`eqopt.contrib.scale_by_muon`][] (`eps` is Adam's too;
        `mu_dtype` and `nesterov` too).
    - `weight_decay`: $\lambda$ for the matrices; `weight_decay_mask` selects them.
    - `adam_b1`, `adam_b2`, `adam_eps_root`, `adam_weight_decay`,
        `adam_learning_rate`: the AdamW of the other leaves.
    - `muon_weight_dimension_numbers`: a pytree of `MuonDimensionNumbers` with `None`
        for the leaves left to Adam (or a function of the parameters returning one);
        `None`: Muon on the 2D leaves.
    - `consistent_rms`: see [`eqopt.contrib.ScaleByShape`][].

    ??? cite "References"

        Jordan, *modded-nanogpt: Speedrunning the NanoGPT baseline*, 2024.
        Bernstein and Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024.
        Liu et al., *Muon is Scalable for LLM Training*, 2025.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    ns_coeffs: Float[Array, "..."] = eqx.field(
        converter=as_ns_coeffs, default=_DEFAULT_NS_COEFFS
    )
    ns_steps: int = eqx.field(static=True, default=5)
    beta: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.95)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: LearningRate = eqx.field(converter=as_hyperparameter, default=0.0)
    weight_decay_mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )
    mu_dtype: DTypeLike | None = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=True, kw_only=True)
    adaptive: bool = eqx.field(static=True, default=False, kw_only=True)
    preconditioning: str = eqx.field(static=True, default="frobenius", kw_only=True)
    adam_b1: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.9, kw_only=True
    )
    adam_b2: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.999, kw_only=True
    )
    adam_eps_root: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.0, kw_only=True
    )
    adam_weight_decay: LearningRate = eqx.field(
        converter=as_hyperparameter, default=0.0, kw_only=True
    )
    adam_learning_rate: LearningRate | None = eqx.field(
        converter=as_optional_hyperparameter, default=None, kw_only=True
    )
    muon_weight_dimension_numbers: Any = eqx.field(
        static=True, default=None, kw_only=True, converter=freeze_dimension_numbers
    )
    consistent_rms: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None, kw_only=True
    )

    def __check_init__(self):
        _check_ns("muon", self)
        check_hyperparameters(
            "muon",
            self,
            beta=UNIT,
            eps=NONNEGATIVE,
            adam_b1=UNIT,
            adam_b2=UNIT,
            adam_eps_root=NONNEGATIVE,
        )

    def as_partition(self) -> Partition:
        """The equivalent `partition` of Muon's chain and AdamW (Optax's structure)."""
        spec = self.muon_weight_dimension_numbers
        muon = Chain(
            (
                ScaleByMuon(
                    self.ns_coeffs,
                    self.ns_steps,
                    self.beta,
                    self.eps,
                    self.mu_dtype,
                    nesterov=self.nesterov,
                    adaptive=self.adaptive,
                    preconditioning=self.preconditioning,
                    weight_dimension_numbers=spec,
                ),
                ScaleByShape(spec, self.consistent_rms),
                AddDecayedWeights(self.weight_decay, self.weight_decay_mask),
                ScaleByLearningRate(self.learning_rate),
            )
        )
        adam_learning_rate = (
            self.learning_rate
            if self.adam_learning_rate is None
            else self.adam_learning_rate
        )
        adam = AdamW(
            adam_learning_rate,
            self.adam_b1,
            self.adam_b2,
            self.eps,
            self.adam_eps_root,
            self.mu_dtype,
            self.adam_weight_decay,
            nesterov=self.nesterov,
        )
        return Partition(
            {"muon": muon, "adam": adam}, _MuonLabels(spec), warn_unused=False
        )

    def as_chain(self) -> Chain:
        """A one-element chain of `as_partition()` (whose state is one level deeper
        than `init`'s, which is the partition's own, as in Optax)."""
        return Chain((self.as_partition(),))

    def init(self, params: Params) -> PartitionState:  # type: ignore[override]
        return self.as_partition().init(params)

    def update(  # type: ignore[override]
        self,
        updates: Updates,
        state: PartitionState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        warn_python_number_hyperparameters(updates, Muon=self)
        return self.as_partition().update(updates, state, params, **extra_args)


scale_by_muon = ScaleByMuon
muon = Muon

r"""The backtracking (Armijo) line search: shrink the step until the objective decreases
enough.

The search runs inside one `eqx.filter_jit`-compiled function, cached on the objective
`value_fn` and the shapes, so that calling `update` eagerly step after step compiles the
search once (Optax's rebuilds and re-traces its `while_loop` at every call: optax#1171),
and a jitted step traces it once. The loop is Equinox's checkpointed while loop: the
same `while` loop as `lax.while_loop` when run, and reverse-mode differentiable too
(hypergradients of a training run that uses the line search).
"""

import operator
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._base import GradientTransformation
from .._checks import check_hyperparameters, Interval, NONNEGATIVE, POSITIVE
from .._custom_types import Params, Updates
from .._hyperparams import as_scalar
from .._tree import cast, compute_dtype, map_leaves, to_dtype, upcast
from ..tree_utils._leaves import array_leaves
from ..tree_utils._reductions import tree_vdot
from .common import cond_print, line_search_arguments


_OWNER = "scale_by_backtracking_linesearch"


class BacktrackingLinesearchInfo(eqx.Module):
    """What the last backtracking line search did, for debugging.

    Optax: `optax._src.linesearch.BacktrackingLinesearchInfo` (same fields).

    **Fields:**

    - `num_linesearch_steps`: how many step sizes were tried.
    - `decrease_error`: how far the accepted step is from sufficient decrease: `0` if
        it decreases the objective enough, positive if the search gave up, `inf` if
        every step tried gave a non-finite objective.
    """

    num_linesearch_steps: Int[Array, ""]
    decrease_error: Float[Array, ""]


class ScaleByBacktrackingLinesearchState(eqx.Module):
    """State of [`eqopt.ScaleByBacktrackingLinesearch`][].

    Optax: `optax.ScaleByBacktrackingLinesearchState` (same fields).

    **Fields:**

    - `learning_rate`: the step size accepted by the last search (`0` if it failed).
    - `value`: the objective at the accepted step (`inf` before the first update).
    - `grad`: the gradient at the accepted step if `store_grad=True`, else `None`;
        `value` and `grad` are what `eqopt.value_and_grad_from_state` reuses.
    - `info`: a [`eqopt.BacktrackingLinesearchInfo`][].
    """

    learning_rate: Float[Array, ""]
    value: Float[Array, ""]
    grad: Updates | None
    info: BacktrackingLinesearchInfo


class _Search(eqx.Module):
    """The carry of the search loop."""

    learning_rate: Float[Array, ""]
    new_value: Float[Array, ""]
    new_grad: Updates | None
    decrease_error: Float[Array, ""]
    iter_num: Int[Array, ""]


# `(0, inf]`: `increase_factor=math.inf` starts every search at `max_learning_rate`.
_POSITIVE_OR_INF = Interval(0.0, float("inf"), closed_low=False, closed_high=True)
_OPEN_UNIT = Interval(0.0, 1.0, closed_low=False)


class ScaleByBacktrackingLinesearch(GradientTransformation):
    r"""Scale the updates $u$ by a step size $\eta$ found by backtracking: the first of
    $\eta_0, \beta\eta_0, \beta^2\eta_0, \dots$ with sufficient decrease (Armijo),

    $$
    f(w + \eta u) \le (1 + \delta) f(w) + c\, \eta\, \langle u, \nabla f(w) \rangle
    + \epsilon,
    $$

    starting from $\eta_0 = \min(\gamma\, \eta_{\text{prev}}, \eta_{\max})$ (the previous
    step size, increased) and trying at most `max_backtracking_steps` + 1 step sizes.
    The updates become $\eta u$. A non-finite $f(w + \eta u)$ counts as insufficient
    decrease; if every step size tried gives one, $\eta = 0$ and the updates are zero
    (exactly, even where $u$ is not finite).

    $u$ must be a descent direction ($\langle u, \nabla f(w) \rangle < 0$), as after
    `sgd` in `chain(sgd(1.0), scale_by_backtracking_linesearch(15))`; transformations
    after the line search in a chain need not keep that property.

    `update` needs, as in Optax, the keyword arguments `value` ($f(w)$), `grad`
    ($\nabla f(w)$) and `value_fn` ($f$), and `params` ($w$); any further keyword
    arguments are passed on to `value_fn` (its data, say `x=x, y=y`):

    ```python
    value, grad = jax.value_and_grad(f)(params)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
    ```

    Arithmetic is in the parameters' precision, at least float32: with bfloat16
    parameters, `value_fn` is evaluated at float32 trial points and the state's scalars
    are float32 (Optax's are bfloat16).

    Optax: `optax.scale_by_backtracking_linesearch`.

    **Arguments:**

    - `max_backtracking_steps`: the most times the step size is decreased in one
        search (static).
    - `slope_rtol`: $c$, the fraction of the linear decrease required, in $[0, 1)$.
    - `decrease_factor`: $\beta \in (0, 1)$, the factor applied at each backtrack.
    - `increase_factor`: $\gamma > 0$, the factor applied to the previous step size to
        start the next search (`1.0` keeps it, `math.inf` starts at $\eta_{\max}$).
    - `max_learning_rate`: $\eta_{\max} > 0$, the largest step size tried.
    - `atol`: $\epsilon \ge 0$, an absolute tolerance on the decrease.
    - `rtol`: $\delta \ge 0$, a relative tolerance on the decrease.
    - `store_grad`: whether to compute $\nabla f$ at the accepted point and keep it in
        the state (with the value there), to be reused by
        `eqopt.value_and_grad_from_state` at the next step (static).
    - `verbose`: whether to print (with `jax.debug.print`) when the search fails
        (static).

    ??? cite "References"

        Vaswani et al., *Painless Stochastic Gradient: Interpolation, Line-Search, and
        Convergence Rates*, NeurIPS 2019.
        Nocedal and Wright, *Numerical Optimization*, Springer, 1999.
    """

    max_backtracking_steps: int = eqx.field(static=True, converter=operator.index)
    slope_rtol: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-4)
    decrease_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.8)
    increase_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.5)
    max_learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    atol: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    rtol: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    store_grad: bool = eqx.field(static=True, default=False)
    verbose: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.max_backtracking_steps < 0:
            raise ValueError(
                f"`{_OWNER}(max_backtracking_steps=...)` must be a non-negative int; "
                f"got max_backtracking_steps={self.max_backtracking_steps}."
            )
        check_hyperparameters(
            _OWNER,
            self,
            slope_rtol=Interval(0.0, 1.0),
            decrease_factor=_OPEN_UNIT,
            increase_factor=_POSITIVE_OR_INF,
            max_learning_rate=POSITIVE,
            atol=NONNEGATIVE,
            rtol=NONNEGATIVE,
        )

    def init(self, params: Params) -> ScaleByBacktrackingLinesearchState:
        dtype = _value_dtype(params)
        grad = _zeros_like_inexact(params) if self.store_grad else None
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones((), dtype),
            value=jnp.full((), jnp.inf, dtype),
            grad=grad,
            info=BacktrackingLinesearchInfo(
                num_linesearch_steps=jnp.zeros((), jnp.int32),
                decrease_error=jnp.full((), jnp.inf, dtype),
            ),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByBacktrackingLinesearchState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByBacktrackingLinesearchState]:
        value, grad, value_fn, fn_kwargs = line_search_arguments(
            _OWNER, params, extra_args
        )
        return _update(self, updates, state, params, value, grad, value_fn, fn_kwargs)


@eqx.filter_jit
@no_type_check
def _update(
    search: ScaleByBacktrackingLinesearch,
    updates: Updates,
    state: ScaleByBacktrackingLinesearchState,
    params: Params,
    value: Any,
    grad: Updates,
    value_fn: Callable,
    fn_kwargs: dict[str, Any],
) -> tuple[Updates, ScaleByBacktrackingLinesearchState]:
    """One search and the scaled updates: compiled once per `value_fn` and shapes."""
    dtype = state.learning_rate.dtype
    slope_rtol, decrease_factor, increase_factor, max_learning_rate, atol, rtol = cast(
        dtype,
        search.slope_rtol,
        search.decrease_factor,
        search.increase_factor,
        search.max_learning_rate,
        search.atol,
        search.rtol,
    )
    value = _scalar(value, dtype)
    # The slope of `eta -> f(w + eta u)` at 0; negative for a descent direction.
    slope = jnp.real(tree_vdot(_upcast(updates), jax.tree.map(jnp.conj, _upcast(grad))))
    slope = slope.astype(dtype)
    last = search.max_backtracking_steps

    @no_type_check
    def objective(dynamic, static):
        trial = eqx.combine(dynamic, static)
        return _scalar(value_fn(trial, **fn_kwargs), dtype)

    @no_type_check
    def keep_going(s: _Search):
        return ~(s.decrease_error <= atol) & (s.iter_num <= last)

    @no_type_check
    def backtrack(s: _Search) -> _Search:
        # The first step size is tried as it is; each later one is decreased.
        learning_rate = jnp.where(
            s.iter_num > 0, decrease_factor * s.learning_rate, s.learning_rate
        )
        trial = _trial_point(params, updates, learning_rate)
        dynamic, static = eqx.partition(trial, eqx.is_inexact_array)
        if search.store_grad:
            new_value, vjp = jax.vjp(lambda d: objective(d, static), dynamic)
        else:
            new_value = objective(dynamic, static)
        decrease_error = new_value - (1 + rtol) * value
        decrease_error = decrease_error - learning_rate * slope_rtol * slope
        decrease_error = jnp.maximum(
            jnp.where(jnp.isnan(decrease_error), jnp.inf, decrease_error), 0
        )
        new_grad = s.new_grad
        if search.store_grad:
            # The gradient for the next search, where this one stops.
            stops = (decrease_error <= atol) | (s.iter_num == last)
            new_grad = jax.lax.cond(
                stops,
                lambda: _cast_like(vjp(jnp.ones((), dtype))[0], s.new_grad),
                lambda: s.new_grad,
            )
        return _Search(
            learning_rate, new_value, new_grad, decrease_error, s.iter_num + 1
        )

    start = _Search(
        learning_rate=jnp.minimum(
            increase_factor * state.learning_rate, max_learning_rate
        ),
        new_value=value,
        new_grad=_zeros_like_inexact(params) if search.store_grad else None,
        decrease_error=jnp.full((), jnp.inf, dtype),
        iter_num=jnp.zeros((), jnp.int32),
    )
    found = eqxi.while_loop(
        keep_going, backtrack, start, max_steps=last + 1, kind="checkpointed"
    )
    # No finite objective anywhere along the line: no step.
    failed = jnp.isinf(found.decrease_error)
    learning_rate = jnp.where(failed, 0, found.learning_rate)
    if search.verbose:
        cond_print(
            found.decrease_error > atol,
            "INFO: eqopt.scale_by_backtracking_linesearch:\n"
            "Backtracking linesearch failed to find a stepsize ensuring sufficient "
            "decrease.\nValue at current params: {value},\n"
            "Slope along update direction: {slope}\nStepsize: {stepsize}\n"
            "Decrease Error: {decrease_error}",
            value=value,
            slope=slope,
            stepsize=found.learning_rate,
            decrease_error=found.decrease_error,
        )
        cond_print(failed, "Using a stepsize of 0 to avoid infinite or nan values.")

    @no_type_check
    def scale(u):
        step = jnp.where(failed, 0, learning_rate.astype(compute_dtype(u)) * upcast(u))
        return (to_dtype(step, u.dtype),)

    new_state = ScaleByBacktrackingLinesearchState(
        learning_rate=learning_rate,
        value=found.new_value,
        grad=found.new_grad,
        info=BacktrackingLinesearchInfo(found.iter_num, found.decrease_error),
    )
    return map_leaves(scale, updates)[0], new_state


@no_type_check
def _value_dtype(params: Params) -> jnp.dtype:
    """The dtype of the search's scalars: the real dtype of the first floating leaf of
    `params` (as Optax), at least float32."""
    inexact = [x for x in array_leaves(params) if eqx.is_inexact_array(x)]
    if not inexact:
        return jnp.dtype(jnp.float32)
    return compute_dtype(jnp.empty((), jnp.finfo(inexact[0].dtype).dtype))


@no_type_check
def _scalar(x: Any, dtype: jnp.dtype) -> Array:
    """The objective's value as a 0-d array of `dtype` (a shape-`(1,)` array is
    accepted, as Optax documents)."""
    return jnp.reshape(jnp.real(jnp.asarray(x)), ()).astype(dtype)


@no_type_check
def _upcast(tree: Any) -> Any:
    """Each floating leaf in its compute dtype (float32 for bfloat16); `None` for the
    other leaves."""
    return jax.tree.map(lambda x: upcast(x) if eqx.is_inexact_array(x) else None, tree)


@no_type_check
def _zeros_like_inexact(params: Any) -> Any:
    return jax.tree.map(
        lambda p: jnp.zeros(p.shape, p.dtype) if eqx.is_inexact_array(p) else None,
        params,
    )


@no_type_check
def _cast_like(tree: Any, reference: Any) -> Any:
    return jax.tree.map(
        lambda x, r: x if r is None else x.astype(r.dtype),
        tree,
        reference,
        is_leaf=lambda x: x is None,
    )


@no_type_check
def _trial_point(params: Params, updates: Updates, learning_rate: Array) -> Params:
    r"""$w + \eta u$, computed in float32 or wider; leaves without an update kept."""

    @no_type_check
    def step(u, p):
        x = upcast(p)
        return u, x + learning_rate.astype(x.dtype) * to_dtype(u, x.dtype)

    return map_leaves(step, updates, params, names=("updates", "params"))[1]


scale_by_backtracking_linesearch = ScaleByBacktrackingLinesearch

r"""The zoom line search: a step size satisfying the strong Wolfe conditions.

Algorithms 3.5 (search for an interval) and 3.6 (zoom into it) of Nocedal and Wright,
with Hager and Zhang's approximate sufficient decrease, at Optax 0.2.8's numbers.

Each iteration evaluates the objective and its gradient once, at a candidate step size
chosen by the current phase (a larger step while searching for an interval; a cubic,
quadratic or bisection point while zooming). Optax evaluates both phases' branches of a
`lax.cond`, which under `jax.vmap` become a select that runs the objective twice.
"""

from collections.abc import Callable
from typing import Any, NamedTuple, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._base import GradientTransformation
from .._checks import check_hyperparameters, check_steps, Interval, POSITIVE
from .._custom_types import Params, Updates
from .._hyperparams import as_optional_scalar, as_scalar
from .._numerics import safe_increment
from .._tree import cast_like, to_dtype, upcast, zeros_like_params
from ..tree_utils import tree_vdot
from .common import (
    cond_print,
    join_arrays,
    line_search_arguments,
    on_line,
    select,
    slope,
    split_arrays,
    stable_body,
    value_and_grad,
    value_dtype,
)


_NONNEGATIVE_OR_INF = Interval(0.0, float("inf"), closed_high=True)
_STRATEGIES = ("one", "keep")

# Optax's diagnostics, printed with `verbose=True`.
FLAG_INTERVAL_NOT_FOUND = (
    "No interval satisfying curvature condition. "
    "Consider increasing maximal possible stepsize of the linesearch."
)
FLAG_INTERVAL_TOO_SMALL = (
    "Length of searched interval has been reduced below threshold."
)
FLAG_CURVATURE_COND_NOT_SATISFIED = (
    "Returning stepsize with sufficient decrease but curvature condition not satisfied."
)
FLAG_NO_STEPSIZE_FOUND = (
    "Linesearch failed, no stepsize satisfying sufficient decrease found."
)
FLAG_NOT_A_DESCENT_DIRECTION = (
    "The linesearch failed because the provided direction is not a descent direction. "
)


class ZoomLinesearchInfo(eqx.Module):
    """What the last zoom line search did (for debugging).

    A positive `curvature_error` is benign (the maximal learning rate may be too small);
    a positive `decrease_error` means the objective may not have decreased enough.

    **Fields:**

    - `num_linesearch_steps`: the number of objective evaluations.
    - `decrease_error`: how far the sufficient decrease criterion is from holding
        (`0` if it holds).
    - `curvature_error`: how far the small curvature criterion is from holding.
    """

    num_linesearch_steps: Int[Array, ""]
    decrease_error: Float[Array, ""]
    curvature_error: Float[Array, ""]


class ScaleByZoomLinesearchState(eqx.Module):
    """State of [`eqopt.ScaleByZoomLinesearch`][].

    **Fields:**

    - `learning_rate`: the step size found by the last line search.
    - `value`: the objective at the accepted step (the next iterate), reusable with
        [`eqopt.value_and_grad_from_state`][].
    - `grad`: its gradient there, likewise.
    - `info`: a [`eqopt.ZoomLinesearchInfo`][].
    """

    learning_rate: Float[Array, ""]
    value: Float[Array, ""]
    grad: Updates
    info: ZoomLinesearchInfo


class ScaleByZoomLinesearch(GradientTransformation):
    r"""Scale the updates by a step size $\eta$ satisfying the strong Wolfe conditions.

    With $f$ the objective, $w$ the parameters and $u$ the incoming update direction,
    the line search looks for $\eta$ with a sufficient decrease (Armijo) and a small
    curvature,

    $$
    f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f(w)\rangle + \epsilon,
    \qquad
    |\langle \nabla f(w + \eta u), u\rangle| \le c_2 |\langle \nabla f(w), u\rangle|
    + \epsilon,
    $$

    first growing $\eta$ by `increase_factor` until an interval containing such a step
    is found, then zooming into it by cubic or quadratic interpolation (or bisection).
    Close to a minimum (where $f(w + \eta u) \le f(w) + c_3 |f(w)|$), the decrease
    criterion is relaxed to Hager and Zhang's approximate one,
    $\langle \nabla f(w + \eta u), u\rangle \le (2 c_1 - 1) \langle \nabla f(w), u
    \rangle + \epsilon$. If no step satisfies both criteria within
    `max_linesearch_steps` evaluations, the best step with sufficient decrease is
    taken; if there is none, the last one (or $0$ if the objective is not finite
    there). The update is $\eta u$.

    `update` needs the keyword arguments `value`, `grad` and `value_fn`, as in Optax:
    `opt.update(grad, state, params, value=value, grad=grad, value_fn=fn)`; any other
    keyword argument that `value_fn` accepts is passed on to it. The state keeps the
    objective's value and gradient at the accepted step: with
    [`eqopt.value_and_grad_from_state`][] a deterministic objective is evaluated once
    per iteration.

    The step size is searched on `jax.lax.stop_gradient` of the inputs: derivatives
    (of a meta-objective, with respect to parameters or hyperparameters) flow through
    the update direction $u$, with the accepted $\eta$ held constant. The search is
    piecewise (each comparison a branch), so its own derivative is not taken.

    Optax: `optax.scale_by_zoom_linesearch`.

    **Arguments:**

    - `max_linesearch_steps`: the maximal number of objective evaluations (static).
    - `max_learning_rate`: an upper bound on $\eta$, or `None` for none.
    - `tol`: $\epsilon$, the tolerance on both criteria.
    - `increase_factor`: the factor growing $\eta$ while searching for an interval.
    - `slope_rtol`: $c_1$.
    - `curv_rtol`: $c_2$ (`jnp.inf` drops the curvature criterion).
    - `approx_dec_rtol`: $c_3$, or `None` for the plain Armijo criterion.
    - `stepsize_precision`: once the zoomed interval is shorter than this and some step
        with sufficient decrease is known, that step is taken.
    - `initial_guess_strategy`: `"one"` (start from $\eta = 1$, for quasi-Newton
        directions) or `"keep"` (from the last accepted $\eta$, for gradient descent).
    - `verbose`: print diagnostics (with `jax.debug.print`) when the search fails.

    ??? cite "References"

        Nocedal and Wright, *Numerical Optimization*, Algorithms 3.5 and 3.6, 1999.

        Hager and Zhang, *Algorithm 851: CG_DESCENT, a Conjugate Gradient Method with
        Guaranteed Descent*, ACM TOMS 2006.
    """

    max_linesearch_steps: int = eqx.field(static=True, converter=int)
    max_learning_rate: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    tol: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    increase_factor: Float[Array, ""] = eqx.field(converter=as_scalar, default=2.0)
    slope_rtol: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-4)
    curv_rtol: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.9)
    approx_dec_rtol: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=1e-6
    )
    stepsize_precision: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-5)
    initial_guess_strategy: str = eqx.field(static=True, default="keep")
    verbose: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_steps(
            "scale_by_zoom_linesearch", max_linesearch_steps=self.max_linesearch_steps
        )
        if self.initial_guess_strategy not in _STRATEGIES:
            raise ValueError(
                "`scale_by_zoom_linesearch(initial_guess_strategy=...)` must be one of "
                f"{_STRATEGIES}; got {self.initial_guess_strategy!r}."
            )
        check_hyperparameters(
            "scale_by_zoom_linesearch",
            self,
            tol=_NONNEGATIVE_OR_INF,
            increase_factor=POSITIVE,
            slope_rtol=_NONNEGATIVE_OR_INF,
            curv_rtol=_NONNEGATIVE_OR_INF,
            stepsize_precision=_NONNEGATIVE_OR_INF,
        )
        if self.max_learning_rate is not None:
            check_hyperparameters(
                "scale_by_zoom_linesearch", self, max_learning_rate=POSITIVE
            )
        if self.approx_dec_rtol is not None:
            check_hyperparameters(
                "scale_by_zoom_linesearch", self, approx_dec_rtol=_NONNEGATIVE_OR_INF
            )

    def init(self, params: Params) -> ScaleByZoomLinesearchState:
        dtype = value_dtype(params)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones((), dtype),
            value=jnp.full((), jnp.inf, dtype),
            grad=zeros_like_params(params),
            info=ZoomLinesearchInfo(
                num_linesearch_steps=jnp.zeros((), jnp.int32),
                decrease_error=jnp.full((), jnp.inf, dtype),
                curvature_error=jnp.full((), jnp.inf, dtype),
            ),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByZoomLinesearchState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByZoomLinesearchState]:
        value, grad, value_fn, fn_kwargs = line_search_arguments(
            "scale_by_zoom_linesearch", params, extra_args
        )
        dtype = state.learning_rate.dtype
        direction = jax.tree.map(upcast, updates)
        guess = (
            jnp.ones((), dtype)
            if self.initial_guess_strategy == "one"
            else state.learning_rate
        )
        found = zoom_linesearch(
            self,
            value_fn,
            params,
            direction,
            jnp.asarray(value).astype(dtype),
            grad,
            guess,
            fn_kwargs,
        )
        learning_rate = found.stepsize
        scaled = jax.tree.map(
            lambda u, g: None if u is None else to_dtype(learning_rate * u, g.dtype),
            direction,
            updates,
            is_leaf=lambda x: x is None,
        )
        new_state = ScaleByZoomLinesearchState(
            learning_rate=learning_rate,
            value=found.value,
            grad=cast_like(found.grad, state.grad),
            info=ZoomLinesearchInfo(
                num_linesearch_steps=found.count,
                decrease_error=found.decrease_error,
                curvature_error=found.curvature_error,
            ),
        )
        return scaled, new_state


scale_by_zoom_linesearch = ScaleByZoomLinesearch


class _Search(NamedTuple):
    """The line search's loop state (Optax's `ZoomLinesearchState`, less what is
    fixed during the search). `low`/`high` bound an interval with
    `value(low) <= value(high)`, not `low <= high`."""

    count: Array
    stepsize: Array
    value: Array
    grad: Any
    slope: Array
    decrease_error: Array
    curvature_error: Array
    error: Array
    interval_found: Array
    done: Array
    failed: Array
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    slope_high: Array
    cubic_ref: Array
    value_cubic_ref: Array
    safe_stepsize: Array
    safe_value: Array
    safe_grad: Any
    grown: Array  # whether `stepsize` is a grown guess (not interpolated)


class _Fixed(NamedTuple):
    """What the search reads but never changes (carried, so that one body serves every
    call; `lax.while_loop` hoists unchanged carries out of the loop)."""

    settings: dict
    params: Any  # the arrays of the parameters (`split_arrays`)
    updates: Any
    fn_kwargs: Any  # the arrays of `value_fn`'s extra arguments
    value_init: Array
    slope_init: Array


@no_type_check
def _stop(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


@no_type_check
def zoom_linesearch(
    ls: ScaleByZoomLinesearch,
    value_fn: Callable,
    params: Any,
    updates: Any,
    value: Array,
    grad: Any,
    guess: Array,
    fn_kwargs: dict,
) -> _Search:
    """Run the search from `params` along `updates` (in the compute dtype); return the
    final loop state, with the fallback of a failed search applied."""
    dtype = value.dtype
    differentiable = (guess, ls.increase_factor, ls.max_learning_rate)
    params, updates, value, grad, guess, fn_kwargs = _stop(
        (params, updates, value, grad, guess, fn_kwargs)
    )
    grad = jax.tree.map(upcast, grad)
    settings = dict(
        max_stepsize=ls.max_learning_rate,
        tol=ls.tol,
        increase_factor=ls.increase_factor,
        slope_rtol=ls.slope_rtol,
        curv_rtol=ls.curv_rtol,
        approx_dec_rtol=ls.approx_dec_rtol,
        interval_threshold=ls.stepsize_precision,
        guess=guess,
    )
    settings = jax.tree.map(lambda x: _stop(jnp.asarray(x)).astype(dtype), settings)
    params_dynamic, params_static = split_arrays(params)
    kwargs_dynamic, kwargs_static = split_arrays(fn_kwargs)
    slope0 = jnp.real(jnp.asarray(tree_vdot(updates, grad))).astype(dtype)
    zero = jnp.zeros((), dtype)
    inf = jnp.full((), jnp.inf, dtype)
    false = jnp.asarray(False)
    start = _Search(
        count=jnp.zeros((), jnp.int32),
        stepsize=zero,
        value=value,
        grad=grad,
        slope=slope0,
        decrease_error=inf,
        curvature_error=inf,
        error=inf,
        interval_found=false,
        done=false,
        failed=false,
        low=zero,
        value_low=value,
        slope_low=slope0,
        high=zero,
        value_high=value,
        slope_high=slope0,
        cubic_ref=zero,
        value_cubic_ref=value,
        safe_stepsize=zero,
        safe_value=value,
        safe_grad=grad,
        grown=false,
    )
    fixed = _Fixed(settings, params_dynamic, updates, kwargs_dynamic, value, slope0)
    # With `verbose`, the fall-back is applied after the loop, so that the diagnostics
    # show the last step tried; otherwise in the loop's last iteration, which saves
    # the work of a separate select after it (as Optax, in a `lax.cond`).
    fall_back_in_loop = not ls.verbose
    statics = (ls.max_linesearch_steps, params_static, kwargs_static, fall_back_in_loop)
    try:
        hash(statics)
        body = stable_body(_ZoomBody, value_fn, statics)
    except TypeError:  # unhashable static parts: a fresh body, as Optax
        body = _ZoomBody(lambda: value_fn, statics)
    _, final = jax.lax.while_loop(_continues, body, (fixed, start))
    if not fall_back_in_loop:
        _diagnose(final, fixed)
        final = _fall_back(final)
    return _with_derivative(final, *differentiable)


@no_type_check
def _with_derivative(s: _Search, guess, increase_factor, max_stepsize) -> _Search:
    r"""The accepted step size, with the derivative of the formula that grew it where
    it is a grown guess $\min(\eta_0 c^k, \eta_{\max})$ (interpolated steps and
    fall-backs are held constant). Nothing is computed unless differentiated."""
    use = s.grown & ~s.failed
    growths = (s.count - 1).astype(s.stepsize.dtype)
    stepsize = _grown(s.stepsize, use, growths, (guess, increase_factor, max_stepsize))
    return s._replace(stepsize=stepsize)


@jax.custom_jvp
@no_type_check
def _grown(stepsize, use, growths, settings):
    return stepsize


@_grown.defjvp
@no_type_check
def _grown_jvp(primals, tangents):
    stepsize, use, growths, settings = primals
    settings_dot = tangents[3]

    @no_type_check
    def formula(settings):
        guess, increase_factor, max_stepsize = settings
        grown = (
            guess.astype(growths.dtype)
            * increase_factor.astype(growths.dtype) ** growths
        )
        if max_stepsize is not None:
            grown = jnp.minimum(grown, max_stepsize.astype(growths.dtype))
        return grown

    grown, grown_dot = jax.jvp(formula, (settings,), (settings_dot,))
    derivative = jnp.where(use & jnp.isfinite(grown), grown_dot, 0.0)
    return stepsize, derivative.astype(stepsize.dtype)


@no_type_check
def _continues(carry: tuple[_Fixed, _Search]) -> Array:
    _, s = carry
    return ~(s.done | s.failed)


class _ZoomBody:
    """One iteration of the search, for one objective (see `common.stable_body`)."""

    @no_type_check
    def __init__(self, ref: Callable, statics: tuple):
        self.ref = ref
        self.max_steps, self.params_static, self.kwargs_static, self.fall_back = statics

    @no_type_check
    def __call__(self, carry: tuple[_Fixed, _Search]) -> tuple[_Fixed, _Search]:
        fixed, s = carry
        params = join_arrays(fixed.params, self.params_static)
        fn_kwargs = join_arrays(fixed.fn_kwargs, self.kwargs_static)
        s = _step(self.ref(), self.max_steps, fixed, params, fn_kwargs, s)
        if self.fall_back:
            # (Under `jax.vmap`, a select of both: a few scalars and the gradient.)
            s = jax.lax.cond(s.failed, _fall_back, lambda s: s, s)
        return fixed, s


@no_type_check
def _step(value_fn, max_steps, fixed, params, fn_kwargs, s) -> _Search:
    """Evaluate the objective at the current phase's candidate; update both phases'
    bookkeeping and keep that of the current phase."""
    c = fixed.settings
    value_init, slope_init = _in_loop(s, fixed.value_init, fixed.slope_init)
    tol = c["tol"]
    dtype = s.stepsize.dtype

    # The candidate: a larger step (interval search) or an interpolated one (zoom).
    larger = jnp.where(s.count == 0, c["guess"], c["increase_factor"] * s.stepsize)
    if c["max_stepsize"] is None:
        max_reached = jnp.asarray(False)
    else:
        max_reached = larger >= c["max_stepsize"]
        larger = jnp.minimum(larger, c["max_stepsize"])
    # (A `lax.cond`: the interpolation runs only while zooming. Under `jax.vmap` it
    # becomes a select of both, which is cheap: no objective is evaluated in it.)
    stepsize = jax.lax.cond(s.interval_found, _zoom_point, lambda _: larger, s)

    trial = on_line(params, stepsize, fixed.updates)
    value, grad = value_and_grad(value_fn)(trial, **fn_kwargs)
    value = jnp.asarray(value).astype(dtype)
    grad = cast_like(grad, s.grad)
    slope_new = slope(grad, fixed.updates).astype(dtype)

    decrease_error = _decrease_error(
        c, stepsize, value, slope_new, value_init, slope_init
    )
    curvature_error = _curvature_error(c, slope_new, slope_init)
    error = jnp.maximum(decrease_error, curvature_error)
    sufficient = decrease_error <= tol
    at_last_step = s.count + 1 >= max_steps
    new = (stepsize, value, slope_new)

    # Interval search (Algorithm 3.5).
    to_high = (decrease_error > 0.0) | ((value >= s.value) & (s.count > 0))
    to_low = (slope_new >= 0.0) & ~to_high
    prev = (s.stepsize, s.value, s.slope)
    search_low = _where(to_low, new, prev)
    search_high = _where(to_low, prev, new)
    search_found = to_high | to_low | (error <= tol)
    search_done = (error <= tol) | (max_reached & ~search_found)
    search_failed = at_last_step & ~search_done
    search_takes_safe = sufficient

    # Zoom (Algorithm 3.6).
    low, high = (s.low, s.value_low, s.slope_low), (s.high, s.value_high, s.slope_high)
    zoom_takes_safe = sufficient & (value < s.safe_value)
    zoom_done = error <= tol
    middle_to_high = (decrease_error > 0.0) | (value >= s.value_low)
    low_to_high = (slope_new * (s.high - s.low) >= 0.0) & ~middle_to_high
    zoom_high = _where(low_to_high, low, _where(middle_to_high, new, high))
    zoom_low = _where(middle_to_high, low, new)
    zoom_ref = _where(middle_to_high | low_to_high, high[:2], low[:2])
    safe_stepsize = jnp.where(zoom_takes_safe, stepsize, s.safe_stepsize)
    too_small = jnp.abs(s.high - s.low) <= c["interval_threshold"]
    zoom_failed = (at_last_step | (too_small & (safe_stepsize > 0.0))) & ~zoom_done

    zooming = s.interval_found
    new_low = _where(zooming, zoom_low, search_low)
    new_high = _where(zooming, zoom_high, search_high)
    ref = _where(zooming, zoom_ref, search_low[:2])
    takes_safe = jnp.where(zooming, zoom_takes_safe, search_takes_safe)
    safe_stepsize, safe_value, safe_grad = select(
        takes_safe,
        (stepsize, value, grad),
        (s.safe_stepsize, s.safe_value, s.safe_grad),
    )
    return _Search(
        count=safe_increment(s.count),
        stepsize=stepsize,
        value=value,
        grad=grad,
        slope=slope_new,
        decrease_error=decrease_error,
        curvature_error=curvature_error,
        error=error,
        interval_found=zooming | search_found,
        done=jnp.where(zooming, zoom_done, search_done),
        failed=jnp.where(zooming, zoom_failed, search_failed),
        low=new_low[0],
        value_low=new_low[1],
        slope_low=new_low[2],
        high=new_high[0],
        value_high=new_high[1],
        slope_high=new_high[2],
        cubic_ref=ref[0],
        value_cubic_ref=ref[1],
        safe_stepsize=safe_stepsize,
        safe_value=safe_value,
        safe_grad=safe_grad,
        grown=~zooming,
    )


@no_type_check
def _in_loop(s: _Search, *values: Array) -> tuple[Array, ...]:
    r"""`values`, unchanged, but (for XLA) varying from one iteration to the next.

    XLA hoists what depends only on loop invariants out of the loop, as separate
    kernels: here $c_3 |f(w)|$, $c_2 |\langle \nabla f(w), u\rangle|$ and $(2 c_1 -
    1) \langle \nabla f(w), u\rangle$, three tiny kernels per update (Optax computes
    them inside its `lax.cond`, out of XLA's reach). Selected on the count (never
    negative), they stay in the loop, fused into the comparisons that read them.
    """
    return tuple(jnp.where(s.count >= 0, v, jnp.nan) for v in values)


@no_type_check
def _where(pred: Array, on_true: tuple, on_false: tuple) -> tuple:
    return tuple(jnp.where(pred, a, b) for a, b in zip(on_true, on_false))


@no_type_check
def _decrease_error(c, stepsize, value, slope_new, value_init, slope_init) -> Array:
    """How far the sufficient decrease criterion (or, near a minimum, the approximate
    one) is from holding; `inf` where the objective is not a number."""
    error = value - value_init - c["slope_rtol"] * stepsize * slope_init
    if c["approx_dec_rtol"] is not None:
        approx = slope_new - (2 * c["slope_rtol"] - 1.0) * slope_init
        near_minimum = value - value_init - c["approx_dec_rtol"] * jnp.abs(value_init)
        error = jnp.minimum(jnp.maximum(approx, near_minimum), error)
    error = jnp.maximum(error, 0.0)
    return jnp.where(jnp.isnan(error), jnp.inf, error)


@no_type_check
def _curvature_error(c, slope_new, slope_init) -> Array:
    """How far the small curvature criterion is from holding."""
    error = jnp.abs(slope_new) - c["curv_rtol"] * jnp.abs(slope_init)
    error = jnp.maximum(error, 0.0)
    return jnp.where(jnp.isnan(error), jnp.inf, error)


@no_type_check
def _zoom_point(s: _Search) -> Array:
    """The next point inside `[low, high]`: the cubic interpolation's minimiser if well
    inside, else the quadratic's, else the midpoint."""
    delta = jnp.abs(s.high - s.low)
    left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
    cubic = _cubicmin(
        s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref,
        s.value_cubic_ref,
    )  # fmt: skip
    use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
    quad = _quadmin(s.low, s.value_low, s.slope_low, s.high, s.value_high)
    use_quad = ~use_cubic & (quad > left + 0.1 * delta) & (quad < right - 0.1 * delta)
    bisection = (s.low + s.high) / 2.0
    return jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, bisection))


@no_type_check
def _cubicmin(a, fa, fpa, b, fb, c, fc) -> Array:
    """The critical point of the cubic through `(a, fa)`, `(b, fb)`, `(c, fc)` with
    slope `fpa` at `a` (NaN if it has none: never selected then)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    d1 = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    rhs = jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc])
    cubic, square = jnp.dot(d1, rhs, precision=jax.lax.Precision.HIGHEST) / denom
    radical = square * square - 3.0 * cubic * fpa
    return a + (-square + jnp.sqrt(radical)) / (3.0 * cubic)


@no_type_check
def _quadmin(a, fa, fpa, b, fb) -> Array:
    """The critical point of the quadratic through `(a, fa)`, `(b, fb)` with slope
    `fpa` at `a`."""
    db = b - a
    square = (fb - fa - fpa * db) / (db**2)
    return a - fpa / (2.0 * square)


@no_type_check
def _fall_back(s: _Search) -> _Search:
    """After a failed search: the best step with sufficient decrease if there is one,
    or a zero step if the objective is not finite at the last one; else the last."""
    take_safe = s.failed & ((s.safe_stepsize > 0.0) | jnp.isinf(s.decrease_error))
    stepsize, value, grad = select(
        take_safe,
        (s.safe_stepsize, s.safe_value, s.safe_grad),
        (s.stepsize, s.value, s.grad),
    )
    return s._replace(stepsize=stepsize, value=value, grad=grad)


@no_type_check
def _diagnose(s: _Search, fixed: _Fixed) -> None:
    """Optax's `verbose=True` messages, from the final loop state."""
    header = (
        "INFO: optax.scale_by_zoom_linesearch:\n"
        "Value at current params: {value_init}\n"
        "Slope along update direction: {slope_init}\n"
        "Stepsize reached: {stepsize}\n"
        "Decrease Error: {decrease_error}\n"
        "Curvature Error: {curvature_error}"
    )
    values = dict(
        value_init=fixed.value_init,
        slope_init=fixed.slope_init,
        stepsize=s.stepsize,
        decrease_error=s.decrease_error,
        curvature_error=s.curvature_error,
    )
    # The largest step was reached with sufficient decrease but no interval.
    cond_print(
        s.done & ~s.interval_found,
        header + FLAG_INTERVAL_NOT_FOUND + "\n" + FLAG_CURVATURE_COND_NOT_SATISFIED,
        **values,
    )
    cond_print(s.failed, header, **values)
    interval_length = jnp.abs(s.low - s.high)
    cond_print(
        s.failed & (interval_length <= fixed.settings["interval_threshold"]),
        FLAG_INTERVAL_TOO_SMALL + " Interval length: {interval_length}.",
        interval_length=interval_length,
    )
    cond_print(
        s.failed & (s.safe_stepsize > 0.0),
        FLAG_CURVATURE_COND_NOT_SATISFIED
        + " Stepsize ensuring sufficient decrease: {safe_stepsize}.",
        safe_stepsize=s.safe_stepsize,
    )
    no_step = s.failed & ~(s.safe_stepsize > 0.0)
    cond_print(no_step, FLAG_NO_STEPSIZE_FOUND)
    descent = fixed.slope_init < 0.0
    cond_print(
        no_step & ~descent,
        FLAG_NOT_A_DESCENT_DIRECTION
        + "The slope (={slope_init}) at stepsize=0 should be negative",
        slope_init=fixed.slope_init,
    )
    cond_print(
        no_step & descent,
        "Consider augmenting the maximal number of linesearch iterations.",
    )
    eps = jnp.finfo(jnp.float32).eps
    cond_print(
        no_step & descent & (s.stepsize < eps),
        "Computed stepsize (={stepsize}) is below machine precision (={eps}), "
        "consider passing to higher precision like x64, using "
        "jax.config.update('jax_enable_x64', True).",
        stepsize=s.stepsize,
        eps=eps,
    )
    cond_print(
        no_step & descent & (jnp.abs(fixed.slope_init) > 1e16),
        "Very large absolute slope at stepsize=0. (|slope|={abs_slope_init}). "
        "The objective is badly conditioned. Consider reparameterizing objective "
        "(e.g., normalizing parameters) or finding a better guess for the initial "
        "parameters for the solver.",
        abs_slope_init=jnp.abs(fixed.slope_init),
    )
    outside_domain = jnp.isinf(s.decrease_error)
    cond_print(
        no_step & outside_domain,
        "Cannot even make a step without getting Inf or Nan. The linesearch won't "
        "make a step and the optimizer is stuck.",
    )
    cond_print(
        no_step & ~outside_domain,
        "Making an unsafe step, not decreasing enough the objective. Convergence of "
        "the solver is compromised as it does not reduce values.",
    )

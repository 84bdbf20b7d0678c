"""The backtracking line search, Polyak steps and NNLS: every iterate against Optax on
three deterministic problems, Equinox models, data as jit arguments, non-finite values,
composition with other transformations, errors; and what the generic registry tests
(`tests/registry/linesearch.py`) do not reach."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, tree_isfinite
from .registry import REGISTRY


# Three problems: (objective, initial parameters), built in the dtype asked for.


def rosenbrock(dtype):
    def f(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    return f, jnp.zeros(10, dtype)


def logistic_regression(dtype):
    key = jr.key(0)
    X = jr.normal(jr.fold_in(key, 1), (200, 5), dtype)
    w_true = jnp.arange(1, 6, dtype=dtype) / 2
    y = jnp.sign(X @ w_true + 0.5 * jr.normal(jr.fold_in(key, 2), (200,), dtype))

    def f(params):
        margins = y * (X @ params["w"] + params["b"])
        return jnp.mean(jax.nn.softplus(-margins)) + 1e-3 * jnp.sum(params["w"] ** 2)

    return f, {"w": jnp.zeros(5, dtype), "b": jnp.zeros((), dtype)}


def ill_conditioned_quadratic(dtype):
    curvature = jnp.logspace(0, 3, 10, dtype=dtype)  # condition number 1000
    target = jnp.linspace(-1, 1, 10, dtype=dtype)

    def f(x):
        return jnp.sum(curvature * (x - target) ** 2) / 2

    return f, jnp.ones(10, dtype)


PROBLEMS = [rosenbrock, logistic_regression, ill_conditioned_quadratic]


# Optimisers, as (eqopt, optax) builders from the library.


def backtracking(lib):
    return lib.chain(lib.sgd(1.0), lib.scale_by_backtracking_linesearch(15))


def backtracking_store_grad(lib):
    search = lib.scale_by_backtracking_linesearch(
        20, slope_rtol=1e-3, decrease_factor=0.5, increase_factor=2.0, store_grad=True
    )
    return lib.chain(lib.sgd(1.0), search)


def adam_then_backtracking(lib):
    # Decay rates exact in float32, so that eqopt's float32 leaves are Optax's numbers.
    adam = lib.adam(0.1, b1=0.875, b2=1 - 2**-10)
    return lib.chain(adam, lib.scale_by_backtracking_linesearch(15))


def polyak(lib):
    return lib.polyak_sgd(max_learning_rate=0.5, f_min=0.0, eps=1e-8)


def polyak_plus(lib):
    polyak = lib.scale_by_polyak(f_min=0.5, max_learning_rate=1e-3, variant="sps+")
    return lib.chain(lib.sgd(1.0), polyak)


OPTIMISERS = [
    backtracking,
    backtracking_store_grad,
    adam_then_backtracking,
    polyak,
    polyak_plus,
]


def run(opt, f, params, steps):
    """`steps` updates in one compiled `lax.scan`; every iterate and the final state."""

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = optax.apply_updates(params, updates)
        return (params, state), params

    (_, state), iterates = jax.jit(
        lambda p: jax.lax.scan(step, (p, opt.init(p)), length=steps)
    )(params)
    return iterates, state


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("make", OPTIMISERS, ids=lambda m: m.__name__)
def test_every_iterate_matches_optax(make, problem, dtype):
    with jax.enable_x64(dtype == "float64"):
        # Built inside the context: float64 hyperparameter leaves (Optax's are Python
        # floats, used in double precision).
        f, params = problem(jnp.dtype(dtype))
        with jax.numpy_dtype_promotion("standard"):
            ours, ours_state = run(make(eqopt), f, params, 25)
            theirs, their_state = run(make(optax), f, params, 25)
        assert_trees_allclose(ours, theirs)
        assert f(jax.tree.map(lambda x: x[-1], ours)) < f(params)
        if make in (backtracking, backtracking_store_grad):
            ours_search, their_search = ours_state[-1], their_state[-1]
            for name in ("learning_rate", "value", "grad"):
                assert_trees_allclose(
                    getattr(ours_search, name), getattr(their_search, name)
                )
            np.testing.assert_array_equal(
                ours_search.info.num_linesearch_steps,
                their_search.info.num_linesearch_steps,
            )


def test_state_names_and_dtypes_match_optax():
    f, params = logistic_regression(jnp.float32)
    ours = eqopt.scale_by_backtracking_linesearch(10, store_grad=True).init(params)
    theirs = optax.scale_by_backtracking_linesearch(10, store_grad=True).init(params)
    assert type(ours).__name__ == type(theirs).__name__
    for name in ("learning_rate", "value", "grad"):
        assert_trees_allclose(getattr(ours, name), getattr(theirs, name))
    for name in theirs.info._fields:
        assert_trees_allclose(getattr(ours.info, name), getattr(theirs.info, name))
    assert eqopt.ScaleByBacktrackingLinesearchState is type(ours)


def test_store_grad_keeps_the_gradient_at_the_accepted_point():
    f, params = rosenbrock(jnp.float32)
    opt = eqopt.chain(
        eqopt.sgd(1.0), eqopt.scale_by_backtracking_linesearch(15, store_grad=True)
    )
    state = opt.init(params)
    for _ in range(3):
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = eqopt.apply_updates(params, updates)
        search = state[1]
        assert_trees_allclose(search.value, f(params), rtol=1e-6)
        assert_trees_allclose(search.grad, jax.grad(f)(params), rtol=1e-5, atol=1e-5)


class Classifier(eqx.Module):
    mlp: eqx.nn.MLP  # holds activation functions: non-array leaves
    label: str


def test_equinox_model_as_parameters_matches_optax_on_its_arrays():
    model = Classifier(eqx.nn.MLP(3, 1, 8, 1, key=jr.key(0)), "classifier")
    x = jr.normal(jr.key(1), (64, 3))
    y = jnp.sin(x.sum(axis=1, keepdims=True))

    def loss(m):
        return jnp.mean((jax.vmap(m.mlp)(x) - y) ** 2)

    opt = backtracking_store_grad(eqopt)
    state = opt.init(model)
    arrays, static = eqx.partition(model, eqx.is_inexact_array)
    loss_of_arrays = lambda a: loss(eqx.combine(a, static))
    reference = backtracking_store_grad(optax)
    ref_state = reference.init(arrays)

    @eqx.filter_jit
    def step(model, state, arrays, ref_state):
        value, grad = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(
            grad, state, model, value=value, grad=grad, value_fn=loss
        )
        value, grad = jax.value_and_grad(loss_of_arrays)(arrays)
        expected, ref_state = reference.update(
            grad, ref_state, arrays, value=value, grad=grad, value_fn=loss_of_arrays
        )
        return (
            eqopt.apply_updates(model, updates),
            state,
            optax.apply_updates(arrays, expected),
            ref_state,
        )

    start = loss(model)
    for _ in range(10):
        model, state, arrays, ref_state = step(model, state, arrays, ref_state)
        assert_trees_allclose(eqx.filter(model, eqx.is_inexact_array), arrays)
    assert model.label == "classifier" and model.mlp.activation is jax.nn.relu
    assert loss(model) < start


def test_value_fn_closing_over_data_passed_as_jit_arguments():
    """The data are arguments of the jitted step (one compilation for new data), both
    closed over by `value_fn` and passed as Optax's extra keyword arguments."""

    def fn(params, x, y):
        return jnp.mean((x @ params - y) ** 2)

    opt = backtracking(eqopt)
    reference = backtracking(optax)

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(params, state, ref_state, x, y):
        value, grad = jax.value_and_grad(fn)(params, x, y)
        closure = lambda p: fn(p, x, y)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=closure
        )
        by_keyword, _ = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=fn, x=x, y=y
        )
        expected, ref_state = reference.update(
            grad, ref_state, params, value=value, grad=grad, value_fn=fn, x=x, y=y
        )
        return updates, by_keyword, expected, state, ref_state

    params = jnp.zeros(4)
    state, ref_state = opt.init(params), reference.init(params)
    # Optax's initial state holds a weakly typed int, its updated state a strong one:
    # that alone would retrace (optax#1171). Made strong here; eqopt's state is.
    ref_state = jax.tree.map(lambda x: jnp.array(x, dtype=x.dtype), ref_state)
    for i in range(3):  # new data at every step, same shapes: no new trace
        x = jr.normal(jr.key(i), (32, 4))
        y = x @ jnp.arange(4.0)
        updates, by_keyword, expected, state, ref_state = step(
            params, state, ref_state, x, y
        )
        assert_trees_allclose(updates, expected)
        params = params + updates


def test_eager_updates_compile_the_search_once():
    """Called eagerly step after step, the search is traced once (Optax's re-traces and
    recompiles its `while_loop` at every call: optax#1171)."""
    traces = []

    def f(x):
        traces.append(None)  # runs when traced, not when the compiled code runs
        return jnp.sum((x - 1.0) ** 4)

    opt = backtracking(eqopt)
    params = jnp.zeros(3)
    state = opt.init(params)
    counts = []
    for _ in range(4):
        value, grad = jnp.sum((params - 1.0) ** 4), 4 * (params - 1.0) ** 3
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f
        )
        params = params + updates
        counts.append(len(traces))
    assert counts[0] > 0 and counts == [counts[0]] * 4


def test_vmap_over_problems_matches_separate_solves():
    """A batch of least-squares problems (different data, same shapes) in one vmapped
    run equals each solved alone."""
    xs = jr.normal(jr.key(0), (4, 16, 3))
    ys = jr.normal(jr.key(1), (4, 16))
    opt = backtracking_store_grad(eqopt)

    def solve(x, y):
        f = lambda p: jnp.mean((x @ p - y) ** 2)
        return run(opt, f, jnp.zeros(3), 10)[0][-1]

    batched = jax.vmap(solve)(xs, ys)
    for i in range(4):
        assert_trees_allclose(batched[i], solve(xs[i], ys[i]), rtol=1e-5, atol=1e-6)


def test_non_finite_values_make_the_search_step_back():
    """Too long a step leaves the objective's domain (NaN); the search shrinks it until
    the value is finite, as Optax's, and nothing in the state is NaN."""

    def f(x):
        return jnp.sum(x - jnp.log(x))  # NaN for x < 0; minimum at x = 1

    params = jnp.asarray([0.1, 0.2, 3.0])
    for lib in (eqopt, optax):
        opt = lib.chain(lib.sgd(1.0), lib.scale_by_backtracking_linesearch(30))
        iterates, state = run(opt, f, params, 10)
        assert tree_isfinite((iterates, state))
        if lib is eqopt:
            ours = iterates
    assert_trees_allclose(ours, iterates)
    assert f(ours[-1]) < f(params)


def test_an_objective_without_finite_values_makes_no_step():
    """If every step size tried gives a non-finite value, the step is zero, even where
    the direction is not finite (Optax's is `0 * nan = nan` there), and the state says
    so: learning rate 0, infinite decrease error."""
    f = lambda x: jnp.sum(jnp.log(-x))  # NaN for every positive x
    params = jnp.asarray([1.0, 2.0])
    opt = eqopt.scale_by_backtracking_linesearch(5)
    state = opt.init(params)
    direction = jnp.asarray([-1.0, jnp.nan])
    updates, state = opt.update(
        direction, state, params, value=f(params), grad=jnp.ones(2), value_fn=f
    )
    np.testing.assert_array_equal(updates, jnp.zeros(2))
    assert state.learning_rate == 0
    assert jnp.isinf(state.info.decrease_error)
    assert state.info.num_linesearch_steps == 6  # the first step size and 5 backtracks


@pytest.mark.parametrize(
    "before",
    [
        lambda: eqopt.adam(0.1),
        lambda: eqopt.chain(eqopt.clip_by_global_norm(1.0), eqopt.rmsprop(0.05)),
        lambda: eqopt.lion(0.05),
        lambda: eqopt.flatten(eqopt.sgd(0.5, momentum=0.5)),
    ],
    ids=["adam", "clip-rmsprop", "lion", "flatten-sgd"],
)
def test_backtracking_composes_with_other_chains(before):
    """Any eqopt optimiser may come first (its updates, if a descent direction, are
    rescaled), and a transformation after the search is fine too."""
    f, params = rosenbrock(jnp.float32)
    opt = eqopt.chain(
        before(), eqopt.scale_by_backtracking_linesearch(15), eqopt.trace(0.1)
    )
    iterates, state = run(opt, f, params, 15)
    assert tree_isfinite(iterates) and f(iterates[-1]) < f(params)


def test_every_transformation_accepts_and_ignores_the_linesearch_arguments():
    """The extra keyword arguments reach every transformation of a chain; all those
    that do not use them accept them (checked abstractly, without compiling)."""
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    f = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))
    grads = jax.grad(f)(params)
    extra = dict(value=f(params), grad=grads, value_fn=f)
    for case in REGISTRY:
        if case.extra_args is not None:
            continue
        opt = case.make(case.h or 0.1)
        plain = eqx.filter_eval_shape(
            lambda o: o.update(grads, o.init(params), params), opt
        )
        with_extra = eqx.filter_eval_shape(
            lambda o: o.update(grads, o.init(params), params, **extra), opt
        )
        assert jax.tree.structure(plain) == jax.tree.structure(with_extra), case.id


# Errors a user can hit.


def _update(opt, **extra):
    params = jnp.ones(3)
    return opt.update(params, opt.init(params), params, **extra)


FULL = dict(value=jnp.asarray(3.0), grad=jnp.ones(3), value_fn=lambda p: jnp.sum(p))


@pytest.mark.parametrize("missing", ["value", "grad", "value_fn"])
def test_missing_linesearch_argument_is_named_with_optax_call(missing):
    extra = {k: v for k, v in FULL.items() if k != missing}
    opt = eqopt.chain(eqopt.sgd(1.0), eqopt.scale_by_backtracking_linesearch(5))
    with pytest.raises(TypeError, match=f"keyword argument `{missing}`") as error:
        _update(opt, **extra)
    assert "value=value, grad=grad, value_fn=f" in str(error.value)
    assert "scale_by_backtracking_linesearch.update" in str(error.value)


def test_all_missing_linesearch_arguments_are_named():
    with pytest.raises(TypeError, match="`value` .*; `grad` .*; `value_fn` "):
        _update(eqopt.scale_by_backtracking_linesearch(5))


def test_linesearch_without_params_is_an_error():
    opt = eqopt.scale_by_backtracking_linesearch(5)
    with pytest.raises(TypeError, match="needs the current parameters `params`"):
        opt.update(jnp.ones(3), opt.init(jnp.ones(3)), None, **FULL)


def test_unexpected_keyword_arguments_are_named():
    with pytest.raises(TypeError, match=r"\['z'\] are not arguments of `value_fn`"):
        _update(eqopt.scale_by_backtracking_linesearch(5), z=1.0, **FULL)


@pytest.mark.parametrize(
    "opt", [lambda: eqopt.polyak_sgd(), lambda: eqopt.scale_by_polyak()]
)
def test_polyak_without_value_is_named_with_the_call(opt):
    with pytest.raises(TypeError, match="keyword argument `value`") as error:
        _update(opt())
    assert "opt.update(grad, state, params, value=value)" in str(error.value)


@pytest.mark.parametrize(
    "factory, kwargs, message",
    [
        (
            eqopt.scale_by_backtracking_linesearch,
            dict(max_backtracking_steps=-1),
            r"max_backtracking_steps=-1",
        ),
        (
            eqopt.scale_by_backtracking_linesearch,
            dict(max_backtracking_steps=5, decrease_factor=1.0),
            r"`scale_by_backtracking_linesearch\(decrease_factor=...\)`.*1.0",
        ),
        (
            eqopt.scale_by_backtracking_linesearch,
            dict(max_backtracking_steps=5, slope_rtol=-1e-4),
            r"slope_rtol",
        ),
        (
            eqopt.scale_by_backtracking_linesearch,
            dict(max_backtracking_steps=5, max_learning_rate=0.0),
            r"max_learning_rate",
        ),
        (eqopt.scale_by_polyak, dict(variant="sps-"), r"variant='sps-'"),
        (eqopt.scale_by_polyak, dict(eps=-1.0), r"`scale_by_polyak\(eps=...\)`"),
        (eqopt.polyak_sgd, dict(variant="x"), r"`polyak_sgd\(variant=...\)`"),
        (eqopt.polyak_sgd, dict(max_learning_rate=-1.0), r"max_learning_rate=-1.0"),
    ],
)
def test_out_of_range_settings_are_named(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_settings_are_leaves_and_infinite_increase_factor_is_allowed():
    opt = eqopt.scale_by_backtracking_linesearch(7, increase_factor=float("inf"))
    leaves = jax.tree.leaves(opt)
    assert len(leaves) == 6 and all(eqx.is_inexact_array(x) for x in leaves)
    assert opt.max_backtracking_steps == 7


def test_verbose_prints_when_the_search_fails(capfd):
    f = lambda x: jnp.sum(x**2)
    params = jnp.ones(2)
    opt = eqopt.scale_by_backtracking_linesearch(3, verbose=True)
    # An ascent direction: no step size decreases the objective.
    opt.update(
        params, opt.init(params), params, value=f(params), grad=params, value_fn=f
    )
    jax.effects_barrier()
    assert "failed to find a stepsize" in capfd.readouterr().out


def test_polyak_handles_a_zero_gradient():
    opt = eqopt.polyak_sgd()
    zeros = jnp.zeros(3)
    updates, _ = opt.update(zeros, opt.init(zeros), zeros, value=jnp.asarray(1.0))
    np.testing.assert_array_equal(updates, zeros)


# NNLS.


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("columns", [None, 3])
@pytest.mark.parametrize("L", [None, 50.0])
def test_nnls_matches_optax(dtype, columns, L):
    with jax.enable_x64(dtype == "float64"):
        A = jr.normal(jr.key(0), (12, 5), dtype)
        shape = (12,) if columns is None else (12, columns)
        b = jr.normal(jr.key(1), shape, dtype)
        ours = eqopt.nnls(A, b, 200, L=L)
        assert ours.shape == (5,) + shape[1:] and ours.dtype == A.dtype
        assert_trees_allclose(ours, optax.nnls(A, b, 200, L=L))


def test_nnls_solves_the_problem_and_is_differentiable():
    A = jr.normal(jr.key(2), (20, 6))
    b = jr.normal(jr.key(3), (20,))
    x = eqopt.nnls(A, b, 3000)
    gradient = A.T @ (A @ x - b)  # KKT: x >= 0, gradient >= 0, x * gradient = 0
    assert jnp.all(x >= 0) and jnp.any(x > 0)
    assert jnp.all(gradient >= -1e-4) and jnp.all(jnp.abs(x * gradient) < 1e-4)
    np.testing.assert_array_equal(eqopt.nnls(A, b, 3000, unroll=4), x)
    db = jax.grad(lambda b: jnp.sum(eqopt.nnls(A, b, 100)))(b)
    assert tree_isfinite(db)
    np.testing.assert_array_equal(eqopt.nnls(jnp.zeros((3, 2)), jnp.ones(3), 10), 0)


@pytest.mark.parametrize(
    "A, b", [(jnp.ones(3), jnp.ones(3)), (jnp.ones((3, 2)), jnp.ones(4))]
)
def test_nnls_rejects_mismatched_shapes(A, b):
    with pytest.raises((TypeError, ValueError)):
        eqopt.nnls(A, b, 10)


def test_hypergradients_through_the_search_match_finite_differences():
    """Reverse-mode through the search (Optax's `while_loop` has none): where the
    number of backtracks stays the same, the trained loss is smooth in the settings.
    On `x**2` from `sgd(h)`, `h = 1.2` overshoots once and `eta = 0.8` is accepted at
    each step: the loss after 5 steps is `(1 - 2 * 0.8 * h)**10 * x0**2`."""
    with jax.enable_x64(True):
        f = lambda x: jnp.sum(x**2)
        x0 = jnp.asarray([1.0, -2.0])

        def trained_loss(h, decrease_factor):
            opt = eqopt.chain(
                eqopt.sgd(h),
                eqopt.scale_by_backtracking_linesearch(
                    15, decrease_factor=decrease_factor
                ),
            )
            iterates, _ = run(opt, f, x0, 5)
            return f(iterates[-1])

        settings = (jnp.asarray(1.2), jnp.asarray(0.8))
        gradient = jax.grad(trained_loss, argnums=(0, 1))(*settings)
        eps = 1e-6
        for i in range(2):
            ahead = [s + eps * (j == i) for j, s in enumerate(settings)]
            behind = [s - eps * (j == i) for j, s in enumerate(settings)]
            difference = (trained_loss(*ahead) - trained_loss(*behind)) / (2 * eps)
            np.testing.assert_allclose(gradient[i], difference, rtol=1e-6)
        h, beta = settings
        closed_form = 10 * (1 - 2 * beta * h) ** 9 * (-2 * beta) * f(x0)
        np.testing.assert_allclose(gradient[0], closed_form, rtol=1e-10)

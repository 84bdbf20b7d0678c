"""Optimiser state sharded over the data axis while the parameters stay replicated
(ZeRO-1, `eqopt.state_shardings`), on the eight CPU devices of `conftest.py`.

Jitted steps with the sharded state give the numbers of the unsharded steps; each
device holds 1/8 of every moment whose shape divides by 8; the parameters stay
replicated (or sharded over the model axis only).
"""

import functools as ft
import math
import pathlib
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import eqopt

from .helpers import assert_trees_allclose
from .registry import REGISTRY


MESH = jax.make_mesh((8,), ("data",))
MESH_2D = jax.make_mesh((4, 2), ("data", "model"))
REPLICATED = NamedSharding(MESH, P())


def _params():
    keys = jr.split(jr.key(0), 3)
    return {
        "w": jr.normal(keys[0], (64, 32)),
        "b": jr.normal(keys[1], (32,)),
        "s": jr.normal(keys[2], ()),
    }


def _loss(p):
    return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum(p["b"] ** 2) + p["s"] ** 2


def _place(tree, layout):
    return jax.tree.map(lambda x, s: jax.device_put(x, s), tree, layout)


def _shardings(tree):
    return jax.tree.map(lambda x: x.sharding, tree)


def _bytes(tree):
    """(Total bytes, bytes held by device 0) over the arrays of `tree`."""
    leaves = jax.tree.leaves(tree)
    total = sum(leaf.nbytes for leaf in leaves)
    on_one = sum(leaf.addressable_shards[0].data.nbytes for leaf in leaves)
    return total, on_one


def _init(opt, params, shardings):
    return jax.jit(lambda opt, params: opt.init(params), out_shardings=shardings)(
        opt, params
    )


def _step(case, opt, params, state):
    updates, state = case.update(opt, state, params, _loss)
    return eqopt.apply_updates(params, updates), state


def _zero_step(case, zero, layout, opt, params, state):
    """One ZeRO-1 step on a mesh of `Explicit` axes: gradients and parameters are
    resharded to the moments' layout (a local slice of a replicated array), updated
    there, and the new parameters resharded to their own layout (an all-gather)."""
    grads = eqx.filter_grad(_loss)(params)
    grads, params = jax.sharding.reshard((grads, params), (zero, zero))
    updates, state = case.update(opt, state, params, _loss, grads=grads)
    return jax.sharding.reshard(eqopt.apply_updates(params, updates), layout), state


def _run(case, opt, params, state, steps=3):
    step = jax.jit(ft.partial(_step, case))
    for _ in range(steps):
        params, state = step(opt, params, state)
    return params, state


def _run_zero(case, opt, params, state, shardings, steps=3):
    layout = _shardings(params)
    step = jax.jit(
        ft.partial(_zero_step, case, eqopt.update_shardings(params), layout),
        out_shardings=(layout, shardings),
    )
    for _ in range(steps):
        params, state = step(opt, params, state)
    return params, state


_CASE_IDS = (
    "adam",
    "adamw",
    "sgd-momentum",
    "rmsprop-centered-momentum",
    "lion",
    "lamb",
    "adafactor",  # factored statistics: not mirrors of parameters, sharded on their own
    "flatten-adam",  # one flat vector of 2,081 elements: no dimension divides by 8
    "masked-adam",
    "MultiSteps-adam",
    "schedule_free_adamw",
    "prodigy",
    "polyak_sgd",  # takes `value` as an extra argument
    "lbfgs",  # its memory of past steps is a history of each parameter: split too
    "mars",
    "adam_mini",  # one second moment per block: replicated, the first moment split
    "soap",  # per-axis statistics and bases: not mirrors, replicated
    "shampoo",
    "kron",
    "ema_params-adamw",  # the average of the parameters is a mirror: split too
)
CASES = tuple(c for c in REGISTRY if c.id in _CASE_IDS)


def test_cases_found():
    assert sorted(c.id for c in CASES) == sorted(_CASE_IDS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_zero_sharded_state_gives_the_unsharded_numbers(case):
    opt = case.make(case.h or 0.1)
    if not case.descends:
        opt = eqopt.chain(opt, eqopt.scale(-0.01))
    params = _params()
    expected = _run(case, opt, params, opt.init(params))

    replicated = _place(params, jax.tree.map(lambda _: REPLICATED, params))
    shardings = eqopt.state_shardings(opt, replicated, axis="data")
    state = _init(opt, replicated, shardings)
    new_params, new_state = _run_zero(case, opt, replicated, state, shardings)
    assert_trees_allclose(new_params, expected[0], rtol=1e-6, atol=1e-6)
    # L-BFGS's dot products over the whole tree add up the eight blocks in another
    # order than the unsharded sum; its two-loop recursion amplifies that to ~1e-4.
    tol = 1e-4 if case.id == "lbfgs" else 1e-6
    assert_trees_allclose(new_state, expected[1], rtol=tol, atol=tol)
    for leaf in jax.tree.leaves(new_params):
        assert leaf.sharding.is_fully_replicated
    # Every moment (a state leaf mirroring a parameter: its path ends with the
    # parameter's name, and its shape is the parameter's) is split eight ways; all
    # other leaves (scalars, factored statistics, `flatten`'s vector) are whole.
    split = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(new_state)[0]:
        name = getattr(path[-1], "key", None)  # `...mu['w']`, not `...mu['b'][0]`
        shape = params[name].shape if name in params else None
        # A moment, or a history of the parameter (L-BFGS's memory, `(k, *shape)`).
        mirrors = shape not in (None, ()) and shape in (leaf.shape, leaf.shape[1:])
        on_one = leaf.addressable_shards[0].data.nbytes
        assert on_one * (8 if mirrors else 1) == leaf.nbytes, (path, on_one)
        split += mirrors
    moments = 0 if case.id in ("flatten-adam", "polyak_sgd") else 1
    assert split >= moments, "no moment was split"
    total, on_one = _bytes(new_state)
    print(f"{case.id}: state {total} B in all, {on_one} B per device")


def test_adam_moments_take_one_eighth_per_device(capsys):
    opt = eqopt.adam(1e-2)
    params = _place(_params(), jax.tree.map(lambda _: REPLICATED, _params()))
    shardings = eqopt.state_shardings(opt, params)
    state = _init(opt, params, shardings)
    mu_nu = (state[0].mu, state[0].nu)
    total, on_one = _bytes(mu_nu)
    # mu and nu: 2 x (64*32 + 32 + 1) float32 numbers; each device holds 1/8 of the
    # matrix and vector moments, and the scalar's moments whole.
    assert total == 2 * (64 * 32 + 32 + 1) * 4 == 16_648
    assert on_one == 2 * ((64 * 32 + 32) // 8 + 1) * 4 == 2_088
    unsharded_total, unsharded_on_one = _bytes((opt.init(params)[0].mu,) * 2)
    assert unsharded_on_one == unsharded_total == total
    assert state[0].mu["w"].sharding.spec == P("data", None)
    assert state[0].mu["b"].sharding.spec == P("data")
    assert state[0].count.sharding.is_fully_replicated
    params_total, params_on_one = _bytes(params)
    assert params_on_one == params_total  # replicated
    with capsys.disabled():
        print(
            f"\nadam, 8 devices: mu+nu {total} B in all; per device {on_one} B with "
            f"ZeRO-1, {unsharded_on_one} B replicated; parameters {params_on_one} B "
            "per device (replicated)"
        )


def test_step_computes_moments_on_slices_and_gathers_the_update():
    opt = eqopt.adam(1e-2)
    params = _place(_params(), jax.tree.map(lambda _: REPLICATED, _params()))
    case = next(c for c in REGISTRY if c.id == "adam")

    layout = _shardings(params)

    def compiled(shardings, zero, state):
        step = jax.jit(
            ft.partial(_zero_step, case, zero, layout),
            out_shardings=(layout, shardings),
        )
        return step.lower(opt, params, state).compile().as_text()

    shardings = eqopt.state_shardings(opt, params)
    zero = compiled(
        shardings, eqopt.update_shardings(params), _init(opt, params, shardings)
    )
    plain_shardings = jax.tree.map(lambda _: REPLICATED, opt.init(params))
    plain = compiled(plain_shardings, layout, _init(opt, params, plain_shardings))
    # The moments' arithmetic runs on each device's 8 x 32 block of `w` ...
    assert "f32[8,32]" in zero and "f32[8,32]" not in plain
    # ... and the parameters' update is gathered back to every device.
    assert "all-gather" in zero and "all-gather" not in plain


def test_model_axis_mesh_keeps_parameter_layout_and_adds_data():
    layout = {
        "w": NamedSharding(MESH_2D, P(None, "model")),
        "b": NamedSharding(MESH_2D, P("model")),
        "s": NamedSharding(MESH_2D, P()),
    }
    params = _place(_params(), layout)
    opt = eqopt.adamw(1e-2, weight_decay=1e-3)
    shardings = eqopt.state_shardings(opt, params, axis="data")
    mu = shardings[0].mu
    assert mu["w"].spec == P("data", "model")
    assert mu["b"].spec == P(("model", "data"))
    assert mu["s"].spec == P()
    case = next(c for c in REGISTRY if c.id == "adamw")
    expected = _run(case, opt, _params(), opt.init(_params()))
    state = _init(opt, params, shardings)
    new_params, new_state = _run_zero(case, opt, params, state, shardings)
    assert_trees_allclose(new_params, expected[0], rtol=1e-6, atol=1e-6)
    assert_trees_allclose(new_state, expected[1], rtol=1e-6, atol=1e-6)
    for name, leaf in new_params.items():
        assert leaf.sharding.is_equivalent_to(layout[name], leaf.ndim), name
    # The parameters are split over "model" (2 ways), the moments over both (8 ways).
    for name in ("w", "b"):
        assert new_params[name].addressable_shards[0].data.nbytes * 2 == 4 * math.prod(
            new_params[name].shape
        )
        for moment in (new_state[0].mu[name], new_state[0].nu[name]):
            assert moment.addressable_shards[0].data.nbytes * 8 == moment.nbytes


@pytest.mark.parametrize("case_id", ["adam", "galore"])
def test_auto_axes_with_sharding_constraint(case_id):
    # GaLore's projector has the shape and path of its parameter, so it is split like
    # a moment, while GaLore recomputes it whole in a `lax.cond`: on `Explicit` axes
    # JAX rejects the two branches' layouts (see the how-to); on `Auto` axes it runs.
    case = next(c for c in REGISTRY if c.id == case_id)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    params = _place(_params(), jax.tree.map(lambda _: replicated, _params()))
    opt = case.make(case.h)
    shardings = eqopt.state_shardings(opt, params)
    layout = _shardings(params)

    @jax.jit
    def step(opt, params, state):
        grads = jax.grad(_loss)(params)
        updates, state = opt.update(grads, state, params)
        state = jax.lax.with_sharding_constraint(state, shardings)
        params = eqopt.apply_updates(params, updates)
        params = jax.lax.with_sharding_constraint(params, layout)
        return params, state

    state = _init(opt, params, shardings)
    for _ in range(3):
        params, state = step(opt, params, state)
    expected_params, expected_state = _run(case, opt, _params(), opt.init(_params()))
    assert_trees_allclose(params, expected_params, rtol=1e-6, atol=1e-6)
    assert_trees_allclose(state, expected_state, rtol=1e-6, atol=1e-6)
    mu = state[0].mu if case_id == "adam" else state[0].base_optimizer_state.mu
    assert mu["b"].addressable_shards[0].data.shape == (4,)
    assert params["w"].sharding.is_fully_replicated


def test_equinox_model():
    model = eqx.nn.MLP(16, 8, 32, 2, key=jr.key(1))
    arrays, static = eqx.partition(model, eqx.is_array)
    arrays = jax.tree.map(lambda x: jax.device_put(x, REPLICATED), arrays)
    model = eqx.combine(arrays, static)
    opt = eqopt.adamw(1e-2)
    shardings = eqopt.state_shardings(opt, model)  # the model, activations included
    assert shardings[0].mu.layers[0].weight.spec == P("data", None)
    assert shardings[0].mu.layers[2].weight.spec == P(None, "data")  # (8, 32)
    assert shardings[0].mu.activation is None
    x = jr.normal(jr.key(2), (4, 16))

    def loss(model):
        return jnp.mean(jax.vmap(model)(x) ** 2)

    layout = _shardings(eqx.filter(model, eqx.is_array))
    zero = eqopt.update_shardings(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(opt, model, state):
        grads = eqx.filter_grad(loss)(model)
        arrays, static = eqx.partition(model, eqx.is_array)
        grads, arrays = jax.sharding.reshard((grads, arrays), (zero, zero))
        model = eqx.combine(arrays, static)
        updates, state = opt.update(grads, state, model)
        model = eqopt.apply_updates(model, updates)
        state = jax.sharding.reshard(state, shardings)
        arrays, static = eqx.partition(model, eqx.is_array)
        arrays = jax.sharding.reshard(arrays, layout)
        return eqx.combine(arrays, static), state

    with jax.set_mesh(MESH):  # `init` makes arrays from no input: give them a mesh
        state = eqx.filter_jit(
            lambda opt, model: jax.sharding.reshard(opt.init(model), shardings)
        )(opt, model)
    unsharded = jax.tree.map(lambda x: jnp.asarray(jax.device_get(x)), arrays)
    expected_model = eqx.combine(unsharded, static)
    expected_state = opt.init(expected_model)
    for _ in range(3):
        model, state = step(opt, model, state)
        expected_model, expected_state = _plain_step(
            opt, expected_model, expected_state, loss
        )
    assert_trees_allclose(
        eqx.filter(model, eqx.is_array),
        eqx.filter(expected_model, eqx.is_array),
        rtol=1e-6,
        atol=1e-6,
    )
    weight = state[0].mu.layers[0].weight
    assert weight.addressable_shards[0].data.nbytes * 8 == weight.nbytes
    assert model.layers[0].weight.sharding.is_fully_replicated
    total, on_one = _bytes(state)
    print(f"MLP adamw: state {total} B in all, {on_one} B per device")


@eqx.filter_jit
def _plain_step(opt, model, state, loss):
    grads = eqx.filter_grad(loss)(model)
    updates, state = opt.update(grads, state, model)
    return eqopt.apply_updates(model, updates), state


def test_leaves_that_do_not_divide_fall_back():
    params = {
        "odd": jax.device_put(jnp.ones((3, 5)), REPLICATED),
        "short": jax.device_put(jnp.ones(12), REPLICATED),
        "tall": jax.device_put(jnp.ones((12, 8)), REPLICATED),
        "fsdp": jax.device_put(jnp.ones((16, 8)), NamedSharding(MESH, P("data"))),
    }
    mu = eqopt.state_shardings(eqopt.adam(1e-3), params)[0].mu
    assert mu["odd"].spec == P(None, None)  # replicated, as the parameter
    assert mu["short"].spec == P(None)
    assert mu["tall"].spec == P(None, "data")  # the one dimension that divides
    assert mu["fsdp"].spec == P("data", None)  # already split over "data": kept
    # On 4 x 2, both dimensions of `tall` divide by 4: the larger one is split.
    tall = jax.device_put(jnp.ones((12, 8)), NamedSharding(MESH_2D, P()))
    (state,) = eqopt.state_shardings(eqopt.sgd(1e-3, momentum=0.9), tall)[:1]
    assert state.trace.spec == P("data", None)
    # Adafactor's factored statistics mirror no parameter: they are replicated.
    adafactor = eqopt.adafactor(1e-3)
    factored = eqopt.state_shardings(adafactor, params)
    shapes = jax.eval_shape(adafactor.init, params)
    param_shapes = {p.shape for p in params.values()}
    factors = 0
    for sharding, leaf in zip(jax.tree.leaves(factored), jax.tree.leaves(shapes)):
        if leaf.shape not in param_shapes:  # row and column factors
            factors += 1
            assert sharding.is_fully_replicated, leaf.shape
    assert factors >= 2


def test_abstract_parameters():
    params = _params()
    structs = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=REPLICATED), params
    )
    opt = eqopt.adam(1e-3)
    from_structs = eqopt.state_shardings(opt, structs)
    placed = _place(params, jax.tree.map(lambda _: REPLICATED, params))
    assert from_structs == eqopt.state_shardings(opt, placed)
    # Unplaced parameters with an explicit mesh: replicated, then split.
    assert eqopt.state_shardings(opt, params, mesh=MESH) == from_structs


def test_errors_name_the_argument():
    params = _place(_params(), jax.tree.map(lambda _: REPLICATED, _params()))
    opt = eqopt.adam(1e-3)
    with pytest.raises(ValueError, match=r"`axis='batch'` is not an axis of the mesh"):
        eqopt.state_shardings(opt, params, axis="batch")
    with pytest.raises(ValueError, match="found no mesh.*`mesh=`"):
        eqopt.state_shardings(opt, _params())
    with pytest.raises(ValueError, match=r"`params\['b'\]` is laid out on a mesh"):
        eqopt.state_shardings(opt, params, mesh=MESH_2D)
    mixed = dict(params, w=jax.device_put(params["w"], NamedSharding(MESH_2D, P())))
    with pytest.raises(ValueError, match="different meshes"):
        eqopt.state_shardings(opt, mixed)


def test_how_to_runs_as_written(capsys):
    """The how-to's Python blocks, in order, in one namespace, print its figures."""
    page = pathlib.Path(__file__).parent.parent / "docs/how-to/zero-state-sharding.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert len(blocks) == 3
    namespace = {}
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(blocks[0], "zero-state-sharding.md", "exec"), namespace)
        printed = capsys.readouterr().out
        for block in blocks[1:]:
            exec(compile(block, "zero-state-sharding.md", "exec"), namespace)
    assert "parameters (per device, in all): (1049600, 1049600)" in printed
    assert "state      (per device, in all): (262404, 2099204)" in printed
    assert printed in page.read_text()
    state = namespace["state"]  # the Equinox model's, from the last block
    weight = state[0].mu.layers[0].weight
    assert weight.addressable_shards[0].data.nbytes * 8 == weight.nbytes

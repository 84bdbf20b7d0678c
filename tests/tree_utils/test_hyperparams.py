"""`tree_get_hyperparams` / `tree_set_hyperparams`: hyperparameters by name through any
nesting, converted as the constructor does; and the warning for the plain-float
`eqx.tree_at` mistake."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

import eqopt
from eqopt.tree_utils import tree_get_hyperparams, tree_set_hyperparams


def _opt():
    return eqopt.chain(
        eqopt.clip_by_global_norm(1.0),
        eqopt.chain(eqopt.adamw(1e-3, weight_decay=0.1)),
        eqopt.scale_by_learning_rate(0.5),
    )


def _params():
    return {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def test_one_line_sets_every_match_as_an_array_leaf():
    opt = tree_set_hyperparams(_opt(), learning_rate=3e-4, b1=0.8)
    found = tree_get_hyperparams(opt, "learning_rate")
    assert len(found) == 2
    for _, value in found:
        assert isinstance(value, jax.Array) and value.dtype == jnp.float32
        assert value == jnp.float32(3e-4)
    assert opt.transforms[1].transforms[0].b1 == jnp.float32(0.8)
    # The structure is unchanged: the same compiled step serves the new optimiser.
    assert jax.tree.structure(opt) == jax.tree.structure(_opt())


def test_paths_and_filtering_pick_one():
    found = tree_get_hyperparams(_opt(), "learning_rate")
    paths = [jtu.keystr(path) for path, _ in found]
    assert paths[0].endswith("AdamW.learning_rate")
    assert paths[1].endswith("ScaleByLearningRate.learning_rate")

    def only_adamw(path, value):
        return path[-1].tuple_name == "AdamW"

    opt = tree_set_hyperparams(_opt(), only_adamw, learning_rate=0.01)
    assert opt.transforms[1].transforms[0].learning_rate == jnp.float32(0.01)
    assert opt.transforms[2].learning_rate == 0.5
    assert len(tree_get_hyperparams(_opt(), "learning_rate", only_adamw)) == 1


def test_schedules_are_converted_and_searched():
    opt = tree_set_hyperparams(
        _opt(),
        lambda p, v: p[-1].tuple_name == "AdamW",
        learning_rate=eqopt.linear_schedule(1e-3, 0.0, 10),
    )
    assert isinstance(
        opt.transforms[1].transforms[0].learning_rate, eqopt.schedules.LinearSchedule
    )
    opt = tree_set_hyperparams(opt, end_value=1e-5)  # a schedule's own field
    assert opt.transforms[1].transforms[0].learning_rate.end_value == jnp.float32(1e-5)


def test_range_checks_run_again():
    with pytest.raises(ValueError, match=r"b1=1.5"):
        tree_set_hyperparams(_opt(), b1=1.5)


def test_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="nope"):
        tree_set_hyperparams(_opt(), nope=1.0)


def test_no_retrace_when_set_values_change():
    params = _params()

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(opt, state, params):
        updates, state = opt.update(params, state, params)
        return eqopt.apply_updates(params, updates), state

    state = _opt().init(params)
    for lr in (1e-3, 2e-3, 3e-3):
        params, state = step(
            tree_set_hyperparams(_opt(), learning_rate=lr), state, params
        )


def test_inject_hyperparams_state_and_module():
    params = _params()
    opt = eqopt.inject_hyperparams(eqopt.adam)(learning_rate=0.1)
    state = tree_set_hyperparams(opt.init(params), learning_rate=0.5)
    assert state.hyperparams["learning_rate"] == 0.5
    assert state.hyperparams["learning_rate"].dtype == jnp.float32  # as before
    assert not state.hyperparams["learning_rate"].weak_type
    opt = tree_set_hyperparams(opt, learning_rate=0.2)
    assert isinstance(opt.hyperparams["learning_rate"], jax.Array)
    paths = [jtu.keystr(p) for p, _ in tree_get_hyperparams(state, "learning_rate")]
    assert paths == ["InjectStatefulHyperparamsState.hyperparams['learning_rate']"]


def test_plain_float_tree_at_warns_at_trace_time_naming_the_field():
    params = _params()
    opt = _opt()
    state = opt.init(params)
    bad = eqx.tree_at(lambda o: o.transforms[1].transforms[0].learning_rate, opt, 0.01)
    bad.update(params, state, params)  # eager: harmless, no warning
    match = r"`AdamW.learning_rate` is a Python float"  # its owner, named once
    with pytest.warns(UserWarning, match=match):
        eqx.filter_jit(bad.update)(params, state, params)
    good = tree_set_hyperparams(opt, learning_rate=0.01)
    eqx.filter_jit(good.update)(params, state, params)  # no warning


def test_plain_float_in_a_chain_warns_with_its_path():
    params = _params()
    opt = _opt()
    bad = eqx.tree_at(lambda o: o.transforms[0].max_norm, opt, 2.0)
    with pytest.warns(UserWarning, match=r"`Chain.transforms\[0\].max_norm`"):
        eqx.filter_jit(bad.update)(params, opt.init(params), params)


def test_plain_float_in_an_optimiser_field_warns():
    params = _params()
    bad = eqx.tree_at(lambda o: o.b2, eqopt.adam(0.1), 0.99)
    with pytest.warns(UserWarning, match=r"`Adam.b2` is a Python float"):
        eqx.filter_jit(bad.update)(params, bad.init(params), params)

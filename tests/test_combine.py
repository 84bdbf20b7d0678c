"""Masks, partitions, freezing and conditions: Optax parity on realistic trees (an
Equinox MLP, dicts with scalars), pytree and prefix masks, nesting, and an error naming
the path for every bad mask or label."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import eqopt

from .helpers import assert_trees_allclose, random_tree


def _mlp():
    return eqx.nn.MLP(3, 2, 8, 2, key=jr.key(0))


def _is_matrix(x):
    return getattr(x, "ndim", 0) >= 2


def _matrices(params):
    return jax.tree.map(_is_matrix, params)


def _labels(params):
    return jax.tree.map(lambda x: "w" if _is_matrix(x) else "b", params)


def _dict_with_scalars():
    keys = jr.split(jr.key(3), 4)
    return {
        "w": jr.normal(keys[0], (3, 2)),
        "b": jr.normal(keys[1], (2,)),
        "scale": jr.normal(keys[2], ()),
        "offsets": {"x": jr.normal(keys[3], ()), "y": jnp.asarray(0.5)},
    }


def _mlp_loss(model):
    x = jr.normal(jr.key(5), (16, 3))
    return jnp.mean(jax.vmap(model)(x) ** 2)


def _dict_loss(params):
    return sum(jnp.sum(jnp.sin(x) + x**2) for x in jax.tree.leaves(params))


def _compare(ours, theirs, params, loss, steps=6, **tolerances):
    """Same gradients in, same updates out, step after step. eqopt gets the parameters
    as they are (an Equinox model whole, gradients from `eqx.filter_grad`); Optax gets
    them filtered."""
    state, ref_state = ours.init(params), theirs.init(eqx.filter(params, eqx.is_array))
    for _ in range(steps):
        grads = eqx.filter_grad(loss)(params)
        updates, state = ours.update(grads, state, params)
        with jax.numpy_dtype_promotion("standard"):
            expected, ref_state = theirs.update(
                grads, ref_state, eqx.filter(params, eqx.is_array)
            )
        assert_trees_allclose(
            eqx.filter(updates, eqx.is_array),
            eqx.filter(expected, eqx.is_array),
            **tolerances,
        )
        params = eqopt.apply_updates(params, updates)


PARITY = {
    "masked": (
        lambda: eqopt.masked(eqopt.adam(0.1), _matrices),
        lambda: optax.masked(optax.adam(0.1), _matrices),
    ),
    "masked-nested": (
        lambda: eqopt.masked(eqopt.masked(eqopt.sgd(0.1, 0.9), _matrices), _matrices),
        lambda: optax.masked(optax.masked(optax.sgd(0.1, 0.9), _matrices), _matrices),
    ),
    "partition": (
        lambda: eqopt.partition({"w": eqopt.adam(0.1), "b": eqopt.sgd(0.1)}, _labels),
        lambda: optax.partition({"w": optax.adam(0.1), "b": optax.sgd(0.1)}, _labels),
    ),
    "multi_transform": (
        lambda: eqopt.multi_transform(
            {"w": eqopt.adamw(0.1), "b": eqopt.sgd(0.1)}, _labels
        ),
        lambda: optax.multi_transform(
            {"w": optax.adamw(0.1), "b": optax.sgd(0.1)}, _labels
        ),
    ),
    "freeze": (
        lambda: eqopt.chain(eqopt.adam(0.1), eqopt.freeze(_matrices)),
        lambda: optax.chain(optax.adam(0.1), optax.freeze(_matrices)),
    ),
    "conditionally_mask": (
        lambda: eqopt.conditionally_mask(eqopt.adam(0.1), lambda s: s % 3 != 1),
        lambda: optax.conditionally_mask(optax.adam(0.1), lambda s: s % 3 != 1),
    ),
    "conditionally_transform": (
        lambda: eqopt.conditionally_transform(eqopt.sgd(0.1, 0.9), lambda s: s >= 2),
        lambda: optax.conditionally_transform(optax.sgd(0.1, 0.9), lambda s: s >= 2),
    ),
}


@pytest.mark.parametrize("name", PARITY)
def test_parity_on_an_equinox_mlp(name):
    ours, theirs = PARITY[name]
    _compare(ours(), theirs(), _mlp(), _mlp_loss)


@pytest.mark.parametrize("name", PARITY)
def test_parity_on_a_dict_with_scalars(name):
    ours, theirs = PARITY[name]
    _compare(ours(), theirs(), _dict_with_scalars(), _dict_loss)


def test_selective_transform_parity_with_a_pytree_mask():
    params = _dict_with_scalars()
    mask = {"w": True, "b": False, "scale": False, "offsets": True}  # a prefix
    _compare(
        eqopt.selective_transform(eqopt.adam(0.1), freeze_mask=mask),
        optax.selective_transform(optax.adam(0.1), freeze_mask=mask),
        params,
        _dict_loss,
    )


def test_pytree_and_prefix_masks_on_an_equinox_model():
    model = _mlp()
    grads = eqx.filter_grad(_mlp_loss)(model)
    # A prefix: the first layer whole (its weight and bias), nothing else.
    mask = eqx.tree_at(
        lambda m: m.layers, jax.tree.map(lambda _: False, model), (True, False, False)
    )
    opt = eqopt.masked(eqopt.scale(-1.0), mask)
    updates, _ = opt.update(grads, opt.init(model), model)
    assert jnp.array_equal(updates.layers[0].weight, -grads.layers[0].weight)
    assert jnp.array_equal(updates.layers[0].bias, -grads.layers[0].bias)
    assert jnp.array_equal(updates.layers[1].weight, grads.layers[1].weight)
    assert updates.activation is None
    # A bool for everything, and a model of bools (callable, yet a pytree: optax#913).
    everything = eqopt.masked(eqopt.scale(-1.0), True)
    assert jnp.array_equal(
        everything.update(grads, everything.init(model), model)[0].layers[2].bias,
        -grads.layers[2].bias,
    )
    bools = jax.tree.map(eqx.is_array, model)
    assert callable(bools)
    opt = eqopt.masked(eqopt.scale(-1.0), bools)
    updates, _ = opt.update(grads, opt.init(model), model)
    assert jnp.array_equal(updates.layers[1].weight, -grads.layers[1].weight)


def test_the_inner_transformation_sees_only_its_leaves():
    params = random_tree(jr.key(0))
    opt = eqopt.masked(
        eqopt.adam(0.1), {"w": True, "b": False, "scalar": False, "nested": True}
    )
    state = opt.init(params)
    mu = state.inner_state[0].mu
    assert isinstance(mu["b"], eqopt.MaskedNode) and isinstance(
        mu["scalar"], eqopt.MaskedNode
    )
    assert mu["w"].shape == (4, 3)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = opt.update(grads, state, params)
    assert jnp.array_equal(updates["b"], grads["b"])  # passed through unchanged


def test_nested_masks_with_a_prefix_outer_mask():
    """optax#271: in Optax a prefix outer mask hides a subtree the inner mask describes
    leaf by leaf, and the inner mask no longer fits."""
    params = {"a": jnp.ones(2), "b": {"c": jnp.ones(3), "d": jnp.ones(1)}}
    inner = {"a": True, "b": {"c": True, "d": False}}
    for outer, expected in (
        ({"a": True, "b": False}, {"a": -2.0, "c": 1.0, "d": 1.0}),
        ({"a": False, "b": True}, {"a": 1.0, "c": -2.0, "d": 1.0}),
    ):
        opt = eqopt.masked(eqopt.masked(eqopt.scale(-2.0), inner), outer)
        updates, _ = opt.update(params, opt.init(params), params)
        got = {"a": updates["a"], **updates["b"]}
        for name, factor in expected.items():
            assert jnp.all(got[name] == factor), (outer, name)
    reference = optax.masked(
        optax.masked(optax.scale(-2.0), inner), {"a": True, "b": False}
    )
    with pytest.raises(ValueError):  # what eqopt fixes
        reference.update(params, reference.init(params), params)


def test_hyperparameters_inside_stay_leaves_reached_with_tree_at():
    params = random_tree(jr.key(0))
    grads = jax.tree.map(jnp.ones_like, params)
    masked = eqopt.masked(eqopt.sgd(0.1), _matrices)
    masked = eqx.tree_at(lambda m: m.inner.learning_rate, masked, jnp.asarray(0.5))
    assert masked.update(grads, masked.init(params), params)[0]["w"][0, 0] == -0.5
    groups = eqopt.partition({"w": eqopt.sgd(0.1), "b": eqopt.sgd(0.2)}, _labels)
    groups = eqx.tree_at(
        lambda p: p.transforms["b"].learning_rate, groups, jnp.asarray(0.7)
    )
    updates = groups.update(grads, groups.init(params), params)[0]
    assert updates["w"][0, 0] == pytest.approx(-0.1)
    assert updates["b"][0] == pytest.approx(-0.7)


def test_partition_with_pytree_labels_on_a_model_and_none_gradients():
    model = _mlp()
    labels = eqx.tree_at(
        lambda m: m.layers,
        jax.tree.map(lambda _: "rest", model),
        ("first", "rest", "rest"),
    )
    opt = eqopt.partition(
        {"first": eqopt.sgd(1.0), "rest": eqopt.set_to_zero()}, labels
    )
    grads = eqx.filter_grad(_mlp_loss)(model)
    updates, state = eqx.filter_jit(opt.update)(grads, opt.init(model), model)
    assert jnp.array_equal(updates.layers[0].weight, -grads.layers[0].weight)
    assert not jnp.any(updates.layers[2].weight)
    new = eqopt.apply_updates(model, updates)
    assert new.activation is model.activation


def test_multi_transform_is_partition():
    assert eqopt.multi_transform is eqopt.partition
    assert eqopt.MultiTransformState is eqopt.PartitionState


def test_unused_transformation_warns_and_gets_an_empty_state():
    params = {"a": jnp.ones(2)}
    opt = eqopt.partition({"x": eqopt.adam(0.1), "unused": eqopt.adam(0.1)}, {"a": "x"})
    with pytest.warns(UserWarning, match="'unused'"):
        state = opt.init(params)
    assert isinstance(
        state.inner_states["unused"].inner_state[0].mu["a"], eqopt.MaskedNode
    )
    updates, _ = opt.update(params, state, params)
    assert updates["a"].shape == (2,)
    with warnings.catch_warnings():  # selective_transform's "freeze" group may be empty
        warnings.simplefilter("error")
        eqopt.selective_transform(eqopt.adam(0.1), freeze_mask=False).init(params)


def test_mask_compatible_extra_args_masks_trees_shaped_like_the_updates():
    seen = {}

    class Spy(eqopt.GradientTransformation):
        def init(self, params):
            return eqopt.EmptyState()

        def update(self, updates, state, params=None, **extra_args):
            seen.update(extra_args)
            return updates, state

    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    opt = eqopt.masked(Spy(), {"a": True, "b": False}, mask_compatible_extra_args=True)
    opt.update(params, opt.init(params), params, tags=params, value=1.0)
    assert isinstance(seen["tags"]["b"], eqopt.MaskedNode) and seen["value"] == 1.0


def test_conditionally_forwards_extra_args_and_counts_steps():
    params = {"a": jnp.ones(2)}
    opt = eqopt.conditionally_mask(
        eqopt.sgd(1.0), lambda step, value: value > 0, forward_extra_args=True
    )
    state = opt.init(params)
    updates, state = opt.update(params, state, params, value=-1.0)
    assert not jnp.any(updates["a"]) and state.step == 1
    updates, state = opt.update(params, state, params, value=1.0)
    assert jnp.array_equal(updates["a"], -params["a"]) and state.step == 2
    opt = eqopt.conditionally_transform(eqopt.sgd(1.0, 0.5), lambda step: step == 1)
    state = opt.init(params)
    updates, state = opt.update(params, state, params)
    assert jnp.array_equal(updates["a"], params["a"])  # passed through
    assert not jnp.any(state.inner_state[0].trace["a"])  # inner state untouched


# Errors: every bad mask or label names the path.

PARAMS = {"a": jnp.ones(2), "b": {"c": jnp.ones(3), "d": jnp.ones(1)}}


@pytest.mark.parametrize(
    "mask, match",
    [
        ({"a": True, "b": {"c": True, "d": True, "e": True}}, r"\['b'\]\['e'\]"),
        ({"a": True}, r"\['b'\]\['c'\]"),
        ({"a": True, "z": True}, r"\['z'\]"),
        ({"a": {"deeper": True}, "b": True}, r"\['a'\]\['deeper'\]"),
        (lambda p: {"a": True}, r"\['b'\]\['c'\]"),
        ([True, False], r"\[0\]"),
    ],
)
def test_a_mask_that_does_not_fit_names_the_path(mask, match):
    for opt in (eqopt.masked(eqopt.sgd(0.1), mask), eqopt.freeze(mask)):
        with pytest.raises(ValueError, match=match):
            opt.init(PARAMS)
    with pytest.raises(ValueError, match=match):
        eqopt.selective_transform(eqopt.sgd(0.1), freeze_mask=mask).init(PARAMS)


def test_a_mask_that_does_not_fit_a_model_names_the_path():
    model = _mlp()
    mask = {"layers": (True, True, True)}
    with pytest.raises(ValueError, match=r"`mask` does not fit `params`"):
        eqopt.masked(eqopt.sgd(0.1), mask).init(model)


def test_updates_that_do_not_fit_the_params_name_the_path():
    updates = {"a": jnp.ones(2), "b": {"c": jnp.ones(3), "d": jnp.ones(1), "e": 1.0}}
    for opt in (
        eqopt.masked(eqopt.sgd(0.1), {"a": True, "b": False}),
        eqopt.partition({"x": eqopt.sgd(0.1)}, "x"),
    ):
        with pytest.raises(ValueError, match=r"\['b'\]\['e'\]"):
            opt.update(updates, opt.init(PARAMS), PARAMS)


@pytest.mark.parametrize(
    "labels, match",
    [
        ({"a": "x", "b": "missing"}, r"label 'missing' .* path `\['b'\]\['c'\]`"),
        ({"a": "x", "b": {"c": "x", "d": None}}, r"no label .* `\['b'\]\['d'\]`"),
        ({"a": "x"}, r"\['b'\]\['c'\]"),
        ({"a": "x", "b": {"c": "x", "d": "x", "e": "x"}}, r"\['b'\]\['e'\]"),
        (lambda p: jax.tree.map(lambda _: "y", p), r"label 'y' .* path `\['a'\]`"),
    ],
)
def test_bad_labels_name_the_label_and_path(labels, match):
    opt = eqopt.partition({"x": eqopt.sgd(0.1)}, labels)
    with pytest.raises(ValueError, match=match):
        opt.init(PARAMS)


def test_traced_or_unhashable_masks_and_labels_are_errors():
    opt = eqopt.masked(eqopt.sgd(0.1), lambda p: jax.tree.map(lambda x: x[0] > 0, p))
    with pytest.raises(ValueError, match="traced value"):
        eqx.filter_jit(opt.init)(PARAMS)
    with pytest.raises(ValueError, match="hashable"):
        eqopt.partition({"x": eqopt.sgd(0.1)}, {"a": jnp.asarray(0), "b": "x"})


def test_tree_map_params_reaches_the_state_inside_masks_and_groups():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    for opt in (
        eqopt.masked(eqopt.adam(0.1), {"w": True, "b": False}),
        eqopt.partition(
            {"x": eqopt.adam(0.1), "y": eqopt.sgd(0.1, 0.9)}, {"w": "x", "b": "y"}
        ),
    ):
        state = opt.init(params)
        doubled = eqopt.tree_utils.tree_map_params(
            opt,
            lambda v: v + 2,
            state,
        )
        leaves = jax.tree.leaves(doubled)
        assert any(jnp.all(x == 2) for x in leaves if x.ndim)
        assert jax.tree.structure(doubled) == jax.tree.structure(state)

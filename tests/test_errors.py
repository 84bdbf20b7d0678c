"""Errors a user can hit: out-of-range hyperparameters, mismatched trees, wrong types."""

import equinox as eqx
import jax.numpy as jnp
import pytest

import eqopt


# (factory, kwargs, message fragment): every range check, named argument and value.
OUT_OF_RANGE = [
    (
        eqopt.adam,
        dict(learning_rate=1e-3, b1=1.5),
        r"`adam\(b1=...\)` must be in \[0, 1\); got b1=1.5",
    ),
    (eqopt.adam, dict(learning_rate=1e-3, b2=-0.1), r"b2=-0.1"),
    (eqopt.adam, dict(learning_rate=1e-3, eps=-1e-8), r"eps=-1e-08"),
    (eqopt.adam, dict(learning_rate=1e-3, eps_root=-1.0), r"eps_root=-1.0"),
    (eqopt.adamw, dict(learning_rate=1e-3, b1=1.0), r"`adamw\(b1=...\)`"),
    (
        eqopt.scale_by_adam,
        dict(b2=1.0),
        r"`scale_by_adam\(b2=...\)` must be in \[0, 1\)",
    ),
    (eqopt.rmsprop, dict(learning_rate=1e-3, decay=1.5), r"`rmsprop\(decay=...\)`"),
    (eqopt.rmsprop, dict(learning_rate=1e-3, momentum=-0.5), r"momentum=-0.5"),
    (eqopt.scale_by_rms, dict(eps=-1.0), r"`scale_by_rms\(eps=...\)`"),
    (eqopt.scale_by_stddev, dict(decay=-0.1), r"`scale_by_stddev\(decay=...\)`"),
    (eqopt.sgd, dict(learning_rate=0.1, momentum=-0.9), r"`sgd\(momentum=...\)`"),
    (eqopt.trace, dict(decay=-0.9), r"`trace\(decay=...\)`"),
    (
        eqopt.clip,
        dict(max_delta=-1.0),
        r"`clip\(max_delta=...\)` must be in \[0, inf\)",
    ),
    (eqopt.clip_by_global_norm, dict(max_norm=-1.0), r"max_norm=-1.0"),
]


@pytest.mark.parametrize(
    "factory, kwargs, match",
    OUT_OF_RANGE,
    ids=[
        f"{f.__name__}-{next(iter(k.keys() - {'learning_rate'}))}"
        for f, k, _ in OUT_OF_RANGE
    ],
)
def test_out_of_range_hyperparameters_raise_naming_argument_and_value(
    factory, kwargs, match
):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_range_checks_skip_traced_values():
    import jax

    # Inside `vmap`/`jit` values are not known; construction must not fail or sync.
    opts = jax.vmap(lambda b1: eqopt.adam(1e-3, b1=b1))(jnp.asarray([0.5, 0.9]))
    assert opts.b1.shape == (2,)


PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def test_mismatched_updates_and_state_name_the_first_differing_path():
    opt = eqopt.adam(1e-3)
    state = opt.init(PARAMS)
    wrong = {"w": jnp.ones((2, 3)), "c": jnp.zeros(3)}
    with pytest.raises(ValueError, match=r"`updates` and `state.mu`.*\['b'\]"):
        opt.update(wrong, state, PARAMS)


def test_mismatched_shapes_name_the_path():
    opt = eqopt.sgd(0.1, momentum=0.9)
    state = opt.init(PARAMS)
    wrong = {"w": jnp.ones((3, 2)), "b": jnp.zeros(3)}
    with pytest.raises(ValueError, match=r"path `\['w'\]`.*\(3, 2\).*\(2, 3\)"):
        opt.update(wrong, state, PARAMS)


def test_mismatched_params_in_apply_updates_name_the_path():
    with pytest.raises(ValueError, match=r"`updates` and `params`.*\['w'\].*\['b'\]"):
        eqopt.apply_updates(PARAMS, {"w": jnp.ones((2, 3)), "x": jnp.zeros(3)})


def test_state_from_another_optimiser_is_rejected():
    state = eqopt.sgd(0.1).init(PARAMS)  # a chain of 2
    with pytest.raises(ValueError, match="does not match its 3 transformations"):
        eqopt.chain(eqopt.clip(1.0), eqopt.clip(1.0), eqopt.sgd(0.1)).update(
            PARAMS, state, PARAMS
        )


def test_weight_decay_needs_params():
    opt = eqopt.adamw(1e-3)
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(PARAMS, opt.init(PARAMS))


def test_integer_gradients_are_a_type_error_naming_the_argument():
    opt = eqopt.adam(1e-3)
    state = opt.init(PARAMS)
    with pytest.raises(Exception, match="updates"):
        opt.update({"w": jnp.ones((2, 3), int), "b": jnp.zeros(3, int)}, state)


def test_wrong_hyperparameter_type_is_a_type_error():
    with pytest.raises(Exception, match="b1"):
        eqopt.adam(1e-3, b1="0.9")
    with pytest.raises(Exception, match="b1"):
        eqopt.adam(1e-3, b1=jnp.ones(3))  # not a scalar


def test_traced_mask_is_rejected():
    with pytest.raises(Exception):
        eqx.filter_jit(lambda m: eqopt.add_decayed_weights(0.1, {"w": m}))(
            jnp.asarray(True)
        )

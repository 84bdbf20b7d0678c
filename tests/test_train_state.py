"""`eqopt.TrainState`: one Module for a model, its optimiser and state."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import eqopt

from .helpers import assert_trees_allclose


def assert_same(a, b, **tolerances):
    arrays = lambda t: eqx.filter(t, eqx.is_array)
    assert_trees_allclose(arrays(a), arrays(b), **tolerances)


X = jr.normal(jr.key(1), (64, 2))
Y = jnp.sin(2 * X[:, :1]) + X[:, 1:] ** 2


def loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def make_model():
    return eqx.nn.MLP(2, 1, 16, 2, key=jr.key(0))


def make_train_step():
    """A jitted training step that fails if traced twice."""

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def train_step(state: eqopt.TrainState, x, y) -> eqopt.TrainState:
        return state.apply_gradients(eqx.filter_grad(loss)(state.model, x, y))

    return train_step


def test_apply_gradients_is_update_then_apply_updates():
    model, opt = make_model(), eqopt.adamw(1e-2)
    state = eqopt.TrainState(model, opt)
    assert int(state.step) == 0
    new = state.apply_gradients(eqx.filter_grad(loss)(model, X, Y))
    updates, opt_state = opt.update(
        eqx.filter_grad(loss)(model, X, Y), opt.init(model), model
    )
    assert_same(new.model, eqopt.apply_updates(model, updates), rtol=0, atol=0)
    assert_same(new.opt_state, opt_state, rtol=0, atol=0)
    assert int(new.step) == 1 and new.model.activation is jax.nn.relu


def test_changing_the_learning_rate_does_not_recompile():
    state, train_step = (
        eqopt.TrainState(make_model(), eqopt.adam(1e-2)),
        make_train_step(),
    )
    for lr in (1e-2, 3e-3, 1e-3):
        state = eqopt.tree_utils.tree_set_hyperparams(state, learning_rate=lr)
        state = train_step(state, X, Y)
    assert int(state.step) == 3


def test_vmap_over_train_states_trains_an_ensemble_of_learning_rates():
    rates = jnp.asarray([1e-3, 3e-3, 1e-2, 3e-2])
    model = make_model()

    @eqx.filter_vmap
    def ensemble(lr):
        return eqopt.TrainState(model, eqopt.adam(lr))

    def step(state):
        return state.apply_gradients(eqx.filter_grad(loss)(state.model, X, Y))

    @eqx.filter_jit
    def train(states, many=True):
        for _ in range(20):
            states = eqx.filter_vmap(step)(states) if many else step(states)
        return states

    trained = train(ensemble(rates))
    assert trained.step.shape == (4,)
    for i, lr in enumerate(rates):
        alone = train(eqopt.TrainState(model, eqopt.adam(lr)), many=False)
        one = jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, trained)
        assert_same(one.model, alone.model, rtol=1e-5, atol=1e-6)
    losses = [
        float(
            loss(
                jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, trained.model),
                X,
                Y,
            )
        )
        for i in range(4)
    ]
    assert losses[-1] < losses[0]


def test_checkpoint_round_trip_and_bitwise_resume():
    model, train_step = make_model(), make_train_step()
    state = eqopt.TrainState(model, eqopt.adamw(1e-2, weight_decay=1e-3))
    for _ in range(3):
        state = train_step(state, X, Y)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, state)
    buffer.seek(0)
    # (The same model's statics: Equinox's MLP holds a new `lambda` per instance.)
    template = eqopt.TrainState(model, eqopt.adamw(0.0, weight_decay=0.0))
    restored = eqx.tree_deserialise_leaves(buffer, template)
    assert_same(restored, state, rtol=0, atol=0)
    assert float(restored.opt.learning_rate) == np.float32(1e-2)
    # (Deserialised leaves are strongly typed where the originals were weakly typed
    # Python-float hyperparameters: one more trace, hence a second step function.)
    resumed_step = make_train_step()
    for _ in range(3):
        state, restored = train_step(state, X, Y), resumed_step(restored, X, Y)
    assert_same(restored, state, rtol=0, atol=0)


class Trainer(eqx.Module):
    """A user's own Module holding a TrainState among its fields."""

    state: eqopt.TrainState
    name: str = eqx.field(static=True)

    def fit(self, x, y, steps):
        state, train_step = self.state, make_train_step()
        for _ in range(steps):
            state = train_step(state, x, y)
        return Trainer(state, self.name)


def test_a_train_state_inside_a_users_module():
    trainer = Trainer(
        eqopt.TrainState(make_model(), eqopt.sgd(0.05, momentum=0.9)), "mlp"
    )
    before = loss(trainer.state.model, X, Y)
    trainer = trainer.fit(X, Y, 20)
    assert int(trainer.state.step) == 20 and trainer.name == "mlp"
    assert loss(trainer.state.model, X, Y) < before

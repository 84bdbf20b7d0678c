"""A model, its optimiser and the optimiser's state, as one Module."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree

from ._base import GradientTransformation
from ._custom_types import OptState
from ._update import apply_updates


class TrainState(eqx.Module):
    """A model, its optimiser and the optimiser's state (and a step count), as one
    typed Module: Flax's `TrainState`, NNX's `nnx.Optimizer`, for Equinox.

    ```python
    train_state = eqopt.TrainState(model, eqopt.adamw(1e-3))     # runs opt.init(model)
    grads = eqx.filter_grad(loss)(train_state.model, x, y)
    train_state = train_state.apply_gradients(grads)             # a new TrainState
    ```

    Because it is one pytree, whatever works on a pytree works on the whole training
    state: `eqx.filter_jit` a step taking and returning it, `eqx.filter_vmap` over a
    batch of them to train an ensemble with different hyperparameters in one call
    (build them inside the vmapped function), and `eqx.tree_serialise_leaves` to
    checkpoint model, optimiser hyperparameters and state in one file. It can be a
    field of a user's own Module. The model may hold non-array leaves (activation
    functions): nothing needs filtering.

    **Arguments:**

    - `model`: the parameters: any pytree, an Equinox model included.
    - `opt`: the optimiser (its hyperparameters are leaves of the `TrainState`).
    - `opt_state`: the optimiser's state; `None` (the default) calls `opt.init(model)`.
    - `step`: the number of updates applied so far.
    """

    model: PyTree
    opt: GradientTransformation
    opt_state: OptState
    step: Int[Array, ""]

    def __init__(
        self,
        model: PyTree,
        opt: GradientTransformation,
        opt_state: OptState | None = None,
        step: Int[Array, ""] | int = 0,
    ):
        self.model = model
        self.opt = opt
        self.opt_state = opt.init(model) if opt_state is None else opt_state
        self.step = jnp.asarray(step, jnp.int32)

    def apply_gradients(self, grads: PyTree, **extra_args: Any) -> "TrainState":
        """One optimiser step: `opt.update` on `grads` (as `eqx.filter_grad` gives
        them, `None` where nothing is differentiated), then `apply_updates`.

        **Arguments:**

        - `grads`: the gradients, with the structure of `model`.
        - `extra_args`: passed to `opt.update` (`value=...` for a line search).

        **Returns:**

        A new `TrainState`, with `step` increased by one.
        """
        updates, opt_state = self.opt.update(
            grads, self.opt_state, self.model, **extra_args
        )
        model = apply_updates(self.model, updates)
        return TrainState(model, self.opt, opt_state, self.step + 1)

"""Composing transformations in sequence."""

from typing import Any, no_type_check

import equinox as eqx
import jax

from ._base import GradientTransformation
from ._custom_types import OptState, Params, Updates
from ._hyperparams import warn_python_number_hyperparameters
from ._tree import compute_dtype, to_dtype, upcast


@no_type_check
def _check_state_length(owner: str, state: Any, expected: int) -> None:
    if not isinstance(state, tuple | dict) or len(state) != expected:
        raise ValueError(
            f"`{owner}.update` got a state that does not match its {expected} "
            f"transformations (got {type(state).__name__} of length "
            f"{len(state) if isinstance(state, tuple | dict) else '?'}). Pass the state "
            f"returned by this optimiser's `init`."
        )


class Chain(GradientTransformation):
    r"""Apply transformations one after another: $u = T_n(\cdots T_1(g))$.

    Updates are carried between the steps in float32 (or wider) and cast back to their
    own dtype at the end, so that low-precision parameters see one rounding, not one
    per step. The state is a tuple with one entry per transformation, as in Optax, so
    `state[0].mu` works. Hyperparameters are reached through `transforms`:
    `eqx.tree_at(lambda c: c.transforms[1].learning_rate, chain, 1e-3)`.

    Optax: `optax.chain`.

    **Arguments:**

    - `transforms`: the transformations, in order of application.
    """

    transforms: tuple[GradientTransformation, ...]
    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    def init(self, params: Params) -> tuple[OptState, ...]:
        return tuple(t.init(params) for t in self.transforms)

    def update(
        self,
        updates: Updates,
        state: tuple[OptState, ...],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, tuple[OptState, ...]]:
        _check_state_length("chain", state, len(self.transforms))
        warn_python_number_hyperparameters(updates, Chain=self)
        new_state = []
        leaves = jax.tree.leaves(updates)
        low_precision = any(compute_dtype(g) != g.dtype for g in leaves)
        if low_precision:  # no rounding between the steps
            dtypes = jax.tree.map(lambda g: g.dtype, updates)
            updates = jax.tree.map(upcast, updates)
        for transform, inner in zip(self.transforms, state):
            updates, inner = transform.update(updates, inner, params, **extra_args)
            new_state.append(inner)
        if low_precision:
            updates = jax.tree.map(to_dtype, updates, dtypes)
        return updates, tuple(new_state)


def chain(*args: GradientTransformation) -> Chain:
    """Apply the transformations `args` one after another. See [`eqopt.Chain`][]."""
    return Chain(tuple(args))


class NamedChain(GradientTransformation):
    """Apply named transformations one after another; the state is a dict by name.

    Optax: `optax.named_chain`.

    **Arguments:**

    - `names`: the names, in order of application (static).
    - `transforms`: the transformations, in the same order.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    transforms: tuple[GradientTransformation, ...]
    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    def __check_init__(self):
        if len(self.names) != len(self.transforms):
            raise ValueError(
                f"`NamedChain` needs one name per transformation; got "
                f"{len(self.names)} names for {len(self.transforms)} transformations."
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"`named_chain` names must be unique; got {self.names}.")

    def init(self, params: Params) -> dict[str, OptState]:
        return {n: t.init(params) for n, t in zip(self.names, self.transforms)}

    def update(
        self,
        updates: Updates,
        state: dict[str, OptState],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, dict[str, OptState]]:
        _check_state_length("named_chain", state, len(self.transforms))
        warn_python_number_hyperparameters(updates, NamedChain=self)
        new_state = {}
        for name, transform in zip(self.names, self.transforms):
            updates, new_state[name] = transform.update(
                updates, state[name], params, **extra_args
            )
        return updates, new_state


def named_chain(*args: tuple[str, GradientTransformation]) -> NamedChain:
    """Chain `(name, transformation)` pairs. See [`eqopt.NamedChain`][]."""
    names = tuple(name for name, _ in args)
    return NamedChain(names, tuple(t for _, t in args))

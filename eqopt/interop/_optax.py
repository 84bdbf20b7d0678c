"""Conversions between eqopt transformations and Optax's `GradientTransformation`.

Optax is imported inside the functions, so that `import eqopt` works without it.
"""

from typing import Any, no_type_check

import equinox as eqx
import jax

from .._base import GradientTransformation
from .._custom_types import OptState, Params, Updates


def to_optax(tx: GradientTransformation) -> Any:
    r"""An eqopt transformation as an `optax.GradientTransformationExtraArgs`.

    The result plugs into anything written for Optax: `optax.chain`, `jax.jit`-ed
    training steps, Optimistix's `OptaxMinimiser`, Flax NNX's `nnx.Optimizer`,
    `optax.contrib` wrappers. Its `init` and `update` are plain functions calling `tx`'s
    (hashable, like Optax's, so `jax.jit(opt.update)` works; `tx`'s hyperparameters
    are closed over, so they are constants of a compiled step, as in Optax); the state
    is eqopt's (Modules), and `update` takes Optax's extra keyword arguments. To keep
    hyperparameters as leaves, use `tx` itself in your own step.

    ```python
    opt = optax.chain(optax.clip_by_global_norm(1.0), eqopt.interop.to_optax(eqopt.adam(1e-3)))
    ```

    **Arguments:**

    - `tx`: an eqopt transformation.

    **Returns:**

    An `optax.GradientTransformationExtraArgs` calling `tx.init` and `tx.update`.
    """
    import optax  # `tx`'s type is checked by the import hook: a `TypeError` if not eqopt's

    @no_type_check
    def init_fn(params):
        return tx.init(params)

    @no_type_check
    def update_fn(updates, state, params=None, **extra_args):
        return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _floating_only(tree: Any) -> Any:
    return eqx.filter(tree, eqx.is_inexact_array)


class FromOptax(GradientTransformation):
    """An Optax transformation as an eqopt Module (see [`eqopt.interop.from_optax`][]).

    Optax's `init` and `update` are closures, kept as static fields: their
    hyperparameters are not leaves (changing one means a new transformation and a new
    compilation; no hypergradients, no `jax.vmap` over them).

    **Arguments:**

    - `transformation`: the Optax transformation (static).
    - `extra_args`: whether its `update` takes extra keyword arguments (static);
        otherwise they are dropped, as `optax.with_extra_args_support` does.
    """

    transformation: Any = eqx.field(static=True)
    extra_args: bool = eqx.field(static=True, default=False)

    def init(self, params: Params) -> OptState:
        with jax.numpy_dtype_promotion("standard"):  # Optax's code is written for it
            return self.transformation.init(_floating_only(params))

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        params = None if params is None else _floating_only(params)
        extra_args = extra_args if self.extra_args else {}
        with jax.numpy_dtype_promotion("standard"):
            return self.transformation.update(updates, state, params, **extra_args)


def from_optax(tx: Any) -> FromOptax:
    r"""Wrap any Optax transformation as an eqopt Module, usable in `eqopt.chain`.

    ```python
    opt = eqopt.chain(eqopt.interop.from_optax(optax.contrib.muon(1e-3)), eqopt.clip(1.0))
    ```

    The wrapped transformation sees only the floating-array leaves of the parameters
    (others are `None`), so Equinox models need no filtering; its numbers and state
    are Optax's, computed under standard dtype promotion. Its `init` and `update` are
    static fields (Optax's closures): its hyperparameters are **not** leaves, and two
    wrappers are equal (one compilation, a checkpoint's structure) only if they wrap
    the same Optax object, so build it once.

    **Arguments:**

    - `tx`: an `optax.GradientTransformation` (with or without extra arguments).

    **Returns:**

    A [`eqopt.interop.FromOptax`][] Module.
    """
    import optax

    if isinstance(tx, GradientTransformation):
        raise TypeError("`from_optax` takes an Optax transformation; this is eqopt's.")
    return FromOptax(tx, isinstance(tx, optax.GradientTransformationExtraArgs))

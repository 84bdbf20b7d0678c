"""Map a function over the copies of the parameters inside an optimiser state."""

from collections.abc import Callable
from typing import Any, no_type_check, Protocol, runtime_checkable

import jax
import jax.tree_util as jtu
from jaxtyping import PyTree


@jtu.register_pytree_node_class
class _ParamsPlaceholder:
    """A pytree without leaves that stands for the parameters in `init`."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux, children
        return cls()


@no_type_check
def _is_placeholder(x: Any) -> bool:
    return isinstance(x, _ParamsPlaceholder)


@runtime_checkable
class _Initable(Protocol):
    def init(self, params: Any) -> Any: ...


def tree_map_params(
    initable: Callable[[Any], Any] | _Initable,
    f: Callable[..., Any],
    state: PyTree,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> PyTree:
    r"""Apply `f` to every copy of the parameters held in an optimiser state.

    The optimiser is initialised once on a placeholder for the parameters; wherever the
    placeholder turns up in that state (Adam's `mu` and `nu`, say), the matching part of
    `state` is a pytree shaped like the parameters, and becomes
    `jax.tree.map(f, part, *rest)`. Every other leaf of `state` (step counts, keys)
    becomes `transform_non_params(leaf)`, or is kept. The usual use is to build the
    sharding of a state from the sharding of the parameters:

    ```python
    state_specs = eqopt.tree_utils.tree_map_params(
        opt, lambda _, spec: spec, state, param_specs,
        transform_non_params=lambda _: PartitionSpec(),
    )
    ```

    eqopt states are Modules and tuples of Modules; both work. Where the parameters are
    an Equinox model, a state holds `None` at each non-array leaf; `f` is not called
    there and the `None` is kept, whatever `rest` holds at that place. Every other leaf
    goes to `f`, arrays or not, so a state of `jax.ShapeDtypeStruct`s (from
    `jax.eval_shape(opt.init, params)`) maps as well.

    Optax: `optax.tree_utils.tree_map_params` (also `optax.tree_map_params`).

    **Arguments:**

    - `initable`: an optimiser (anything with `init(params)`), or a function
        `params -> state`.
    - `f`: the function applied to each leaf of each parameter-shaped part of `state`,
        with the matching leaves of `rest`.
    - `state`: the optimiser state to map over.
    - `rest`: pytrees shaped like the parameters, passed to `f` too.
    - `transform_non_params`: applied to every leaf of `state` outside the
        parameter-shaped parts; `None` keeps them.
    - `is_leaf`: passed to the `jax.tree.map` over each parameter-shaped part (to stop
        at subtrees, for states that reshape the parameters, as `masked` does).

    **Returns:**

    The mapped state.
    """
    placeholder = _ParamsPlaceholder()
    if isinstance(initable, _Initable):
        with_placeholders = initable.init(placeholder)
    else:
        with_placeholders = initable(placeholder)

    @no_type_check
    def leaf_or_none(x):
        return x is None or (is_leaf is not None and is_leaf(x))

    @no_type_check
    def apply_f(value, *others):
        return None if value is None else f(value, *others)

    @no_type_check
    def map_params(maybe_placeholder, value):
        if _is_placeholder(maybe_placeholder):
            return jax.tree.map(apply_f, value, *rest, is_leaf=leaf_or_none)
        if transform_non_params is not None:
            return transform_non_params(value)
        return value

    return jax.tree.map(map_params, with_placeholders, state, is_leaf=_is_placeholder)

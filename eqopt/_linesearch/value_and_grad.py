"""Reuse the value and gradient a line search computed at the accepted step."""

from collections.abc import Callable
from typing import Any, no_type_check

import jax
import jax.numpy as jnp

from .._custom_types import OptState, Params
from ..tree_utils import tree_get
from .common import value_and_grad


def value_and_grad_from_state(
    value_fn: Callable[..., Any],
) -> Callable[..., tuple[Any, Any]]:
    r"""Like `jax.value_and_grad(value_fn)`, but taking the value and gradient from the
    optimiser's state where a line search stored them.

    A line search evaluates the objective and its gradient at the step it accepts,
    which is the next iterate: for a deterministic objective, reading them from the
    state saves one evaluation per iteration. Where the stored value is not finite
    (before the first step), they are computed with `value_fn`.

    The returned function is called as `value_and_grad(params, *args, state=state,
    **kwargs)`; `args` and `kwargs` go to `value_fn`.

    ```python
    value_and_grad = eqopt.value_and_grad_from_state(f)
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
    ```

    Optax: `optax.value_and_grad_from_state`.

    **Arguments:**

    - `value_fn`: the objective, a function of the parameters returning a scalar.

    **Returns:**

    A function `(params, *args, state, **kwargs) -> (value, grad)`.

    **Raises:**

    The returned function raises a `ValueError` if `state` holds no unique `value` and
    `grad` (no line search storing them), or if the stored `grad` is `None`.
    """

    @no_type_check
    def _value_and_grad(params: Params, *fn_args: Any, state: OptState, **fn_kwargs):
        value, grad = tree_get(state, "value"), tree_get(state, "grad")
        if value is None or grad is None:
            raise ValueError(
                "Value or gradient not found in the state. Make sure that these values "
                "are stored in the state by the optimizer (a line search such as "
                "`scale_by_zoom_linesearch`, or `scale_by_backtracking_linesearch` "
                "with `store_grad=True`)."
            )
        stored = jnp.isfinite(value)
        fresh_value, fresh_grad = jax.lax.cond(
            stored,
            lambda: (value, grad),
            lambda: _cast(
                (value, grad), value_and_grad(value_fn)(params, *fn_args, **fn_kwargs)
            ),
        )
        return fresh_value, fresh_grad

    return _value_and_grad


@no_type_check
def _cast(like: Any, tree: Any) -> Any:
    """`tree` with the dtypes of `like` (the two branches of a `cond` must agree)."""
    return jax.tree.map(
        lambda ref, x: x if ref is None else jnp.asarray(x).astype(ref.dtype),
        like,
        tree,
        is_leaf=lambda x: x is None,
    )

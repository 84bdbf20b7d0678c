"""What every line search needs from `update`'s extra arguments, checked in one place.

A line search (and a Polyak step) reads the objective through `update`'s extra keyword
arguments, as in Optax: `value` (the objective at `params`), `grad` (its gradient there)
and `value_fn` (the objective itself), plus any data `value_fn` takes by keyword. These
helpers take them out of `extra_args` with errors that say what is missing and show the
call Optax's documentation uses.
"""

import inspect
from collections.abc import Callable
from typing import Any, no_type_check

import jax


#: The call Optax's documentation shows for a line search, quoted in error messages.
LINESEARCH_CALL = (
    "value, grad = jax.value_and_grad(f)(params)\n"
    "updates, state = opt.update(grad, state, params, value=value, grad=grad, "
    "value_fn=f)"
)
#: The same for a transformation that needs only the value (`scale_by_polyak`).
VALUE_CALL = (
    "value, grad = jax.value_and_grad(f)(params)\n"
    "updates, state = opt.update(grad, state, params, value=value)"
)


@no_type_check
def pop_required(
    owner: str, extra_args: dict[str, Any], names: tuple[str, ...], call: str
) -> tuple[Any, ...]:
    """Take `names` out of `extra_args` (a copy is modified), or raise a `TypeError`
    naming every missing one and showing `call`.

    **Returns:**

    The values of `names`, in order, followed by the remaining keyword arguments.
    """
    remaining = dict(extra_args)
    missing = [name for name in names if remaining.get(name) is None]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        raise TypeError(
            f"`{owner}.update` needs the keyword argument{'s' * (len(missing) > 1)} "
            f"{listed} (got {sorted(extra_args) or 'none'}). Call it as Optax's "
            f"documentation does, for an objective `f`:\n\n{call}\n\n(in a chain, pass "
            "them to the chain's `update`: every transformation receives them and the "
            "others ignore them)."
        )
    return (*(remaining.pop(name) for name in names), remaining)


@no_type_check
def require_params(owner: str, params: Any, call: str) -> None:
    """Raise a `TypeError` if a line search got no parameters to search from."""
    if params is None:
        raise TypeError(
            f"`{owner}.update` needs the current parameters `params` (the line search "
            f"evaluates the objective at `params + learning_rate * updates`):\n\n{call}"
        )


@no_type_check
def split_fn_kwargs(
    owner: str, value_fn: Callable, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments in `kwargs` that `value_fn` takes by name (its data);
    any other raises a `TypeError`, as in Optax."""
    try:
        accepted = set(inspect.signature(value_fn).parameters)
    except (TypeError, ValueError):  # a builtin, or a callable without a signature
        accepted = set()
    unused = sorted(k for k in kwargs if k not in accepted)
    if unused:
        raise TypeError(
            f"Unexpected keyword arguments passed to `{owner}.update`: {unused} are "
            "not arguments of `value_fn`. Extra keyword arguments besides `value`, "
            "`grad` and `value_fn` are passed on to `value_fn` (its data), so it must "
            "accept each of them by name."
        )
    return kwargs


@no_type_check
def cond_print(condition: Any, message: str, **values: Any) -> None:
    """`jax.debug.print(message, **values)` when `condition` holds (at run time)."""
    jax.lax.cond(
        condition,
        lambda: jax.debug.print(message, **values),
        lambda: None,
    )

"""What every line search shares: its extra arguments, the objective along a line, and
one stable `while_loop` body per objective (so that eager calls do not re-trace it).

A line search's `update` takes, besides `updates`, `state` and `params`, the keyword
arguments `value` (the objective at `params`), `grad` (its gradient there) and
`value_fn` (the objective itself); any further keyword argument that `value_fn`
accepts is passed on to it (data, for example).
"""

import inspect
import weakref
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp

from .._tree import compute_dtype, is_none
from ..tree_utils import tree_vdot


#: How Optax's documentation calls a line search (and L-BFGS), shown in errors.
OPTAX_CALL = (
    "value, grad = jax.value_and_grad(fn)(params)\n"
    "updates, state = opt.update(grad, state, params, value=value, grad=grad, "
    "value_fn=fn)"
)

_WHAT = {
    "value": "the objective's value at `params`",
    "grad": "the objective's gradient at `params`",
    "value_fn": "the objective, a function of the parameters returning a scalar",
}


#: How Optax's documentation calls a transformation that needs only the value
#: (`scale_by_polyak`, `polyak_sgd`), shown in errors.
VALUE_CALL = (
    "value, grad = jax.value_and_grad(fn)(params)\n"
    "updates, state = opt.update(grad, state, params, value=value)"
)


@no_type_check
def extra_arguments(
    owner: str, extra_args: dict[str, Any], names: tuple[str, ...], call: str
) -> tuple[Any, ...]:
    """The values of `names` in `update`'s keyword arguments, then a dict of the
    others. A missing one (or `None`) is a `TypeError` naming each and showing `call`."""
    missing = [n for n in names if extra_args.get(n) is None]
    if missing:
        what = "; ".join(f"`{n}` ({_WHAT[n]})" for n in missing)
        raise TypeError(
            f"`{owner}.update` needs the keyword argument{'s' * (len(missing) > 1)} "
            f"{what}. Call it as in Optax's documentation:\n{call}\n(In a chain, pass "
            "them to the chain's `update`: every transformation receives them and the "
            "others ignore them.)"
        )
    rest = dict(extra_args)
    return (*(rest.pop(n) for n in names), rest)


@no_type_check
def line_search_arguments(
    owner: str, params: Any, extra_args: dict[str, Any]
) -> tuple[Any, Any, Callable, dict[str, Any]]:
    """`(value, grad, value_fn, fn_kwargs)` from `update`'s keyword arguments.

    A missing one is a `TypeError` naming it and showing the call of Optax's docs;
    keyword arguments that `value_fn` does not take are a `TypeError` (as in Optax).
    """
    if params is None:
        raise TypeError(
            f"`{owner}.update` needs the current parameters `params` (the line search "
            "evaluates the objective at `params + learning_rate * updates`):\n"
            f"{OPTAX_CALL}"
        )
    value, grad, value_fn, rest = extra_arguments(
        owner, extra_args, ("value", "grad", "value_fn"), OPTAX_CALL
    )
    if not callable(value_fn):
        raise TypeError(
            f"`{owner}.update(value_fn=...)` must be a function of the parameters; got "
            f"{type(value_fn).__name__}."
        )
    fn_kwargs, unused = _split_kwargs(value_fn, rest)
    if unused:
        raise TypeError(
            f"Unexpected keyword arguments passed to `{owner}.update`: "
            f"{sorted(unused)} are not arguments of `value_fn`. Pass only the "
            "arguments `value_fn` accepts (besides `value`, `grad`, `value_fn`)."
        )
    return value, grad, value_fn, fn_kwargs


@no_type_check
def cond_print(condition: Any, message: str, **values: Any) -> None:
    """`jax.debug.print(message, **values)` when `condition` holds (at run time)."""
    jax.lax.cond(condition, lambda: jax.debug.print(message, **values), lambda: None)


@no_type_check
def _split_kwargs(fn: Callable, kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """The keyword arguments `fn` accepts (all, if it takes `**kwargs`), and the rest."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature: pass everything
        return kwargs, {}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return kwargs, {}
    names = {p.name for p in parameters}
    taken = {k: v for k, v in kwargs.items() if k in names}
    return taken, {k: v for k, v in kwargs.items() if k not in names}


@no_type_check
def value_dtype(params: Any) -> jnp.dtype:
    """The real dtype values and step sizes are computed in: that of the first floating
    parameter (float32 at least: bfloat16 parameters are searched in float32)."""
    for leaf in jax.tree.leaves(params):
        if eqx.is_inexact_array(leaf):
            return jnp.finfo(compute_dtype(leaf)).dtype
    return jnp.dtype(jnp.float32)


@no_type_check
def on_line(params: Any, stepsize: Any, updates: Any) -> Any:
    r"""$w + \eta u$ in the compute dtype; parameters without an update pass through."""
    return jax.tree.map(
        lambda p, u: p if u is None else p.astype(u.dtype) + stepsize * u,
        params,
        updates,
        is_leaf=is_none,
    )


@no_type_check
def slope(grad: Any, updates: Any) -> Any:
    r"""$\operatorname{Re}\langle \nabla f, u \rangle$ (Optax's expression, also for
    complex parameters)."""
    return jnp.real(tree_vdot(jax.tree.map(jnp.conj, grad), updates))


@no_type_check
def select(pred: Any, on_true: Any, on_false: Any) -> Any:
    """`jnp.where(pred, a, b)` leaf by leaf over two trees of the same structure."""
    return jax.tree.map(
        lambda a, b: None if a is None else jnp.where(pred, a, b),
        on_true,
        on_false,
        is_leaf=is_none,
    )


@no_type_check
def value_and_grad(value_fn: Callable) -> Callable:
    """`value_fn`'s value and gradient with respect to the floating arrays of its first
    argument (`None` elsewhere, as `eqx.filter_grad` gives for an Equinox model)."""
    return eqx.filter_value_and_grad(value_fn)


@no_type_check
def split_arrays(tree: Any) -> tuple[list, tuple]:
    """`tree`'s array leaves (a list, `None` elsewhere) and a hashable rest (its
    structure and other leaves), for a loop carry and a cache key."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [x if eqx.is_array(x) else None for x in leaves]
    return arrays, (treedef, tuple(None if eqx.is_array(x) else x for x in leaves))


@no_type_check
def join_arrays(arrays: list, rest: tuple) -> Any:
    """The inverse of `split_arrays`."""
    treedef, others = rest
    return treedef.unflatten([x if o is None else o for x, o in zip(arrays, others)])


_BODIES: dict[tuple, Callable] = {}


@no_type_check
def stable_body(make_body: Callable, value_fn: Callable, statics: tuple) -> Callable:
    """`make_body(ref, statics)` (with `ref()` giving `value_fn`), the same object for
    the same `value_fn` and `statics` while `value_fn` lives.

    `jax.lax.while_loop` caches the trace of its body by the body's identity: a fresh
    body per call (a closure over `value_fn`, as Optax builds) re-traces and recompiles
    the loop at every eager `update` (optax#1171). Everything else the body needs
    travels in the loop's carry, so one body serves every call.
    """
    key = (id(value_fn), make_body, statics)
    body = _BODIES.get(key)
    if body is not None and body.ref() is value_fn:
        return body
    try:
        ref = weakref.ref(value_fn, lambda _: _BODIES.pop(key, None))
    except TypeError:  # not weakly referenceable: a fresh body, as Optax
        return make_body(lambda: value_fn, statics)
    body = make_body(ref, statics)
    _BODIES[key] = body
    return body

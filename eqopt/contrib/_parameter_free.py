"""What the learning-rate-free optimisers share: the dtype of their global scalars, the
capture of the initial parameters at the first `update`, and sums over leaves.

Prodigy, DoG, DoWG, COCOB and Mechanic measure how far the parameters have moved from
where training started. Optax's `init` stores the parameters it is given; here `init`
reads only shapes and dtypes (so it runs under `jax.eval_shape`) and stores zeros, and
the first `update` stores the parameters it sees instead. With the usual
`state = opt.init(params)` followed by `opt.update(grads, state, params)` these are the
same parameters, so the numbers are Optax's.
"""

import functools as ft
import operator
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._numerics import abs_sq
from .._tree import map_leaves, structure_mismatch, to_dtype, upcast
from ..tree_utils._leaves import is_none


@no_type_check
def placeholders(updates: Any) -> Any:
    """A tree of `None` with the structure of `updates`: the column in which a per-leaf
    rule of `map_leaves` returns its partial sums (see `leaf_sums`)."""
    treedef = jax.tree.structure(updates, is_leaf=is_none)
    return treedef.unflatten([None] * treedef.num_leaves)


@no_type_check
def leaf_sums(updates: Any, partials: Any) -> tuple[Array, ...]:
    """Sum the tuples of per-leaf partial sums that a `map_leaves` rule returned in the
    `placeholders` column (leaves without gradient hold `None` there)."""
    treedef = jax.tree.structure(updates, is_leaf=is_none)
    rows = [row for row in treedef.flatten_up_to(partials) if row is not None]
    if not rows:
        return ()
    # Left to right, as Optax's `tree.vdot`/`tree.sum` add their leaves.
    return tuple(ft.reduce(operator.add, column) for column in zip(*rows))


@no_type_check
def sums_or_zeros(sums: tuple[Array, ...], n: int, dtype: Any) -> tuple[Array, ...]:
    """`sums`, or `n` zeros of `dtype` when there was no leaf to sum over."""
    return sums if sums else tuple(jnp.zeros((), dtype) for _ in range(n))


@no_type_check
def capture_initial(
    first_step: Array, params: Any, stored: Any, name: str, zero_if_unmoved: Any = None
) -> Any:
    """`stored` (a tree of the initial parameters, zeros from `init`), or at the first
    step the parameters seen now: how the initial parameters enter the state without
    `init` reading them.

    A `lax.cond` on the scalar `first_step`: at every later step the stored arrays pass
    through untouched (no pass over them, nothing written; a `jnp.where` would rewrite
    them at each step). With `zero_if_unmoved` (a tree like `stored` that is zero
    where no step has moved the parameter yet, COCOB's sums of gradient magnitudes),
    that branch stores the parameters only there and keeps the rest.
    """
    treedef = jax.tree.structure(stored, is_leaf=is_none)
    try:
        flat_params = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as e:
        raise structure_mismatch((name, "params"), (stored, params)) from e
    flat_stored = treedef.flatten_up_to(stored)
    where = [i for i, s in enumerate(flat_stored) if eqx.is_array(s)]
    old = [flat_stored[i] for i in where]
    new = [to_dtype(flat_params[i], flat_stored[i].dtype) for i in where]
    if zero_if_unmoved is not None:
        flat_zero = treedef.flatten_up_to(zero_if_unmoved)
        unmoved = [flat_zero[i] for i in where]
        captured = lax.cond(
            first_step,
            lambda: [jnp.where(z == 0, n, o) for z, n, o in zip(unmoved, new, old)],
            lambda: old,
        )
    else:
        captured = lax.cond(first_step, lambda: new, lambda: old)
    for i, x in zip(where, captured):
        flat_stored[i] = x
    return treedef.unflatten(flat_stored)


@no_type_check
def distance_and_gradient_sums(
    first_step: Array, updates: Any, params: Any, stored: Any, name: str, dtype: Any
) -> tuple[Any, Array, Array]:
    r"""The initial parameters $x_0$ (`stored`, or the parameters seen at the first
    step, see `capture_initial`) and, summed over all leaves in `dtype`, the squared
    distance $\|x_0 - x\|^2$ of the parameters from them and the squared gradient norm
    $\|g\|^2$: what DoG and DoWG build their step sizes from."""
    init_params = capture_initial(first_step, params, stored, name)

    @no_type_check
    def statistics(g, x0, p, _):
        x = upcast(g)
        difference = to_dtype(x0, x.dtype) - to_dtype(p, x.dtype)
        return g, x0, p, (jnp.sum(abs_sq(difference)), jnp.sum(abs_sq(x)))

    _, init_params, _, partials = map_leaves(
        statistics,
        updates,
        init_params,
        params,
        placeholders(updates),
        names=("updates", name, "params"),
    )
    sums = sums_or_zeros(leaf_sums(updates, partials), 2, dtype)
    distance_sq, grads_sq = (to_dtype(s, dtype) for s in sums)
    return init_params, distance_sq, grads_sq


@no_type_check
def safe_divide(numerator: Array, denominator: Array) -> Array:
    r"""$a / b$, and $0$ where $b = 0$, with finite derivatives there (the unused
    branch divides by one, not zero)."""
    zero = denominator == 0
    return jnp.where(zero, 0, numerator / jnp.where(zero, 1, denominator))


@no_type_check
def dot(a: Array, b: Array) -> Array:
    r"""$\langle a, b \rangle = \sum_i \bar a_i b_i$, as `jnp.vdot` but elementwise then
    summed, which keeps working on arrays sharded over an explicit mesh (a contraction
    over sharded axes needs an output sharding)."""
    return jnp.sum((a.conj() if jnp.iscomplexobj(a) else a) * b)

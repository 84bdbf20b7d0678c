"""Small helpers shared by the contrib optimisers of this family."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._tree import compute_dtype


@no_type_check
def float_dtype(params: Any, which: str = "lowest") -> np.dtype:
    """The lowest (or highest) dtype of the floating leaves of `params`, at least
    float32 (the dtype of scalar state: never bfloat16), float32 if there is none.

    Reads only dtypes (so `init` runs on `jax.ShapeDtypeStruct`s), and skips non-array
    and integer leaves (Equinox models), where Optax's `tree.dtype` would fail.
    """
    dtypes = [
        jnp.dtype(x.dtype)
        for x in jax.tree.leaves(params)
        if eqx.is_inexact_array(x) or _is_inexact_struct(x)
    ]
    if not dtypes:
        return jnp.dtype(jnp.float32)
    key = lambda d: jnp.finfo(d).bits  # noqa: E731
    chosen = min(dtypes, key=key) if which == "lowest" else max(dtypes, key=key)
    return compute_dtype(jnp.zeros((), chosen))


@no_type_check
def _is_inexact_struct(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jnp.inexact)


@no_type_check
def require_extra_arg(owner: str, name: str, value: Any, how: str) -> None:
    """Raise a `ValueError` naming the missing extra argument `name` of `update`."""
    if value is None:
        raise ValueError(
            f"`{owner}.update` needs the extra keyword argument `{name}`: call "
            f"`update(updates, state, params, {name}=...)` with {how}."
        )

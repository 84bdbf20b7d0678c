"""Applying updates to parameters."""

from typing import no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Params, Updates
from ._tree import map_leaves


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Add `updates` to `params`: $\theta \leftarrow \theta + u$.

    Leaves of `params` that are not floating arrays (activation functions, integers,
    `None`), and leaves whose update is `None`, are returned unchanged. Each parameter
    keeps its dtype: the sum is computed in the wider of the two dtypes and cast back.
    `params` may be any pytree: an Equinox model, or an eqopt optimiser being
    meta-learned.

    **Arguments:**

    - `params`: the parameters.
    - `updates`: the updates, from `update`, with the structure of `params`.

    **Returns:**

    The new parameters, with the structure and dtypes of `params`.
    """

    @no_type_check
    def add(u, p):
        if not eqx.is_inexact_array(p):
            return u, p
        if u.dtype == p.dtype:
            return u, p + u
        with jax.numpy_dtype_promotion("standard"):  # explicit, whatever the config
            dtype = jnp.promote_types(p.dtype, u.dtype)
        return u, (p.astype(dtype) + u.astype(dtype)).astype(p.dtype)

    return map_leaves(add, updates, params, names=("updates", "params"))[1]

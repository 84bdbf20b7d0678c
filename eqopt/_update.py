"""Applying updates to parameters."""

from typing import no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Integer, Real

from ._custom_types import Params, Updates
from ._tree import cast, map_leaves, to_dtype, upcast
from .tree_utils._leaves import map_arrays


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


@no_type_check
def _polyak_leaf(step_size, new, old):
    r"""One leaf of `incremental_update`: $s\,\theta_{new} + (1 - s)\,\theta_{old}$,
    computed in float32 or wider and cast back to the dtype of `old`."""
    if not (eqx.is_inexact_array(new) and eqx.is_inexact_array(old)):
        return new
    y = upcast(old)
    (s,) = cast(y.dtype, step_size)
    return to_dtype(s * to_dtype(new, y.dtype) + (1 - s) * y, old.dtype)


def incremental_update(
    new_tensors: Params, old_tensors: Params, step_size: Real[ArrayLike, ""]
) -> Params:
    r"""Polyak averaging: move a moving average of the parameters toward their new value.

    $$
    \bar\theta \leftarrow s\,\theta + (1 - s)\,\bar\theta.
    $$

    Leaves of `new_tensors` that are `None` or not floating arrays (an Equinox model's
    activation functions, integer arrays) are returned as they are in `new_tensors`. Each average keeps
    the dtype of `old_tensors`' leaf, computed in float32 or wider. `step_size` may be
    traced (a leaf of your own state).

    Optax: `optax.incremental_update`.

    **Arguments:**

    - `new_tensors`: the latest parameters $\theta$.
    - `old_tensors`: the moving average $\bar\theta$, with the structure of
        `new_tensors`.
    - `step_size`: $s$, the weight of the new value.

    **Returns:**

    The updated average, with the structure of `new_tensors`.

    ??? cite "References"

        Polyak and Juditsky, *Acceleration of Stochastic Approximation by Averaging*,
        SIAM Journal on Control and Optimization 30(4), 1992.
    """
    return map_arrays(
        lambda new, old: _polyak_leaf(step_size, new, old), new_tensors, old_tensors
    )


def periodic_update(
    new_tensors: Params,
    old_tensors: Params,
    steps: Integer[ArrayLike, ""],
    update_period: Integer[ArrayLike, ""],
) -> Params:
    r"""A slow copy of the parameters, replaced by the new ones every `update_period`
    steps: $\bar\theta \leftarrow \theta$ when `steps` is a multiple of `update_period`,
    else unchanged (a target network).

    The choice is a select, not a `lax.cond`, so Equinox models with non-array leaves
    work and it vmaps; non-array leaves are taken from `new_tensors`.

    Optax: `optax.periodic_update`.

    **Arguments:**

    - `new_tensors`: the latest parameters.
    - `old_tensors`: the slow copy, with the structure of `new_tensors`.
    - `steps`: the number of updates of the online parameters so far.
    - `update_period`: every how many steps to copy.

    **Returns:**

    `new_tensors` or `old_tensors`.

    ??? cite "References"

        Mnih et al., *Human-level control through deep reinforcement learning*,
        Nature 518, 2015; Grill et al., *Bootstrap Your Own Latent*, NeurIPS 2020.
    """
    copy = jnp.mod(steps, update_period) == 0
    return map_arrays(
        lambda new, old: jnp.where(copy, new, old), new_tensors, old_tensors
    )

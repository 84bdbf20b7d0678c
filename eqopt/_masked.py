"""Applying a transformation to some parameters only: `masked`, `freeze`."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax

from ._base import GradientTransformation, SetToZero
from ._custom_types import OptState, Params, Updates
from ._masking import freeze_mask, FrozenMask, mask_tree, MaskLike
from ._tree import is_none, structure_mismatch
from .tree_utils._map_params import _is_placeholder


class MaskedNode(eqx.Module):
    """Stands in for a masked-out parameter: a node without leaves, so `jax.tree.map`
    passes over it.

    The transformation inside [`eqopt.masked`][] sees its parameters and updates with a
    `MaskedNode` in place of every masked-out leaf, and its state has a `MaskedNode`
    there too, as in Optax.

    Optax: `optax.MaskedNode`.
    """


class MaskedState(eqx.Module):
    """The state of [`eqopt.masked`][]: the inner transformation's state.

    Optax: `optax.MaskedState`.

    **Arguments:**

    - `inner_state`: the inner transformation's state, with a [`eqopt.MaskedNode`][] at
        every masked-out parameter.
    """

    inner_state: OptState


@no_type_check
def hide(keep: Any, tree: Any, name: str) -> Any:
    """`tree` with a `MaskedNode` at every leaf where `keep` (full structure) is False."""
    try:
        return jax.tree.map(
            lambda k, x: x if k else MaskedNode(), keep, tree, is_leaf=is_none
        )
    except (ValueError, TypeError) as e:
        raise structure_mismatch(("params", name), (keep, tree)) from e


@no_type_check
def masked_update(
    inner: GradientTransformation,
    keep: Any,
    updates: Any,
    inner_state: Any,
    params: Any,
    extra_args: dict[str, Any],
    mask_compatible_extra_args: bool,
) -> tuple[Any, Any]:
    """One step of `inner` on the leaves where `keep` is True; the others pass through.

    `keep` is a tree of bools with the full structure of the parameters (see
    `eqopt._masking.mask_tree`). Shared by `masked` and `partition`.
    """
    if mask_compatible_extra_args:
        structure = jax.tree.structure(updates)
        extra_args = {
            k: hide(keep, v, k) if jax.tree.structure(v) == structure else v
            for k, v in extra_args.items()
        }
    new, inner_state = inner.update(
        hide(keep, updates, "updates"),
        inner_state,
        None if params is None else hide(keep, params, "params"),
        **extra_args,
    )
    merged = jax.tree.map(
        lambda k, n, old: n if k else old, keep, new, updates, is_leaf=is_none
    )
    return merged, inner_state


class Masked(GradientTransformation):
    r"""Apply `inner` to the parameters selected by `mask`; pass the others through.

    $u_i = T(g)_i$ where $m_i$ is true, $u_i = g_i$ elsewhere (unchanged, as in Optax: to
    leave a parameter alone, see [`eqopt.freeze`][]).

    The inner transformation sees only its leaves: its updates, parameters and state
    have a [`eqopt.MaskedNode`][] at every masked-out leaf, so its state holds nothing
    for them. Its hyperparameters stay leaves, reached as
    `eqx.tree_at(lambda m: m.inner.learning_rate, opt, 3e-4)`.

    Masks nest: `masked(masked(t, inner_mask), outer_mask)` applies `t` where both are
    true, whatever the shapes of the two masks (in Optax, optax#271, a prefix outer mask
    makes the inner one fail).

    Optax: `optax.masked`. A mask function is called on the parameters (at `init`, and
    at `update` when `update` gets them; on the updates otherwise), where Optax calls it
    on the updates: for an Equinox model, the parameters hold every field (activation
    functions too), while gradients from `eqx.filter_grad` hold `None` there.

    **Arguments:**

    - `inner`: the transformation to apply.
    - `mask`: a pytree of bools with the structure of the parameters, or a prefix of
        it (a bool for a whole subtree), or a function of the parameters returning
        one. `True` means "apply `inner`". The mask is static: it must be concrete.
    - `mask_compatible_extra_args`: whether to mask also the extra arguments of
        `update` that have the structure of the updates.
    """

    inner: GradientTransformation
    mask: FrozenMask | Callable | None = eqx.field(static=True, converter=freeze_mask)
    mask_compatible_extra_args: bool = eqx.field(
        static=True, default=False, kw_only=True
    )

    def init(self, params: Params) -> MaskedState:
        if _is_placeholder(params):  # `tree_map_params` finding the parameters' copies
            return MaskedState(self.inner.init(params))
        keep = mask_tree(self.mask, params)
        return MaskedState(self.inner.init(hide(keep, params, "params")))

    def update(
        self,
        updates: Updates,
        state: MaskedState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MaskedState]:
        keep = mask_tree(self.mask, updates if params is None else params)
        updates, inner_state = masked_update(
            self.inner,
            keep,
            updates,
            state.inner_state,
            params,
            extra_args,
            self.mask_compatible_extra_args,
        )
        return updates, MaskedState(inner_state)


masked = Masked


def freeze(mask: MaskLike) -> Masked:
    """Set the updates selected by `mask` to zero (freeze those parameters).

    `masked(set_to_zero(), mask)`: `True` freezes, `False` passes the update through.
    Put it after an optimiser in a chain, or use [`eqopt.selective_transform`][], which
    also keeps the optimiser's state off the frozen parameters.

    Optax: `optax.freeze`.

    **Arguments:**

    - `mask`: a bool (everything or nothing), a pytree of bools with the structure of
        the parameters or a prefix of it, or a function of the parameters returning
        one (eqopt's addition).
    """
    return Masked(SetToZero(), mask)

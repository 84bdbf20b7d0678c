"""Different transformations for different parameters: `partition`, `selective_transform`."""

import dataclasses
import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.tree_util as jtu

from ._base import GradientTransformation, SetToZero
from ._custom_types import OptState, Params, Updates
from ._masked import hide, masked_update, MaskedState
from ._masking import (
    freeze_labels,
    FrozenLabels,
    is_mask_function,
    label_tree,
    mask_tree,
    MaskLike,
)
from ._tree import is_none
from .tree_utils._map_params import _is_placeholder


class PartitionState(eqx.Module):
    """The state of [`eqopt.partition`][]: one state per group.

    Optax: `optax.PartitionState` (and `optax.MultiTransformState`).

    **Arguments:**

    - `inner_states`: a dict from each label to a [`eqopt.MaskedState`][] holding its
        transformation's state.
    """

    inner_states: dict[Hashable, OptState]


@no_type_check
def _check_labels(labels: Any, params: Any, transforms: Mapping) -> None:
    """Every label names a transformation; every parameter with an update has a label."""
    flat_labels, _ = jtu.tree_flatten_with_path(labels, is_leaf=is_none)
    flat_params = jtu.tree_leaves(params, is_leaf=is_none)
    for (path, label), param in zip(flat_labels, flat_params):
        where = jtu.keystr(path) or "<root>"
        if label is None:
            if eqx.is_inexact_array(param):
                raise ValueError(
                    f"`param_labels` gives no label (`None`) to the parameter at path "
                    f"`{where}`; every floating-point parameter needs one."
                )
        elif label not in transforms:
            raise ValueError(
                f"`param_labels` gives the label {label!r} to the parameter at path "
                f"`{where}`, but `transforms` has no transformation for it (its labels "
                f"are {list(transforms)})."
            )


class Partition(GradientTransformation):
    r"""Apply a different transformation to each group of parameters.

    $u_i = T_{\ell(i)}(g)_i$, where $\ell(i)$ is the label of parameter $i$. Each group's
    transformation sees only its leaves (a [`eqopt.MaskedNode`][] elsewhere) and keeps
    state only for them. Its hyperparameters stay leaves:
    `eqx.tree_at(lambda p: p.transforms["encoder"].learning_rate, opt, 1e-4)`.

    A label without a transformation, or a parameter without a label, is a `ValueError`
    naming the label and the path. A transformation whose label no parameter has gets an
    empty state, as in Optax, with a warning at `init` naming it (Optax is silent).

    Optax: `optax.partition`, `optax.multi_transform`. A labels function is called on
    the parameters (at `update` too, when it gets them), where Optax calls it on the
    updates at `update`: see [`eqopt.masked`][].

    **Arguments:**

    - `transforms`: a mapping from labels to transformations.
    - `param_labels`: a pytree of labels with the structure of the parameters (or a
        prefix of it), or a function of the parameters returning one. Static.
    - `mask_compatible_extra_args`: whether to mask also the extra arguments of
        `update` that have the structure of the updates, for each group.
    - `warn_unused`: whether `init` warns about transformations no parameter uses.
    """

    transforms: dict[Hashable, GradientTransformation] = eqx.field(converter=dict)
    param_labels: FrozenLabels | Callable = eqx.field(
        static=True, converter=freeze_labels
    )
    mask_compatible_extra_args: bool = eqx.field(
        static=True, default=False, kw_only=True
    )
    warn_unused: bool = eqx.field(static=True, default=True, kw_only=True)

    def _labels(self, params: Params) -> Any:
        labels = label_tree(self.param_labels, params)
        _check_labels(labels, params, self.transforms)
        return labels

    def init(self, params: Params) -> PartitionState:
        if _is_placeholder(params):  # `tree_map_params` finding the parameters' copies
            return PartitionState(
                {g: MaskedState(t.init(params)) for g, t in self.transforms.items()}
            )
        labels = self._labels(params)
        used = set(jax.tree.leaves(labels))
        unused = [group for group in self.transforms if group not in used]
        if unused and self.warn_unused:
            warnings.warn(
                f"`partition`: no parameter has the label(s) {unused}; their "
                "transformations will do nothing.",
                stacklevel=2,
            )
        states = {}
        for group, transform in self.transforms.items():
            keep = _is_group(labels, group)
            states[group] = MaskedState(transform.init(hide(keep, params, "params")))
        return PartitionState(states)

    def update(
        self,
        updates: Updates,
        state: PartitionState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, PartitionState]:
        labels = self._labels(updates if params is None else params)
        states = {}
        for group, transform in self.transforms.items():
            updates, inner_state = masked_update(
                transform,
                _is_group(labels, group),
                updates,
                state.inner_states[group].inner_state,
                params,
                extra_args,
                self.mask_compatible_extra_args,
            )
            states[group] = MaskedState(inner_state)
        return updates, PartitionState(states)


@no_type_check
def _is_group(labels: Any, group: Hashable) -> Any:
    return jax.tree.map(lambda label: label == group, labels, is_leaf=is_none)


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> Partition:
    """Apply a different transformation to each group of parameters.

    See [`eqopt.Partition`][]. Optax: `optax.partition`.
    """
    return Partition(
        transforms, param_labels, mask_compatible_extra_args=mask_compatible_extra_args
    )


#: Optax's older name for `partition` (the same function in Optax 0.2.8).
multi_transform = partition
#: Optax's older name for `PartitionState`.
MultiTransformState = PartitionState


@dataclasses.dataclass(frozen=True)
class _FreezeLabels:
    """`params -> "freeze"/"train" labels` from a mask function (hashable, so that
    rebuilding the optimiser does not recompile)."""

    freeze_mask: Callable

    @no_type_check
    def __call__(self, params):
        return jax.tree.map(_freeze_label, mask_tree(self.freeze_mask, params))


@no_type_check
def _freeze_label(frozen: Any) -> str | None:
    return None if frozen is None else ("freeze" if frozen else "train")


def selective_transform(
    optimizer: GradientTransformation, *, freeze_mask: MaskLike
) -> Partition:
    """Optimise the parameters not selected by `freeze_mask`; freeze the others.

    `partition({"train": optimizer, "freeze": set_to_zero()}, labels)`: the optimiser
    keeps state only for the trained parameters, and the frozen ones get a zero update.

    Optax: `optax.selective_transform`. eqopt also takes a function of the parameters as
    `freeze_mask` (Optax would freeze everything).

    **Arguments:**

    - `optimizer`: the optimiser for the trained parameters.
    - `freeze_mask`: a bool (everything or nothing), a pytree of bools with the
        structure of the parameters (or a prefix of it), or a function of the
        parameters returning one. `True` freezes.
    """
    if is_mask_function(freeze_mask):
        labels = _FreezeLabels(freeze_mask)
    else:
        labels = jax.tree.map(lambda m: "freeze" if m else "train", freeze_mask)
    return Partition(
        {"train": optimizer, "freeze": SetToZero()}, labels, warn_unused=False
    )

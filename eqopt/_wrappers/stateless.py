"""Transformations made from a plain function (`stateless`, `stateless_with_tree_map`),
and `with_extra_args_support`."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax

from .._base import EmptyState, GradientTransformation
from .._custom_types import Params, Updates
from .._tree import is_none


class Stateless(GradientTransformation):
    r"""A transformation without state, from a function of the updates and parameters:
    $u \leftarrow f(u, \theta)$.

    `f` is a **static field**: numbers it closes over are not leaves (they are not
    vmapped or differentiated, and a new function object recompiles). For a
    hyperparameter that should be a leaf, write a `GradientTransformation` Module.
    A module-level function (not a new `lambda` per construction) keeps two
    `stateless(f)` equal, so compiled steps are reused.

    Optax: `optax.stateless`.

    **Arguments:**

    - `f`: `f(updates, params) -> updates`; `params` may be `None`.
    """

    f: Callable[[Updates, Params | None], Updates] = eqx.field(static=True)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        return self.f(updates, params), EmptyState()


@no_type_check
def _apply_to_arrays(f, u, p):
    """`f(u, p)` on a floating array `u`; anything else (`None`, a non-array leaf of an
    Equinox model) is kept."""
    return f(u, p) if eqx.is_inexact_array(u) else u


class StatelessWithTreeMap(GradientTransformation):
    r"""A transformation without state, from a function applied leaf by leaf:
    $u_i \leftarrow f(u_i, \theta_i)$ (or $f(u_i, \text{None})$ without parameters).

    `f` is called on the floating-array leaves of the updates only: `None` (from
    `eqx.filter_grad`) and non-array leaves of an Equinox model are kept as they are.
    `f` is a **static field**, as in [`eqopt.stateless`][]: numbers it closes over are
    not leaves.

    Optax: `optax.stateless_with_tree_map`.

    **Arguments:**

    - `f`: `f(update, param) -> update` on one array; `param` may be `None`.
    """

    f: Callable[[Any, Any], Any] = eqx.field(static=True)

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        if params is None:
            out = jax.tree.map(
                lambda u: _apply_to_arrays(self.f, u, None), updates, is_leaf=is_none
            )
        else:
            out = jax.tree.map(
                lambda u, p: _apply_to_arrays(self.f, u, p),
                updates,
                params,
                is_leaf=is_none,
            )
        return out, EmptyState()


stateless = Stateless
stateless_with_tree_map = StatelessWithTreeMap


def with_extra_args_support(tx: Any) -> GradientTransformation:
    """A transformation whose `update` accepts extra keyword arguments.

    Every eqopt transformation's `update` already takes `**extra_args` (and ignores
    those it does not use), so an eqopt transformation is returned as it is. An Optax
    transformation is wrapped with [`eqopt.interop.from_optax`][], which passes extra
    arguments only to an Optax `GradientTransformationExtraArgs`.

    Optax: `optax.with_extra_args_support`.

    **Arguments:**

    - `tx`: an eqopt or Optax transformation.

    **Returns:**

    `tx` itself (eqopt), or its eqopt wrapper (Optax).
    """
    if isinstance(tx, GradientTransformation):
        return tx
    from ..interop import from_optax

    return from_optax(tx)

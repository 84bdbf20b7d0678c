"""Names Optax keeps only as deprecated aliases; they warn when first looked up."""

import functools as ft
import warnings
from typing import Any

from ._arithmetic import tree_add_scale, tree_scale
from ._reductions import tree_norm


_DEPRECATED = {
    "tree_scalar_mul": (
        "eqopt.tree_utils.tree_scalar_mul is deprecated (as in optax v0.2.5): use "
        "eqopt.tree_utils.tree_scale.",
        tree_scale,
    ),
    "tree_add_scalar_mul": (
        "eqopt.tree_utils.tree_add_scalar_mul is deprecated (as in optax v0.2.5): use "
        "eqopt.tree_utils.tree_add_scale.",
        tree_add_scale,
    ),
    "tree_l1_norm": (
        "eqopt.tree_utils.tree_l1_norm is deprecated (as in optax v0.2.5): use "
        "eqopt.tree_utils.tree_norm(..., ord=1).",
        ft.partial(tree_norm, ord=1),
    ),
    "tree_l2_norm": (
        "eqopt.tree_utils.tree_l2_norm is deprecated (as in optax v0.2.5): use "
        "eqopt.tree_utils.tree_norm.",
        ft.partial(tree_norm, ord=2),
    ),
    "tree_linf_norm": (
        "eqopt.tree_utils.tree_linf_norm is deprecated (as in optax v0.2.5): use "
        "eqopt.tree_utils.tree_norm(..., ord=jnp.inf).",
        ft.partial(tree_norm, ord="inf"),
    ),
}


def __getattr__(name: str) -> Any:
    """Look up a deprecated name of `eqopt.tree_utils`, with a `DeprecationWarning`."""
    if name in _DEPRECATED:
        message, value = _DEPRECATED[name]
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module 'eqopt.tree_utils' has no attribute {name!r}")

"""Type aliases used in eqopt's signatures, kept in one place.

Pytree structure names (the `" T"` strings) are checked at run time by jaxtyping: the
`updates` going into a transformation and the `updates` coming out must have the same
structure, and each leaf must keep its shape (the `?` lets each leaf have its own).
"""

from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Inexact, Int, PyTree, Real


#: A Python float or int, a NumPy scalar, a 0-d array, or a tracer (even a batched one).
ScalarLike: TypeAlias = Real[ArrayLike, ""]
#: A hyperparameter as stored on a Module: a 0-d floating array.
Scalar: TypeAlias = Float[Array, ""]
#: A step counter as stored in optimiser state.
Count: TypeAlias = Int[Array, ""]
#: Gradients or updates: floating (or complex) arrays, `None` where nothing was
#: differentiated (as `eqx.filter_grad` gives).
Updates: TypeAlias = PyTree[Inexact[Array, "?*shape"], " T"]  # pyright: ignore
#: Moments held in optimiser state: one array (or `None`) per parameter.
Moments: TypeAlias = PyTree[Inexact[Array, "..."]]
#: Parameters: any pytree, including Equinox models with non-array leaves.
Params: TypeAlias = Any
#: Optimiser state: Modules and tuples of Modules.
OptState: TypeAlias = Any

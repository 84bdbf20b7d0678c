"""Type aliases used in eqopt's signatures, kept in one place.

Arrays and scalars are checked at trace time by jaxtyping + beartype. Pytrees of
updates and moments are annotated as plain `PyTree`: their structure, shapes and dtypes
are checked leaf by leaf by `eqopt._tree.map_leaves`, which every transformation goes
through and whose errors name the path of the offending leaf. (A jaxtyping
`PyTree[Inexact[Array, ...]]` check costs milliseconds of trace time per call, on every
nested `update` of a chain, for no extra safety.)
"""

from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real


#: A Python float or int, a NumPy scalar, a 0-d array, or a tracer (even a batched one).
ScalarLike: TypeAlias = Real[ArrayLike, ""]
#: A hyperparameter as stored on a Module: a 0-d floating array.
Scalar: TypeAlias = Float[Array, ""]
#: A step counter as stored in optimiser state.
Count: TypeAlias = Int[Array, ""]
#: Gradients or updates: floating (or complex) arrays, `None` where nothing was
#: differentiated (as `eqx.filter_grad` gives).
Updates: TypeAlias = PyTree
#: Moments held in optimiser state: one array (or `None`) per parameter.
Moments: TypeAlias = PyTree
#: Parameters: any pytree, including Equinox models with non-array leaves.
Params: TypeAlias = Any
#: Optimiser state: Modules and tuples of Modules.
OptState: TypeAlias = Any

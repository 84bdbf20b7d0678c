"""Type aliases used in eqopt's signatures, kept in one place.

Arrays and scalars are checked at trace time by jaxtyping + beartype. Pytrees of
updates and moments are annotated as plain `PyTree`: their structure, shapes and dtypes
are checked leaf by leaf by `eqopt._tree.map_leaves`, which every transformation goes
through and whose errors name the path of the offending leaf. (A jaxtyping
`PyTree[Inexact[Array, ...]]` check costs milliseconds of trace time per call, on every
nested `update` of a chain, for no extra safety.)
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable, TypeAlias

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


# Optax's typing names, for code written against Optax (`optax.Params`...). The
# protocols are `runtime_checkable` (Optax's are not), so that jaxtyping + beartype can
# check an argument annotated with them (any callable passes).

#: A schedule: a function of the step count (eqopt's schedule Modules are such
#: functions; a plain function is wrapped in `eqopt.schedules.FunctionSchedule`).
Schedule: TypeAlias = Callable[[Real[ArrayLike, "*batch"]], Real[ArrayLike, "*batch"]]
#: A hyperparameter that may follow a schedule: a float, an array or a schedule.
ScalarOrSchedule: TypeAlias = ScalarLike | Schedule
#: A mask: a pytree of bools (or `None`), or a function of the parameters giving one.
MaskOrFn: TypeAlias = Any | Callable[[Params], Any] | None


@runtime_checkable
class TransformInitFn(Protocol):
    """The type of a transformation's `init`: parameters to initial state.

    Optax: `optax.TransformInitFn`.
    """

    def __call__(self, params: Params) -> OptState:
        """The initial state for `params`."""


@runtime_checkable
class TransformUpdateFn(Protocol):
    """The type of a transformation's `update`: updates, state (and params) to updates
    and new state.

    Optax: `optax.TransformUpdateFn`.
    """

    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]:
        """The transformed updates and the new state."""


@runtime_checkable
class TransformUpdateExtraArgsFn(Protocol):
    """The type of an `update` that also takes extra keyword arguments (such as the
    loss `value` a line search needs), ignoring those it does not use. Every eqopt
    `update` is one.

    Optax: `optax.TransformUpdateExtraArgsFn`.
    """

    def __call__(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        """The transformed updates and the new state."""

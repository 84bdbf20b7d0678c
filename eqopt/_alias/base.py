"""The base of every optimiser alias: a Module whose fields are the Optax factory's
arguments and whose `init`/`update` are those of the chain it builds.

Each optimiser is built from the transformations of `eqopt._transforms` by its
`as_chain` method, so its numbers are those of the blocks, and its state is the state of
that chain (a tuple, as in Optax: `state[0].mu` is Adam's first moment).
"""

import abc
from typing import Any

from jaxtyping import Array, Float

from .._base import AbstractSchedule, GradientTransformation
from .._combine import Chain
from .._custom_types import OptState, Params, Updates
from .._hyperparams import warn_python_number_hyperparameters


class AbstractOptimiser(GradientTransformation):
    """An optimiser defined as a chain of transformations built from its own fields.

    Subclasses declare their hyperparameters as fields and implement `as_chain`; `init`
    and `update` are those of the chain. Users change a hyperparameter on the optimiser
    itself: `eqx.tree_at(lambda o: o.learning_rate, opt, jnp.asarray(3e-4))`.
    """

    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    @abc.abstractmethod
    def as_chain(self) -> Chain:
        """The equivalent chain of transformations."""

    def init(self, params: Params) -> tuple[OptState, ...]:
        return self.as_chain().init(params)

    def update(
        self,
        updates: Updates,
        state: tuple[OptState, ...],
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, tuple[OptState, ...]]:
        warn_python_number_hyperparameters(updates, **{type(self).__name__: self})
        return self.as_chain().update(updates, state, params, **extra_args)


LearningRate = Float[Array, ""] | AbstractSchedule

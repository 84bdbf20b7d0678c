r"""The control-variate interface."""

import abc
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from ._base import DistParams, Function


class AbstractControlVariate(eqx.Module):
    r"""A control variate $h(x;\theta)$ for a function $f$, with a closed-form
    expectation $\mathbb E_{p(x;\theta)}[h(x;\theta)]$.

    Used by [`eqopt.monte_carlo.control_variates_jacobians`][], which estimates

    $$
    \nabla_\theta\, \mathbb E_p[f]
    = \nabla_\theta\, \mathbb E_p[f - h] + \nabla_\theta\, \mathbb E_p[h]
    $$

    with a stochastic estimator for the first term and automatic differentiation of
    the closed form for the second. The closer $h$ is to $f$, the lower the variance.

    A control variate is built from $f$ (its `function` field) and may keep a state
    (such as a moving average), which `update_state` advances once per step. As in
    Optax, it unpacks into its three functions:
    `control_variate, expected_value, update_state = cv`.

    Subclasses implement `init`, `__call__`, `expected_value` and `update_state`.
    """

    function: eqx.AbstractVar[Function]

    @abc.abstractmethod
    def init(self) -> Any:
        """The initial state (`None` for a control variate without state)."""

    @abc.abstractmethod
    def __call__(
        self, params: DistParams, sample: Float[Array, "..."], state: Any = None
    ) -> Float[Array, ""]:
        r"""$h(x;\theta)$ for one sample $x$.

        **Arguments:**

        - `params`: the distribution parameters $\theta$.
        - `sample`: one sample $x$.
        - `state`: the control variate's state.

        **Returns:**

        A scalar.
        """

    @abc.abstractmethod
    def expected_value(self, params: DistParams, state: Any = None) -> Float[Array, ""]:
        r"""$\mathbb E_{p(x;\theta)}[h(x;\theta)]$, in closed form.

        **Arguments:**

        - `params`: the distribution parameters $\theta$.
        - `state`: the control variate's state.

        **Returns:**

        A scalar, differentiable in `params`.
        """

    @abc.abstractmethod
    def update_state(
        self,
        params: DistParams,
        samples: Float[Array, "num_samples ..."],
        state: Any = None,
    ) -> Any:
        """The state after seeing a batch of samples.

        **Arguments:**

        - `params`: the distribution parameters.
        - `samples`: the samples drawn this step, stacked along the first axis.
        - `state`: the current state.

        **Returns:**

        The new state.
        """

    def __iter__(self) -> Iterator[Callable]:
        # Optax's control variates were 3-tuples of functions.
        return iter((self.__call__, self.expected_value, self.update_state))

    def __getitem__(self, index: int) -> Callable:
        return tuple(self)[index]

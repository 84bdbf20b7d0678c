"""Complex parameters optimised as pairs of real ones: `split_real_and_imaginary`."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._base import GradientTransformation
from .._custom_types import OptState, Params, Updates
from .._tree import is_none


class SplitRealAndImaginaryArrays(eqx.Module):
    """A complex array as its real and imaginary parts (two real leaves)."""

    real: Array
    imaginary: Array


@no_type_check
def _split(x: Any) -> Any:
    if eqx.is_array(x) and jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(x.real, x.imag)
    return x


@no_type_check
def _merge(x: Any) -> Any:
    if isinstance(x, SplitRealAndImaginaryArrays):
        return jax.lax.complex(x.real, x.imaginary)
    return x


@no_type_check
def _is_pair(x: Any) -> bool:
    return x is None or isinstance(x, SplitRealAndImaginaryArrays)


class SplitRealAndImaginaryState(eqx.Module):
    """State of [`eqopt.contrib.split_real_and_imaginary`][]: the inner state, made
    for the parameters with each complex leaf split into its real and imaginary
    parts."""

    inner_state: OptState


class SplitRealAndImaginary(GradientTransformation):
    r"""Run `inner` on the real and imaginary parts of complex updates as separate
    real parameters: $z = x + iy \mapsto (x, y) \mapsto T(x, y) = (u, v) \mapsto
    u + iv$.

    Real leaves pass to `inner` as they are. Mind JAX's convention: `jax.grad` of a
    real loss in a complex parameter gives the conjugate of the steepest-ascent
    direction, so conjugate the gradient before `update` (optax#196).

    Optax: `optax.contrib.split_real_and_imaginary`. The inner transformation's
    hyperparameters stay leaves (`eqx.tree_at(lambda s: s.inner.learning_rate, ...)`).

    **Arguments:**

    - `inner`: the transformation of the real parts.
    """

    inner: GradientTransformation

    def init(self, params: Params) -> SplitRealAndImaginaryState:
        split = jax.tree.map(_split, params, is_leaf=is_none)
        return SplitRealAndImaginaryState(self.inner.init(split))

    def update(
        self,
        updates: Updates,
        state: SplitRealAndImaginaryState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, SplitRealAndImaginaryState]:
        split_updates = jax.tree.map(_split, updates, is_leaf=is_none)
        split_params = jax.tree.map(_split, params, is_leaf=is_none)
        new, inner_state = self.inner.update(
            split_updates, state.inner_state, split_params, **extra_args
        )
        merged = jax.tree.map(_merge, new, is_leaf=_is_pair)
        return merged, SplitRealAndImaginaryState(inner_state)


split_real_and_imaginary = SplitRealAndImaginary

r"""Polyak's step size: the suboptimality gap over the squared gradient norm."""

from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import EmptyState, GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Params, Updates
from .._hyperparams import as_scalar
from .._linesearch.common import extra_arguments, VALUE_CALL
from .._tree import cast, global_norm_squared
from .scaling import scale_leaves


_VARIANTS = ("sps", "sps+")
#: Optax's threshold below which the squared norm counts as zero: float64's epsilon.
_TINY = float(jnp.finfo(jnp.float64).eps)


@no_type_check
def check_variant(owner: str, variant: str) -> None:
    if variant not in _VARIANTS:
        raise ValueError(
            f"`{owner}(variant=...)` must be one of {_VARIANTS}; got variant={variant!r}."
        )


class ScaleByPolyak(GradientTransformation):
    r"""Scale the updates $u$ by Polyak's step size,

    $$
    \eta = \min\left\{\frac{f(x) - f^\star}{\|u\|^2 + \epsilon},\ \eta_{\max}\right\},
    \qquad u \leftarrow \eta\, u,
    $$

    with $\eta = 0$ where $\|u\|^2 + \epsilon$ is below float64's machine epsilon (so an
    all-zero update stays zero, with finite hypergradients). The `"sps+"` variant uses
    the positive part $(f(x) - f^\star)_+$ of the gap.

    `update` needs the objective's value $f(x)$ as the keyword argument `value`:

    ```python
    value, grad = jax.value_and_grad(f)(params)
    updates, state = opt.update(grad, state, params, value=value)
    ```

    Optax: `optax.scale_by_polyak`. A wrong `variant` is a `ValueError` at
    construction (Optax raises it at the first `update`).

    **Arguments:**

    - `f_min`: $f^\star$, a lower bound on (a guess of) the objective's minimum.
    - `max_learning_rate`: $\eta_{\max} \ge 0$, the largest step size.
    - `eps`: $\epsilon \ge 0$, added to the squared norm.
    - `variant`: `"sps"` or `"sps+"` (static).

    ??? cite "References"

        Loizou et al., *Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate
        for Fast Convergence*, AISTATS 2021.
        Garrigos et al., *Function Value Learning: Adaptive Learning Rates Based on the
        Polyak Stepsize and Function Splitting in ERM*, 2023.
    """

    f_min: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    max_learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar, default=1.0)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    variant: str = eqx.field(static=True, default="sps")

    def __check_init__(self):
        check_variant("scale_by_polyak", self.variant)
        check_hyperparameters(
            "scale_by_polyak", self, max_learning_rate=NONNEGATIVE, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> EmptyState:
        return EmptyState()

    def update(
        self,
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState]:
        value, _ = extra_arguments(
            "scale_by_polyak", extra_args, ("value",), VALUE_CALL
        )
        norm_squared = global_norm_squared(updates)
        dtype = norm_squared.dtype
        f_min, max_learning_rate, eps = cast(
            dtype, self.f_min, self.max_learning_rate, self.eps
        )
        gap = jnp.reshape(jnp.asarray(value), ()).astype(dtype) - f_min
        if self.variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denominator = norm_squared + eps
        negligible = denominator <= _TINY
        # The unused branch divides by one, so that its derivative is finite too.
        safe = jnp.where(negligible, 1, denominator)
        step = jnp.where(negligible, 0, jnp.minimum(gap / safe, max_learning_rate))
        return scale_leaves(updates, step), state


scale_by_polyak = ScaleByPolyak

"""Hypergradient descent: adapt any optimiser's hyperparameters online (Baydin et al.)."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._adapted import current_values, locate, substitute
from ._base import GradientTransformation
from ._checks import check_hyperparameters, NONNEGATIVE, UNIT
from ._custom_types import OptState, Params, Updates
from ._hyperparams import as_scalar, HYPERPARAMETER_DICT
from ._inject import _as_state_value
from ._numerics import safe_sqrt
from ._tree import global_norm_squared, upcast, zeros_like_params


_MODES = ("multiplicative", "additive")


class HypergradientDescentState(eqx.Module):
    """State of [`eqopt.HypergradientDescent`][].

    - `hyperparams`: the current value of each adapted hyperparameter, by name
        (`state.hyperparams["learning_rate"]`), used at the last step; replace one with
        `eqx.tree_at` or `eqopt.tree_utils.tree_set_hyperparams`.
    - `derivatives`: for each, $\\partial u_{t-1} / \\partial h$, the derivative of the
        last update with respect to it (a tree like the parameters).
    - `inner_state`: the wrapped optimiser's state.
    """

    hyperparams: dict[str, Array] = eqx.field(
        metadata={HYPERPARAMETER_DICT: _as_state_value}
    )
    derivatives: dict[str, Any]
    inner_state: OptState


class HypergradientDescent(GradientTransformation):
    r"""Adapt hyperparameters of any optimiser online by their one-step hypergradient.

    After step $t - 1$ moved the parameters by $u_{t-1}(h)$, the loss at step $t$
    depends on a hyperparameter $h$ through that update, with derivative
    $$
    \frac{\partial f(\theta_t)}{\partial h} = g_t \cdot d_{t-1}, \qquad
    d_{t-1} = \frac{\partial u_{t-1}}{\partial h},
    $$
    where $g_t$ is the gradient given to `update` and $d_{t-1}$ is computed by
    `jax.jvp` through the wrapped optimiser's `update` at the previous step (whatever
    the optimiser: every eqopt hyperparameter is a leaf). Before each step,
    $$
    \text{additive:}\quad h_t = h_{t-1} - \beta\, g_t \cdot d_{t-1}, \qquad
    \text{multiplicative:}\quad h_t = h_{t-1}\Big(1 - \beta\,
        \frac{g_t \cdot d_{t-1}}{\lVert g_t\rVert\, \lVert d_{t-1}\rVert}\Big),
    $$
    then clipped to `[min_value, max_value]`; the step itself uses $h_t$. For SGD
    ($u = -\alpha g$) the additive rule is Baydin et al.'s SGD-HD, $\alpha_t =
    \alpha_{t-1} + \beta\, g_t \cdot g_{t-1}$; for Adam, Adam-HD; the multiplicative
    rule is their HD-M: it is invariant to the scale of $h$, $g$ and $u$, so one
    $\beta$ (~0.01-0.05) suits any starting value, and for $\beta < 1$ it keeps $h$
    positive. At the first step $d = 0$ and $h$ is the wrapped optimiser's value.

    The current values live in the state (`state.hyperparams`), not in the wrapped
    Module, which keeps the starting values. Memory: one tree like the parameters per
    adapted hyperparameter ($d$); time: one `jax.jvp` of the wrapped update per
    hyperparameter (the primal is shared by XLA).

    **Arguments:**

    - `opt`: any eqopt optimiser or transformation (a chain, a partition, `MultiSteps`...).
    - `hyper_learning_rate`: $\beta \ge 0$.
    - `fields`: names of scalar float hyperparameters of `opt` to adapt; a name found
        in several places (two groups of a partition) is adapted separately at each,
        keyed `"name.path"` in `state.hyperparams`.
    - `mode`: `"multiplicative"` (default) or `"additive"`.
    - `min_value`, `max_value`: the range $h$ is clipped to.

    ??? cite "References"

        Baydin et al., *Online Learning Rate Adaptation with Hypergradient Descent*,
        ICLR 2018.
    """

    opt: GradientTransformation
    hyper_learning_rate: Float[Array, ""] = eqx.field(converter=as_scalar)
    fields: tuple[str, ...] = eqx.field(
        static=True, default=("learning_rate",), converter=tuple
    )
    mode: str = eqx.field(static=True, default="multiplicative", kw_only=True)
    min_value: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=0.0, kw_only=True
    )
    max_value: Float[Array, ""] = eqx.field(
        converter=as_scalar, default=float("inf"), kw_only=True
    )

    def __check_init__(self):
        if self.mode not in _MODES:
            raise ValueError(
                f"`hypergradient_descent(mode=...)` must be one of {_MODES}; "
                f"got mode={self.mode!r}."
            )
        # The multiplicative rule keeps h positive for beta < 1.
        beta = UNIT if self.mode == "multiplicative" else NONNEGATIVE
        check_hyperparameters("hypergradient_descent", self, hyper_learning_rate=beta)
        locate(self.opt, self.fields, "hypergradient_descent")

    def init(self, params: Params) -> HypergradientDescentState:
        located = locate(self.opt, self.fields, "hypergradient_descent")
        return HypergradientDescentState(
            hyperparams=current_values(located),
            derivatives={k: zeros_like_params(params) for k in located},
            inner_state=self.opt.init(params),
        )

    def update(
        self,
        updates: Updates,
        state: HypergradientDescentState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, HypergradientDescentState]:
        located = locate(self.opt, self.fields, "hypergradient_descent")
        values = {
            k: self._adapt(h, updates, state.derivatives[k])
            for k, h in state.hyperparams.items()
        }

        @no_type_check
        def inner(values):
            opt = substitute(self.opt, located, values)
            return opt.update(updates, state.inner_state, params, **extra_args)

        derivatives = {}
        for k in located:
            tangent = {j: jnp.zeros_like(v) for j, v in values.items()}
            tangent[k] = jnp.ones_like(values[k])
            new_updates, derivatives[k], inner_state = jax.jvp(
                inner, (values,), (tangent,), has_aux=True
            )
        return new_updates, HypergradientDescentState(values, derivatives, inner_state)

    def _adapt(self, h: Array, grads: Updates, derivative: Any) -> Array:
        g, d = jax.tree.leaves(grads), jax.tree.leaves(derivative)
        dot = sum(jnp.sum(upcast(a) * upcast(b)) for a, b in zip(g, d))
        beta, dot = self.hyper_learning_rate.astype(h.dtype), jnp.asarray(dot, h.dtype)
        if self.mode == "additive":
            h = h - beta * dot
        else:
            norms = safe_sqrt(global_norm_squared(g) * global_norm_squared(d))
            norms = norms.astype(h.dtype)
            positive = norms > 0  # else d = 0 or g = 0: no change (finite derivatives)
            cosine = jnp.where(positive, dot / jnp.where(positive, norms, 1), 0)
            h = h * (1 - beta * cosine)
        low, high = self.min_value.astype(h.dtype), self.max_value.astype(h.dtype)
        return jnp.clip(h, low, high)


hypergradient_descent = HypergradientDescent

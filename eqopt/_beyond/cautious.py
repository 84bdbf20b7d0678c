"""Cautious optimisers: step only where the update agrees with the gradient (Liang et
al. 2024)."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp

from .._base import GradientTransformation
from .._custom_types import OptState, Params, Updates
from .._hyperparams import warn_python_number_hyperparameters
from .._tree import map_leaves, to_dtype, upcast
from ..tree_utils._leaves import is_none


@no_type_check
def _upcast_tree(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: upcast(x) if eqx.is_inexact_array(x) else x, tree, is_leaf=is_none
    )


class Cautious(GradientTransformation):
    r"""Mask the updates of any optimiser where they disagree with the gradient.

    With $u_t$ the wrapped optimiser's update and $g_t$ the gradient, per leaf of $d$
    elements:

    $$
    \phi_t = \mathbb{1}\left[-u_t \odot g_t > 0\right], \qquad
    u_t' = \frac{d}{\operatorname{nnz}(\phi_t) + 1}\, \phi_t \odot u_t.
    $$

    eqopt's updates are *added* to the parameters ($\theta_{t+1} = \theta_t + u_t$),
    so an update agrees with the gradient where it points against it: $u_t g_t < 0$.
    The paper writes $\theta_{t+1} = \theta_t - \epsilon\, u_t$ and keeps
    $u_t g_t > 0$: the same components. The rescaling keeps the update's size when
    about half the components are masked; the count is per leaf (per tensor, as the
    authors' code loops over tensors). Components with a zero gradient are masked.

    To wrap a *direction* that is not yet negated, such as [`eqopt.ScaleByAdam`][]
    before weight decay and the learning rate (the paper's C-AdamW masks Adam's
    direction but not the decay), pass `descent=False`: the mask is then
    $u_t g_t > 0$.

    ```python
    c_adamw = eqopt.chain(
        eqopt.cautious(eqopt.scale_by_adam(), descent=False),
        eqopt.add_decayed_weights(1e-2),
        eqopt.scale_by_learning_rate(1e-3),
    )
    c_lion = eqopt.cautious(eqopt.lion(1e-4))  # decay masked with the step
    ```

    The state is the wrapped optimiser's state, unchanged. With bfloat16 parameters
    the wrapped optimiser runs on float32 gradients (its state keeps its dtypes), so
    the mask is that of the float32 update, and the result is rounded once. The mask
    is piecewise constant, so hypergradients flow through the kept components only.

    Not in Optax.

    **Arguments:**

    - `opt`: the optimiser (or transformation) to wrap; its hyperparameters stay
        leaves (`eqx.tree_at(lambda c: c.opt.learning_rate, ...)`).
    - `descent`: whether `opt`'s updates are descent steps (negated gradients, the
        default, as every eqopt optimiser); `False` for an un-negated direction.

    ??? cite "References"

        Liang et al., *Cautious Optimizers: Improving Training with One Line of Code*,
        2024 (arXiv:2411.16085).
    """

    opt: GradientTransformation
    descent: bool = eqx.field(static=True, default=True, kw_only=True)

    checks_own_hyperparameters = True  # see `eqopt._hyperparams`

    def init(self, params: Params) -> OptState:
        return self.opt.init(params)

    def update(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]:
        warn_python_number_hyperparameters(updates, cautious=self)
        grads = updates
        inner, state = self.opt.update(
            _upcast_tree(grads), state, _upcast_tree(params), **extra_args
        )
        sign = -1 if self.descent else 1

        @no_type_check
        def rule(g, u):
            if not eqx.is_inexact_array(u):  # the wrapped optimiser returned None
                return g, u
            x = upcast(g)
            kept = sign * u * to_dtype(x, u.dtype) > 0
            n_kept = jnp.sum(kept, dtype=jnp.int32).astype(u.dtype)
            scale = u.size / (n_kept + 1)
            return to_dtype(jnp.where(kept, u, 0) * scale, g.dtype), u

        masked, _ = map_leaves(rule, grads, inner, names=("updates", "inner updates"))
        return masked, state


cautious = Cautious

r"""L-BFGS: the updates multiplied by a limited-memory inverse-Hessian approximation."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._base import GradientTransformation
from .._custom_types import Count, Params, Updates
from .._linesearch.common import value_dtype
from .._numerics import safe_increment
from .._tree import is_none, map_params, require_params, upcast, zeros_like_params
from ..tree_utils import tree_norm, tree_vdot


class ScaleByLBFGSState(eqx.Module):
    """State of [`eqopt.ScaleByLBFGS`][].

    **Fields:**

    - `count`: the number of updates so far.
    - `params`, `updates`: the parameters and updates of the last call.
    - `diff_params_memory`, `diff_updates_memory`: the last `memory_size` differences
        $\\delta w$ and $\\delta u$, each parameter's stacked along a leading axis (a
        ring buffer).
    - `weights_memory`: the matching $\\rho = 1 / \\langle \\delta u, \\delta w
        \\rangle$.
    """

    count: Count
    params: Params
    updates: Updates
    diff_params_memory: PyTree
    diff_updates_memory: PyTree
    weights_memory: Float[Array, " memory_size"]


class ScaleByLBFGS(GradientTransformation):
    r"""Precondition the updates by L-BFGS: $u \leftarrow P_k u_k$.

    $P_k$ approximates the inverse Hessian from the last $m$ differences of parameters
    $\delta w_j = w_{j+1} - w_j$ and of updates (gradients) $\delta u_j = u_{j+1} -
    u_j$:

    $$
    \begin{aligned}
    P_{k, j+1} &= V_j^\top P_{k, j} V_j + \rho_j\, \delta w_j \delta w_j^\top,
    \quad j = k - m, \ldots, k - 1, \qquad P_{k, k-m} = \gamma_k I, \\
    V_j &= I - \rho_j\, \delta u_j \delta w_j^\top, \qquad
    \rho_j = 1 / \langle \delta u_j, \delta w_j \rangle, \qquad
    \gamma_k = \frac{\langle \delta w_{k-1}, \delta u_{k-1} \rangle}
    {\langle \delta u_{k-1}, \delta u_{k-1} \rangle},
    \end{aligned}
    $$

    applied to $u_k$ by the two-loop recursion. At the first step $\gamma_0 =
    \min(1, 1 / \|u_0\|)$ (the first step stays in a ball of radius 1); with
    `scale_init_precond=False`, $\gamma_k = 1$. The memory is updated before the
    preconditioning, so chained with a line search it records the step actually
    taken. Chain it with a line search ([`eqopt.scale_by_zoom_linesearch`][]), as
    [`eqopt.lbfgs`][] does.

    The memory is stored in each parameter's dtype, and the recursion computed in
    float32 or wider. Gradients (for meta-learning) flow through the preconditioner,
    except through $\gamma_0$ (as in Optax); divisions by zero inner products have
    finite derivatives.

    Optax: `optax.scale_by_lbfgs`.

    **Arguments:**

    - `memory_size`: $m$, the number of differences kept (static, at least 1).
    - `scale_init_precond`: whether $P_{k,k-m}$ is $\gamma_k I$ (else $I$).

    ??? cite "References"

        Nocedal and Wright, *Numerical Optimization*, Algorithms 7.4 and 7.5, 1999.

        Liu and Nocedal, *On the limited memory BFGS method for large scale
        optimization*, Mathematical Programming 1989.
    """

    memory_size: int = eqx.field(static=True, converter=int, default=10)
    scale_init_precond: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.memory_size < 1:
            raise ValueError(
                "`scale_by_lbfgs(memory_size=...)` must be at least 1; got "
                f"memory_size={self.memory_size}."
            )

    def init(self, params: Params) -> ScaleByLBFGSState:
        m = self.memory_size

        @no_type_check
        def stacked(p):
            # Broadcast from `zeros_like(p)`: each slot laid out (sharded) like `p`.
            return jnp.broadcast_to(jnp.zeros_like(p)[None], (m, *p.shape))

        return ScaleByLBFGSState(
            count=jnp.zeros((), jnp.int32),
            params=zeros_like_params(params),
            updates=zeros_like_params(params),
            diff_params_memory=map_params(stacked, params),
            diff_updates_memory=map_params(stacked, params),
            weights_memory=jnp.zeros((m,), value_dtype(params)),
        )

    def update(
        self,
        updates: Updates,
        state: ScaleByLBFGSState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByLBFGSState]:
        require_params("scale_by_lbfgs", params)
        m, count = self.memory_size, state.count
        index, prev_index = count % m, (count - 1) % m
        started = count > 0

        # 1. Record the last differences (zero at the first step: there are none).
        u = _on(upcast, updates)
        diff_params = _on(
            lambda g, p, q: upcast(p) - upcast(q), u, params, state.params
        )
        diff_updates = _on(lambda g, v: g - upcast(v), u, state.updates)
        curvature = jnp.real(tree_vdot(diff_updates, diff_params))
        weight = jnp.where(curvature == 0.0, 0.0, 1.0 / _nonzero(curvature))
        diff_params, diff_updates = _on(
            lambda d: jnp.where(started, d, jnp.zeros_like(d)),
            (diff_params, diff_updates),
        )
        weight = jnp.where(started, weight, 0.0)
        diff_params_memory = _keep(
            lambda d, mem: mem.at[prev_index].set(d.astype(mem.dtype)),
            diff_params,
            state.diff_params_memory,
        )
        diff_updates_memory = _keep(
            lambda d, mem: mem.at[prev_index].set(d.astype(mem.dtype)),
            diff_updates,
            state.diff_updates_memory,
        )
        weights_memory = state.weights_memory.at[prev_index].set(
            weight.astype(state.weights_memory.dtype)
        )

        # 2. The scale of the initial inverse Hessian, gamma_k.
        if self.scale_init_precond:
            numerator = jnp.real(tree_vdot(diff_updates, diff_params))
            denominator = tree_norm(diff_updates, squared=True)
            gamma = jnp.where(denominator > 0.0, numerator / _nonzero(denominator), 1.0)
            first = jnp.minimum(1.0, 1.0 / tree_norm(jax.lax.stop_gradient(u)))
            gamma = jnp.where(started, gamma, first)
        else:
            gamma = 1.0

        # 3. The two-loop recursion.
        direction = _two_loop(
            u, diff_params_memory, diff_updates_memory, weights_memory, gamma, index
        )
        direction = _on(lambda d, g: d.astype(g.dtype), direction, updates)
        new_state = ScaleByLBFGSState(
            count=safe_increment(count),
            params=_keep(lambda g, q, p: p.astype(q.dtype), u, state.params, params),
            updates=_keep(lambda g, v: g.astype(v.dtype), u, state.updates),
            diff_params_memory=diff_params_memory,
            diff_updates_memory=diff_updates_memory,
            weights_memory=weights_memory,
        )
        return direction, new_state


scale_by_lbfgs = ScaleByLBFGS


@no_type_check
def _nonzero(x: Array) -> Array:
    """`x`, with 1 where it is 0: the divisor of a division whose result is discarded
    there (so that its derivative is not `0 * inf`)."""
    return jnp.where(x == 0.0, 1.0, x)


@no_type_check
def _on(fn, tree, *others):
    """`fn` over the leaves of `tree` that are not `None` (with the matching leaves of
    `others`); `None` stays `None`."""
    return jax.tree.map(
        lambda x, *rest: None if x is None else fn(x, *rest),
        tree,
        *others,
        is_leaf=is_none,
    )


@no_type_check
def _keep(fn, tree, old, *others):
    """`fn(x, o, *rest)` over the leaves `x` of `tree` that are not `None`; where `x` is
    `None`, the matching leaf `o` of the state `old` is kept."""
    return jax.tree.map(
        lambda x, o, *rest: o if x is None else fn(x, o, *rest),
        tree,
        old,
        *others,
        is_leaf=is_none,
    )


@no_type_check
def _two_loop(updates, diff_params, diff_updates, rhos, gamma, index):
    r"""$P_k u$ by Algorithm 7.4 of Nocedal and Wright: newest to oldest, scale by
    $\gamma$, oldest to newest (`index` is the slot of the oldest difference)."""
    m = rhos.shape[0]
    order = (index + jnp.arange(m, dtype=index.dtype)) % m

    @no_type_check
    def pair(i):
        return _on(lambda d: upcast(d[i]), diff_params), _on(
            lambda d: upcast(d[i]), diff_updates
        )

    @no_type_check
    def backward(vec, i):
        dw, du = pair(i)
        alpha = rhos[i] * jnp.real(tree_vdot(dw, vec))
        vec = _on(lambda v, d: (v + (-alpha) * d).astype(v.dtype), vec, du)
        return vec, alpha

    @no_type_check
    def forward(vec, i_alpha):
        i, alpha = i_alpha
        dw, du = pair(i)
        beta = rhos[i] * jnp.real(tree_vdot(du, vec))
        vec = _on(lambda v, d: (v + (alpha - beta) * d).astype(v.dtype), vec, dw)
        return vec, beta

    vec, alphas = jax.lax.scan(backward, updates, order, reverse=True)
    vec = _on(lambda v: (gamma * v).astype(v.dtype), vec)
    vec, _ = jax.lax.scan(forward, vec, (order, alphas))
    return vec

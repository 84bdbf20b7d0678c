r"""Projections onto the simplex and onto $\ell_1$ spheres and balls."""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PyTree, Shaped

from .._checks import check_value, POSITIVE
from .._custom_types import ScalarLike
from ._tree_math import as_float_arrays, tree_sum, upcast


_In = PyTree[Shaped[ArrayLike, "?*shape"], " T"]
_Out = PyTree[Shaped[Array, "?*shape"], " T"]


@jax.custom_jvp
def projection_unit_simplex(values: Float[Array, " n"]) -> Float[Array, " n"]:
    r"""Projection of a vector onto $\{p \ge 0, \sum_i p_i = 1\}$.

    With $u$ the entries sorted in decreasing order and
    $\rho = \max\{k : u_k + (1 - \sum_{i \le k} u_i) / k > 0\}$, the projection is
    $p = \max(v - \tau, 0)$ with $\tau = (\sum_{i \le \rho} u_i - 1) / \rho$.
    """
    n = values.shape[0]
    u = jnp.sort(values)[::-1]
    cumsum_u = jnp.cumsum(u)
    k = jnp.arange(1, n + 1, dtype=values.dtype)
    rho = jnp.count_nonzero(1 / k + (u - cumsum_u / k) > 0)  # at least 1
    rho_float = rho.astype(values.dtype)
    return jax.nn.relu(1 / rho_float + (values - cumsum_u[rho - 1] / rho_float))


@projection_unit_simplex.defjvp
def _projection_unit_simplex_jvp(primals, tangents):
    # On the support S of the projection, the Jacobian is I - 1 1ᵀ / |S|; zero off it.
    (values,), (dvalues,) = primals, tangents
    p = projection_unit_simplex(values)
    support = (p > 0).astype(dvalues.dtype)
    size = jnp.sum(support)  # at least 1, since p sums to 1
    dp = support * dvalues - (jnp.vdot(support, dvalues) / size) * support
    return p, dp


def projection_simplex(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the simplex of total $s$ (the probability simplex by default).

    $$
    \operatorname*{argmin}_{p} \|x - p\|_2^2 \quad \text{subject to} \quad
    p \ge 0, \quad p^\top \mathbf{1} = s,
    $$

    where $x$ is every entry of `tree`, raveled into one vector. The solution is
    $p = \max(x - \tau, 0)$ for the threshold $\tau$ that makes $p$ sum to $s$,
    found by sorting (Held et al.; Duchi et al.). Its derivative is the projection
    onto $\{d : \sum_{i \in S} d_i = 0\}$ restricted to the support $S$ of $p$.

    Optax: `optax.projections.projection_simplex`.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the total $s > 0$ that the projection sums to.

    **Returns:**

    The projected pytree, with the structure and shapes of `tree` (integer leaves
    become floating).

    ??? cite "References"

        Held, Wolfe and Crowder, *Validation of subgradient optimization*,
        Mathematical Programming, 1974.

        Duchi, Shalev-Shwartz, Singer and Chandra, *Efficient projections onto the
        ℓ1-ball for learning in high dimensions*, ICML 2008.
    """
    check_value("projection_simplex", "scale", scale, POSITIVE)
    with jax.numpy_dtype_promotion("standard"):  # leaves of mixed dtypes
        values, unravel = ravel_pytree(as_float_arrays(tree))
    x = upcast(values)  # sort and cumulative sums in float32 or wider
    scale = jnp.asarray(scale).astype(x.dtype)
    return unravel((scale * projection_unit_simplex(x / scale)).astype(values.dtype))


def _sign_or_one(x: Array) -> Array:
    """+1 where `x >= 0`, -1 elsewhere: a zero entry may go either way, so pick one."""
    return jnp.where(x >= 0, 1, -1).astype(x.dtype)


def projection_l1_sphere(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the $\ell_1$ sphere of radius $s$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \|y\|_1 = s,
    $$

    solved as $y = \operatorname{sign}(x) \odot \Pi_{\Delta_s}(|x|)$, with
    $\Pi_{\Delta_s}$ the projection onto the simplex of total $s$
    ([`eqopt.projections.projection_simplex`][]).

    Optax: `optax.projections.projection_l1_sphere`. Where an entry of $x$ is exactly
    zero, eqopt takes its sign to be $+1$ (either sign gives a closest point), so the
    result is always on the sphere; Optax uses $\operatorname{sign}(0) = 0$, which
    returns a point off the sphere (the zero tree for a zero input).

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the radius $s > 0$ of the sphere.

    **Returns:**

    The projected pytree, with the structure and shapes of `tree`.
    """
    check_value("projection_l1_sphere", "scale", scale, POSITIVE)
    tree = as_float_arrays(tree)
    magnitude = projection_simplex(jax.tree.map(jnp.abs, tree), scale)
    return jax.tree.map(lambda x, m: _sign_or_one(x) * m, tree, magnitude)


def projection_l1_ball(tree: _In, scale: ScalarLike = 1) -> _Out:
    r"""Projection onto the $\ell_1$ ball of radius $s$.

    $$
    \operatorname*{argmin}_{y} \|x - y\|_2^2 \quad \text{subject to} \quad
    \|y\|_1 \le s.
    $$

    A point inside the ball is its own projection; a point outside is projected onto
    the sphere ([`eqopt.projections.projection_l1_sphere`][]).

    Optax: `optax.projections.projection_l1_ball`.

    **Arguments:**

    - `tree`: the pytree $x$ to project.
    - `scale`: the radius $s > 0$ of the ball.

    **Returns:**

    The projected pytree, with the structure and shapes of `tree`.

    ??? cite "References"

        Duchi, Shalev-Shwartz, Singer and Chandra, *Efficient projections onto the
        ℓ1-ball for learning in high dimensions*, ICML 2008.
    """
    check_value("projection_l1_ball", "scale", scale, POSITIVE)
    tree = as_float_arrays(tree)
    l1_norm = tree_sum(jax.tree.map(jnp.abs, tree))
    return jax.lax.cond(
        l1_norm <= jnp.asarray(scale).astype(l1_norm.dtype),
        lambda t: t,
        lambda t: projection_l1_sphere(t, scale),
        tree,
    )

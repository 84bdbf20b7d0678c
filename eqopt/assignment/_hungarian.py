r"""The Hungarian algorithm for the linear assignment problem.

Both public functions solve

$$
\min_{X} \sum_{i, j} C_{ij} X_{ij} \quad \text{subject to} \quad
X_{ij} \in \{0, 1\},\ \sum_i X_{ij} \le 1,\ \sum_j X_{ij} \le 1,\
\sum_{i, j} X_{ij} = \min(n, m)
$$

with one solver: the shortest-augmenting-path form of the Hungarian algorithm with
row and column potentials (Jonker and Volgenant; the "e-maxx" formulation, also the
one in Scenic), for $n \le m$ (a tall matrix is transposed first). Rows are added one
at a time; for each, a Dijkstra-like search over columns with reduced costs
$C_{ij} - u_i - v_j \ge 0$ finds the cheapest augmenting path, the potentials are
updated so that matched edges stay tight, and the path is flipped. Every step of
the search marks one more column as visited, so it ends after at most $m$ steps
even when costs are infinite. Time $O(n^2 m)$, memory $O(nm)$.

The two public functions differ only in the order in which they list the pairs,
which follows Optax's two implementations.
"""

from typing import no_type_check

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, Real


_FREE = -1  # `row_of_col` entry of an unmatched column


def _as_cost(cost_matrix: Real[ArrayLike, "n m"]) -> Float[Array, "n m"]:
    """The costs as a floating array (float32 or wider; integers become floats)."""
    cost = jnp.asarray(cost_matrix)
    if not jnp.issubdtype(cost.dtype, jnp.floating):
        return cost.astype(jnp.result_type(float))
    if jnp.finfo(cost.dtype).bits < 32:
        return cost.astype(jnp.float32)
    return cost


def _solve(cost: Float[Array, "n m"]) -> Int[Array, " m"]:
    """For each column, the row assigned to it (or -1); requires `n <= m`.

    Columns are indexed `0..m-1`, plus a virtual column `m` that holds the row being
    added, from which each search starts.
    """
    n, m = cost.shape
    virtual = m
    inf = jnp.array(jnp.inf, cost.dtype)

    @no_type_check
    def add_row(carry, row):
        u, v, row_of_col = carry  # potentials (n,), (m,); matching (m + 1,)
        row_of_col = row_of_col.at[virtual].set(row)

        @no_type_check
        def search_step(state):
            u, v, visited, min_reduced, previous, col = state
            visited = visited.at[col].set(True)
            unvisited = ~visited[:m]
            i = row_of_col[col]
            # Reduced costs from row i to each unvisited column; relax the distances.
            reduced = jnp.where(unvisited, cost[i] - u[i] - v, inf)
            closer = reduced < min_reduced
            previous = jnp.where(closer, col, previous)
            min_reduced = jnp.where(closer, reduced, min_reduced)
            # The nearest unvisited column (the first one, on ties or if all are inf).
            candidates = jnp.where(unvisited, min_reduced, inf)
            nearest = jnp.argmin(candidates)
            nearest = jnp.where(unvisited[nearest], nearest, jnp.argmax(unvisited))
            delta = jnp.min(candidates)
            # Shift potentials: rows matched to visited columns up, visited columns down.
            u = u.at[jnp.where(visited, row_of_col, n)].add(delta, mode="drop")
            v = jnp.where(visited[:m], v - delta, v)
            min_reduced = jnp.where(unvisited, min_reduced - delta, min_reduced)
            return u, v, visited, min_reduced, previous, nearest

        @no_type_check
        def not_free(state):
            return row_of_col[state[-1]] != _FREE

        state = (
            u,
            v,
            jnp.zeros(m + 1, bool),
            jnp.full(m, inf),
            jnp.full(m, virtual),
            jnp.array(virtual),
        )
        u, v, _, _, previous, col = jax.lax.while_loop(not_free, search_step, state)

        # Flip the augmenting path, from the free column found back to the virtual one.
        @no_type_check
        def flip(state):
            row_of_col, col = state
            back = previous[col]
            return row_of_col.at[col].set(row_of_col[back]), back

        row_of_col, _ = jax.lax.while_loop(
            lambda state: state[1] != virtual, flip, (row_of_col, col)
        )
        return (u, v, row_of_col), None

    init = (jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype), jnp.full(m + 1, _FREE))
    (_, _, row_of_col), _ = jax.lax.scan(add_row, init, jnp.arange(n))
    return row_of_col[:m]


def _col_of_row(row_of_col: Int[Array, " m"], n: int) -> Int[Array, " n"]:
    """Invert a matching of all `n` rows: the column of each row."""
    cols = jnp.arange(row_of_col.shape[0])
    rows = jnp.where(row_of_col == _FREE, n, row_of_col)
    return jnp.zeros(n, cols.dtype).at[rows].set(cols, mode="drop")


def _empty() -> tuple[Int[Array, " 0"], Int[Array, " 0"]]:
    return jnp.zeros(0, int), jnp.zeros(0, int)


def hungarian_algorithm(
    cost_matrix: Real[ArrayLike, "n m"],
) -> tuple[Int[Array, " k"], Int[Array, " k"]]:
    r"""The Hungarian algorithm for the linear assignment problem.

    Given an $n \times m$ cost matrix $C$, find $\min(n, m)$ pairs $(i_k, j_k)$, no
    two sharing a row or a column, that minimise $\sum_k C_{i_k j_k}$:

    $$
    \min_{X} \sum_{i, j} C_{ij} X_{ij} \quad \text{subject to} \quad
    X_{ij} \in \{0, 1\},\ \sum_i X_{ij} \le 1,\ \sum_j X_{ij} \le 1,\
    \sum_{i, j} X_{ij} = \min(n, m).
    $$

    Solved exactly in $O(\min(n,m)^2 \max(n,m))$ time by shortest augmenting paths
    with potentials. Works under `jax.jit` and `jax.vmap` (the shapes are static).

    Optax: `optax.assignment.hungarian_algorithm`; the pairs are listed in the same
    order as Optax's: for a square matrix by column (`j = arange(m)`); for a wide one
    by decreasing row; for a tall one by decreasing column.

    **Arguments:**

    - `cost_matrix`: the $n \times m$ matrix of costs $C$ (integer or floating).

    **Returns:**

    A pair `(i, j)` of integer arrays of length $\min(n, m)$: the rows and columns of
    the assigned pairs. The cost of the assignment is `cost_matrix[i, j].sum()`.

    !!! example

        ```python
        cost = jnp.array([[8, 4, 7], [5, 2, 3], [9, 6, 7], [9, 4, 8]])
        i, j = eqopt.assignment.hungarian_algorithm(cost)
        cost[i, j].sum()  # 15
        ```

    ??? cite "References"

        Kuhn, *The Hungarian method for the assignment problem*, Naval Research
        Logistics Quarterly, 1955.

        Jonker and Volgenant, *A shortest augmenting path algorithm for dense and
        sparse linear assignment problems*, Computing, 1987.

        Dehghani et al., *Scenic: a JAX library for computer vision research and
        beyond*, CVPR 2022.
    """
    n, m = jnp.shape(cost_matrix)
    if n == 0 or m == 0:
        return _empty()
    cost = _as_cost(cost_matrix)
    if n > m:
        # Columns assigned to rows of the transpose, listed by decreasing column.
        rows = _col_of_row(_solve(cost.T), m)
        return rows[::-1], jnp.arange(m)[::-1]
    row_of_col = _solve(cost)
    if n == m:
        return row_of_col, jnp.arange(m)
    return jnp.arange(n)[::-1], _col_of_row(row_of_col, n)[::-1]


def base_hungarian_algorithm(
    cost_matrix: Real[ArrayLike, "n m"],
) -> tuple[Int[Array, " k"], Int[Array, " k"]]:
    r"""The Hungarian algorithm for the linear assignment problem, rows in order.

    Solves the same problem as [`eqopt.assignment.hungarian_algorithm`][], and lists
    the pairs by increasing row: `i = arange(n)` when $n \le m$, otherwise the
    $m$ assigned rows in increasing order.

    Optax: `optax.assignment.base_hungarian_algorithm`, which implements Crouse's
    variant of the same shortest-augmenting-path method. Where the optimum is unique
    (almost surely for continuous costs) the two return the same pairs; with ties
    both return an optimal assignment, not necessarily the same one.

    **Arguments:**

    - `cost_matrix`: the $n \times m$ matrix of costs $C$ (integer or floating).

    **Returns:**

    A pair `(i, j)` of integer arrays of length $\min(n, m)$: the rows and columns of
    the assigned pairs. The cost of the assignment is `cost_matrix[i, j].sum()`.

    ??? cite "References"

        Crouse, *On implementing 2D rectangular assignment algorithms*, IEEE
        Transactions on Aerospace and Electronic Systems, 2016.
    """
    n, m = jnp.shape(cost_matrix)
    if n == 0 or m == 0:
        return _empty()
    cost = _as_cost(cost_matrix)
    if n > m:
        rows = _col_of_row(_solve(cost.T), m)  # the row of each column
        by_row = jnp.argsort(rows)
        return rows[by_row], by_row
    return jnp.arange(n), _col_of_row(_solve(cost), n)

"""Hypothesis: every helper on random pytrees of mixed leaves agrees with Optax.

The trees nest dicts, lists, tuples and a Module, with array leaves of several shapes
(scalars and empty arrays among them) and dtypes, beside `None`, functions, Python ints
and strings. Each example draws a helper from the table and fills its tree arguments
with twin trees (same structure and non-array leaves, different values), the later ones
with some arrays replaced by `None`.
"""

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, HealthCheck, settings

from .cases import CASES
from .test_equinox import check_on_trees


SHAPES = [(), (3,), (2, 3), (0,)]
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


class Pair(eqx.Module):
    left: object
    right: object


def _relu(x):
    return jax.nn.relu(x)


leaves = st.one_of(
    st.tuples(st.sampled_from(range(len(SHAPES))), st.sampled_from(range(3))),
    st.sampled_from([None, _relu, 3, "name"]),
)
structures = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("abc"), children, max_size=3),
        st.tuples(children, children).map(lambda lr: Pair(*lr)),
    ),
    max_leaves=6,
)


def materialise(structure, rng, drop=0.0):
    """Arrays for the `(shape, dtype)` markers, a fraction `drop` of them `None` (as
    `eqx.filter_grad` gives for frozen parameters); other leaves as they are."""

    def leaf(x):
        if isinstance(x, tuple) and len(x) == 2 and all(type(i) is int for i in x):
            shape, dtype = SHAPES[x[0]], DTYPES[x[1]]
            value = np.asarray(rng.normal(size=shape), np.float32).astype(dtype)
            return None if rng.uniform() < drop else jnp.asarray(value)
        return x

    is_marker = lambda x: (  # noqa: E731
        isinstance(x, tuple) and len(x) == 2 and all(type(i) is int for i in x)
    )
    return jax.tree.map(leaf, structure, is_leaf=lambda x: x is None or is_marker(x))


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(structure=structures, case=st.sampled_from(CASES), seed=st.integers(0, 2**16))
def test_random_trees_match_optax(structure, case, seed):
    rng = np.random.default_rng(seed)
    args, kwargs = case.build(seed)
    args = list(args)
    for n, i in enumerate(case.tree_args):
        # Later trees lose some arrays, except for `tree_allclose`, where an array
        # against `None` is a difference, not a skipped leaf.
        frozen = n > 0 and case.oracle is not optax.tree_utils.tree_allclose
        args[i] = materialise(structure, rng, drop=0.3 if frozen else 0.0)
    check_on_trees(case, args, kwargs, expect_skipped=False)

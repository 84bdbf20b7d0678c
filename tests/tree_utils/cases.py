"""The table of `eqopt.tree_utils` helpers and their Optax oracles, shared by the tests.

Each `Case` names a helper, builds its arguments from a seed, and says what the
helper does to a skipped leaf (`None` or a non-array), which the Equinox tests check:

- `"keep"`: the first tree's leaf is returned as it is (leafwise maps);
- `"moments"`: the moment (second tree) is returned as it is (moment updates);
- `"none"`: the leaf becomes `None` (constructed trees: zeros, keys, random values);
- `"reduce"`: the leaf is ignored (a single number comes out).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import eqopt


tu = eqopt.tree_utils
otu = optax.tree_utils


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: `fn(*args, **kwargs)` against `oracle(*args, **kwargs)`."""

    id: str
    fn: Callable[..., Any]
    oracle: Callable[..., Any]
    build: Callable[[int], tuple[tuple, dict]]  # seed -> (args, kwargs)
    skipped: str = "keep"
    # Which positional arguments are pytrees (replaced by a model or its gradients
    # in the Equinox tests); the others (scalars, keys) are kept.
    tree_args: tuple[int, ...] = (0,)
    # Compare inside one `eqx.filter_jit` (cheaper than compiling each eager op), or
    # eagerly: sampling compiles slowly under `jit` but is cached per shape eagerly.
    jit: bool = True


# Inputs come from NumPy: no JAX operation (and so no compilation) to build them.


def _leaf(rng, shape, dtype=jnp.float32):
    return jnp.asarray(np.asarray(rng.normal(size=shape), np.float32).astype(dtype))


def _tree(seed, dtype=jnp.float32):
    """Three leaves: a matrix, a scalar and a 3-d array inside a tuple."""
    rng = np.random.default_rng(seed)
    return {
        "w": _leaf(rng, (4, 3), dtype),
        "scalar": _leaf(rng, (), dtype),
        "nested": (_leaf(rng, (2, 2, 2), dtype),),
    }


def _trees(n, dtype=jnp.float32):
    def build(seed):
        return tuple(_tree(1000 * seed + i, dtype) for i in range(n))

    return build


def _numpy_map(fn, *trees):
    return jax.tree.map(lambda *xs: jnp.asarray(fn(*map(np.asarray, xs))), *trees)


def _complex_tree(seed):
    re, im = _tree(seed), _tree(seed + 500)
    return _numpy_map(lambda a, b: (a + 1j * b).astype(np.complex64), re, im)


def _positive(tree):
    return _numpy_map(lambda x: np.abs(x) + np.float32(0.5), tree)


def _mixed_dtypes(seed):
    tree = _numpy_map(lambda x: x, _tree(seed))
    return {
        **tree,
        "w": _numpy_map(lambda x: x.astype(jnp.bfloat16), tree["w"]),
        "nested": _numpy_map(lambda x: x.astype(np.float16), tree["nested"]),
    }


def _ints(seed):
    return _numpy_map(lambda x: np.round(10 * x).astype(np.int32), _tree(seed))


def _array(x, dtype=None):
    return jnp.asarray(np.asarray(x, dtype))


def _args(*args, **kwargs):
    return args, kwargs


def _c(id, name, build, skipped="keep", tree_args=(0,)):
    jit = name not in ("tree_random_like",)
    return Case(
        id, getattr(tu, name), getattr(otu, name), build, skipped, tree_args, jit
    )


def _with_empty_leaf(seed):
    return {**_tree(seed), "empty": _array(np.zeros((0, 3), np.float32))}


X, XY, XYZ = _trees(1), _trees(2), _trees(3)


def _fast_key(seed):
    """A key whose sampling compiles fast (XLA's generator, not threefry).

    The helpers treat every key type alike; `split_key_like-raw` keeps a threefry key.
    """
    return jr.key(seed, impl="unsafe_rbg")


def _small(seed):
    """Two leaves, one a scalar: sampling is costly to compile, so keep it small."""
    tree = _tree(seed)
    return {"w": tree["w"], "scalar": tree["scalar"]}


CASES = [
    # Arithmetic.
    _c("add", "tree_add", lambda k: _args(*XY(k)), tree_args=(0, 1)),
    _c("add-3", "tree_add", lambda k: _args(*XYZ(k)), tree_args=(0, 1, 2)),
    _c(
        "add-bf16",
        "tree_add",
        lambda k: _args(*_trees(2, jnp.bfloat16)(k)),
        tree_args=(0, 1),
    ),
    _c("sub", "tree_sub", lambda k: _args(*XY(k)), tree_args=(0, 1)),
    _c("mul", "tree_mul", lambda k: _args(*XY(k)), tree_args=(0, 1)),
    _c(
        "div",
        "tree_div",
        lambda k: _args(XY(k)[0], _positive(XY(k)[1])),
        tree_args=(0, 1),
    ),
    _c("scale", "tree_scale", lambda k: _args(0.3, *X(k)), tree_args=(1,)),
    _c(
        "scale-array",
        "tree_scale",
        lambda k: _args(_array(-1.7, np.float32), *X(k)),
        tree_args=(1,),
    ),
    _c(
        "add_scale",
        "tree_add_scale",
        lambda k: _args(XY(k)[0], 0.3, XY(k)[1]),
        tree_args=(0, 2),
    ),
    _c("batch_shape", "tree_batch_shape", lambda k: _args(*X(k), (2, 3))),
    _c("conj", "tree_conj", lambda k: _args(_complex_tree(k))),
    _c("real", "tree_real", lambda k: _args(_complex_tree(k))),
    _c("clip", "tree_clip", lambda k: _args(*X(k), -0.5, 0.5)),
    _c("clip-max-only", "tree_clip", lambda k: _args(*X(k), max_value=0.1)),
    _c("where-true", "tree_where", lambda k: _args(True, *XY(k)), tree_args=(1, 2)),
    _c(
        "where-array",
        "tree_where",
        lambda k: _args(_array(False), *XY(k)),
        tree_args=(1, 2),
    ),
    # Reductions.
    _c("vdot", "tree_vdot", lambda k: _args(*XY(k)), "reduce", (0, 1)),
    _c(
        "vdot-complex",
        "tree_vdot",
        lambda k: _args(_complex_tree(k), _complex_tree(k + 1)),
        "reduce",
        (0, 1),
    ),
    _c("sum", "tree_sum", lambda k: _args(*X(k)), "reduce"),
    _c("sum-mixed", "tree_sum", lambda k: _args(_mixed_dtypes(k)), "reduce"),
    _c(
        "sum-associative",
        "tree_sum",
        lambda k: _args(*X(k), associative_reduction=True),
        "reduce",
    ),
    _c("sum-empty", "tree_sum", lambda k: _args({}), "reduce"),
    _c("max", "tree_max", lambda k: _args(*X(k)), "reduce"),
    _c("max-empty-leaf", "tree_max", lambda k: _args(_with_empty_leaf(k)), "reduce"),
    _c("max-int", "tree_max", lambda k: _args(_ints(k)), "reduce"),
    _c("min", "tree_min", lambda k: _args(*X(k)), "reduce"),
    _c("min-empty-tree", "tree_min", lambda k: _args({}), "reduce"),
    _c("size", "tree_size", lambda k: _args(_with_empty_leaf(k)), "reduce"),
    _c(
        "allclose-close",
        "tree_allclose",
        lambda k: _args(
            X(k)[0], _numpy_map(lambda x: x * np.float32(1 + 1e-7), X(k)[0])
        ),
        "reduce",
        (0, 1),
    ),
    _c("allclose-far", "tree_allclose", lambda k: _args(*XY(k)), "reduce", (0, 1)),
    _c(
        "allclose-nan",
        "tree_allclose",
        lambda k: _args(
            {"a": _array(np.nan, np.float32)},
            {"a": _array(np.nan, np.float32)},
            equal_nan=True,
        ),
        "reduce",
        (0, 1),
    ),
    *[
        _c(
            f"norm-ord={ord}-squared={squared}",
            "tree_norm",
            lambda k, ord=ord, squared=squared: _args(*X(k), ord=ord, squared=squared),
            "reduce",
        )
        for ord in (None, 1, 2, jnp.inf)
        for squared in (False, True)
    ],
    _c("norm-ord=inf-str", "tree_norm", lambda k: _args(*X(k), "inf"), "reduce"),
    _c("norm-ord=infinity", "tree_norm", lambda k: _args(*X(k), "infinity"), "reduce"),
    _c("norm-complex", "tree_norm", lambda k: _args(_complex_tree(k)), "reduce"),
    _c(
        "norm-complex-l1",
        "tree_norm",
        lambda k: _args(_complex_tree(k), 1, True),
        "reduce",
    ),
    _c(
        "norm-bf16", "tree_norm", lambda k: _args(*_trees(1, jnp.bfloat16)(k)), "reduce"
    ),
    _c("norm-mixed", "tree_norm", lambda k: _args(_mixed_dtypes(k)), "reduce"),
    _c("norm-int", "tree_norm", lambda k: _args(_ints(k)), "reduce"),
    _c("norm-empty", "tree_norm", lambda k: _args({}), "reduce"),
    _c("norm-empty-squared", "tree_norm", lambda k: _args({}, squared=True), "reduce"),
    # Constructors.
    _c("zeros_like", "tree_zeros_like", lambda k: _args(*X(k)), "none"),
    _c(
        "zeros_like-dtype",
        "tree_zeros_like",
        lambda k: _args(*X(k), jnp.bfloat16),
        "none",
    ),
    _c("ones_like", "tree_ones_like", lambda k: _args(_mixed_dtypes(k)), "none"),
    _c("full_like", "tree_full_like", lambda k: _args(*X(k), 0.1), "none"),
    _c(
        "full_like-bf16",
        "tree_full_like",
        lambda k: _args(*_trees(1, jnp.bfloat16)(k), 0.1),
        "none",
    ),
    _c(
        "full_like-dtype",
        "tree_full_like",
        lambda k: _args(*X(k), _array(0.3, np.float32), jnp.float16),
        "none",
    ),
    # Casting.
    _c("cast", "tree_cast", lambda k: _args(*X(k), jnp.bfloat16)),
    _c("cast-none", "tree_cast", lambda k: _args(*X(k), None)),
    _c(
        "cast_like",
        "tree_cast_like",
        lambda k: _args(*X(k), _mixed_dtypes(k)),
        tree_args=(0, 1),
    ),
    _c("dtype", "tree_dtype", lambda k: _args(*X(k)), "reduce"),
    _c("dtype-empty", "tree_dtype", lambda k: _args({}), "reduce"),
    *[
        _c(
            f"dtype-{handler}",
            "tree_dtype",
            lambda k, handler=handler: _args(
                {"a": _array([1, 1], np.float16), "b": _array(1, np.float32)},
                handler,
            ),
            "reduce",
        )
        for handler in ("promote", "highest", "lowest")
    ],
    _c(
        "dtype-promote-int",
        "tree_dtype",
        lambda k: _args(
            {"a": _array([1, 2], np.int32), "b": _array([1, 2], np.uint32)}, "promote"
        ),
        "reduce",
    ),
    # Moments.
    *[
        _c(
            f"update_moment-order={order}",
            "tree_update_moment",
            lambda k, order=order: _args(*XY(k), 0.9, order),
            "moments",
            (0, 1),
        )
        for order in (1, 2.0)
    ],
    _c(
        "update_moment-bf16",
        "tree_update_moment",
        lambda k: _args(*_trees(2, jnp.bfloat16)(k), 0.99, 2),
        "moments",
        (0, 1),
    ),
    _c(
        "update_infinity_moment",
        "tree_update_infinity_moment",
        lambda k: _args(*XY(k), 0.9, 1e-8),
        "moments",
        (0, 1),
    ),
    *[
        _c(
            f"update_moment_per_elem_norm-order={order}",
            "tree_update_moment_per_elem_norm",
            lambda k, order=order: _args(*XY(k), 0.9, order),
            "moments",
            (0, 1),
        )
        for order in (1, 3)
    ],
    *[
        _c(
            f"update_moment_per_elem_norm-complex-order={order}",
            "tree_update_moment_per_elem_norm",
            lambda k, order=order: _args(
                _complex_tree(k), _positive(_tree(k)), 0.9, order
            ),
            "moments",
            (0, 1),
        )
        for order in (2, 3, 2.5)
    ],
    _c(
        "bias_correction",
        "tree_bias_correction",
        lambda k: _args(*X(k), 0.9, _array(3, np.int32)),
    ),
    _c(
        "bias_correction-bf16",
        "tree_bias_correction",
        lambda k: _args(*_trees(1, jnp.bfloat16)(k), 0.999, _array(10, np.int32)),
    ),
    _c(
        "bias_correction-python",
        "tree_bias_correction",
        lambda k: _args(*X(k), 0.5, 2),
    ),
    # Random.
    _c(
        "split_key_like",
        "tree_split_key_like",
        lambda k: _args(_fast_key(k), _small(k)),
        "none",
        (1,),
    ),
    _c(
        "split_key_like-raw",
        "tree_split_key_like",
        lambda k: _args(jr.PRNGKey(3), _small(k)),
        "none",
        (1,),
    ),
    _c(
        "random_like",
        "tree_random_like",
        lambda k: _args(_fast_key(k), _small(k)),
        "none",
        (1,),
    ),
    _c(
        "random_like-uniform",
        "tree_random_like",
        lambda k: _args(_fast_key(k), _small(k), jr.uniform, jnp.bfloat16),
        "none",
        (1,),
    ),
    _c(
        "random_like-rademacher",
        "tree_random_like",
        lambda k: _args(_fast_key(k), _ints(k)["nested"], jr.rademacher),
        "none",
        (1,),
    ),
    _c(
        "unwrap_random_key_data",
        "tree_unwrap_random_key_data",
        lambda k: _args(
            {"key": jr.key(k), "keys": jr.split(jr.key(k), 3), "x": X(k)[0]["w"]}
        ),
    ),
]

"""Annealed Gaussian gradient noise, its PRNG key carried as data."""

import warnings
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, UInt32

from .._base import GradientTransformation
from .._checks import check_hyperparameters, NONNEGATIVE
from .._custom_types import Count, Params, Updates
from .._hyperparams import as_scalar
from .._numerics import safe_increment, safe_pow, safe_sqrt
from .._tree import cast_per_dtype, map_leaves, to_dtype, upcast


KeyData = UInt32[Array, " key"]


@no_type_check
def as_key_data(key: ArrayLike) -> KeyData:
    """A PRNG key (a typed key, its raw data, or an integer seed) as its raw data.

    The key is kept as raw `uint32` data (what `jax.random.key_data` gives), so that an
    optimiser and its state serialise with `eqx.tree_serialise_leaves`, which cannot
    write typed keys. The bits, and so the random numbers, are those of
    `jax.random.key(seed)`. Only JAX's default key implementation is supported.
    """
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jr.key_impl(key))
        if impl != str(jax.config.jax_default_prng_impl):
            raise ValueError(
                f"`key` must use JAX's default PRNG implementation "
                f"({jax.config.jax_default_prng_impl}); got a key of {impl}."
            )
        return jr.key_data(key)
    if key.dtype == jnp.uint32 and key.ndim == 1:  # raw key data already
        return key
    return jr.key_data(jr.key(key))


@no_type_check
def resolve_key(owner: str, key: Any, seed: int | None) -> Any:
    """Optax's `key=None, *, seed=None` arguments, reduced to one key or seed.

    `seed` is deprecated (a `DeprecationWarning`); giving both is a `ValueError`; giving
    neither warns and uses the seed 0, as Optax 0.2.8 does.
    """
    if seed is not None:
        warnings.warn(
            f"`{owner}(seed=...)` is deprecated: use `key`.",
            DeprecationWarning,
            stacklevel=3,
        )
        if key is not None:
            raise ValueError(f"`{owner}`: give only one of `seed` and `key`.")
        return seed
    if key is None:
        warnings.warn(
            f"`{owner}` was given no `key`: using the seed 0. Pass `key` to choose the "
            "noise.",
            stacklevel=3,
        )
        return 0
    return key


class AddNoiseState(eqx.Module):
    """State of `AddNoise`: the step count and the PRNG key (as raw key data)."""

    count: Count
    rng_key: KeyData


@no_type_check
def _noise_keys(rng_key: KeyData, updates: Updates) -> tuple[KeyData, list]:
    """The next key, and one sampling key per array leaf of `updates`, in leaf order.

    Optax's derivation: split the key into (next, sample), then split `sample` into
    as many keys as `updates` has leaves.
    """
    next_key, sample_key = jr.split(jr.wrap_key_data(rng_key))
    n = sum(eqx.is_inexact_array(g) for g in jax.tree.leaves(updates))
    return jr.key_data(next_key), list(jr.split(sample_key, n))


class AddNoise(GradientTransformation):
    r"""Add annealed Gaussian noise to the updates.

    $$
    \sigma_t^2 = \frac{\eta}{t^\gamma}, \qquad u_t = g_t + \sigma_t\, \xi_t, \qquad
    \xi_t \sim \mathcal{N}(0, I), \quad t = 1, 2, \dots
    $$

    The PRNG key is data: the Module holds the initial key, the state holds the current
    one, so a vmapped sweep over `eta` draws the same noise in every run, and a resumed
    run draws the noise an uninterrupted one would. The noise is Optax's (the same key
    splits), for float32 and float64 leaves; for bfloat16 and float16 leaves it is drawn
    in float32 and the sum rounded once (Optax draws it in the leaf's dtype).

    Optax: `optax.add_noise` (the factory [`eqopt.add_noise`][] takes Optax's `key`
    and deprecated `seed`).

    **Arguments:**

    - `eta`: $\eta \ge 0$, the initial variance.
    - `gamma`: $\gamma \ge 0$, the decay exponent of the variance.
    - `key`: the PRNG key: an integer seed, a key from `jax.random.key`, or its raw
        data; stored as raw data.

    ??? cite "References"

        Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep
        Networks*, 2015.
    """

    eta: Float[Array, ""] = eqx.field(converter=as_scalar)
    gamma: Float[Array, ""] = eqx.field(converter=as_scalar)
    key: KeyData = eqx.field(converter=as_key_data, kw_only=True)

    def __check_init__(self):
        check_hyperparameters("add_noise", self, eta=NONNEGATIVE, gamma=NONNEGATIVE)

    def init(self, params: Params) -> AddNoiseState:
        return AddNoiseState(count=jnp.zeros([], jnp.int32), rng_key=self.key)

    def update(
        self,
        updates: Updates,
        state: AddNoiseState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, AddNoiseState]:
        count = safe_increment(state.count)
        variance = self.eta / safe_pow(count.astype(self.gamma.dtype), self.gamma)
        deviation_in = cast_per_dtype(safe_sqrt(variance))
        rng_key, keys = _noise_keys(state.rng_key, updates)
        leaf_keys = iter(keys)  # consumed in leaf order by `rule`

        @no_type_check
        def rule(g):
            x = upcast(g)
            (deviation,) = deviation_in(x.dtype)
            noise = jr.normal(next(leaf_keys), x.shape, x.dtype)
            return (to_dtype(x + deviation * noise, g.dtype),)

        updates = map_leaves(rule, updates)[0]
        return updates, AddNoiseState(count=count, rng_key=rng_key)


def add_noise(
    eta: ArrayLike,
    gamma: ArrayLike,
    key: ArrayLike | None = None,
    *,
    seed: int | None = None,
) -> AddNoise:
    """Add annealed Gaussian gradient noise: Optax's signature for [`eqopt.AddNoise`][].

    **Arguments:**

    - `eta`: the initial variance of the noise.
    - `gamma`: the decay exponent of the variance.
    - `key`: the PRNG key (a key from `jax.random.key`, or an integer seed). `None`
        warns and uses the seed 0, as Optax.
    - `seed`: deprecated, as in Optax: use `key`.
    """
    return AddNoise(eta, gamma, key=resolve_key("add_noise", key, seed))

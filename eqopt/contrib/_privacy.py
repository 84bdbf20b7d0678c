"""Differentially private aggregation of per-example gradients (DP-SGD)."""

from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation, Identity
from .._checks import check_hyperparameters, NONNEGATIVE
from .._combine import Chain
from .._custom_types import Params, Updates
from .._hyperparams import as_hyperparameter, as_optional_scalar, as_scalar
from .._transforms.clipping_per import per_example_global_norm_clip
from .._transforms.momentum import Trace
from .._transforms.noise import as_key_data, KeyData, resolve_key
from .._transforms.scaling import ScaleByLearningRate
from .._tree import is_none, to_dtype, upcast


class DifferentiallyPrivateAggregateState(eqx.Module):
    """State of `DifferentiallyPrivateAggregate`: the PRNG key of the next step's
    noise (as raw key data, see [`eqopt.AddNoise`][])."""

    rng_key: KeyData


class DifferentiallyPrivateAggregate(GradientTransformation):
    r"""Aggregate per-example gradients as DP-SGD does: clip each example's gradient to
    a norm of at most $C$, sum, add Gaussian noise of standard deviation $\sigma C$ and
    divide by the batch size $B$:

    $$
    u = \frac{1}{B}\left(\sum_{i=1}^{B} g_i \min\left(1, \frac{C}{\|g_i\|}\right)
    + \sigma C\, \xi\right), \qquad \xi \sim \mathcal{N}(0, I),
    $$

    where $\|g_i\|$ is the norm of example $i$'s gradient over all leaves.

    Unlike other transformations, this one expects **per-example gradients**: every
    leaf has a leading batch axis (from `jax.vmap(jax.grad(loss), (None, 0))`), and the
    updates it returns do not. It composes with others as the first of a chain; generic
    accumulation wrappers ([`eqopt.MultiSteps`][], `apply_every`) do not apply to it.

    The noise is Optax's for float32 and float64 gradients (the same key splits:
    `next, *keys = split(key, leaves + 1)`, one key per leaf in leaf order); for
    bfloat16 and float16 it is drawn in float32 and the result rounded once (Optax
    draws it in the leaf's dtype). The key is data, kept as raw `uint32` key data (as
    [`eqopt.AddNoise`][]'s), so the state serialises and a vmapped sweep draws the same
    noise in every run.

    Optax: `optax.contrib.differentially_private_aggregate` (the factory
    [`eqopt.contrib.differentially_private_aggregate`][] takes Optax's `key` and
    deprecated `seed`).

    **Arguments:**

    - `l2_norm_clip`: $C \ge 0$, the largest norm of an example's gradient.
    - `noise_multiplier`: $\sigma \ge 0$, the ratio of the noise's standard deviation
        to $C$.
    - `key`: the PRNG key: an integer seed, a key from `jax.random.key`, or its raw
        data.

    ??? cite "References"

        Abadi et al., *Deep Learning with Differential Privacy*, CCS 2016.
    """

    l2_norm_clip: Float[Array, ""] = eqx.field(converter=as_scalar)
    noise_multiplier: Float[Array, ""] = eqx.field(converter=as_scalar)
    key: KeyData = eqx.field(converter=as_key_data, kw_only=True)

    def __check_init__(self):
        check_hyperparameters(
            "differentially_private_aggregate",
            self,
            l2_norm_clip=NONNEGATIVE,
            noise_multiplier=NONNEGATIVE,
        )

    def init(self, params: Params) -> DifferentiallyPrivateAggregateState:
        # A copy: the state may be donated without deleting the Module's key.
        return DifferentiallyPrivateAggregateState(rng_key=jnp.array(self.key))

    def update(
        self,
        updates: Updates,
        state: DifferentiallyPrivateAggregateState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, DifferentiallyPrivateAggregateState]:
        flat, treedef = jax.tree.flatten(updates, is_leaf=is_none)
        arrays = [g for g in flat if eqx.is_inexact_array(g)]
        if not arrays:
            return updates, state
        batch_size = arrays[0].shape[0] if arrays[0].ndim else None
        if batch_size is None or any(
            g.ndim < 1 or g.shape[0] != batch_size for g in arrays
        ):
            raise ValueError(
                "`differentially_private_aggregate` expects per-example gradients: "
                "every leaf with the same leading (batch) axis; got shapes "
                f"{jax.tree.map(jnp.shape, updates)}."
            )
        # In float32 or wider: one rounding, at the end, for low-precision gradients.
        clipped, _ = per_example_global_norm_clip(
            [upcast(g) for g in arrays], self.l2_norm_clip
        )
        next_key, *keys = jr.split(jr.wrap_key_data(state.rng_key), len(arrays) + 1)
        noise_std = self.l2_norm_clip * self.noise_multiplier
        noised = iter(
            to_dtype(_noised(c, k, noise_std, batch_size), g.dtype)
            for c, k, g in zip(clipped, keys, arrays)
        )
        out = [next(noised) if eqx.is_inexact_array(g) else g for g in flat]
        new_state = DifferentiallyPrivateAggregateState(rng_key=jr.key_data(next_key))
        return treedef.unflatten(out), new_state


@no_type_check
def _noised(clipped: Array, key: Array, noise_std: Array, batch_size: int) -> Array:
    """`(clipped + noise_std * N(0, 1)) / batch_size`, in the dtype of `clipped`."""
    noise = jr.normal(key, clipped.shape, clipped.dtype)
    return (clipped + noise_std.astype(clipped.dtype) * noise) / batch_size


def differentially_private_aggregate(
    l2_norm_clip: ArrayLike,
    noise_multiplier: ArrayLike,
    key: ArrayLike | None = None,
    *,
    seed: int | None = None,
) -> DifferentiallyPrivateAggregate:
    """Aggregate per-example gradients as DP-SGD does: Optax's signature for
    [`eqopt.contrib.DifferentiallyPrivateAggregate`][].

    **Arguments:**

    - `l2_norm_clip`: the largest norm of an example's gradient.
    - `noise_multiplier`: the ratio of the noise's standard deviation to the clip.
    - `key`: the PRNG key (a key from `jax.random.key`, or an integer seed). `None`
        warns and uses the seed 0, as Optax.
    - `seed`: deprecated, as in Optax: use `key`.
    """
    key = resolve_key("differentially_private_aggregate", key, seed)
    return DifferentiallyPrivateAggregate(l2_norm_clip, noise_multiplier, key=key)


@no_type_check
def _as_seed(seed: Any) -> Array:
    """An integer seed as an integer array leaf (so that it can be vmapped over)."""
    seed = jnp.asarray(seed)
    if not jnp.issubdtype(seed.dtype, jnp.integer):
        raise TypeError(f"`dpsgd(seed=...)` must be an integer; got {seed!r}.")
    return seed


class DPSGD(AbstractOptimiser):
    r"""DP-SGD: SGD (with optional momentum) on differentially private aggregates of
    per-example gradients.

    $u_t = -\eta_t\, \bar g_t$ (or its momentum), where $\bar g_t$ is the clipped,
    noised mean of [`eqopt.contrib.DifferentiallyPrivateAggregate`][]. Takes
    per-example gradients (a leading batch axis on every leaf).

    Optax: `optax.contrib.dpsgd`. Built as
    `chain(differentially_private_aggregate(l2_norm_clip, noise_multiplier,
    key=jax.random.key(seed)), trace(momentum, nesterov) or identity(),
    scale_by_learning_rate(learning_rate))`: the same noise as Optax's (which passes
    the deprecated `seed=` and so warns).

    **Arguments:**

    - `learning_rate`: $\eta$, a float, an array or a schedule.
    - `l2_norm_clip`, `noise_multiplier`: as in
        [`eqopt.contrib.DifferentiallyPrivateAggregate`][].
    - `seed`: the integer seed of the noise's PRNG key (an integer array leaf, so a
        sweep can vmap over seeds).
    - `momentum`: the momentum's decay, or `None` for none.
    - `nesterov`: whether to use Nesterov momentum.

    ??? cite "References"

        Abadi et al., *Deep Learning with Differential Privacy*, CCS 2016.
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter)
    l2_norm_clip: Float[Array, ""] = eqx.field(converter=as_scalar)
    noise_multiplier: Float[Array, ""] = eqx.field(converter=as_scalar)
    seed: Int[Array, ""] = eqx.field(converter=_as_seed)
    momentum: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    nesterov: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_hyperparameters(
            "dpsgd", self, l2_norm_clip=NONNEGATIVE, noise_multiplier=NONNEGATIVE
        )

    def as_chain(self) -> Chain:
        aggregate = DifferentiallyPrivateAggregate(
            self.l2_norm_clip, self.noise_multiplier, key=jr.key(self.seed)
        )
        momentum = (
            Identity() if self.momentum is None else Trace(self.momentum, self.nesterov)
        )
        return Chain((aggregate, momentum, ScaleByLearningRate(self.learning_rate)))


dpsgd = DPSGD

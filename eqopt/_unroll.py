"""Training as a differentiable function of the optimiser: unrolls and meta-gradients."""

import functools as ft
import math
from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._base import GradientTransformation
from ._custom_types import OptState
from ._update import apply_updates


def unroll(
    opt: GradientTransformation,
    train_loss: Callable,
    params: PyTree,
    length: int,
    *,
    state: OptState | None = None,
    batches: PyTree | None = None,
    checkpoint: bool = True,
) -> tuple[PyTree, OptState, Float[Array, " length"]]:
    r"""`length` steps of `opt` on `train_loss`, as one differentiable function.

    Each step is $\theta \leftarrow \theta + u$ with `u, state = opt.update(g, state,
    params)` and $g = \nabla$ `train_loss(params, batch_i)` (`train_loss(params)` when
    `batches` is `None`), in a `lax.scan`. Differentiating the result with respect to
    `opt` (its hyperparameters are leaves) gives meta-gradients through training.

    With `checkpoint=True` the steps run in blocks of about $\sqrt{T}$, each under
    `jax.checkpoint`: reverse-mode differentiation then stores the carry at block
    boundaries and recomputes one block at a time, so memory grows as $\sqrt{T}$
    rather than $T$ (at the cost of one more forward pass). See the figures in
    `docs/benchmarks.md`.

    **Arguments:**

    - `opt`: the inner optimiser.
    - `train_loss`: `train_loss(params, batch) -> scalar` (or `train_loss(params)`).
    - `params`: the starting parameters: any pytree, Equinox models included.
    - `length`: $T$, the number of steps (static).
    - `state`: the optimiser state to start from; `None` calls `opt.init(params)`.
    - `batches`: a pytree whose leaves have a leading axis of size `length` (the data of
        each step), or `None`.
    - `checkpoint`: whether to checkpoint blocks of steps (see above).

    **Returns:**

    `(params, state, losses)`: the final parameters and state, and the training loss
    at each step.
    """
    if state is None:
        state = opt.init(params)
    arrays, static = eqx.partition(params, eqx.is_array)

    @no_type_check
    def step(carry, batch):
        arrays, state = carry
        params = eqx.combine(arrays, static)
        args = () if batches is None else (batch,)
        value, grads = eqx.filter_value_and_grad(train_loss)(params, *args)
        updates, state = opt.update(grads, state, params)
        params = apply_updates(params, updates)
        return (eqx.filter(params, eqx.is_array), state), value

    @no_type_check
    def run(carry, xs, n):
        return jax.lax.scan(step, carry, xs, length=n)

    if not checkpoint:
        (arrays, state), losses = run((arrays, state), batches, length)
        return eqx.combine(arrays, static), state, losses
    # Blocks of ~sqrt(T) steps, each recomputed in the backward pass, then the rest.
    block = max(1, math.isqrt(length))
    blocks, rest = divmod(length, block)
    head, tail = _split(batches, blocks * block)
    xs = jax.tree.map(lambda x: x.reshape(blocks, block, *x.shape[1:]), head)
    run_block = jax.checkpoint(ft.partial(run, n=block))
    carry, losses = jax.lax.scan(run_block, (arrays, state), xs, length=blocks)
    losses = losses.reshape(-1)
    if rest:
        carry, rest_losses = run(carry, tail, rest)
        losses = jnp.concatenate([losses, rest_losses])
    (arrays, state) = carry
    return eqx.combine(arrays, static), state, losses


def _split(batches: Any, at: int) -> tuple[Any, Any]:
    if batches is None:
        return None, None
    return jax.tree.map(lambda x: x[:at], batches), jax.tree.map(
        lambda x: x[at:], batches
    )


def unrolled_meta_grad(
    opt: GradientTransformation,
    train_loss: Callable,
    val_loss: Callable,
    params: PyTree,
    length: int,
    *,
    state: OptState | None = None,
    batches: PyTree | None = None,
    checkpoint: bool = True,
) -> tuple[Float[Array, ""], GradientTransformation, tuple[PyTree, OptState]]:
    r"""The meta-gradient of a validation loss through a truncated unroll of training.

    $$
    \frac{\mathrm{d}}{\mathrm{d}\,\mathrm{opt}}\;
    \mathtt{val\_loss}\big(\theta_T(\mathrm{opt})\big),
    $$
    with $\theta_T$ the parameters after `length` steps of [`eqopt.unroll`][] from
    `params` and `state`. The gradient has the structure of `opt` (as
    `eqx.filter_grad` gives it): one number per hyperparameter leaf, learning rates,
    decay rates and schedule settings alike, for any eqopt optimiser. Feed it to an
    outer optimiser (`meta_opt.update(meta_grads, meta_state, opt)`) to tune `opt`.

    For truncated backpropagation through a long run, call it repeatedly, starting each
    truncation from the returned parameters and state: gradients do not flow between
    truncations.

    **Arguments:**

    - `opt`, `train_loss`, `params`, `length`, `state`, `batches`, `checkpoint`: as in
        [`eqopt.unroll`][].
    - `val_loss`: `val_loss(params) -> scalar`, the meta-objective.

    **Returns:**

    `(meta_loss, meta_grads, (params, state))`: the validation loss after the unroll,
    its gradient with respect to `opt`, and the final parameters and state.
    """

    @no_type_check
    def meta_loss(opt):
        params_T, state_T, _ = unroll(
            opt,
            train_loss,
            params,
            length,
            state=state,
            batches=batches,
            checkpoint=checkpoint,
        )
        return val_loss(params_T), (params_T, state_T)

    (value, final), grads = eqx.filter_value_and_grad(meta_loss, has_aux=True)(opt)
    return value, grads, final

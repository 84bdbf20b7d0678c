"""DoG and DoWG: step sizes from the distance travelled over the gradients seen."""

from collections.abc import Callable
from typing import Any, no_type_check

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float

from .._alias.base import AbstractOptimiser, LearningRate
from .._base import GradientTransformation, Identity
from .._checks import check_hyperparameters, NONNEGATIVE
from .._combine import Chain
from .._custom_types import Moments, Params, Updates
from .._hyperparams import (
    as_hyperparameter,
    as_optional_scalar,
    as_scalar,
)
from .._masking import freeze_mask, FrozenMask
from .._numerics import safe_sqrt
from .._transforms.decay import AddDecayedWeights
from .._transforms.scaling import ScaleByLearningRate
from .._tree import (
    cast,
    cast_per_dtype,
    float_dtype,
    global_norm_squared,
    map_leaves,
    require_params,
    to_dtype,
    upcast,
    zeros_like_params,
)
from ._parameter_free import distance_and_gradient_sums


_INIT_STEP_KINDS = ("distance", "learning_rate", "heuristic")


class DoGInitStep(eqx.Module):
    """DoG's `init_step` pair `(kind, value)`: the kind is static, the value a leaf.

    It unpacks like Optax's tuple: `kind, value = opt.init_step`.
    """

    kind: str = eqx.field(static=True)
    value: Float[Array, ""] = eqx.field(converter=as_scalar)

    def __check_init__(self):
        if self.kind not in _INIT_STEP_KINDS:
            raise ValueError(
                f"`dog(init_step=(kind, value))` needs a kind in {_INIT_STEP_KINDS}; "
                f"got init_step=({self.kind!r}, ...)."
            )
        check_hyperparameters("dog", self, value=NONNEGATIVE)

    def __iter__(self):
        return iter((self.kind, self.value))


@no_type_check
def as_init_step(init_step: Any) -> DoGInitStep:
    """`(kind, value)` as a `DoGInitStep`."""
    if isinstance(init_step, DoGInitStep):
        return init_step
    kind, value = init_step
    return DoGInitStep(kind, value)


class DoGState(eqx.Module):
    """State of [`eqopt.contrib.dog`][]'s scaling: whether the next step is the first,
    the initial parameters $x_0$ (zeros until the first `update` stores the parameters
    it sees), the largest distance $\\bar r$ from them, and the sum $G$ of squared
    gradient norms."""

    is_init_step: Bool[Array, ""]
    init_params: Moments
    max_dist: Float[Array, ""]
    sum_sq_norm_grads: Float[Array, ""]


class ScaleByDoG(GradientTransformation):
    r"""DoG's scaling: $u_t = \eta_t\, g_t$ with
    $\eta_t = \bar r_t / \sqrt{G_t + \varepsilon}$ (see [`eqopt.contrib.dog`][]).

    Optax: `optax.contrib._dog.scale_by_dog` (not exported by `optax.contrib`).
    """

    init_step: DoGInitStep = eqx.field(converter=as_init_step)
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)

    def __check_init__(self):
        check_hyperparameters("dog", self, eps=NONNEGATIVE)

    def init(self, params: Params) -> DoGState:
        dtype = float_dtype(params)
        return DoGState(
            is_init_step=jnp.asarray(True),
            init_params=zeros_like_params(params),
            max_dist=jnp.zeros([], dtype),
            sum_sq_norm_grads=jnp.zeros([], dtype),
        )

    def update(
        self,
        updates: Updates,
        state: DoGState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, DoGState]:
        require_params("dog", params)
        first_step = state.is_init_step
        dtype = state.max_dist.dtype
        init_params, distance_sq, grads_sq = distance_and_gradient_sums(
            first_step, updates, params, state.init_params, "state.init_params", dtype
        )
        value, eps = cast(dtype, self.init_step.value, self.eps)
        kind = self.init_step.kind

        @no_type_check
        def r_epsilon():
            if kind == "distance":
                return value
            if kind == "heuristic":  # a pass over the parameters, at step 0 only
                norm = safe_sqrt(to_dtype(global_norm_squared(params), dtype))
                return value * (1 + norm)
            return jnp.zeros([], dtype)

        previous = lax.cond(first_step, r_epsilon, lambda: state.max_dist)
        max_dist = jnp.maximum(previous, safe_sqrt(distance_sq))
        sum_sq_norm_grads = state.sum_sq_norm_grads + grads_sq
        learning_rate = max_dist / safe_sqrt(sum_sq_norm_grads + eps)
        if kind == "learning_rate":
            learning_rate = jnp.where(first_step, value, learning_rate)
        updates = _scale(updates, learning_rate)
        return updates, DoGState(
            is_init_step=jnp.asarray(False),
            init_params=init_params,
            max_dist=max_dist,
            sum_sq_norm_grads=sum_sq_norm_grads,
        )


@no_type_check
def _scale(updates: Updates, factor: Array) -> Updates:
    factor_in = cast_per_dtype(factor)

    @no_type_check
    def rule(g):
        x = upcast(g)
        (f,) = factor_in(x.dtype)
        return (to_dtype(f * x, g.dtype),)

    return map_leaves(rule, updates)[0]


class DoG(AbstractOptimiser):
    r"""DoG (distance over gradients): SGD with a step size it finds itself.

    $$
    \begin{aligned}
    \bar r_t &= \max\big(r_\epsilon,\ \max_{k \le t} \|x_k - x_0\|\big), \qquad
    G_t = \sum_{k \le t} \|g_k\|^2, \\
    u_t &= -\eta_t\, \frac{\bar r_t}{\sqrt{G_t + \varepsilon}}\, g_t,
    \end{aligned}
    $$

    norms taken over all parameters together. `init_step` sets the first step:
    `("distance", v)` takes $r_\epsilon = v$; `("heuristic", v)` takes
    $r_\epsilon = v\,(1 + \|x_0\|)$ (`1e-6`, or `1e-4` with batch normalisation);
    `("learning_rate", v)` takes the step size $v$ at the first step.

    `init` reads only the parameters' shapes (Optax's computes $r_\epsilon$ and stores
    $x_0$ from their values): the first `update` stores the parameters it sees and
    computes $r_\epsilon$ from them, with the same numbers. The kind is static, the
    value a leaf: a sweep over it is one vmapped run, and it has a hypergradient. The
    norms' derivatives are finite at $0$ (at the first step $\|x_0 - x_0\| = 0$, where
    Optax's hypergradients are NaN).

    Optax: `optax.contrib.dog`. Built as `chain(add_decayed_weights(weight_decay,
    mask) or identity(), <DoG scaling>, scale_by_learning_rate(learning_rate))`, with
    Optax's states.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule (1.0: DoG's own step).
    - `init_step`: `(kind, value)`, as above.
    - `eps`: $\varepsilon$, added to $G_t$.
    - `weight_decay`: decoupled weight decay added to the gradient first; `None` for
        none.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Ivgi et al., *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
        Schedule*, ICML 2023 (arXiv:2302.12022).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter, default=1.0)
    init_step: DoGInitStep = eqx.field(
        converter=as_init_step, default=("heuristic", 1e-6)
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-8)
    weight_decay: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters("dog", self, eps=NONNEGATIVE, weight_decay=NONNEGATIVE)

    def as_chain(self) -> Chain:
        return Chain(
            (
                _decay(self.weight_decay, self.mask),
                ScaleByDoG(self.init_step, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


@no_type_check
def _decay(weight_decay: Any, mask: Any) -> GradientTransformation:
    if weight_decay is None:
        return Identity()
    return AddDecayedWeights(weight_decay, mask)


class DoWGState(eqx.Module):
    """State of [`eqopt.contrib.dowg`][]'s scaling: the initial parameters $x_0$
    (zeros until the first `update` stores the parameters it sees), the weighted sum
    $v$ of squared gradient norms and the estimate $\\bar r^2$ of the squared distance
    to a solution."""

    init_params: Moments
    weighted_sq_norm_grads: Float[Array, ""]
    estim_sq_dist: Float[Array, ""]


class ScaleByDoWG(GradientTransformation):
    r"""DoWG's scaling: $u_t = \eta_t\, g_t$ with
    $\eta_t = \bar r_t^2 / (\sqrt{v_t} + \varepsilon)$ (see [`eqopt.contrib.dowg`][]).

    Optax: `optax.contrib._dog.scale_by_dowg` (not exported by `optax.contrib`).
    """

    init_estim_sq_dist: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-4)

    def __check_init__(self):
        check_hyperparameters(
            "dowg", self, init_estim_sq_dist=NONNEGATIVE, eps=NONNEGATIVE
        )

    def init(self, params: Params) -> DoWGState:
        dtype = float_dtype(params)
        initial_estimate = (
            self.eps if self.init_estim_sq_dist is None else self.init_estim_sq_dist
        )
        return DoWGState(
            init_params=zeros_like_params(params),
            weighted_sq_norm_grads=jnp.zeros([], dtype),
            estim_sq_dist=jnp.asarray(initial_estimate).astype(dtype),
        )

    def update(
        self,
        updates: Updates,
        state: DoWGState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, DoWGState]:
        require_params("dowg", params)
        # No update has moved the parameters while the weighted sum is zero (every
        # step so far was zero): the parameters seen now are the initial ones.
        first_step = state.weighted_sq_norm_grads == 0

        dtype = state.estim_sq_dist.dtype
        init_params, distance_sq, grads_sq = distance_and_gradient_sums(
            first_step, updates, params, state.init_params, "state.init_params", dtype
        )
        (eps,) = cast(dtype, self.eps)
        estim_sq_dist = jnp.maximum(state.estim_sq_dist, distance_sq)
        weighted = estim_sq_dist * grads_sq + state.weighted_sq_norm_grads
        learning_rate = estim_sq_dist / (safe_sqrt(weighted) + eps)
        return _scale(updates, learning_rate), DoWGState(
            init_params=init_params,
            weighted_sq_norm_grads=weighted,
            estim_sq_dist=estim_sq_dist,
        )


class DoWG(AbstractOptimiser):
    r"""DoWG (distance over weighted gradients): a parameter-free step size.

    $$
    \begin{aligned}
    \bar r_t^2 &= \max\big(\bar r_{t-1}^2,\ \|x_t - x_0\|^2\big), \qquad
    v_t = v_{t-1} + \bar r_t^2\, \|g_t\|^2, \\
    u_t &= -\eta_t\, \frac{\bar r_t^2}{\sqrt{v_t} + \varepsilon}\, g_t,
    \end{aligned}
    $$

    norms taken over all parameters together, from $\bar r_0^2$ =
    `init_estim_sq_dist` (or $\varepsilon$) and $v_0 = 0$.

    `init` reads only the parameters' shapes: $x_0$ is stored by the first `update`
    (while $v = 0$, no step has moved the parameters, so those are the initial ones),
    with Optax's numbers. Every float argument is a leaf.

    Optax: `optax.contrib.dowg`. Built as `chain(add_decayed_weights(weight_decay,
    mask) or identity(), <DoWG scaling>, scale_by_learning_rate(learning_rate))`, with
    Optax's states.

    **Arguments:**

    - `learning_rate`: $\eta_t$, a float, an array or a schedule.
    - `init_estim_sq_dist`: $\bar r_0^2$, the initial guess of the squared distance to
        a solution; `None` for $\varepsilon$.
    - `eps`: $\varepsilon$, added to the denominator.
    - `weight_decay`: decoupled weight decay added to the gradient first; `None` for
        none.
    - `mask`: which parameters to decay, as in [`eqopt.AddDecayedWeights`][].

    ??? cite "References"

        Khaled et al., *DoWG Unleashed: An Efficient Universal Parameter-Free
        Gradient Descent Method*, NeurIPS 2023 (arXiv:2305.16284).
    """

    learning_rate: LearningRate = eqx.field(converter=as_hyperparameter, default=1.0)
    init_estim_sq_dist: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    eps: Float[Array, ""] = eqx.field(converter=as_scalar, default=1e-4)
    weight_decay: Float[Array, ""] | None = eqx.field(
        converter=as_optional_scalar, default=None
    )
    mask: FrozenMask | Callable | None = eqx.field(
        static=True, converter=freeze_mask, default=None
    )

    def __check_init__(self):
        check_hyperparameters(
            "dowg",
            self,
            init_estim_sq_dist=NONNEGATIVE,
            eps=NONNEGATIVE,
            weight_decay=NONNEGATIVE,
        )

    def as_chain(self) -> Chain:
        return Chain(
            (
                _decay(self.weight_decay, self.mask),
                ScaleByDoWG(self.init_estim_sq_dist, self.eps),
                ScaleByLearningRate(self.learning_rate),
            )
        )


dog = DoG
dowg = DoWG

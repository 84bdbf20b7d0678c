"""Warmup-stable-decay (WSD): linear warmup, a constant plateau, then a short cooldown."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import AbstractSchedule
from .._checks import check_steps
from .._hyperparams import as_scalar
from ._schedules import Count, Value


_DECAY_TYPES = ("linear", "cosine", "sqrt", "square")


class WarmupStableDecaySchedule(AbstractSchedule):
    r"""Warmup-stable-decay: linear warmup, a constant peak, then a decay to the end.

    With $W$ = `warmup_steps`, $T$ = `total_steps`, $D$ = `decay_steps` and the decay
    starting at $S = T - D$:

    $$
    \alpha(t) = \begin{cases}
      v_0 + (v_p - v_0)\, t / W & t < W \\
      v_p & W \le t < S \\
      v_e + (v_p - v_e)\, f\!\left(\min\!\left(\frac{t - S}{D}, 1\right)\right)
        & t \ge S
    \end{cases}
    $$

    where the shape $f$ of the decay (`decay_type`) falls from $f(0) = 1$ to
    $f(1) = 0$:

    - `"linear"`: $f(s) = 1 - s$;
    - `"cosine"`: $f(s) = \tfrac12 (1 + \cos \pi s)$;
    - `"sqrt"`: $f(s) = 1 - \sqrt{s}$ (Hägele et al.'s "1-sqrt", their best cooldown);
    - `"square"`: $f(s) = 1 - s^2$.

    The value is $v_e$ from step $T$ on. The lengths follow Hägele et al. (2024): a
    total length and a cooldown length counted at its end, typically 10–20% of it (for
    a fraction $r$, pass `decay_steps=round(r * total_steps)`). Because the plateau
    does not depend on where the cooldown will start, one run on the plateau can be
    branched into cooldowns of several lengths (and its checkpoint reused): build a
    schedule with another `total_steps` and carry on with the same optimiser state.

    Not in Optax.

    **Arguments:**

    - `init_value`: $v_0$, the value at step 0.
    - `peak_value`: $v_p$, the value of the plateau.
    - `warmup_steps`: $W \ge 0$ (static).
    - `total_steps`: $T$, the length of the whole schedule, warmup and decay
        included; $T \ge W + D$ (static).
    - `decay_steps`: $D > 0$, the length of the decay at the end (static).
    - `end_value`: $v_e$, the value at the end of the decay and afterwards.
    - `decay_type`: the shape $f$ of the decay, `"linear"`, `"cosine"`, `"sqrt"` or
        `"square"` (static).

    The values are leaves: a schedule can be swept with `vmap` over `peak_value` and
    differentiated with respect to its values.

    ??? cite "References"

        Hägele, Bakouch, Kosson, Ben Allal, Von Werra and Jaggi, *Scaling Laws and
        Compute-Optimal Training Beyond Fixed Training Durations*, NeurIPS 2024,
        [arXiv:2405.18392](https://arxiv.org/abs/2405.18392).

        Hu et al., *MiniCPM: Unveiling the Potential of Small Language Models with
        Scalable Training Strategies*, 2024,
        [arXiv:2404.06395](https://arxiv.org/abs/2404.06395).

        Wen, Li, Liu, Du, Liang and Ma, *Understanding Warmup-Stable-Decay Learning
        Rates: A River Valley Loss Landscape Perspective*, 2024,
        [arXiv:2410.05192](https://arxiv.org/abs/2410.05192).
    """

    init_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    peak_value: Float[Array, ""] = eqx.field(converter=as_scalar)
    warmup_steps: int = eqx.field(static=True)
    total_steps: int = eqx.field(static=True)
    decay_steps: int = eqx.field(static=True)
    end_value: Float[Array, ""] = eqx.field(converter=as_scalar, default=0.0)
    # `str`, not a `Literal`: a wrong name gets the `ValueError` below, which lists
    # the choices, rather than the type checker's error.
    decay_type: str = eqx.field(static=True, default="linear")

    def __check_init__(self):
        owner = "warmup_stable_decay_schedule"
        check_steps(owner, warmup_steps=self.warmup_steps)
        if not self.decay_steps > 0:
            raise ValueError(
                f"`{owner}(decay_steps=...)` must be a positive number of steps (for "
                "no decay use `warmup_constant_schedule`); got "
                f"decay_steps={self.decay_steps!r}."
            )
        if not self.total_steps >= self.warmup_steps + self.decay_steps:
            raise ValueError(
                f"`{owner}(total_steps=...)` counts the warmup and the decay too, so it "
                "must be at least `warmup_steps + decay_steps`; got "
                f"total_steps={self.total_steps!r}, warmup_steps={self.warmup_steps!r}, "
                f"decay_steps={self.decay_steps!r}."
            )
        if self.decay_type not in _DECAY_TYPES:
            raise ValueError(
                f"`{owner}(decay_type=...)` must be one of "
                f"{', '.join(repr(d) for d in _DECAY_TYPES)}; "
                f"got decay_type={self.decay_type!r}."
            )

    def __call__(self, count: Count) -> Value:
        with jax.numpy_dtype_promotion("standard"):  # explicit, whatever the config
            dtype = jnp.result_type(self.init_value, self.peak_value, self.end_value)
        init, peak, end = (
            x.astype(dtype) for x in (self.init_value, self.peak_value, self.end_value)
        )
        count = jnp.asarray(count)
        t = count.astype(dtype)
        start = self.total_steps - self.decay_steps
        s = jnp.clip((t - start) / self.decay_steps, 0, 1)
        if self.decay_type == "linear":
            shape = 1 - s
        elif self.decay_type == "cosine":
            shape = 0.5 * (1 + jnp.cos(jnp.pi * s))
        elif self.decay_type == "sqrt":
            shape = 1 - jnp.sqrt(s)
        else:
            shape = 1 - s**2
        value = jnp.where(count < start, peak, end + (peak - end) * shape)
        if self.warmup_steps > 0:
            frac = jnp.minimum(t, self.warmup_steps) / self.warmup_steps
            value = jnp.where(
                count < self.warmup_steps, init + (peak - init) * frac, value
            )
        return value


warmup_stable_decay_schedule = WarmupStableDecaySchedule

"""Function-level microbatching, as Optax's `optax.microbatching`.

`microbatch` evaluates a function over a large batch one slice at a time in a
`lax.fori_loop` and combines the slices' results (sum, mean, concatenation): a gradient
over a batch that does not fit in memory at once. `micro_vmap` is `jax.vmap` by
microbatches; `micro_grad` computes per-example gradients, transforms and combines them.
"""

from ._accumulators import (
    AccumulationType as AccumulationType,
    Accumulator as Accumulator,
)
from ._microbatch import (
    IndividualOutputs as IndividualOutputs,
    micro_grad as micro_grad,
    micro_vmap as micro_vmap,
    microbatch as microbatch,
    reshape_batch_axis as reshape_batch_axis,
)

"""eqopt.tree_utils (Optax: `optax.tree_utils`): pytree helpers that skip `None` and
non-array leaves, so they work on Equinox models and `eqx.filter_grad` output as they are.
"""

from ._arithmetic import (
    tree_add as tree_add,
    tree_add_scale as tree_add_scale,
    tree_batch_shape as tree_batch_shape,
    tree_clip as tree_clip,
    tree_conj as tree_conj,
    tree_div as tree_div,
    tree_mul as tree_mul,
    tree_real as tree_real,
    tree_scale as tree_scale,
    tree_sub as tree_sub,
    tree_where as tree_where,
)
from ._casting import (
    tree_cast as tree_cast,
    tree_cast_like as tree_cast_like,
    tree_dtype as tree_dtype,
)
from ._constructors import (
    tree_full_like as tree_full_like,
    tree_ones_like as tree_ones_like,
    tree_zeros_like as tree_zeros_like,
)

# Deprecated Optax names (`tree_l2_norm`, `tree_scalar_mul`...), with a warning.
from ._deprecated import __getattr__ as __getattr__
from ._hyperparams import (
    tree_get_hyperparams as tree_get_hyperparams,
    tree_set_hyperparams as tree_set_hyperparams,
)
from ._map_params import tree_map_params as tree_map_params
from ._moments import (
    tree_bias_correction as tree_bias_correction,
    tree_update_infinity_moment as tree_update_infinity_moment,
    tree_update_moment as tree_update_moment,
    tree_update_moment_per_elem_norm as tree_update_moment_per_elem_norm,
)
from ._random import (
    tree_random_like as tree_random_like,
    tree_split_key_like as tree_split_key_like,
    tree_unwrap_random_key_data as tree_unwrap_random_key_data,
)
from ._reductions import (
    tree_allclose as tree_allclose,
    tree_max as tree_max,
    tree_min as tree_min,
    tree_norm as tree_norm,
    tree_size as tree_size,
    tree_sum as tree_sum,
    tree_vdot as tree_vdot,
)
from ._state_utils import (
    NamedTupleKey as NamedTupleKey,
    tree_get as tree_get,
    tree_get_all_with_path as tree_get_all_with_path,
    tree_set as tree_set,
)

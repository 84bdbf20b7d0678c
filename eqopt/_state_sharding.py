"""Optimiser state sharded over a mesh axis that the parameters are not (ZeRO-1)."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._base import GradientTransformation
from ._custom_types import Params


_NO_MESH = (
    "found no mesh: no leaf of `params` is laid out with a "
    "`NamedSharding`. Pass the mesh as `mesh=`, or lay the parameters out on it first "
    "(`jax.device_put(params, NamedSharding(mesh, P()))` replicates them)."
)


def _is_arraylike(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _path_str(path: tuple) -> str:
    return jtu.keystr(path) or "(the root)"


def _find_mesh(flat_params: list[tuple[tuple, Any]], mesh: Mesh | None) -> Mesh:
    """The mesh of the shardings: `mesh` if given, else that of the parameters'
    `NamedSharding`s, which must all lie on one mesh."""
    if mesh is not None:
        for path, p in flat_params:
            sharding = getattr(p, "sharding", None)
            if isinstance(sharding, NamedSharding):
                if sharding.mesh.shape_tuple != mesh.shape_tuple:
                    raise ValueError(
                        f"`params{_path_str(path)}` is laid out on a mesh of axes "
                        f"{sharding.mesh.shape_tuple}, not on `mesh` (axes "
                        f"{mesh.shape_tuple}). Lay the parameters out on `mesh`, or "
                        "leave `mesh=None` to use theirs."
                    )
        return mesh
    found: dict[tuple, tuple[tuple, Any]] = {}
    for path, p in flat_params:
        sharding = getattr(p, "sharding", None)
        if isinstance(sharding, NamedSharding):
            found.setdefault(sharding.mesh.shape_tuple, (path, sharding.mesh))
    if not found:
        raise ValueError(_NO_MESH)
    if len(found) > 1:
        (first, _), (second, _) = list(found.values())[:2]
        raise ValueError(
            f"`params{_path_str(first)}` and `params{_path_str(second)}` are laid out "
            "on different meshes; lay every parameter out on one mesh, or pass it as "
            "`mesh=`."
        )
    ((_, found_mesh),) = found.values()
    if not isinstance(found_mesh, Mesh):
        # An abstract mesh (`ShapeDtypeStruct`s laid out on `AbstractMesh`) names no
        # devices; a `NamedSharding` to place arrays with needs them.
        raise ValueError(
            "the parameters are laid out on an abstract mesh, which names no devices: "
            "pass the concrete mesh as `mesh=`."
        )
    return found_mesh


def _spec_of(p: Any, ndim: int) -> tuple:
    """A parameter's partition spec, one entry per dimension (`None`: not sharded)."""
    sharding = getattr(p, "sharding", None)
    spec = tuple(sharding.spec) if isinstance(sharding, NamedSharding) else ()
    return spec + (None,) * (ndim - len(spec))


def _axes(entry: Any) -> tuple:
    if entry is None:
        return ()
    return entry if isinstance(entry, tuple) else (entry,)


def _add_axis(shape: tuple, spec: tuple, axis: str, mesh: Mesh) -> tuple:
    """`spec` with `axis` added to the dimension whose per-device block is largest
    among those that divide by `axis`'s size (the first on ties); `spec` unchanged
    if `axis` already shards a dimension or no block divides."""
    if any(axis in _axes(entry) for entry in spec):
        return spec
    size = mesh.shape[axis]
    best, best_block = None, 0
    for i, (n, entry) in enumerate(zip(shape, spec)):
        block, rest = divmod(n, math.prod(mesh.shape[a] for a in _axes(entry)))
        if rest == 0 and block % size == 0 and block > best_block:
            best, best_block = i, block
    if best is None:
        return spec
    entry = _axes(spec[best]) + (axis,)
    return spec[:best] + (entry[0] if len(entry) == 1 else entry,) + spec[best + 1 :]


def _check_axis(axis: str, mesh: Mesh) -> None:
    if axis not in mesh.axis_names:
        raise ValueError(
            f"`axis={axis!r}` is not an axis of the mesh, whose axes are "
            f"{mesh.axis_names}."
        )


def _flat_arrays(params: Any) -> list[tuple[tuple, Any]]:
    return [
        (tuple(path), p)
        for path, p in jtu.tree_flatten_with_path(params)[0]
        if _is_arraylike(p)
    ]


def update_shardings(
    params: Params, axis: str = "data", mesh: Mesh | None = None
) -> Any:
    """The layout in which a ZeRO-1 step updates each parameter: its own partition
    spec with `axis` added, by the rule of [`eqopt.state_shardings`][] for the moments
    that mirror it.

    The moments are laid out so; on a mesh of `Explicit` axes (`jax.make_mesh`'s
    default), where JAX rejects arithmetic between arrays laid out differently
    (`jnp.where` of a split moment and a replicated gradient), reshard the gradients
    and the parameters to these shardings before `opt.update`, and the new parameters
    back to their own layout after `apply_updates`: the step then reads only each
    device's slice, and the last reshard is the all-gather of ZeRO-1. On a mesh of
    `Auto` axes XLA finds this layout itself.

    **Arguments:**

    - `params`: the parameters, as for [`eqopt.state_shardings`][].
    - `axis`: the mesh axis to shard over.
    - `mesh`: the mesh; `None` (the default) takes the parameters'.

    **Returns:**

    A pytree of `jax.sharding.NamedSharding` with the structure of `params` (`None`
    at leaves that are not arrays).
    """
    mesh = _find_mesh(_flat_arrays(params), mesh)
    _check_axis(axis, mesh)
    return jax.tree.map(
        lambda p: (
            NamedSharding(
                mesh,
                PartitionSpec(*_add_axis(p.shape, _spec_of(p, p.ndim), axis, mesh)),
            )
            if _is_arraylike(p)
            else None
        ),
        params,
    )


def state_shardings(
    opt: GradientTransformation,
    params: Params,
    axis: str = "data",
    mesh: Mesh | None = None,
) -> Any:
    r"""Shardings for an optimiser state sharded over `axis` (ZeRO-1, Rajbhandari et
    al. 2020): each device keeps a slice of the moments while the parameters stay as
    they are laid out (replicated, or sharded over other axes only).

    Adam's two moments take twice the parameters' memory on every device of a
    data-parallel mesh. With the state sharded over the data axis, each of $N$ devices
    keeps $1/N$ of it: XLA then computes each moment update on that device's slice
    and all-gathers the updated parameters, which is what their replicated layout
    requires.

    ```python
    shardings = eqopt.state_shardings(opt, params, axis="data")
    init = jax.jit(lambda opt, params: opt.init(params), out_shardings=shardings)
    state = init(opt, params)
    # In the jitted step, after `opt.update`: on a mesh of `Auto` axes
    state = jax.lax.with_sharding_constraint(state, shardings)
    # or of `Explicit` axes (see `eqopt.update_shardings` for the gradients)
    state = jax.sharding.reshard(state, shardings)
    ```

    The how-to [ZeRO-1 state sharding](../how-to/zero-state-sharding.md) has a whole
    training step, what is gathered when, and the memory saved.

    **The rule**, for each leaf of `jax.eval_shape(opt.init, params)`:

    - a leaf that mirrors a parameter (the same shape, and a path in the state that
      ends with the parameter's path: Adam's `mu` and `nu`, a momentum `trace`, an
      EMA) takes that parameter's partition spec, with `axis` added to the dimension
      whose per-device block (its size divided by the mesh axes already sharding it)
      is largest among those divisible by the size of `axis`, the first such
      dimension on ties: `P(None, "model")` on a $(1024, 512)$ leaf becomes
      `P("data", "model")`, `P()` on a $(12, 8)$ leaf over 8 devices becomes
      `P(None, "data")`, and `P("model")` on a $(4096,)$ leaf becomes
      `P(("model", "data"))`;
    - a history of a parameter's values (a leaf of shape $(k, \ldots)$ whose trailing
      dimensions are the parameter's, and whose path ends with the parameter's:
      L-BFGS's memory) is laid out as the parameter's moments along those
      dimensions, whole along the first;
    - a mirror that no dimension divides, or that `axis` already shards (parameters
      sharded over `axis` themselves, FSDP-style), keeps the parameter's spec;
    - every other leaf is replicated: scalars (step counts, hyperparameters kept in
      the state, PRNG keys) and statistics shaped unlike their parameter (Adafactor's
      row and column factors, SM3's per-axis accumulators, SOAP's preconditioners,
      `flatten`'s one vector). These are small next to the moments (all but the last
      two), and splitting them independently would not always be valid: on a mesh
      of `Explicit` axes a row factor and a column factor split over one axis meet
      in an outer product that JAX rejects as sharded twice over that axis.

    **Arguments:**

    - `opt`: the optimiser whose state is laid out.
    - `params`: the parameters, as arrays or `jax.ShapeDtypeStruct`s (an Equinox model
      included), laid out with `NamedSharding`s or not (those without one count as
      replicated).
    - `axis`: the mesh axis to shard the state over.
    - `mesh`: the mesh; `None` (the default) takes the one that the parameters'
      `NamedSharding`s lie on.

    **Returns:**

    A pytree of `jax.sharding.NamedSharding`, with the structure of
    `jax.eval_shape(opt.init, params)` (`None` where the state holds no array), for
    `jax.jit`'s `out_shardings`, `jax.lax.with_sharding_constraint` (mesh axes of type
    `Auto`) or `jax.sharding.reshard` (type `Explicit`).

    **Raises:**

    `ValueError` if `axis` is not an axis of the mesh, if no mesh is given and none
    of `params` is laid out on one, or if the parameters lie on different meshes (or
    on one other than `mesh`).

    ??? cite "References"

        ```bibtex
        @inproceedings{rajbhandari2020zero,
            title={ZeRO: Memory Optimizations Toward Training Trillion Parameter
                Models},
            author={Rajbhandari, Samyam and Rasley, Jeff and Ruwase, Olatunji and
                He, Yuxiong},
            booktitle={SC20: International Conference for High Performance Computing,
                Networking, Storage and Analysis},
            pages={1--16},
            year={2020}
        }
        ```
    """
    flat_params = _flat_arrays(params)
    mesh = _find_mesh(flat_params, mesh)
    _check_axis(axis, mesh)
    by_path = {path: (p.shape, _spec_of(p, p.ndim)) for path, p in flat_params}
    shapes = eqx.filter_eval_shape(opt.init, params)
    flat_state, treedef = jtu.tree_flatten_with_path(shapes)
    shardings = []
    for path, leaf in flat_state:
        if not _is_arraylike(leaf):
            shardings.append(None)
            continue
        shape = tuple(leaf.shape)
        spec = (None,) * len(shape)
        # The parameter whose path is the longest suffix of the leaf's, if any has
        # the leaf's shape: `...mu['w']` mirrors `params['w']`.
        # A history of it (`(k, *shape)`: L-BFGS's memory) is split like it.
        for start in range(len(path) + 1):
            found = by_path.get(tuple(path[start:]))
            if found is None:
                continue
            param_shape, param_spec = found
            if param_shape == shape:
                spec = _add_axis(shape, param_spec, axis, mesh)
                break
            if param_shape == shape[1:]:
                spec = (None,) + _add_axis(param_shape, param_spec, axis, mesh)
                break
        shardings.append(NamedSharding(mesh, PartitionSpec(*spec)))
    return jtu.tree_unflatten(treedef, shardings)

import os


# Set before JAX starts: eight CPU devices for the sharding tests, and XLA's CPU backend
# at optimisation level 0 without LLVM's expensive passes. The suite compiles ~10
# programs for each of ~120 registry cases and runs each a few times: compiling is most
# of its time, and these flags cut it by a third. They change how fast the compiled code
# runs, not what it computes (XLA's CPU fast-math is off either way); the benchmarks,
# which time compiled code, do not use them.
os.environ["XLA_FLAGS"] = " ".join(
    (
        os.environ.get("XLA_FLAGS", ""),
        "--xla_force_host_platform_device_count=8",
        "--xla_backend_optimization_level=0",
        "--xla_llvm_disable_expensive_passes=true",
    )
).strip()

import jax
import pytest

from .helpers import GetKey


# Strict promotion catches silent bf16 -> f32 promotion; Optax oracle calls are wrapped
# in `jax.numpy_dtype_promotion("standard")`.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    return GetKey()


def _memory_maps() -> int:
    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drop JAX's caches of traced and compiled programs when this worker's memory maps
    grow large. Every live CPU executable holds a few memory maps; a worker runs ~2,000
    tests that each compile their own programs, and tens of thousands of executables
    reach the kernel's limit (`vm.max_map_count`, 65,530), where XLA's compiler crashes
    with a segfault. (Clearing after every test instead costs a recompilation of what
    tests share, about 40% of the suite's time.)"""
    yield
    if _memory_maps() > 20_000:
        jax.clear_caches()

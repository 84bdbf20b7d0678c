"""Import time of eqopt's own part, next to Optax's own part.

Run with `python3 dev.py bench` (or `python benchmarks/bench_import.py [--quick]`).

Each measurement is a fresh interpreter that first imports what both libraries build on
(jax, jaxlib, numpy, equinox, jaxtyping, beartype, absl), then times `import eqopt` or
`import optax` alone: that library's own part. Bytecode caching is on (the environment
variable `PYTHONDONTWRITEBYTECODE` is removed for the children), and one warm-up import
of each writes the caches first. The two libraries take turns; the medians are printed
with their ratio. Nothing is asserted.
"""

import argparse
import os
import statistics
import subprocess
import sys


PRELUDE = "import jax, jaxlib, numpy, equinox, jaxtyping, beartype, absl.logging, time"
PROGRAM = (
    PRELUDE + "; t = time.perf_counter(); import {lib}; print(time.perf_counter() - t)"
)


def own_import_time(lib: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(lib=lib)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 15")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    libs = ("eqopt", "optax")
    for lib in libs:
        own_import_time(lib)  # writes the bytecode caches
    times = {lib: [] for lib in libs}
    for r in range(repeats):
        for lib in libs[r % 2 :] + libs[: r % 2]:
            times[lib].append(own_import_time(lib))
    eqopt_s, optax_s = (statistics.median(times[lib]) for lib in libs)
    print(f"\nimport time, own part (median of {repeats} fresh interpreters)")
    print(
        f"   eqopt {eqopt_s:6.3f} s   optax {optax_s:6.3f} s   ratio {eqopt_s / optax_s:5.2f}"
    )


if __name__ == "__main__":
    main()

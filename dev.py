#!/usr/bin/env python3
"""Set up a local environment and run eqopt's tasks. Needs only Python 3.11+ and pip.

    python3 dev.py demo     # run examples/quickstart.py
    python3 dev.py test     # run the test suite
    python3 dev.py lint     # ruff check + ruff format --check
    python3 dev.py docs     # mkdocs build --strict
    python3 dev.py bench    # benchmarks/ (eqopt vs Optax, ratios printed)
    python3 dev.py examples # every example in smoke mode

The first call creates `.venv/` and installs eqopt with its extras, at the versions
recorded in `constraints.txt`; later calls reinstall only when `pyproject.toml` or
`constraints.txt` change. Extra arguments are passed to each of the task's commands
(e.g. `dev.py test -k adam`, `dev.py bench --quick`).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path


ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".eqopt-installed"
EXTRAS = "tests,docs,examples"


def run(*args: object) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_environment() -> None:
    digest = hashlib.sha256(
        b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not PYTHON.exists():
        print(f"[dev] creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    print(f"[dev] installing eqopt[{EXTRAS}] (pinned by constraints.txt)", flush=True)
    pip = (PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    run(*pip, "-c", "constraints.txt", "-e", f".[{EXTRAS}]")
    STAMP.write_text(digest)


TASKS = {
    "demo": [["examples/quickstart.py"]],
    "test": [["-m", "pytest", "-n", "2", "--dist", "worksteal"]],
    "lint": [["-m", "ruff", "check", "."], ["-m", "ruff", "format", "--check", "."]],
    "docs": [["-m", "mkdocs", "build", "--strict", "--quiet"]],
    "bench": [
        ["benchmarks/bench_step.py"],
        ["benchmarks/bench_sweep.py"],
        ["benchmarks/bench_memory.py"],
        ["benchmarks/bench_import.py"],
        ["benchmarks/bench_wrappers.py"],
        ["benchmarks/bench_unroll.py"],
    ],
    "examples": [
        ["examples/quickstart.py", "--steps", "60"],
        ["examples/variational_inference.py", "--steps", "60"],
        ["examples/fine_tuning.py", "--steps", "40"],
        ["examples/hypergradient.py", "--steps", "100"],
        ["examples/lbfgs.py", "--steps", "30"],
        ["examples/modern_optimisers.py", "--steps", "20"],
        ["examples/second_order_family.py", "--steps", "100"],
    ],
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        sys.exit(2)
    task, extra = sys.argv[1], sys.argv[2:]
    ensure_environment()
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    for command in TASKS[task]:
        run(PYTHON, *command, *extra)


if __name__ == "__main__":
    main()

"""The README's tour runs as written (its Python blocks, in order, in one namespace)."""

import pathlib
import re

import jax


def test_readme_tour_runs():
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 5
    namespace = {}
    with jax.numpy_dtype_promotion("standard"):  # as a user runs it
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["losses"].shape == (8,)
    assert set(namespace["optax"].__dict__) >= {"adam", "sgd", "apply_updates"}

"""The Monte Carlo docs: the how-to's code and the docstring examples run."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np

import eqopt


DOCS = pathlib.Path(__file__).parent.parent.parent / "docs"


def _python_blocks(text: str) -> list[str]:
    """The fenced Python blocks of Markdown text (indentation removed), except
    snippet includes."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M)
    return [
        "\n".join(line[len(indent) :] for line in body.splitlines())
        for indent, body in blocks
        if "--8<--" not in body
    ]


def test_how_to_runs():
    namespace: dict = {}
    for index, block in enumerate(
        _python_blocks((DOCS / "how-to" / "monte-carlo.md").read_text())
    ):
        exec(compile(block, f"monte-carlo.md[{index}]", "exec"), namespace)
    loc = np.asarray([1.0, -0.5])
    np.testing.assert_allclose(namespace["grad_loc"], 2 * loc, atol=0.2)
    assert int(namespace["cv_state"].count) == 100
    assert namespace["baselines"].decay.shape == (3,)


def test_docstring_examples_run():
    names = [
        eqopt.monte_carlo.score_function_jacobians,
        eqopt.utils.multi_normal,
    ]
    for fn in names:
        blocks = _python_blocks(fn.__doc__)
        assert blocks, fn.__name__
        for block in blocks:
            exec(
                compile(block, fn.__name__, "exec"),
                {"eqopt": eqopt, "jax": jax, "jnp": jnp},
            )

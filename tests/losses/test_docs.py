"""The losses' docs: every name on the API page, docstring examples and the how-to run."""

import pathlib
import re
import types

import jax
import jax.numpy as jnp
import pytest

import eqopt


DOCS = pathlib.Path(__file__).parent.parent.parent / "docs"
PUBLIC = sorted(
    n
    for n in dir(eqopt.losses)
    if not n.startswith("_")
    and not isinstance(getattr(eqopt.losses, n), types.ModuleType)
)


def _python_blocks(text: str) -> list[str]:
    """The fenced Python blocks of Markdown text (indentation removed)."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M)
    return [
        "\n".join(line[len(indent) :] for line in body.splitlines())
        for indent, body in blocks
    ]


def test_every_public_name_is_on_the_api_page():
    page = (DOCS / "api" / "losses.md").read_text()
    documented = set(re.findall(r"^::: eqopt\.losses\.(\w+)", page, re.M))
    assert set(PUBLIC) <= documented, sorted(set(PUBLIC) - documented)


EXAMPLES = [
    (name, block)
    for name in PUBLIC
    for block in _python_blocks(getattr(eqopt.losses, name).__doc__ or "")
]


@pytest.mark.parametrize("name, block", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_docstring_example_runs(name, block):
    namespace = {"eqopt": eqopt, "jax": jax, "jnp": jnp}
    exec(compile(block, f"eqopt.losses.{name}", "exec"), namespace)
    assert jnp.all(jnp.isfinite(namespace["loss"]))


def test_how_to_runs():
    blocks = _python_blocks((DOCS / "how-to" / "losses.md").read_text())
    assert len(blocks) >= 5
    namespace = {}
    with jax.numpy_dtype_promotion("standard"):  # as a user runs it
        for block in blocks:
            exec(compile(block, "docs/how-to/losses.md", "exec"), namespace)
    assert namespace["accuracy"] > 0.9
    assert jnp.isfinite(namespace["reg_loss"]) and jnp.isfinite(namespace["fy_value"])
    assert jnp.all(jnp.isfinite(namespace["losses"]))
    assert jnp.all(jnp.isfinite(namespace["grads"]))

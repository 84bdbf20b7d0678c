"""Meta-tests over the whole public API: abstract/final classes, Optax signatures, docs."""

import ast
import inspect
import pathlib
import re
import types

import equinox as eqx
import optax
import pytest

import eqopt


NAMESPACES = [
    "",
    "schedules",
    "losses",
    "projections",
    "second_order",
    "tree_utils",
    "perturbations",
    "assignment",
    "interop",
    "monte_carlo",
    "microbatching",
    "utils",
    "transforms",
    "contrib",
    "experimental.aggregating",
]


def _module(path):
    module = eqopt
    for part in filter(None, path.split(".")):
        module = getattr(module, part)
    return module


def public_objects():
    """(qualified public name, object) for every public name eqopt defines."""
    out = []
    for namespace in NAMESPACES:
        module = _module(namespace)
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or isinstance(obj, types.ModuleType):
                continue
            if getattr(obj, "__module__", "").startswith("eqopt"):
                out.append((f"eqopt.{namespace + '.' if namespace else ''}{name}", obj))
    return out


PUBLIC = public_objects()
CLASSES = [
    (n, c)
    for n, c in PUBLIC
    if isinstance(c, type) and n.rsplit(".", 1)[1][0].isupper()
]
MODULE_CLASSES = [(n, c) for n, c in CLASSES if issubclass(c, eqx.Module)]


def is_abstract(cls) -> bool:
    return bool(
        getattr(cls, "__abstractmethods__", ())
        or getattr(cls, "__abstractvars__", ())
        or getattr(cls, "__abstractclassvars__", ())
    )


@pytest.mark.parametrize(
    "name, cls", MODULE_CLASSES, ids=[n for n, _ in MODULE_CLASSES]
)
def test_abstract_iff_named_abstract_and_no_concrete_base(name, cls):
    short = name.rsplit(".", 1)[1]
    # Optax's names, kept for drop-in use (`GradientTransformationExtraArgs` is another
    # name of `GradientTransformation`; `StatefulSchedule` is Optax's abstract base).
    exempt = {
        "GradientTransformation",
        "GradientTransformationExtraArgs",
        "StatefulSchedule",
    }
    if short not in exempt:
        assert short.startswith("Abstract") == is_abstract(cls), name
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("eqopt") and issubclass(base, eqx.Module):
            assert is_abstract(base), f"{name} subclasses the concrete {base.__name__}"
    if not is_abstract(cls):
        assert cls.__doc__ and cls.__doc__.strip(), f"{name} has no docstring"


def optax_counterpart(name):
    """The Optax object at the same path, or None."""
    obj = optax
    for part in name.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _parameters(fn):
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_KEYWORD,)
    ]


def _eqopt_counterpart_instance(ours, theirs):
    """eqopt's own class standing in for Optax's in a default (`noise=Gumbel()`), or
    its own function of the same name (`decay_rate_fn=_decay_rate_pow`)."""
    if isinstance(ours, types.FunctionType) and isinstance(theirs, types.FunctionType):
        return ours.__module__.startswith("eqopt") and ours.__name__ == theirs.__name__
    if isinstance(theirs, optax.GradientTransformation):
        # A default transformation (`sophia(hessian_diagonal_fn=...)`,
        # `lbfgs(linesearch=...)`): Optax's is a NamedTuple of closures whose type
        # does not say which, so only the kind is compared here (the settings are
        # checked in the family's tests, e.g. `tests/test_lbfgs.py`).
        return isinstance(ours, eqopt.GradientTransformation)
    return (
        type(ours).__module__.startswith("eqopt")
        and type(ours).__name__ == type(theirs).__name__
    )


FACTORIES = [
    (n, f)
    for n, f in PUBLIC
    if callable(f)
    and not n.rsplit(".", 1)[1][0].isupper()
    and callable(optax_counterpart(n))
]


@pytest.mark.parametrize("name, factory", FACTORIES, ids=[n for n, _ in FACTORIES])
def test_same_signature_as_optax(name, factory):
    ours, theirs = _parameters(factory), _parameters(optax_counterpart(name))
    # eqopt may add keyword-only parameters after all of Optax's (`nu_dtype`): Optax
    # calls, positional or by keyword, mean the same.
    extra = ours[len(theirs) :]
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in extra), name
    ours = ours[: len(theirs)]
    assert [p[0] for p in ours] == [p[0] for p in theirs], name
    for (pname, kind, default), (_, their_kind, their_default) in zip(ours, theirs):
        positional = (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        )
        assert (kind in positional) == (their_kind in positional), f"{name}({pname})"
        assert (
            default == their_default
            or (
                default is inspect.Parameter.empty
                and their_default is inspect.Parameter.empty
            )
            or _eqopt_counterpart_instance(default, their_default)
        ), f"{name}({pname}={default!r}) but Optax has {their_default!r}"


def test_every_public_object_is_documented():
    docs = pathlib.Path(__file__).parent.parent / "docs"
    documented = set()
    for page in docs.rglob("*.md"):
        documented |= set(re.findall(r"^\s*::: (eqopt[\w.]*)", page.read_text(), re.M))
    documented_objects = {
        id(_module(".".join(n.split(".")[1:-1])).__dict__.get(n.split(".")[-1]))
        for n in documented
    }
    missing = sorted(
        n
        for n, obj in PUBLIC
        if n not in documented and id(obj) not in documented_objects
    )
    assert not missing, f"not in any `::: eqopt...` block of docs/: {missing}"


def _nested_functions_without_no_type_check(tree):
    """(line, name) of each `def` inside a function body that is not `@no_type_check`,
    nor inside a function or class that is (the import hook skips those whole)."""

    def exempt(node):
        return any("no_type_check" in ast.unparse(d) for d in node.decorator_list)

    found = []

    def visit(node, inside_function):
        for child in ast.iter_child_nodes(node):
            definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            if isinstance(child, definition) and exempt(child):
                continue  # nothing under it is wrapped either
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if inside_function:
                    found.append((child.lineno, child.name))
                visit(child, True)
            else:
                visit(child, inside_function)

    visit(tree, False)
    return found


def test_nested_functions_are_not_rewrapped_by_the_type_checker():
    # eqopt's import hook wraps every `def` in jaxtyping + beartype. A `def` inside a
    # function is wrapped again each time that function runs (a beartype code
    # generation, ~0.3 ms) and then type-checked on every call: for a per-leaf `rule`,
    # milliseconds per trace. The enclosing public call is checked already.
    package = pathlib.Path(eqopt.__file__).parent
    offenders = [
        f"{path.relative_to(package.parent)}:{line} {name}"
        for path in sorted(package.rglob("*.py"))
        for line, name in _nested_functions_without_no_type_check(
            ast.parse(path.read_text())
        )
    ]
    assert not offenders, f"nested functions need `@no_type_check`: {offenders}"


def test_lazy_names_resolve_and_match_the_static_list():
    """The sub-packages and names `eqopt` imports on first use are all reachable, and are
    the ones listed for static type checkers under `if TYPE_CHECKING:`."""
    init = pathlib.Path(eqopt.__file__).read_text()
    static_block = init[init.index("if TYPE_CHECKING:") :]
    static = set(re.findall(r"(\w+) as \1", static_block))
    lazy = set(eqopt._LAZY_SUBPACKAGES) | set(eqopt._LAZY_NAMES)
    assert static == lazy
    for name in lazy:
        assert getattr(eqopt, name) is not None
        assert name in dir(eqopt)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        eqopt.not_a_name  # noqa: B018


def test_import_loads_the_heavy_subpackages_on_first_use_only():
    import subprocess
    import sys

    program = (
        "import sys, eqopt; "
        "print(sorted(m for m in sys.modules if m in "
        f"{[f'eqopt.{m}' for m in eqopt._LAZY_SUBPACKAGES]!r})); "
        "eqopt.huber_loss; print('eqopt.losses' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"


def test_transforms_namespace_reexports_the_top_level_objects():
    names = [
        n
        for n in dir(eqopt.transforms)
        if not n.startswith("_")
        and not isinstance(getattr(eqopt.transforms, n), types.ModuleType)
    ]
    shared = [n for n in names if hasattr(eqopt, n)]
    # Only `unitwise_norm` and `unitwise_clip` are not at the top level (nor in Optax's).
    assert set(names) - set(shared) == {"unitwise_clip", "unitwise_norm"}
    for name in shared:
        assert getattr(eqopt, name) is getattr(eqopt.transforms, name), name

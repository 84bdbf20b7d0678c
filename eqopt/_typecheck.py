"""The run-time type checker of eqopt's import hook: beartype, applied on first call.

`eqopt/__init__.py` installs jaxtyping's import hook over the package with this
typechecker. jaxtyping wraps every function and Module (so shapes and dtypes in
`Float[Array, "n"]`-style annotations are checked, with readable errors); beartype then
generates a checking function per annotated signature, which costs about a millisecond
each. Done at import for every function of the package, that was most of
`import eqopt`'s time. Here beartype runs the first time a function is called instead,
so a program pays only for the functions it uses; the checks themselves are the same.
"""

import functools as ft
from collections.abc import Callable
from typing import Any, no_type_check

from beartype import beartype


@no_type_check
def lazy_beartype(fn: Callable) -> Callable:
    """`beartype(fn)`, built at the first call of the result."""
    checked = None

    @ft.wraps(fn)
    @no_type_check
    def check_on_first_call(*args: Any, **kwargs: Any) -> Any:
        nonlocal checked
        if checked is None:
            checked = beartype(fn)
        return checked(*args, **kwargs)

    return check_on_first_call

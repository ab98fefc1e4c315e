"""Constructors for frozen dataclasses at about half the cost of calling the class.

Why: a frozen dataclass's `__init__` sets each field through
`object.__setattr__`, to get around its own frozen `__setattr__`; the parser
makes a few hundred thousand `Span`s and syntax nodes for a large policy, and
that was a tenth of its time. Filling the new instance's `__dict__` directly
gives an equal object (same fields, same `==` and hash); `tests/test_lexer.py`
compares whole trees built this way with trees built by the classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _plain(cls: type) -> bool:
    """A frozen dataclass with a `__dict__` whose `__init__` only stores its arguments."""
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return False
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        return False
    return all(f.init and f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


def constructor(cls: type[T]) -> Callable[..., T]:
    """A function taking the same arguments as `cls(...)`, positional or by name; `cls` itself if not plain."""
    if not _plain(cls):
        return cls
    fields = dataclasses.fields(cls)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = []
    for f in fields:
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    stores = "".join(f"    _d[{f.name!r}] = {f.name}\n" for f in fields)
    source = f"def make({', '.join(params)}):\n    _o = _new(_cls)\n    _d = _o.__dict__\n{stores}    return _o\n"
    exec(source, namespace)  # noqa: S102 - the source is built from field names only, as dataclasses does
    make = namespace["make"]
    make.__qualname__ = make.__name__ = f"new_{cls.__name__}"
    make.__doc__ = f"`{cls.__name__}(...)` without the frozen __init__."
    return make

"""compiler.fast_dataclass: its constructors give what the class gives, or are the class."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from compiler import syntax as s
from compiler.diagnostics import Span
from compiler.fast_dataclass import constructor


def test_span_equal_hash_order_and_frozen():
    make = constructor(Span)
    assert make is not Span
    built, real = make("a.npl", 1, 2, 3, 4), Span("a.npl", 1, 2, 3, 4)
    assert built == real and hash(built) == hash(real) and repr(built) == repr(real)
    assert type(built) is Span
    assert make("a.npl", 1, 2, 3, 4) < Span("a.npl", 1, 3, 3, 4)  # order=True compares fields
    with pytest.raises(AttributeError):
        built.line = 5  # still frozen


def test_defaults_and_keywords_as_the_class_takes_them():
    make = constructor(s.Role)
    name, span = s.Name("r", Span("a", 1, 1, 1, 2)), Span("a", 1, 1, 1, 9)
    assert make(name, False, None, (), (), span) == s.Role(name, False, None, (), (), span)  # ssh_gateway=()
    assert make(name=name, default=True, description=None, rules=(), no_firewall=(), span=span,
                ssh_gateway=(span,)) == s.Role(name, True, None, (), (), span, (span,))
    with pytest.raises(TypeError):
        make(name)  # a missing argument fails as it does for the class


def test_classes_it_cannot_copy_are_returned_as_they_are():
    @dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self):
            if self.x < 0:
                raise ValueError(self.x)

    @dataclass(frozen=True)
    class Factory:
        x: list = field(default_factory=list)

    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    for cls in (Checked, Factory, Mutable, Slotted, int):
        assert constructor(cls) is cls

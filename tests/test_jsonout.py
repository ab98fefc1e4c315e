"""The fast JSON writer writes exactly `json.dumps(obj, indent=2, sort_keys=True, ...)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.backends import estate, jsonout
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
FOLDERS = [REPO / "policies"] + sorted({p.parent for p in (REPO / "examples").rglob("*.npl")
                                        if "weak" not in p.relative_to(REPO / "examples").parts})


def reference(obj: object, ensure_ascii: bool) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_estate_is_json_dumps(folder: Path) -> None:
    model = compile_folder(folder, render=False).model
    assert model is not None
    doc = estate.estate(model)
    assert jsonout.dumps(doc, ensure_ascii=False) == reference(doc, False)
    assert estate.render(model)["estate.json"] == (reference(doc, False) + "\n").encode()


TEXT = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["", '"', "\\", "\n", "\t", "\x00", "\x7f", "é", "\u2028", "\U0001f600", "a\"b\\c"])
SCALARS = (TEXT | st.integers() | st.booleans() | st.none()
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e300, 1.5]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(TEXT, inner, max_size=4), max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(VALUES, st.booleans())
def test_generated_values(value: object, ensure_ascii: bool) -> None:
    assert jsonout.dumps(value, ensure_ascii) == reference(value, ensure_ascii)


class Name(str):
    pass


def test_what_json_dumps_writes_its_own_way() -> None:
    for value in ({1: "a", 2: "b"}, {True: 1, False: 2}, {"k": Name("v")}, {Name("k"): 1}, [Name("x"), 1],
                  {"n": float("nan")}, {"deep": [[[[{"x": []}]]]], "e": {}, "l": []}, [[1, "a"], ["b", 2]]):
        for ensure_ascii in (True, False):
            assert jsonout.dumps(value, ensure_ascii) == reference(value, ensure_ascii)
    for refused in ({"x": object()}, {1: "a", "b": 2}):  # what json refuses, still refused
        with pytest.raises(TypeError):
            jsonout.dumps(refused)

"""Indented JSON with sorted keys, the bytes of `json.dumps(obj, indent=2, sort_keys=True, ...)`.

`json.dumps` leaves its C encoder for the pure-Python one as soon as it indents, and spends
most of its time in that generator chain on a large estate. This writer lays out the same
text directly, with json's own (C) string escaping; anything but plain dicts with str keys,
lists, tuples, str, int, float, bool and None (a subclass, a non-str key) goes to `json.dumps`
whole. tests/test_jsonout.py compares the two on compiled estates and generated values.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]

_SIMPLE = {True: "true", False: "false", None: "null"}
_MAX_DEPTH = 400  # deeper goes to json.dumps, which reports its own RecursionError


class _JsonNeededError(Exception):
    """The value holds something this writer leaves to `json.dumps`."""


def dumps(obj: object, ensure_ascii: bool = True) -> str:
    """`json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)`, faster."""
    out: list[str] = []
    try:
        _value(obj, "\n", out, encode_basestring_ascii if ensure_ascii else encode_basestring)
    except _JsonNeededError:
        return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)
    return "".join(out)


def _scalar(value: object) -> str:
    kind = type(value)
    if kind is int:
        return int.__repr__(value)  # type: ignore[arg-type]
    if kind is bool or value is None:
        return _SIMPLE[value]  # type: ignore[index]
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _JsonNeededError  # NaN and the infinities: json's own words
        return float.__repr__(value)  # type: ignore[arg-type]
    raise _JsonNeededError


def _value(value: object, newline: str, out: list[str], encode: object) -> None:
    """`value` at the indent that `newline` (a line break and that indent) gives."""
    kind = type(value)
    if kind is str:
        out.append(encode(value))  # type: ignore[operator]
    elif kind is dict:
        _object(value, newline, out, encode)  # type: ignore[arg-type]
    elif kind is list or kind is tuple:
        _array(value, newline, out, encode)  # type: ignore[arg-type]
    else:
        out.append(_scalar(value))


def _object(d: dict, newline: str, out: list[str], encode: object) -> None:
    if not d:
        out.append("{}")
        return
    if len(newline) > _MAX_DEPTH:
        raise _JsonNeededError
    inner = newline + "  "
    append = out.append
    lead = "{" + inner
    keys = list(d)
    if any(type(k) is not str for k in keys):  # noqa: E721 (json turns other keys into strings its own way)
        raise _JsonNeededError
    keys.sort()  # json.dumps sorts the items; the keys are unique, so the keys decide
    for k in keys:
        v = d[k]
        kind = type(v)
        if kind is str:
            append(f"{lead}{encode(k)}: {encode(v)}")  # type: ignore[operator]
        else:
            append(f"{lead}{encode(k)}: ")  # type: ignore[operator]
            if kind is dict:
                _object(v, inner, out, encode)
            elif kind is list or kind is tuple:
                _array(v, inner, out, encode)
            else:
                append(_scalar(v))
        lead = "," + inner
    append(newline + "}")


def _array(items: list | tuple, newline: str, out: list[str], encode: object) -> None:
    if not items:
        out.append("[]")
        return
    if len(newline) > _MAX_DEPTH:
        raise _JsonNeededError
    inner = newline + "  "
    try:  # the common case, names and addresses: json writes a str subclass as a str too
        out.append("[" + inner + ("," + inner).join(map(encode, items)) + newline + "]")  # type: ignore[arg-type]
        return
    except TypeError:  # an item that is not a string
        pass
    lead = "[" + inner
    for v in items:
        out.append(lead)
        _value(v, inner, out, encode)
        lead = "," + inner
    out.append(newline + "]")

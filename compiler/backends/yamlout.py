"""YAML for generated files: a header comment, then `---` documents in block style.

One writer for every backend that writes YAML, so all of it is byte-stable: keys sorted,
no anchors or aliases (a reader should see every value where it applies), no line
folding below 65,536 columns (a selector stays on one line).

The bytes are PyYAML's: `DUMPER` (libyaml's emitter where PyYAML has it, else the
pure-Python `PURE_DUMPER`, the tests' reference; the two agree except where they fold a
line past `width`). PyYAML's representer alone costs seconds on 10,000 files, so
`dump_documents` lays out the block structure itself, which is simple and fixed (below),
and leaves to PyYAML the one hard part, how a scalar is written: a string is written plain
here only when it is plainly safe (`_plain_is_safe`); every other string is written once
by PyYAML and its text reused (`_SCALARS`). A document set with anything else (another
type, a key PyYAML would write as `? key`, a scalar that would not stay on one line, an
empty collection or a scalar as a whole document) is dumped by PyYAML whole.
tests/test_yamlout.py compares the bytes on every compiled policy and on generated
documents full of strings that YAML 1.1 reads as something else.

The layout PyYAML writes, with indent 2 and `default_flow_style=False`:
- a mapping: `key: scalar`, or `key:` then a nested mapping two spaces further in, or
  `key:` then a sequence at the key's own indent (`- item`), or `key: {}` / `key: []`;
- a sequence: `- scalar`, or `- ` then a mapping or sequence whose first line follows the
  dash and whose next lines are two spaces further in than the dash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml
from yaml.resolver import Resolver


class Quoted(str):
    """A string always written double-quoted: Calico selectors, which may start with `!`
    and hold quotes of their own, read unambiguously as strings."""


def _dumper(base: type) -> type:
    class Dumper(base):  # type: ignore[valid-type,misc]
        def ignore_aliases(self, data: object) -> bool:
            return True

    Dumper.add_representer(Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"'))
    return Dumper


PURE_DUMPER = _dumper(yaml.SafeDumper)
DUMPER = _dumper(yaml.CSafeDumper) if getattr(yaml, "__with_libyaml__", False) else PURE_DUMPER
OPTIONS = {"explicit_start": True, "default_flow_style": False, "sort_keys": True, "allow_unicode": True,
           "width": 1 << 16}

# Characters a plain scalar may hold anywhere without PyYAML quoting it (no indicator, no
# `#`, no control or non-ASCII character), and the ones it may start with (no indicator,
# no space, no `.` that could begin `...`, no `-`); `: ` and a trailing `:` or space are
# checked apart. What YAML 1.1 would read as a bool, number, null, timestamp and so on is
# decided by PyYAML's own resolver table, so the two cannot disagree.
_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./:@=+,()' -]*\Z")
_DOUBLE_QUOTED = re.compile(r'[\x20-\x21\x23-\x5b\x5d-\x7e]*\Z')  # printable ASCII but `"` and `\`
_BREAK = re.compile("[\r\n\x85\u2028\u2029]")  # what YAML reads as a line break: indented in context
_RESOLVERS = Resolver.yaml_implicit_resolvers
_MAX_INLINE = 4096  # longer scalars go to PyYAML, which folds lines past `width`
_MAX_KEY = 100  # PyYAML writes `? key` once a key and its `!!str` tag reach 128 characters
_MAX_INDENT = 8192  # past this a line could reach `width`: PyYAML dumps the document
# Texts already decided, by value; None: not on one line, so PyYAML dumps the document.
_STR: dict[str, str | None] = {}
_QUOTED: dict[str, str | None] = {}
_KEYS: dict[str, str] = {}
_SIMPLE = {True: "true", False: "false", None: "null"}
_DECIDED_BY: list[type] = [DUMPER]


class _PyYAMLNeededError(Exception):
    """The document holds something this writer leaves to PyYAML."""


# and TypeError: keys that sorted() cannot order, which PyYAML leaves in their order
_LEFT_TO_PYYAML = (_PyYAMLNeededError, RecursionError, TypeError, ValueError)


def _plain_is_safe(s: str) -> bool:
    """PyYAML would write `s` as a plain scalar on one line, as it stands."""
    if len(s) > _MAX_INLINE or not _PLAIN.match(s) or ": " in s or s[-1] in ": ":
        return False
    return not any(regexp.match(s) for _, regexp in _RESOLVERS.get(s[0], ()))


def _by_pyyaml(value: str) -> str | None:
    """How PyYAML writes `value` as a mapping value or sequence item; None if not on one line."""
    text = yaml.dump_all([value], Dumper=DUMPER, **OPTIONS)
    if text.endswith("\n...\n"):  # a plain scalar ends an open-ended stream
        text = text[:-4]
    text = text[4:-1] if text.startswith("--- ") and text.endswith("\n") else "\n"
    return None if len(text) > _MAX_INLINE or _BREAK.search(text) else text


def _scalar(value: object) -> str:
    """The text of a scalar on one line; _PyYAMLNeededError for anything else."""
    kind = type(value)
    if kind is str:
        text = _STR.get(value)  # type: ignore[call-overload]
        if text is None and value not in _STR:
            text = _STR[value] = value if _plain_is_safe(value) else _by_pyyaml(value)  # type: ignore[index,arg-type]
    elif kind is Quoted:
        text = _QUOTED.get(value)  # type: ignore[call-overload]
        if text is None and value not in _QUOTED:
            safe = len(value) <= _MAX_INLINE and _DOUBLE_QUOTED.match(value)  # type: ignore[arg-type]
            text = _QUOTED[value] = f'"{value}"' if safe else _by_pyyaml(value)  # type: ignore[index,arg-type]
    elif kind is int:
        return str(value)
    elif kind is bool or value is None:
        return _SIMPLE[value]  # type: ignore[index]
    else:
        raise _PyYAMLNeededError
    if text is None:
        raise _PyYAMLNeededError
    if len(_STR) + len(_QUOTED) > 1 << 20:  # bounded for a long-lived process
        _STR.clear()
        _QUOTED.clear()
        _KEYS.clear()
    return text


def _key(key: object) -> str:
    """A key's text: a short str, which PyYAML writes as it would a value (`key: value`)."""
    if type(key) is not str:  # noqa: E721 (a Quoted key equals its str but is written apart)
        raise _PyYAMLNeededError
    text = _KEYS.get(key)
    if text is None:
        if not 0 < len(key.encode("utf-8")) <= _MAX_KEY or _BREAK.search(key):
            raise _PyYAMLNeededError  # PyYAML writes `? key`
        text = _KEYS[key] = _scalar(key)
    return text


def _mapping(d: dict, pad: str, lead: str, out: list[str]) -> None:
    """`d` (not empty) at indent `pad`; its first key after `lead` (a dash line goes on)."""
    if len(pad) > _MAX_INDENT:
        raise _PyYAMLNeededError
    inner = pad + "  "
    append = out.append
    keys, strs = _KEYS, _STR
    for k in sorted(d):
        v = d[k]
        kt = keys.get(k) if type(k) is str else None  # noqa: E721
        if kt is None:
            kt = _key(k)
        kind = type(v)
        if kind is str:
            text = strs.get(v)
            append(f"{lead}{kt}: {text if text is not None else _scalar(v)}\n")
        elif kind is dict:
            if v:
                append(f"{lead}{kt}:\n")
                _mapping(v, inner, inner, out)
            else:
                append(f"{lead}{kt}: {{}}\n")
        elif kind is list:
            if v:
                append(f"{lead}{kt}:\n")
                _sequence(v, pad, pad, out)
            else:
                append(f"{lead}{kt}: []\n")
        else:
            append(f"{lead}{kt}: {_scalar(v)}\n")
        lead = pad


def _sequence(items: list, pad: str, lead: str, out: list[str]) -> None:
    """`items` (not empty) at indent `pad`: every dash at `pad`, the first after `lead`."""
    if len(pad) > _MAX_INDENT:
        raise _PyYAMLNeededError
    inner = pad + "  "
    append = out.append
    strs = _STR
    for v in items:
        kind = type(v)
        if kind is str:
            text = strs.get(v)
            append(f"{lead}- {text if text is not None else _scalar(v)}\n")
        elif kind is dict:
            if v:
                append(f"{lead}- ")
                _mapping(v, inner, "", out)
            else:
                append(f"{lead}- {{}}\n")
        elif kind is list:
            if v:
                append(f"{lead}- ")
                _sequence(v, inner, "", out)
            else:
                append(f"{lead}- []\n")
        else:
            append(f"{lead}- {_scalar(v)}\n")
        lead = pad


def _fast(docs: list[object]) -> str:
    out: list[str] = []
    for doc in docs:
        kind = type(doc)
        if kind is dict and doc:
            out.append("---\n")
            _mapping(doc, "", "", out)  # type: ignore[arg-type]
        elif kind is list and doc:
            out.append("---\n")
            _sequence(doc, "", "", out)  # type: ignore[arg-type]
        else:
            raise _PyYAMLNeededError
    return "".join(out)


def dump_documents(header: Iterable[str], docs: Iterable[object], dumper: type | None = None) -> bytes:
    """Comment lines (given without `# `), then each document after `---`; no document, no `---`.

    With `dumper`, that PyYAML dumper writes every byte (the tests' reference)."""
    comments = "".join(f"# {line}\n" for line in header)
    docs = list(docs)
    body = None
    if dumper is None:
        if _DECIDED_BY[0] is not DUMPER:  # the texts PyYAML gave are its dumper's (the tests swap it)
            _STR.clear()
            _QUOTED.clear()
            _KEYS.clear()
            _DECIDED_BY[0] = DUMPER
        try:
            body = _fast(docs)
        except _LEFT_TO_PYYAML:
            dumper = DUMPER
    if body is None:
        body = yaml.dump_all(docs, Dumper=dumper, **OPTIONS)
    return (comments + body).encode("utf-8")

"""The pipeline from a policy folder to output files, shared by every command.

source text -> parse -> resolve and check -> model -> backends -> {path: bytes}.
Spans name files relative to the policy folder, so output does not depend on
where the compiler runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import analysis
from . import model as m
from . import syntax as s
from .backends import BackendError, render_all
from .diagnostics import Diagnostic, Diagnostics, Span
from .parser import parse_text
from .resolve import resolve

SUFFIX = ".npl"


@dataclass
class Result:
    """What a compile produced: the model and files, or the diagnostics that stopped it."""

    root: str
    sources: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    model: m.Model | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.model is not None and not any(d.severity == "error" for d in self.diagnostics)


def load_sources(root: Path, diags: Diagnostics) -> dict[str, str]:
    """Every `*.npl` under root, keyed by its path relative to root, in sorted order."""
    if not root.is_dir():
        diags.error("E006", f"policy folder `{root}` does not exist or is not a folder", None)
        return {}
    out: dict[str, str] = {}
    for path in sorted(root.rglob(f"*{SUFFIX}")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
            out[rel] = data.decode("utf-8")
        except UnicodeDecodeError as err:
            # kept with the bad bytes replaced, so the error can quote its line; nothing is compiled
            out[rel] = data.decode("utf-8", errors="replace")
            diags.error("E005", f"{rel} is not UTF-8 text (byte {err.start})", _byte_span(rel, data, err.start),
                        hint="save the file as UTF-8")
        except OSError as err:
            diags.error("E005", f"cannot read {rel}: {err.strerror}", None)
    if not out and not diags.has_errors:
        diags.error("E006", f"no `*{SUFFIX}` files in `{root}`", None)
    return out


def _byte_span(rel: str, data: bytes, offset: int) -> Span:
    """The line and column (in characters, as the parser counts) of byte `offset`, the first bad byte."""
    before = data[:offset].decode("utf-8")  # valid: decoding failed first at `offset`
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return Span(rel, line, column, line, column + 1)


def parse_all(sources: dict[str, str], diags: Diagnostics) -> list[s.File] | None:
    files = []
    for rel, text in sources.items():
        parsed = parse_text(rel, text, diags)
        if parsed is not None:
            files.append(parsed)
    return None if diags.has_errors else files


def build_model(sources: dict[str, str], diags: Diagnostics, today: dt.date | None = None) -> m.Model | None:
    files = parse_all(sources, diags)
    if files is None:
        return None
    return resolve(files, diags, today)


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Parsing builds millions of short-lived acyclic objects; the cycle collector's
    repeated full scans of them cost half the run time on large estates, for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_folder(root: Path, today: dt.date | None = None, render: bool = True) -> Result:
    """Parse, resolve, analyse and (with `render`) run the backends."""
    with _no_gc_pauses():
        return _compile_folder(root, today, render)


def _compile_folder(root: Path, today: dt.date | None, render: bool) -> Result:
    diags = Diagnostics()
    result = Result(str(root))
    result.sources = load_sources(root, diags)
    if not diags.has_errors:
        result.model = build_model(result.sources, diags, today)
    if result.model is not None:
        diags.extend(f.as_diagnostic() for f in analysis.redundancy(result.model).findings)
        diags.extend(f.as_diagnostic() for f in analysis.lockout(result.model))
    if render and result.model is not None and not diags.has_errors:
        try:
            result.files = render_all(result.model)
        except BackendError as err:
            diags.error("E007", str(err), None)
    result.diagnostics = diags.sorted()
    return result

"""Diagnostics: every problem the compiler finds, with its place in the source.

Errors are collected, not raised, so one run reports all of them; rendering
shows the file, line and column, the source line with a caret, and a hint.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]  # info: lint findings that ask for no change


@dataclass(frozen=True, order=True)
class Span:
    """A range of source text; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @property
    def location(self) -> str:
        """`file:line`, the form carried into compiled output."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span | None
    hint: str | None = None
    notes: tuple[tuple[str, Span | None], ...] = ()

    def sort_key(self) -> tuple:
        s = self.span
        return (s.file, s.line, s.column, self.code, self.message) if s else ("", 0, 0, self.code, self.message)

    def as_json(self) -> dict:
        out: dict = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.span:
            out.update(file=self.span.file, line=self.span.line, column=self.span.column,
                       end_line=self.span.end_line, end_column=self.span.end_column)
        if self.hint:
            out["hint"] = self.hint
        if self.notes:
            out["notes"] = [{"message": m, "location": str(s) if s else None} for m, s in self.notes]
        return out


@dataclass
class Diagnostics:
    """An ordered collection that remembers whether an error was seen."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None,
              notes: tuple[tuple[str, Span | None], ...] = ()) -> None:
        self.items.append(Diagnostic(code, "error", message, span, hint, notes))

    def warning(self, code: str, message: str, span: Span | None, hint: str | None = None,
                notes: tuple[tuple[str, Span | None], ...] = ()) -> None:
        self.items.append(Diagnostic(code, "warning", message, span, hint, notes))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.code, d.message, d.span, d.severity): d for d in self.items}
        return sorted(unique.values(), key=Diagnostic.sort_key)


class CompileError(Exception):
    """Raised when a phase ends with errors; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(f"{sum(d.severity == 'error' for d in diagnostics)} error(s)")
        self.diagnostics = diagnostics


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    pool = sorted(set(candidates))
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            match = [lowered[word.lower()]]
    return f"did you mean `{match[0]}`?" if match else None


QUOTE_WIDTH = 160  # characters of a source line quoted under a diagnostic, at most
QUOTE_BEFORE = 60  # of which before the caret, when the line is cut


def quote_window(line: str, column: int, width: int) -> tuple[str, int, int]:
    """The part of a source line worth quoting: at most QUOTE_WIDTH characters around the column,
    `…` where it was cut, tabs as one space; the caret's column and width in that part.

    Quoting whole lines made output grow with errors times line length: 10,000 errors on one
    150 kB line printed 2 GB. Only the quoted part is copied, so each quote costs the same.
    """
    length = len(line) - line.endswith("\r")
    if length <= QUOTE_WIDTH:
        return line[:length].expandtabs(1), column, width
    start = max(0, min(column - 1 - QUOTE_BEFORE, length - QUOTE_WIDTH))
    end = start + QUOTE_WIDTH
    head = "…" if start else ""
    tail = "…" if end < length else ""
    column = column - start + len(head)
    width = max(1, min(width, end - start + len(head) - column + 1))
    return f"{head}{line[start:end].expandtabs(1)}{tail}", column, width


def render_text(diags: Iterable[Diagnostic], sources: dict[str, str], root: str = "") -> str:
    """Human form: `file:line:col: error[CODE]: message`, the line, a caret, the hint.

    Spans name files relative to the policy folder; `root` is prefixed for display.
    """
    diags = list(diags)
    out: list[str] = []
    split: dict[str, list[str]] = {}  # each file split once, however many diagnostics it has
    for d in diags:
        where = f"{os.path.join(root, str(d.span))}: " if d.span else ""
        out.append(f"{where}{d.severity}[{d.code}]: {d.message}")
        if d.span and d.span.file in sources:
            if d.span.file not in split:  # as the parser counts lines: not on \f, \v, U+2028...
                split[d.span.file] = sources[d.span.file].split("\n")
            lines = split[d.span.file]
            if 0 < d.span.line <= len(lines):
                width = 1
                if d.span.end_line == d.span.line and d.span.end_column > d.span.column:
                    width = d.span.end_column - d.span.column
                text, column, width = quote_window(lines[d.span.line - 1], d.span.column, width)
                gutter = str(d.span.line)
                out.append(f" {gutter} | {text}")
                out.append(f" {' ' * len(gutter)} | {' ' * (column - 1)}^{'~' * (width - 1)}")
        for message, span in d.notes:
            out.append(f"  = note: {message}" + (f" ({span})" if span else ""))
        if d.hint:
            out.append(f"  = help: {d.hint}")
    errors = sum(d.severity == "error" for d in diags)
    warnings = sum(d.severity == "warning" for d in diags)
    infos = sum(d.severity == "info" for d in diags)
    if errors or warnings or infos:
        out.append(f"{errors} error(s), {warnings} warning(s)" + (f", {infos} info(s)" if infos else ""))
    return "\n".join(out) + ("\n" if out else "")


def render_json(diags: Iterable[Diagnostic], root: str = "") -> str:
    items = []
    for d in diags:
        item = d.as_json()
        if "file" in item:
            item["file"] = os.path.join(root, item["file"])
        items.append(item)
    return json.dumps({"diagnostics": items}, indent=2, sort_keys=True) + "\n"

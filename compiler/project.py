"""The pipeline from a policy folder to output files, shared by every command.

source text -> parse -> resolve and check -> model -> backends -> {path: bytes}.
Spans name files relative to the policy folder, so output does not depend on
where the compiler runs.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import analysis
from . import model as m
from . import syntax as s
from .backends import BackendError, OutputPathError, render_all
from .diagnostics import Diagnostic, Diagnostics, Span
from .output import file_kind
from .parser import gc_paused, parse_text
from .resolve import resolve

SUFFIX = ".npl"
MAX_FILE_BYTES = 16 * 2 ** 20  # E030: one policy file; the reference estate's largest is a few KiB
MAX_TOTAL_BYTES = 64 * 2 ** 20  # E031: all of them together, so memory and time stay bounded


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


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _policy_files(root: Path, diags: Diagnostics) -> list[tuple[str, str]]:
    """(path relative to root, real path to read) of every `*.npl` under root.

    Policy files are data, read from inside the policy folder only. A symbolic link is
    followed when its target is inside the folder; a `*.npl` link or a linked folder whose
    target is outside is an error (E011). Linked folders inside are not walked again: every
    file inside the folder is read where it is, and a link cycle cannot loop.
    """
    real_root = os.path.realpath(root)
    found: list[tuple[str, str]] = []
    stack = [("", real_root)]
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as err:
            diags.error("E005", f"cannot read the folder {prefix or '.'}: {err.strerror}", None)
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                is_dir = os.path.isdir(target)
                if not (is_dir or entry.name.endswith(SUFFIX)):
                    continue
                if not _inside(target, real_root):
                    diags.error("E011", f"{rel} is a symbolic link to `{target}`, outside the policy folder", None,
                                "policy files are read from inside the policy folder only; copy the file in")
                elif not is_dir:
                    found.append((rel, target))
            elif entry.is_dir(follow_symlinks=False):
                stack.append((rel + "/", entry.path))
            elif entry.name.endswith(SUFFIX):
                found.append((rel, entry.path))
    return sorted(found, key=lambda f: f[0].split("/"))


def _read_policy(rel: str, path: str, total: int, diags: Diagnostics) -> tuple[str, int] | None:
    """The text of one policy file and its size in bytes; a FIFO or device is reported, never opened
    for reading, and a file past the size limits (E030, E031; `total` bytes read so far) is never loaded."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            diags.error("E012", f"{rel} is not a regular file ({file_kind(st.st_mode)})", None,
                        "a policy file must be a plain file; remove it or rename it")
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb", closefd=True) as f:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):  # replaced since the check
                diags.error("E012", f"{rel} is not a regular file", None)
                return None
            if not _within_limits(opened.st_size, rel, total, diags):
                return None
            data = f.read(MAX_FILE_BYTES + 1)  # never more, even if it grew since
            if not _within_limits(len(data), rel, total, diags):  # it grew since
                return None
            try:
                return data.decode("utf-8"), len(data)
            except UnicodeDecodeError as err:
                # kept with the bad bytes replaced, so the error can quote its line; nothing is compiled
                diags.error("E005", f"{rel} is not UTF-8 text (byte {err.start})", _byte_span(rel, data, err.start),
                            hint="save the file as UTF-8")
                return data.decode("utf-8", errors="replace"), len(data)
    except OSError as err:
        diags.error("E005", f"cannot read {rel}: {err.strerror}", None)
    return None


def load_sources(root: Path, diags: Diagnostics) -> dict[str, str]:
    """Every `*.npl` under root, keyed by its path relative to root, in sorted order."""
    if not root.is_dir():
        diags.error("E006", f"policy folder `{root}` does not exist or is not a folder", None)
        return {}
    out: dict[str, str] = {}
    total = 0
    for rel, path in _policy_files(root, diags):
        read = _read_policy(rel, path, total, diags)
        if read is not None:
            out[rel], size = read
            total += size
    if not out and not diags.has_errors:
        diags.error("E006", f"no `*{SUFFIX}` files in `{root}`", None)
    return out


def _within_limits(size: int, rel: str, total: int, diags: Diagnostics) -> bool:
    """False (E030, E031) when the file would take the sources past the limits: checked
    before reading, so an enormous file is never loaded."""
    where = Span(rel, 1, 1, 1, 1)
    if size > MAX_FILE_BYTES:
        diags.error("E030", f"{rel} is {size:,} bytes, more than a policy file may be "
                    f"({MAX_FILE_BYTES // 2 ** 20} MiB)", where, "split it, or check that it is a policy file")
        return False
    if total + size > MAX_TOTAL_BYTES:
        diags.error("E031", f"{rel} takes the policy files past {MAX_TOTAL_BYTES // 2 ** 20} MiB in all", where,
                    "check that the folder holds only policy files")
        return False
    return True


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


def compile_folder(root: Path, today: dt.date | None = None, render: bool = True) -> Result:
    """Parse, resolve, analyse and (with `render`) run the backends."""
    with gc_paused():  # parsing and resolving build millions of short-lived acyclic objects
        return _compile_folder(root, today, render)


def _compile_folder(root: Path, today: dt.date | None, render: bool) -> Result:
    diags = Diagnostics()
    result = Result(str(root))
    result.sources = load_sources(root, diags)
    if not diags.has_errors:
        result.model = build_model(result.sources, diags, today)
    if result.model is not None:
        analysis.prepare(result.model)
        diags.extend(f.as_diagnostic() for f in analysis.redundancy(result.model).findings)
        diags.extend(f.as_diagnostic() for f in analysis.lockout(result.model))
    if render and result.model is not None and not diags.has_errors:
        try:
            result.files = render_all(result.model)
        except OutputPathError as err:
            diags.error(err.code, str(err), None, "a bug in a backend, or a name the resolver let through: "
                        "please report it with the policy that caused it")
        except BackendError as err:
            diags.error("E007", str(err), None)
    result.diagnostics = diags.sorted()
    return result

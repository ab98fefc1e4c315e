"""`netpolc fmt [PATHS...] [--check] [--diff]`: rewrite `.npl` files in the canonical layout.

The layout is described in `compiler/formatter.py` and docs/language.md. A file that does not
parse is left as it is and reported with its syntax error. Files are rewritten only when their
text changes, each atomically (a temporary file beside it, then a rename).

Exit codes: 0 done (or, with --check, nothing to change); 1 with --check when a file would
change, or when a file could not be read or does not parse; 2 for a path that is neither a
folder nor a `.npl` file.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import tempfile
from pathlib import Path

from ..diagnostics import Diagnostics, render_text
from ..formatter import FormatError, format_text
from ..parser import parse_text
from ..project import SUFFIX


def register(sub: argparse._SubParsersAction) -> None:
    help_ = "rewrite .npl files in the canonical layout (comments kept)"
    p = sub.add_parser("fmt", help=help_, description=help_ + "; see docs/language.md#formatting")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders (every *.npl under them) or .npl files (default: policies)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the files that would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.set_defaults(handler=run)


class _UsageError(Exception):
    pass


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
            root = path.resolve()
            for p in [p for p in found if not p.resolve().is_relative_to(root)]:
                # as the compiler reads (E011): a policy folder's files are the ones inside it
                sys.stderr.write(f"netpolc fmt: {p} links outside {arg}; left as it is\n")
                found.remove(p)
        elif path.is_file() and path.name.endswith(SUFFIX):
            found = [path]
        elif path.exists():
            raise _UsageError(f"`{arg}` is not a `{SUFFIX}` file")
        else:
            raise _UsageError(f"`{arg}` does not exist")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def write_atomic(path: Path, text: str) -> None:
    """Replace the file's content in one rename; its permissions are kept, a symlink stays one."""
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".fmt-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unified_diff(label: str, old: str, new: str) -> list[str]:
    lines = []
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{label}", f"b/{label}"):
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return lines


def _syntax_report(label: str, text: str) -> str:
    diags = Diagnostics()
    parse_text(label, text, diags)
    return render_text(diags.sorted(), {label: text})


def run(args: argparse.Namespace) -> int:
    try:
        files = _files(args.paths or ["policies"])
    except _UsageError as err:
        sys.stderr.write(f"netpolc fmt: {err}\n")
        return 2
    write = not (args.check or args.diff)
    changed: list[str] = []
    failed: list[str] = []
    for path in files:
        label = path.as_posix()
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            sys.stderr.write(f"netpolc fmt: {label} is not UTF-8 text (byte {err.start}); left as it is\n")
            failed.append(label)
            continue
        except OSError as err:
            sys.stderr.write(f"netpolc fmt: cannot read {label}: {err.strerror}\n")
            failed.append(label)
            continue
        try:
            new = format_text(text)
        except FormatError as err:
            if err.syntax:
                sys.stderr.write(_syntax_report(label, text))
                sys.stderr.write(f"netpolc fmt: {label} does not parse; left as it is\n")
            else:  # a bug in the formatter: refuse rather than change the meaning
                sys.stderr.write(f"netpolc fmt: {label}: {err}; left as it is (this is a bug in netpolc)\n")
            failed.append(label)
            continue
        if new == text:
            continue
        changed.append(label)
        if args.diff:
            sys.stdout.writelines(unified_diff(label, text, new))
        if args.check:
            sys.stderr.write(f"would reformat {label}\n")
        elif write:
            try:
                write_atomic(path, new)
            except OSError as err:
                sys.stderr.write(f"netpolc fmt: cannot write {label}: {err.strerror}\n")
                failed.append(label)
                changed.pop()
                continue
            sys.stderr.write(f"reformatted {label}\n")
    verb = "reformatted" if write else "would be reformatted"
    summary = f"netpolc fmt: {len(changed)} file(s) {verb}, {len(files) - len(changed) - len(failed)} unchanged"
    if failed:
        summary += f", {len(failed)} left as they are (errors above)"
    sys.stderr.write(summary + "\n")
    if failed or (args.check and changed):
        return 1
    return 0

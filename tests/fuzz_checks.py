"""The invariants every fuzzed input must keep, through the public entry points.

`check_folder` compiles a policy folder with `compiler.project.compile_folder`; `check_cli` runs
`netpolc compile` (in process through `compiler.cli.main`, or as `python -m compiler`). Both
measure time and memory per input, and raise AssertionError naming what broke:

- no exception (compile_folder) and exit code 0 or 1, never 3 = internal error (CLI);
- errors iff no output: files are produced exactly when no diagnostic is an error;
- every diagnostic names a file of the folder, and a line and column inside that file;
- the line the CLI quotes above the caret is that line of the file;
- bounded time (< LIMIT_SECONDS) and memory (peak RSS growth < LIMIT_MIB) per input.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from compiler import cli
from compiler.project import Result, compile_folder

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 25)
LIMIT_SECONDS = 5.0
LIMIT_MIB = 300


@dataclass
class Measure:
    seconds: float
    rss_growth_mib: float
    compiled: bool  # files were produced


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_folder(root: Path, files: dict[str, bytes | str]) -> None:
    """Replace the folder's content with `files`."""
    if root.exists():
        shutil.rmtree(root)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def file_lines(data: bytes | str) -> list[str]:
    """The file's lines as the compiler counts them (on `\\n`), undecodable bytes replaced."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return text.split("\n")


def check_diagnostics_located(result: Result, files: dict[str, bytes | str]) -> None:
    for d in result.diagnostics:
        assert d.span is not None, f"diagnostic without a place: {d}"
        assert d.span.file in files, f"diagnostic names a file not in the folder: {d}"
        lines = file_lines(files[d.span.file])
        assert 1 <= d.span.line <= len(lines), (d, len(lines))
        assert 1 <= d.span.column <= len(lines[d.span.line - 1]) + 1, d
        assert d.span.line <= d.span.end_line <= len(lines), d
        assert 1 <= d.span.end_column <= len(lines[d.span.end_line - 1]) + 1, d
        assert d.message and d.code[:1] in "EWRF", d


def check_folder(root: Path, files: dict[str, bytes | str]) -> Measure:
    """Write `files` to `root`, compile it, assert the invariants; the time and memory it took."""
    write_folder(root, files)
    rss = _rss_mib()
    start = time.perf_counter()
    result = compile_folder(root, today=TODAY)
    seconds = time.perf_counter() - start
    growth = _rss_mib() - rss
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert bool(errors) != bool(result.files), f"errors iff no output: {len(errors)} errors, {len(result.files)} files"
    assert bool(errors) != result.ok
    check_diagnostics_located(result, files)
    assert seconds < LIMIT_SECONDS, f"{seconds:.1f} s for one input"
    assert growth < LIMIT_MIB, f"peak RSS grew by {growth:.0f} MiB for one input"
    return Measure(seconds, growth, result.ok)


HEADER = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (error|warning|info)\[[A-Z]\d{3}\]: ")


def check_rendered(stderr: str, root: Path, files: dict[str, bytes | str]) -> None:
    """Each `file:line:col: error[CODE]` header is followed by that line of the file and a caret under col."""
    lines = stderr.split("\n")
    assert "Traceback" not in stderr, stderr[-2000:]
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not m:
            continue
        rel = os.path.relpath(m["file"], root)
        assert rel in files, line
        n, col = int(m["line"]), int(m["col"])
        want = file_lines(files[rel])[n - 1].rstrip("\r").expandtabs(1)
        gutter = f" {n} | "
        assert lines[i + 1].startswith(gutter), (line, lines[i + 1][:200])
        quote = lines[i + 1][len(gutter):]
        caret = lines[i + 2][len(gutter):]
        assert lines[i + 2].startswith(f" {' ' * len(str(n))} | ") and "^" in caret, (line, caret[:200])
        at = caret.index("^")
        if len(want) <= QUOTE_LIMIT:
            assert (quote, at) == (want, col - 1), (line, quote[:200], want[:200], at)
        else:  # a long line is quoted in part, `…` where cut, the caret still under the column
            assert len(quote) <= QUOTE_LIMIT + 2, len(quote)
            assert any(_quotes(want, quote[h:].removesuffix("…"), col - 1 - (at - h))
                       for h in (0, 1) if quote[:h] in ("", "…")), (line, quote, at)


QUOTE_LIMIT = 160  # characters of a long line the diagnostics quote, at most (not counting the `…`)


def _quotes(line: str, part: str, start: int) -> bool:
    return start >= 0 and line[start:start + len(part)] == part


def check_cli(root: Path, files: dict[str, bytes | str], subprocess_run: bool = False) -> Measure:
    """`netpolc compile root --out OUT`: exit 0 with OUT written, or 1 with OUT untouched; never 3."""
    write_folder(root, files)
    with tempfile.TemporaryDirectory(prefix="fuzz-out-") as tmp:
        out = Path(tmp) / "out"
        argv = ["compile", str(root), "--out", str(out), "--today", TODAY.isoformat()]
        rss = _rss_mib()
        start = time.perf_counter()
        if subprocess_run:
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            proc = subprocess.run([sys.executable, "-m", "compiler", *argv], capture_output=True, text=True,
                                  env=env, timeout=60, check=False)
            code, stderr = proc.returncode, proc.stderr
        else:
            err, sink = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
                code = cli.main(argv)
            stderr = err.getvalue()
        seconds = time.perf_counter() - start
        growth = _rss_mib() - rss
        assert code in (0, 1), f"exit {code}: {stderr[-2000:]}"
        assert (code == 0) == out.is_dir(), f"exit {code} but out/ {'written' if out.is_dir() else 'missing'}"
        if code == 0:
            assert any(out.iterdir()), "exit 0 and an empty out/"
        else:
            assert "error[" in stderr, f"exit 1 without an error: {stderr[-2000:]}"
        check_rendered(stderr, root, files)
    assert seconds < LIMIT_SECONDS * (3 if subprocess_run else 1), f"{seconds:.1f} s for one input"
    assert growth < LIMIT_MIB, f"peak RSS grew by {growth:.0f} MiB for one input"
    return Measure(seconds, growth, code == 0)


def check_program(root: Path, text: str) -> Measure:
    """A program the grammar derives: it parses, `fmt` is idempotent on it, and it compiles or fails located."""
    from compiler.diagnostics import Diagnostics
    from compiler.formatter import format_text
    from compiler.parser import parse_text

    diags = Diagnostics()
    assert parse_text("a.npl", text, diags) is not None, diags.sorted()[:1]
    once = format_text(text)
    assert format_text(once) == once, "fmt is not idempotent"
    assert parse_text("a.npl", once, Diagnostics()) is not None, "fmt's output does not parse"
    return check_folder(root, {"a.npl": text})

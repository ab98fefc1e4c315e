"""`netpolc`: compile a policy folder, or check that `out/` is up to date.

Exit codes: 0 ok, 1 policy errors or stale output, 2 usage errors,
3 an internal error (a bug: it is reported, never shown as a traceback).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from .diagnostics import render_json, render_text
from .output import diff_tree, write_tree
from .project import Result, compile_folder


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netpolc", description="Network and node policy compiler.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_ in (("compile", "compile POLICY_DIR into --out"),
                        ("check", "compile in memory; exit 1 with a diff when --out is stale")):
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("policy_dir", nargs="?", default="policies", metavar="POLICY_DIR",
                       help="folder of *.npl files (default: policies)")
        c.add_argument("--out", default="out", help="output folder (default: out)")
        c.add_argument("--format", choices=("text", "json"), default="text", help="diagnostics format")
        c.add_argument("--today", type=_date, default=None, metavar="YYYY-MM-DD",
                       help="the date expiry is judged against (default: today)")
    return p


def _report(result: Result, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(render_json(result.diagnostics, result.root))
        return
    text = render_text(result.diagnostics, result.sources, result.root)
    if text:
        sys.stderr.write(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug must not look like a policy error, nor show a traceback
        sys.stderr.write(f"netpolc: internal error: {type(err).__name__}: {err}\n"
                         "this is a bug in netpolc; please report it with the input that caused it\n")
        return 3


def _run(args: argparse.Namespace) -> int:
    root = Path(args.policy_dir)
    out = Path(args.out)
    result = compile_folder(root, args.today)
    _report(result, args.format)
    if not result.ok:
        return 1
    if args.command == "compile":
        changed = write_tree(out, result.files)
        if args.format == "text":
            print(f"netpolc: {len(result.files)} file(s) in {out}/" + ("" if changed else " (unchanged)"))
        return 0
    diff = diff_tree(out, result.files, label=out.name or "out")
    if diff:
        sys.stdout.writelines(diff)
        sys.stderr.write(f"netpolc: {out}/ is stale; run `netpolc compile {root} --out {out}`\n")
        return 1
    if args.format == "text":
        print(f"netpolc: {out}/ is up to date ({len(result.files)} file(s))")
    return 0

"""`netpolc lint [POLICY_DIR] [--format text|json] [--today YYYY-MM-DD] [--fail-on SEVERITY]`.

Compiles the policy without running the backends, then reports what `compiler.analysis.lint`
finds: redundant statements and peers, names never used, statements that match nothing, rules
from any address to sensitive ports, expired statements, overlapping networks. A policy that does
not compile gets the compiler's diagnostics and exit 1. Otherwise only lint findings are printed
(the compiler's own warnings are `check`'s), and the exit code is 1 when a finding is at least as
severe as `--fail-on` (default: error), else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from ..analysis import lint
from ..diagnostics import Diagnostics, render_json, render_text
from ..project import compile_folder, parse_all
from . import iso_date

RANK = {"info": 0, "warning": 1, "error": 2}


def register(sub: argparse._SubParsersAction) -> None:
    help_ = "report redundant, unused, unmatched, exposed and expired statements; exit 1 on an error finding"
    p = sub.add_parser("lint", help=help_, description=help_)
    p.add_argument("policy_dir", nargs="?", default="policies", metavar="POLICY_DIR",
                   help="folder of *.npl files (default: policies)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="findings format")
    p.add_argument("--today", type=iso_date, default=None, metavar="YYYY-MM-DD",
                   help="the date expiry is judged against (default: today)")
    p.add_argument("--fail-on", choices=("error", "warning", "info"), default="error",
                   help="the least severe finding that makes the exit code 1 (default: error)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.policy_dir)
    today = args.today or dt.date.today()
    result = compile_folder(root, today, render=False)
    if not result.ok or result.model is None:
        if args.format == "json":
            sys.stdout.write(render_json(result.diagnostics, result.root))
        else:
            sys.stderr.write(render_text(result.diagnostics, result.sources, result.root))
            sys.stderr.write("lint: the policy does not compile\n")
        return 1
    files = parse_all(result.sources, Diagnostics())
    report = lint.analyse(result.model, files or [], result.sources, today)
    findings = [f.as_diagnostic() for f in report.findings]
    failed = any(RANK[f.severity] >= RANK[args.fail_on] for f in report.findings)
    if args.format == "json":
        doc = json.loads(render_json(findings, result.root))
        allowed = json.loads(render_json([f.as_diagnostic() for f, _ in report.allowed], result.root))["diagnostics"]
        for item, (_, pragma) in zip(allowed, report.allowed, strict=True):
            item["allowed_by"] = os.path.join(result.root, str(pragma.span))
        doc["allowed"] = allowed
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return 1 if failed else 0
    sys.stdout.write(render_text(findings, result.sources, result.root))
    silenced = f"; {len(report.allowed)} finding(s) silenced by `# lint: allow`" if report.allowed else ""
    print(f"lint: {'failed' if failed else 'ok'}{silenced}")
    return 1 if failed else 0

"""`netpolc explain SOURCE DESTINATION PORT/PROTO`: is this connection allowed, and why.

The policy is compiled in memory (the Calico and ferm backends, the ones that police traffic);
`compiler.analysis.explain` decides on the model and finds the lines of those files that implement
the decision. They are shown under `--out` (default `out/`), and a note says so when the files
there differ from a fresh compile. Exit 0 with an answer (allowed or denied), 1 when the policy
does not compile or an end names nothing in it, 2 for a malformed question.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from ..analysis import explain as ex
from ..backends import BackendError, calico, ferm
from ..diagnostics import Span, render_text
from ..output import read_one
from ..project import compile_folder

USAGE = ("netpolc explain SOURCE DESTINATION PORT/PROTO [--policy POLICY_DIR] [--out OUT_DIR] "
         "[--format text|json]")
HELP = "why a connection is allowed or denied: the statements and the compiled lines that decide it"
EPILOG = """\
SOURCE and DESTINATION: `app NAME` (each of its clusters, or `app NAME@CLUSTER`), `host NAME`,
`role NAME` (each of its hosts), `network NAME`, `cluster NAME` (its pod ranges), `router NAME`,
a bare name (looked up in every table), an IP address or CIDR, `internet` or `any`.
PORT/PROTO: 9092/tcp, 53/udp, tcp (every port), icmp, 8/icmp, echo-request/icmp, 3/4/icmp (type 3
code 4), 128/icmpv6.

examples:
  netpolc explain app eventgate-main host kafka1001 9092/tcp
  netpolc explain 93.184.216.34 role bastion 22/tcp --format json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help=HELP, description=HELP, usage=USAGE, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", metavar="SOURCE DESTINATION PORT/PROTO", help=argparse.SUPPRESS)
    p.add_argument("--policy", default="policies", metavar="POLICY_DIR",
                   help="folder of *.npl files (default: policies)")
    p.add_argument("--out", default="out", metavar="OUT_DIR",
                   help="where the compiled files are, for the file:line shown (default: out)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="the answer's format")
    p.set_defaults(handler=run)


def _error(err: ex.ExplainError) -> int:
    sys.stderr.write(f"netpolc explain: error: {err.message}\n")
    if err.hint:
        sys.stderr.write(f"  = help: {err.hint}\n")
    if err.code == 2:
        sys.stderr.write(f"usage: {USAGE}\n")
    return err.code


def run(args: argparse.Namespace) -> int:
    try:
        source, destination, query = ex.parse_words(args.words)
    except ex.ExplainError as err:
        return _error(err)
    result = compile_folder(Path(args.policy), render=False)
    if not result.ok or result.model is None:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        sys.stderr.write(render_text(errors, result.sources, result.root))
        sys.stderr.write(f"netpolc explain: {args.policy} does not compile; fix the errors first\n")
        return 1
    try:
        result.files = {**calico.render(result.model), **ferm.render(result.model)}
    except BackendError as err:
        sys.stderr.write(f"netpolc explain: {err}\n")
        return 1
    try:
        report = ex.explain(result.model, result.files, source, destination, query)
    except ex.ExplainError as err:
        return _error(err)
    out_dir = args.out.rstrip("/") or "."
    stale = _stale(Path(out_dir), result.files, report)

    def text_of(span: Span) -> str:
        return ex.statement_text(result.sources, span)

    if args.format == "json":
        doc = report.as_json(text_of, out_dir)
        doc["stale"] = [f"{out_dir}/{f}" for f in stale]
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(report, text_of, out_dir, stale))
    for problem in report.problems:
        sys.stderr.write(f"netpolc explain: problem: {problem}\n")
    return 0


def _stale(out_dir: Path, files: dict[str, bytes], report: ex.Report) -> list[str]:
    """The files the answer points into that differ on disk from a fresh compile (or are missing)."""
    used = sorted({e.file for p in report.pairs for f in p.families for end in f.ends for e in end.emitted})
    out = []
    for rel in used:
        if read_one(out_dir, rel) != files[rel]:  # a symbolic link in out/ is not followed: it is stale
            out.append(rel)
    return out


# ------------------------------------------------------------------------------- text
def _families(fams: Iterable[int]) -> str:
    return " and ".join(f"IPv{f}" for f in sorted(fams))


def _tag(fams: list[int], every: list[int]) -> str:
    return "" if sorted(fams) == sorted(every) else f"[{_families(fams)}] "


def _pair_verdict(pair: ex.PairResult) -> str:
    real = [f for f in pair.families if f.verdict != ex.NA]
    na = [f for f in pair.families if f.verdict == ex.NA]
    if not real:
        return "no address family in common: " + "; ".join(f"IPv{f.family}: {f.reason}" for f in na)
    verdicts = {f.verdict for f in real}
    if len(verdicts) == 1:
        text = f"{real[0].verdict} ({_families(f.family for f in real)})"
    else:
        text = ", ".join(f"IPv{f.family} {f.verdict}" for f in real)
    for f in na:
        text += f"; IPv{f.family} n/a: {f.reason}"
    return text


def render(report: ex.Report, text_of, out_dir: str, stale: list[str]) -> str:
    lines: list[str] = []
    counts = {}
    for p in report.pairs:
        counts[p.verdict] = counts.get(p.verdict, 0) + 1
    head = f"{report.source.text} -> {report.destination.text} on {report.query}: {report.verdict}"
    if len(report.pairs) > 1:
        head += " (" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + f" of {len(report.pairs)} pairs)"
    lines.append(head)
    for pair in report.pairs:
        lines.append("")
        lines.append(f"{pair.source.label} -> {pair.destination.label}: {_pair_verdict(pair)}")
        for party in (pair.source, pair.destination):
            if party.note:
                lines.append(f"  ({party.note})")
        real = [f for f in pair.families if f.ends]
        every = [f.family for f in real]
        for i in range(len(real[0].ends) if real else 0):
            lines += _end(i, real, every, text_of, out_dir)
    if stale:
        lines.append("")
        lines.append(f"note: {', '.join(f'{out_dir}/{f}' for f in stale)} differ(s) from what the policy compiles "
                     f"to (stale or missing): the lines above are those of a fresh `netpolc compile --out {out_dir}`")
    return "\n".join(lines) + "\n"


def _end(i: int, families: list[ex.FamilyResult], every: list[int], text_of, out_dir: str) -> list[str]:
    per = {f.family: f.ends[i] for f in families}
    first = next(iter(per.values()))
    verdicts = {e.verdict for e in per.values()}
    verdict = first.verdict if len(verdicts) == 1 else ", ".join(f"IPv{f} {e.verdict}" for f, e in per.items())
    out = [f"  {first.end}: {first.subject}: {verdict}"]
    reasons: dict[str, list[int]] = {}
    for f, e in per.items():
        if e.verdict != ex.ALLOWED:
            reasons.setdefault(e.reason, []).append(f)
    for reason, fams in reasons.items():
        out.append(f"    {_tag(fams, every)}{reason}")
    statements: dict[tuple, tuple[ex.Statement, list[int]]] = {}
    emitted: dict[ex.Statement | None, dict[tuple, tuple[ex.Emitted, list[int]]]] = {}
    for f, e in per.items():
        for s in e.statements:
            statements.setdefault(s.key, (s, []))[1].append(f)
            for em in e.emitted:
                if em.location == s.location:
                    emitted.setdefault(s.key, {}).setdefault((em.file, em.line), (em, []))[1].append(f)
    for key, (s, fams) in statements.items():
        out.append(f"    {_tag(fams, every)}{_statement(s, text_of)}")
        for em, efams in (emitted.get(key) or {}).values():
            out.append(f"      {_tag(efams, every)}{out_dir}/{em.file}:{em.line}: {em.text}")
    nearest: dict[tuple, tuple[ex.Nearest, list[int]]] = {}
    hints: dict[str, list[int]] = {}
    for f, e in per.items():
        for n in e.nearest:
            nearest.setdefault((n.statement.key, n.why), (n, []))[1].append(f)
        if e.hint:
            hints.setdefault(e.hint, []).append(f)
    for n, fams in nearest.values():
        out.append(f"    {_tag(fams, every)}nearest: {_statement(n.statement, text_of)}")
        out.append(f"      {n.why}")
    for hint, fams in hints.items():
        out.append(f"    {_tag(fams, every)}hint: {hint}")
    return out


def _statement(s: ex.Statement, text_of) -> str:
    if s.builtin or s.span is None:
        where = f"{s.location}: " if s.location else ""
        return f"{where}{s.owner}: {s.summary}"
    return f"{s.location}: {s.owner}: {text_of(s.span)}"

"""`netpolc diff OLD NEW` / `netpolc diff --git REV [POLICY_DIR]`: what a change does, not how it reads.

Both sides are compiled in full. The report compares
- the connectivity facts (`compiler.analysis.connectivity`): pairs of ends gained, lost or whose
  ports changed, and the ends whose addresses changed;
- the BGP sessions of the peering graph (per family; the fabric's adjacencies too);
- the output files, added, removed or modified; `ferm/<host>.conf` names the host firewalls
  (Puppet) that change.
`--git REV` takes the policy folder as committed at REV (`git archive`, read only) against the
folder as it is on disk. Exit: 0, or 1 with `--exit-code` when anything changed; 1 when either side
does not compile (its diagnostics are shown); 2 for a usage error (a bad revision included).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import analysis
from .. import model as m
from ..analysis import connectivity as conn
from ..diagnostics import render_text
from ..project import Result, compile_folder
from . import diff_format, iso_date

SOURCE_REF = re.compile(rb"([\w./-]+\.npl):\d+")
FORMATS = {"text": diff_format.text, "markdown": diff_format.markdown, "json": diff_format.json_doc}


@dataclass(frozen=True, order=True)
class Session:
    """A BGP session of one family between `a` and `b`; family 0 is a fabric adjacency (ToR, spine,
    router: both families, at addresses the policy does not declare). `detail` is its addresses."""

    a: str
    b: str
    kind: str
    cluster: str
    family: int
    detail: str = field(compare=False, default="")

    def as_json(self) -> dict:
        return {"a": self.a, "b": self.b, "kind": self.kind, "cluster": self.cluster or None,
                "family": self.family or None, "detail": self.detail or None}


@dataclass
class Report:
    old: str  # labels of the two sides
    new: str
    old_model: m.Model
    new_model: m.Model
    flows: list[conn.Change]
    addresses: list[tuple[conn.End, tuple, tuple]]
    sessions: dict[str, list]  # added, removed: [Session]; changed: [(old, new)]
    files: dict[str, list[str]]  # added, removed, modified: paths
    relocated: list[str] = field(default_factory=list)  # modified files whose only change is `file.npl:N` references

    @property
    def firewalls(self) -> dict[str, list[str]]:
        """The hosts whose ferm file is added, removed or modified: what Puppet will change."""
        return {k: [p[len("ferm/"):-len(".conf")] for p in v if p.startswith("ferm/") and p.endswith(".conf")]
                for k, v in self.files.items()}

    @property
    def changed(self) -> bool:
        return bool(self.flows or self.addresses or any(self.sessions.values()) or any(self.files.values()))


def sessions(model: m.Model) -> dict[Session, Session]:
    graph = analysis.peering_graph(model)
    out = [Session(s.a, s.b, s.kind, s.cluster or "", s.family,
                   f"{s.a_ip} AS{s.a_asn} - {s.b_ip} AS{s.b_asn}" + (" multihop" if s.multihop else "")
                   + (" rr-client" if s.rr_client else "")) for s in graph.sessions]
    out += [Session(f.a, f.b, f.kind, "", 0) for f in graph.fabric]
    return {s: s for s in out}


def compare(old: Result, new: Result, old_label: str, new_label: str) -> Report:
    assert old.model is not None and new.model is not None
    a, b = analysis.connectivity_facts(old.model), analysis.connectivity_facts(new.model)
    before, after = sessions(old.model), sessions(new.model)
    changed = [(before[s], after[s]) for s in sorted(before.keys() & after.keys())
               if before[s].detail != after[s].detail]
    files = {"added": sorted(new.files.keys() - old.files.keys()),
             "removed": sorted(old.files.keys() - new.files.keys()),
             "modified": sorted(p for p in old.files.keys() & new.files.keys() if old.files[p] != new.files[p])}
    return Report(old_label, new_label, old.model, new.model, conn.compare(a, b), conn.compare_addresses(a, b),
                  {"added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys()),
                   "changed": changed}, files,
                  [p for p in files["modified"] if _unlocated(old.files[p]) == _unlocated(new.files[p])])


def _unlocated(data: bytes) -> bytes:
    """Output with its source references (`apps/eventing.npl:53`) blanked: what is left when lines move."""
    return SOURCE_REF.sub(rb"\1:N", data)


# ------------------------------------------------------------------ the command line


class UsageError(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    help_ = "compare two policy folders (or a git revision with the working tree) by what they allow"
    c = sub.add_parser("diff", help=help_, description=help_,
                       usage="netpolc diff [options] OLD NEW\n       netpolc diff [options] --git REV [POLICY_DIR]")
    c.add_argument("folders", nargs="*", metavar="FOLDER",
                   help="OLD and NEW policy folders; with --git, the policy folder (default: policies)")
    c.add_argument("--git", metavar="REV", help="compare POLICY_DIR as committed at REV with the working tree")
    c.add_argument("--format", choices=sorted(FORMATS), default="text",
                   help="text (terminal), markdown (a pull-request comment) or json (tools)")
    c.add_argument("--exit-code", action="store_true", help="exit 1 when anything changed")
    c.add_argument("--today", type=iso_date, default=None, metavar="YYYY-MM-DD",
                   help="the date expiry is judged against (default: today)")
    c.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="netpolc-diff-") as tmp:
            (old_root, old_label), (new_root, new_label) = _sides(args, Path(tmp))
            old = compile_folder(old_root, args.today)
            new = compile_folder(new_root, args.today)
    except UsageError as err:
        sys.stderr.write(f"netpolc diff: error: {err}\n")
        return 2
    failed = False
    for result, label in ((old, old_label), (new, new_label)):
        if not result.ok:
            failed = True
            sys.stderr.write(f"netpolc diff: {label} does not compile\n")
            sys.stderr.write(render_text(result.diagnostics, result.sources, label))
    if failed:
        return 1
    report = compare(old, new, old_label, new_label)
    sys.stdout.write(FORMATS[args.format](report))
    return 1 if args.exit_code and report.changed else 0


def _sides(args: argparse.Namespace, tmp: Path) -> tuple[tuple[Path, str], tuple[Path, str]]:
    if args.git is None:
        if len(args.folders) != 2:
            raise UsageError("give two policy folders, OLD and NEW, or --git REV [POLICY_DIR]")
        return (Path(args.folders[0]), args.folders[0]), (Path(args.folders[1]), args.folders[1])
    if len(args.folders) > 1:
        raise UsageError("with --git, give at most one policy folder")
    folder = args.folders[0] if args.folders else "policies"
    return git_folder(args.git, Path(folder), tmp), (Path(folder), folder)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True)


def git_folder(rev: str, folder: Path, tmp: Path) -> tuple[Path, str]:
    """`folder` as committed at `rev` of the repository that holds it, extracted under `tmp`."""
    where = folder if folder.is_dir() else Path.cwd()
    top = _git(["rev-parse", "--show-toplevel"], where)
    if top.returncode != 0:
        raise UsageError(f"`{folder}` is not in a git repository")
    root = Path(top.stdout.decode().strip())
    rel = os.path.relpath(folder.resolve(), root.resolve())
    if rel.startswith(".."):
        raise UsageError(f"`{folder}` is outside the git repository at {root}")
    if _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root).returncode != 0:
        raise UsageError(f"unknown revision `{rev}`")
    label = f"{rev}:{Path(rel).as_posix()}" if rel != "." else rev
    archive = _git(["archive", "--format=tar", rev, *(["--", rel] if rel != "." else [])], root)
    if archive.returncode != 0:
        if b"did not match" in archive.stderr:  # the folder does not exist at that revision
            return tmp / "missing", label
        raise UsageError(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp / "tree", filter="data")
    return tmp / "tree" / rel, label

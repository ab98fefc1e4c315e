"""The report of `netpolc diff` as text (a terminal), Markdown (a pull-request comment) or JSON (tools).

Text and Markdown group the changes: pairs of ends with the same change are one line, with their
destinations, then their sources, put together; a set of hosts that is exactly a role's reads as
that role; an app in several clusters reads `app X (C1, C2)`. JSON lists every change ungrouped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import model as m
from ..analysis.connectivity import Change, End, Ports

if TYPE_CHECKING:
    from .diff import Report

STATUSES = ("added", "removed", "changed")
MAX_NAMES = 12  # hosts named in one line before "and N more"
MAX_ROWS = 10  # Markdown rows shown before the rest folds into <details>
MAX_COMMENT = 65_536  # GitHub's limit on a comment's length
RELOCATED = "source line numbers only"  # a modified file whose only change is its `file.npl:N` references


@dataclass(frozen=True)
class Line:
    status: str
    sources: str
    destinations: str
    changes: str


def _families(fams: Iterable[int]) -> str:
    return ", ".join(f"IPv{f}" if f else "fabric" for f in fams)


def ports_text(sign: str, ports: Ports) -> list[str]:
    """`+ tcp 9094, udp 53 (IPv4, IPv6)`: the port matches that share their families, together."""
    by_families: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for p, fams in ports:
        by_families[fams].append(str(p))
    return [f"{sign} {', '.join(ps)} ({_families(fams)})" for fams, ps in sorted(by_families.items())]


def _hosts(names: list[str], model: m.Model) -> str:
    listed = ", ".join(names[:MAX_NAMES]) + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")
    if len(names) > 1 and set(names) == set(model.hosts):
        return f"all hosts ({len(names)})"
    role = next((r for r in model.roles.values() if not r.default and set(r.hosts) == set(names)), None)
    if role is not None:
        return f"role {role.name} hosts ({listed})"
    return f"host{'s' if len(names) > 1 else ''} {listed}"


def describe(ends: Iterable[End], model: m.Model) -> str:
    """A set of ends in few words: apps with their clusters, hosts as a role where they are one."""
    apps: dict[str, list[str]] = defaultdict(list)
    hosts: list[str] = []
    others: list[str] = []
    for e in sorted(ends):
        if e.kind == "app":
            apps[e.name].append(e.cluster)
        elif e.kind == "host":
            hosts.append(e.name)
        else:
            others.append(str(e))
    parts = [f"app {name} ({', '.join(clusters)})" for name, clusters in apps.items()]
    return ", ".join(parts + ([_hosts(hosts, model)] if hosts else []) + others)


def lines(report: Report) -> list[Line]:
    """The flow changes grouped: first the destinations of one source with one change, then the
    sources with the same destinations."""
    dsts: dict[tuple, set[End]] = defaultdict(set)
    for c in report.flows:
        dsts[(c.status, c.added, c.removed, c.source)].add(c.destination)
    srcs: dict[tuple, set[End]] = defaultdict(set)
    for (status, added, removed, src), ds in dsts.items():
        srcs[(status, added, removed, frozenset(ds))].add(src)
    out = []
    for (status, added, removed, ds), ss in srcs.items():
        model = report.old_model if status == "removed" else report.new_model
        out.append((STATUSES.index(status), sorted(ss), sorted(ds),
                    Line(status, describe(ss, model), describe(ds, model),
                         "; ".join(ports_text("+", added) + ports_text("-", removed)))))
    return [line for *_, line in sorted(out, key=lambda t: t[:3])]


def _sessions(items: list) -> list[str]:
    """BGP sessions, the families of one pair of speakers together."""
    fams: dict[tuple, list[int]] = defaultdict(list)
    for s in items:
        fams[(s.a, s.b, s.kind, s.cluster)].append(s.family)
    return [f"{a} - {b} ({kind}{', cluster ' + cluster if cluster else ''}): {_families(sorted(f))}"
            for (a, b, kind, cluster), f in sorted(fams.items())]


def _changed_sessions(pairs: list) -> list[str]:
    return [f"{o.a} - {o.b} ({o.kind}) {_families([o.family])}: {o.detail} -> {n.detail}" for o, n in pairs]


def _addresses(report: Report) -> list[tuple[str, str]]:
    out = []
    for end, gained, lost in report.addresses:
        text = "; ".join(x for x in (f"+ {', '.join(map(str, gained))}" if gained else "",
                                     f"- {', '.join(map(str, lost))}" if lost else "") if x)
        out.append((str(end), text))
    return out


def _firewalls(report: Report) -> str:
    """`modified: kafka1001, kafka1002; added: kafka1003`: the hosts Puppet will give a new ferm file."""
    fw = report.firewalls
    moved = {p[len("ferm/"):-len(".conf")] for p in report.relocated}
    groups = [("added", fw["added"]), ("removed", fw["removed"]),
              ("modified", [h for h in fw["modified"] if h not in moved]),
              (RELOCATED, [h for h in fw["modified"] if h in moved])]
    return "; ".join(f"{kind}: {', '.join(hosts)}" for kind, hosts in groups if hosts)


def _pairs(report: Report, status: str) -> int:
    return sum(1 for c in report.flows if c.status == status)


def _summary(report: Report) -> str:
    if not report.changed:
        return "no change in connectivity, BGP sessions or output files"
    parts = [f"flows: {_pairs(report, 'added')} pair(s) of ends added, {_pairs(report, 'removed')} removed, "
             f"{_pairs(report, 'changed')} changed"]
    if report.addresses:
        parts.append(f"{len(report.addresses)} end(s) with other addresses")
    parts.append(f"BGP sessions: {len(report.sessions['added'])} added, {len(report.sessions['removed'])} removed"
                 + (f", {len(report.sessions['changed'])} changed" if report.sessions["changed"] else ""))
    parts.append(f"output files: {len(report.files['added'])} added, {len(report.files['removed'])} removed, "
                 f"{len(report.files['modified'])} modified")
    return "; ".join(parts)


def _files(report: Report) -> list[tuple[str, str]]:
    """(path, change) sorted by path; a change is added, removed, modified or RELOCATED."""
    return sorted((p, RELOCATED if p in report.relocated else k) for k, paths in report.files.items() for p in paths)


# ------------------------------------------------------------------ text


def text(report: Report) -> str:
    out = [f"netpolc diff {report.old} -> {report.new}: {_summary(report)}"]

    def section(title: str, rows: list[str], count: str = "") -> None:
        if rows:
            out.append(f"\n{title} ({count or len(rows)}):")
            out.extend(f"  {r}" for r in rows)

    grouped = lines(report)
    for status in STATUSES:
        section(f"Flows {status}", [f"{li.sources} -> {li.destinations}: {li.changes}"
                                    for li in grouped if li.status == status],
                f"{_pairs(report, status)} pair(s) of ends")
    section("Addresses changed", [f"{end}: {change}" for end, change in _addresses(report)])
    for status in ("added", "removed"):
        section(f"BGP sessions {status}", _sessions(report.sessions[status]), str(len(report.sessions[status])))
    section("BGP sessions changed", _changed_sessions(report.sessions["changed"]))
    marks = {"added": "+", "removed": "-", "modified": "~", RELOCATED: "~"}
    section("Output files changed", [f"{marks[change]} {path}" + (f" ({change})" if change == RELOCATED else "")
                                     for path, change in _files(report)])
    if _firewalls(report):
        out.append(f"\nHost firewalls (Puppet): {_firewalls(report)}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ Markdown


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(header: list[str], rows: list[list[str]], what: str) -> list[str]:
    table = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    table += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if len(rows) <= MAX_ROWS:
        return [*table, ""]
    return [f"<details><summary>{len(rows)} {what}</summary>", "", *table, "", "</details>", ""]


def markdown(report: Report) -> str:
    summary = _summary(report)
    out = [f"### netpolc diff: `{report.old}` → `{report.new}`", "", f"**{summary[0].upper()}{summary[1:]}.**", ""]
    grouped = lines(report)
    for status in STATUSES:
        rows = [[li.sources, li.destinations, li.changes] for li in grouped if li.status == status]
        if rows:
            out += [f"#### Flows {status}", "", *_table(["from", "to", "ports"], rows, f"flows {status}")]
    if report.addresses:
        out += ["#### Addresses changed", "",
                *_table(["end", "addresses"], [list(r) for r in _addresses(report)], "ends")]
    for status, rows in (("added", _sessions(report.sessions["added"])),
                         ("removed", _sessions(report.sessions["removed"])),
                         ("changed", _changed_sessions(report.sessions["changed"]))):
        if rows:
            out += [f"#### BGP sessions {status}", "", *_table(["session"], [[r] for r in rows], f"sessions {status}")]
    files = [[f"`{path}`", change] for path, change in _files(report)]
    if files:
        out += ["#### Output files", "", *_table(["file", "change"], files, "files")]
    if _firewalls(report):
        out += [f"**Host firewalls (Puppet):** {_firewalls(report)}", ""]
    return _fit("\n".join(out).rstrip("\n") + "\n")


def _fit(doc: str) -> str:
    """A comment GitHub accepts (at most 65,536 characters): cut at a line, the fold closed."""
    if len(doc) <= MAX_COMMENT:
        return doc
    cut = doc[:doc.rindex("\n", 0, MAX_COMMENT - 500) + 1]
    if cut.count("<details>") > cut.count("</details>"):
        cut += "\n</details>\n"
    return cut + f"\n**The report is cut here ({len(doc):,} characters); run `netpolc diff` for all of it.**\n"


# ------------------------------------------------------------------ JSON


def _port(p: m.PortMatch, families: Iterable[int]) -> dict:
    return {"protocol": p.protocol, "first": p.first, "last": p.last, "icmp_type": p.icmp_type,
            "icmp_code": p.icmp_code, "text": str(p), "families": list(families)}


def _change(c: Change) -> dict:
    return {"source": c.source.as_json(), "destination": c.destination.as_json(), "status": c.status,
            "added": [_port(p, f) for p, f in c.added], "removed": [_port(p, f) for p, f in c.removed]}


def json_doc(report: Report) -> str:
    doc = {
        "old": report.old,
        "new": report.new,
        "changed": report.changed,
        "flows": [_change(c) for c in report.flows],
        "addresses": [{"end": end.as_json(), "added": [str(n) for n in gained], "removed": [str(n) for n in lost]}
                      for end, gained, lost in report.addresses],
        "bgp_sessions": {"added": [s.as_json() for s in report.sessions["added"]],
                         "removed": [s.as_json() for s in report.sessions["removed"]],
                         "changed": [{"old": o.as_json(), "new": n.as_json()} for o, n in report.sessions["changed"]]},
        "files": report.files,
        "files_line_numbers_only": report.relocated,
        "host_firewalls": report.firewalls,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"

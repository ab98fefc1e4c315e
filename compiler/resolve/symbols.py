"""The global name tables: one per kind of name, with duplicate detection.

Hosts, routers and switches share one table (they are all device names);
rows and racks are keyed `site/name` because sites reuse row letters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import syntax as s
from ..diagnostics import Diagnostics, Span, did_you_mean
from .values import check_name

KINDS = ("site", "row", "rack", "device", "cluster", "network", "service", "role", "app")


@dataclass
class Entry:
    kind: str  # for devices: host | router | switch
    key: str
    node: object
    span: Span
    site: str | None = None
    row: str | None = None
    rack: str | None = None


@dataclass
class Symbols:
    tables: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def declare(self, table: str, kind: str, key: str, name: s.Name, node: object, diags: Diagnostics,
                **where: str | None) -> Entry | None:
        """Add a declaration; a duplicate is an error that points at the first one."""
        check_name(name, kind, diags)
        existing = self.tables[table].get(key)
        if existing is not None:
            diags.error("E102", f"duplicate {kind} `{key}`", name.span,
                        notes=((f"`{key}` is already declared as a {existing.kind} here", existing.span),))
            return None
        entry = Entry(kind, key, node, name.span, **where)
        self.tables[table][key] = entry
        return entry

    def lookup(self, table: str, key: str, what: str, span: Span, diags: Diagnostics,
               kind: str | None = None) -> Entry | None:
        """Find a name, or report it unknown with the closest name and any other kind it is."""
        entry = self.tables[table].get(key)
        if entry is not None and (kind is None or entry.kind == kind):
            return entry
        if entry is not None:
            diags.error("E103", f"`{key}` is a {entry.kind}, not a {kind}", span,
                        f"write `{entry.kind} {key}`", notes=((f"{entry.kind} `{key}` is declared here", entry.span),))
            return None
        pool = [k for k, e in self.tables[table].items() if kind is None or e.kind == kind]
        hint = did_you_mean(key, pool)
        if hint is None:
            others = [f"{e.kind} {key}" for t, tab in self.tables.items() if t != table
                      for e in [tab.get(key)] if e is not None]
            if others:
                hint = f"there is a {others[0].split()[0]} of that name: write `{others[0]}`"
        diags.error("E103", f"unknown {what} `{key}`", span, hint)
        return None

    def owns(self, table: str, key: str, node: object) -> bool:
        """True when `node` is the declaration that holds `key` (not a rejected duplicate)."""
        entry = self.tables[table].get(key)
        return entry is not None and entry.node is node

    def names(self, table: str, kind: str | None = None) -> list[str]:
        return sorted(k for k, e in self.tables[table].items() if kind is None or e.kind == kind)

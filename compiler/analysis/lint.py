"""Lint: what compiles but is probably wrong, or will be soon.

Reads the model, and the syntax tree where the model has forgotten what was written (which
services a statement named). Every finding has a code, a severity, a place and a hint; the
codes (documented in `docs/language.md`, "Lint"):

- L001 warning: a statement is redundant: everything it allows is allowed by other statements.
- L002 warning: a peer of a statement is redundant (the statement's other peers are not).
- L010 warning: a role given to no host: its statements, and the peers naming it, match nothing.
- L011 warning: a peer (of a statement or a network) that stands for no address and no app.
- L012 warning: a statement that opens nothing: a role whose hosts all have `firewall none`, a
  default-app statement no app falls under (no app listens, or none runs in its `in cluster`).
- L013 info: a role's `connect` that nothing enforces: hosts filter what they receive, and a
  destination that is a set of addresses (or hosts without a firewall) opens no host firewall.
- L014 warning: a named network that holds no address.
- L020 info: a service never used (not by a statement, a `listen`, or a service that is used).
- L021 info: a network never used (not by a statement, nor by a network that is used).
- L031 warning: from any address (`any`, `internet`, a network holding half an address family;
  `compiler.exposure`) to a port that is exposed with care (the Kubernetes API server, SNMP...),
  unless the statement says `exposed "why"`. A sensitive port (SSH, etcd, databases...) or every
  port open to any address is no lint finding: it does not compile without `exposed` (E701).
- L040 error: a statement whose `expires` date is past (the compiler's W001; it stays in force).
- L041 info: a statement that expires within EXPIRY_NOTICE days.
- L050 warning: two named networks that list the same address or range, neither holding the
  other (a range copied into the wrong network looks like this).
- L051 info: other named networks that share addresses without one holding the other, one of
  them written with addresses, neither picking all its addresses out of the networks it overlaps.
- L090 warning: a `# lint: allow` comment that silences nothing or names an unknown code.

A finding is silenced by a comment `# lint: allow L031 -- why` on a line of the statement (or
declaration) it is about, or on the comment lines directly above it; the silenced findings are
kept apart (`Report.allowed`), and a comment that silences nothing is itself a finding (L090).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from netaddr import IPSet

from .. import exposure as ex
from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostic, Span

CODES: dict[str, tuple[str, str]] = {
    "L001": ("warning", "redundant statement"),
    "L002": ("warning", "redundant peer"),
    "L010": ("warning", "role given to no host"),
    "L011": ("warning", "peer that matches nothing"),
    "L012": ("warning", "statement that opens nothing"),
    "L013": ("info", "role `connect` that nothing enforces"),
    "L014": ("warning", "network that holds no address"),
    "L020": ("info", "service never used"),
    "L021": ("info", "network never used"),
    "L031": ("warning", "port open to any address"),
    "L040": ("error", "expired statement"),
    "L041": ("info", "statement that expires soon"),
    "L050": ("warning", "networks listing the same addresses"),
    "L051": ("info", "overlapping named networks"),
    "L090": ("warning", "`# lint: allow` that silences nothing"),
}

EXPIRY_NOTICE = 30  # days: L041

HOST_KINDS = ("host", "role", "all-hosts")
APP_KINDS = ("app", "all-apps")
PRAGMA = re.compile(r"#\s*lint:\s*allow\b(.*)")  # the whole comment: `# lint: allow L031, L001 -- why`
PRAGMA_CODE = re.compile(r"[A-Z]\d{3}")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    span: Span
    hint: str
    notes: tuple[tuple[str, Span | None], ...] = ()
    # the statements or declarations a `# lint: allow` comment may sit on (default: the span)
    scope: tuple[Span, ...] = ()

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def as_diagnostic(self) -> Diagnostic:
        return Diagnostic(self.code, self.severity, self.message, self.span, self.hint, self.notes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pragma:
    """A `# lint: allow CODE, ...` comment."""

    span: Span
    codes: tuple[str, ...]
    alone: bool  # the comment is alone on its line (so it may speak for the statement below)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)  # not silenced, sorted
    allowed: list[tuple[Finding, Pragma]] = field(default_factory=list)  # silenced, with the comment

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def analyse(model: m.Model, files: Iterable[s.File], sources: dict[str, str], today: dt.date) -> Report:
    files = list(files)
    lint = _Lint(model, files, today)
    found = list(lint.run())
    return _silence(found, sources)


# ---------------------------------------------------------------------------- ports

def _range(p: m.PortMatch) -> tuple[int, int]:
    return (1, 65535) if p.first is None else (p.first, p.last if p.last is not None else p.first)


def _covers_one(have: list[m.PortMatch], need: m.PortMatch) -> bool:
    if any(h.protocol == "any" for h in have):
        return True
    mine = [h for h in have if h.protocol == need.protocol]
    if need.protocol == "any":
        return False
    if need.protocol in ("icmp", "icmpv6"):
        if any(h.icmp_type is None for h in mine):
            return True
        if need.icmp_type is None:
            return False
        return any(h.icmp_type == need.icmp_type and h.icmp_code in (None, need.icmp_code) for h in mine)
    lo, hi = _range(need)
    for a, b in sorted(_range(h) for h in mine):
        if a > lo:
            return False
        if b >= lo:
            lo = b + 1
            if lo > hi:
                return True
    return lo > hi


def ports_cover(have: list[m.PortMatch], need: Iterable[m.PortMatch]) -> bool:
    """Does the union of `have` hold every packet of `need`?"""
    return all(_covers_one(have, p) for p in need)


def _ports_text(ports: Iterable[m.PortMatch]) -> str:
    return ", ".join(str(p) for p in ports)


# ---------------------------------------------------------------------------- what a flow does

@dataclass(frozen=True, eq=False)
class Side:
    """One end of a flow as enforcement sees it: the addresses it stands for, the pods (app,
    cluster) it selects, and, for host kinds, the hosts whose firewall it names."""

    addresses: IPSet
    pods: frozenset[tuple[str, str]]
    hosts: frozenset[str] | None

    @property
    def empty(self) -> bool:
        return not self.addresses and not self.pods and not self.hosts

    @functools.cached_property
    def spans(self) -> Spans:
        return Spans(self.addresses)


class Spans:
    """An address set as merged, sorted (version, first, last) ranges: subset tests by bisection
    (netaddr's `IPSet.issubset` hashes every prefix of the smaller set, and is slow)."""

    def __init__(self, ipset: IPSet):
        merged: list[tuple[int, int, int]] = []
        for c in sorted(ipset.iter_cidrs(), key=lambda c: (c.version, c.first)):
            if merged and merged[-1][0] == c.version and c.first <= merged[-1][2] + 1:
                merged[-1] = (c.version, merged[-1][1], max(merged[-1][2], c.last))
            else:
                merged.append((c.version, c.first, c.last))
        self.ranges = merged

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def holds(self, other: Spans) -> bool:
        for v, a, b in other.ranges:
            i = bisect.bisect_right(self.ranges, (v, a, float("inf"))) - 1
            if i < 0 or self.ranges[i][0] != v or self.ranges[i][2] < b:
                return False
        return True


@dataclass(frozen=True, eq=False)
class Effect:
    """What a flow makes some enforcement point admit. `kind`: `host` (a host firewall admits
    `remote` on `ports`), `pod-in` (the pods' ingress policy), `pod-out` (their egress policy);
    `local` the hosts or (app, cluster) pods that enforce it."""

    kind: str
    local: frozenset
    remote: Side
    ports: tuple[m.PortMatch, ...]
    rule: m.Rule


@dataclass
class _Unit:
    """One peer of a statement, with what its flows do."""

    rule: m.Rule
    peer: m.Endpoint
    effects: list[Effect]
    empty: bool  # the peer stands for nothing


class _Lint:
    def __init__(self, model: m.Model, files: list[s.File], today: dt.date):
        self.model = model
        self.files = files
        self.today = today
        self.pod_sets = {c.name: Spans(IPSet(c.pod_cidrs)) for c in model.clusters.values()}
        self.gateway_roles = {r.name for r in model.roles.values() if r.ssh_gateway}
        self.names: dict[tuple[str, str], Span] = {}  # (kind, name) -> the span of the name as declared
        for f in files:
            for d in f.declarations:
                if isinstance(d, s.Role | s.Network | s.Service | s.App):
                    self.names.setdefault((type(d).__name__.lower(), d.name.value), d.name.span)
        self.rules: list[m.Rule] = sorted(
            {id(r): r for r in (*(r for ro in model.roles.values() for r in ro.rules),
                                *(r for a in model.apps.values() for r in a.rules))}.values(),
            key=lambda r: r.span)
        self._sides: dict[tuple[int, tuple[str, ...]], Side] = {}
        self._flows: dict[int, list[m.Flow]] = defaultdict(list)
        for flow in model.flows:
            self._flows[id(flow.rule)].append(flow)
        self.units: dict[int, list[_Unit]] = {id(r): self._units(r) for r in self.rules}

    def run(self) -> Iterator[Finding]:
        yield from self.redundancy()
        yield from self.nothing_matched()
        yield from self.unused()
        yield from self.exposure()
        yield from self.expiry()
        yield from self.overlaps()

    # ------------------------------------------------------------------ sides and effects
    def owner(self, rule: m.Rule) -> str:
        block = self.model.roles.get(rule.owner) if rule.owner_kind == "role" else self.model.apps.get(rule.owner)
        return f"{'default ' if block is not None and block.default else ''}{rule.owner_kind} {rule.owner}"

    def side(self, ep: m.Endpoint, restrict: tuple[str, ...]) -> Side:
        key = (id(ep), restrict)
        if key not in self._sides:
            self._sides[key] = self._side(ep, restrict)
        return self._sides[key]

    def _side(self, ep: m.Endpoint, restrict: tuple[str, ...]) -> Side:
        if ep.kind in APP_KINDS:
            pods = frozenset((a, c) for a in ep.apps if a in self.model.apps
                             for c in self.model.apps[a].clusters if not restrict or c in restrict)
            return Side(IPSet(), pods, None)
        hosts = None
        if ep.kind == "host":
            hosts = frozenset((ep.name,))
        elif ep.kind == "role":
            role = self.model.roles.get(ep.name)
            hosts = frozenset(role.hosts if role else ())
        elif ep.kind == "all-hosts":
            hosts = frozenset(self.model.hosts)
        return Side(IPSet(ep.cidrs), frozenset(), hosts)

    def _units(self, rule: m.Rule) -> list[_Unit]:
        by_peer: dict[Span, _Unit] = {}
        for peer in rule.peers:
            by_peer.setdefault(peer.span, _Unit(rule, peer, [], not peer.cidrs and not peer.apps))
        for flow in self._flows[id(rule)]:
            ingress = rule.direction == "ingress"
            peer = flow.sources[0] if ingress else flow.destinations[0]
            unit = by_peer.get(peer.span)
            if unit is None:
                continue
            for src_ep in flow.sources:
                for dst_ep in flow.destinations:
                    src = self.side(src_ep, () if ingress else rule.clusters)
                    dst = self.side(dst_ep, rule.clusters if ingress else ())
                    unit.effects.extend(self._effects(src, dst, flow.ports, rule))
        return list(by_peer.values())

    def _effects(self, src: Side, dst: Side, ports: tuple[m.PortMatch, ...], rule: m.Rule) -> Iterator[Effect]:
        if src.empty or dst.empty:
            return
        if dst.hosts:
            guarded = frozenset(h for h in dst.hosts if self.model.hosts[h].firewall)
            if guarded:
                yield Effect("host", guarded, src, ports, rule)
        if dst.pods:
            yield Effect("pod-in", dst.pods, src, ports, rule)
        if src.pods:
            yield Effect("pod-out", src.pods, dst, ports, rule)

    def _remote_covers(self, have: Side, need: Side) -> bool:
        if need.addresses and not have.spans.holds(need.spans):
            return False
        return all(p in have.pods or (have.addresses and have.spans.holds(self.pod_sets[p[1]])) for p in need.pods)

    def _covered(self, need: Effect, candidates: Iterable[Effect]) -> list[Effect] | None:
        """The effects that together admit all of `need` (each holding its local end and remote
        side whole, their ports in union), or None."""
        used: list[Effect] = []
        for g in candidates:
            if g.kind != need.kind or not need.local <= g.local:
                continue
            if not any(ex.overlap(a, b) for a in need.ports for b in g.ports):
                continue
            if not self._remote_covers(g.remote, need.remote):
                continue
            used.append(g)
            if ports_cover([p for u in used for p in u.ports], need.ports):
                return used
        return None

    # ------------------------------------------------------------------ L001, L002
    @staticmethod
    def _outlives(coverer: m.Rule, rule: m.Rule) -> bool:
        """A statement can stand in for another only while the other is in force."""
        return coverer.expires is None or (rule.expires is not None and rule.expires <= coverer.expires)

    def redundancy(self) -> Iterator[Finding]:
        # effects by (kind, one element of their local end): a cover must hold every element
        by_local: dict[tuple[str, object], list[Effect]] = defaultdict(list)
        unit_of: dict[int, _Unit] = {}
        for r in self.rules:
            for u in self.units[id(r)]:
                for e in u.effects:
                    for x in e.local:
                        by_local[(e.kind, x)].append(e)
                    unit_of[id(e)] = u
        removed_rules: set[int] = set()
        removed_units: set[int] = set()

        def pool(need: Effect, rule: m.Rule, unit: _Unit | None) -> Iterator[Effect]:
            """What may cover `need` of `rule` (or, with `unit`, of that peer of it): the statements
            still kept that stay in force as long as it does, and for a peer the statement's other peers."""
            for g in min((by_local[(need.kind, x)] for x in need.local), key=len):
                if id(g.rule) in removed_rules or not self._outlives(g.rule, rule):
                    continue
                if g.rule is rule:
                    mine = unit_of[id(g)]
                    if unit is None or mine is unit or id(mine) in removed_units:
                        continue
                yield g

        def cover(effects: list[Effect], rule: m.Rule, unit: _Unit | None) -> list[Effect] | None:
            out: list[Effect] = []
            for e in effects:
                c = self._covered(e, pool(e, rule, unit))
                if c is None:
                    return None
                out.extend(c)
            return out

        # latest first, so of two equal statements the later one is reported, and what is reported
        # is covered by what stays
        for rule in reversed(self.rules):
            units = self.units[id(rule)]
            effects = [e for u in units for e in u.effects]
            if not effects or any(u.empty for u in units):
                continue
            by = cover(effects, rule, None)
            if by is not None:
                removed_rules.add(id(rule))
                yield self._redundant("L001", rule, None, by)
                continue
            if len(units) < 2:
                continue
            for u in reversed(units):
                if not u.effects:
                    continue
                by = cover(u.effects, rule, u)
                if by is not None:
                    removed_units.add(id(u))
                    yield self._redundant("L002", rule, u.peer, by)

    def _redundant(self, code: str, rule: m.Rule, peer: m.Endpoint | None, by: list[Effect]) -> Finding:
        coverers = sorted({id(e.rule): e.rule for e in by}.values(), key=lambda r: r.span)
        named = " and ".join(f"{r.span.location} ({self.owner(r)})" if r is not rule else "the statement's other peers"
                             for r in coverers)
        notes = tuple((f"covered by this statement of {self.owner(r)}" if r is not rule
                       else "covered by the statement's other peers", r.span) for r in coverers)
        if code == "L001":
            return Finding(code, f"redundant statement: all it allows is already allowed by {named}", rule.span,
                           "remove it, or narrow what covers it if that is too wide", notes, (rule.span,))
        assert peer is not None
        return Finding(code, f"redundant peer {peer.label}: all it adds is already allowed by {named}", peer.span,
                       f"remove {peer.label} from this statement", notes, (rule.span,))

    # ------------------------------------------------------------------ L010-L014
    def nothing_matched(self) -> Iterator[Finding]:
        referenced: dict[str, list[Span]] = defaultdict(list)
        for r in self.rules:
            for p in r.peers:
                if p.kind == "role":
                    referenced[p.name].append(p.span)
        for n in self.model.networks.values():
            for p in (*n.members, *n.excluded):
                if p.kind == "role":
                    referenced[p.name].append(p.span)
        empty_roles = set()
        for role in self.model.roles.values():
            if role.default or role.hosts:
                continue
            empty_roles.add(role.name)
            span = self.names.get(("role", role.name), role.span)
            what = f": its {len(role.rules)} statement(s) open nothing" if role.rules else ""
            notes = tuple(("named here, where it matches nothing", sp) for sp in sorted(referenced[role.name]))
            yield Finding("L010", f"role `{role.name}` is given to no host{what}", span,
                          f"give it to hosts (`host NAME ADDRESS roles {role.name}`), or remove it", notes, (span,))
        for rule in self.rules:
            for u in self.units[id(rule)]:
                if u.empty:
                    yield Finding("L011", f"{u.peer.label} matches nothing: {self._why_empty(u.peer)}", u.peer.span,
                                  "name something that has addresses, or remove it", (), (rule.span,))
        for net in self.model.networks.values():
            for p in net.members:
                if not p.cidrs:
                    yield Finding("L011", f"{p.label} adds nothing to network `{net.name}`: {self._why_empty(p)}",
                                  p.span, "name something that has addresses, or remove it", (), (net.span,))
            if not net.cidrs:
                span = self.names.get(("network", net.name), net.span)
                yield Finding("L014", f"network `{net.name}` holds no address", span,
                              "its members have no address, or its `except` takes them all", (), (net.span,))
        for rule in self.rules:
            if rule.owner_kind == "role" and rule.owner in empty_roles:
                continue
            units = self.units[id(rule)]
            if any(u.effects for u in units) or (units and all(u.empty for u in units)):
                continue
            yield self._opens_nothing(rule)

    def _why_empty(self, ep: m.Endpoint) -> str:
        return {"role": "no host has the role", "network": "the network holds no address",
                "rack": "the rack has no host"}.get(ep.kind, "it has no address")

    def _opens_nothing(self, rule: m.Rule) -> Finding:
        scope = (rule.span,)
        if rule.owner_kind == "role" and rule.direction == "egress":
            why = "; ".join(f"the hosts of {p.label} have no firewall" if p.kind in HOST_KINDS
                            else f"{p.label} is a set of addresses, which opens no host firewall" for p in rule.peers)
            return Finding("L013", f"nothing enforces this `connect`: hosts filter only what they receive, and {why}",
                           rule.span, "to open the destination hosts' firewalls, name them (`connect ... to role R`); "
                           "otherwise this is documentation and could be a comment", (), scope)
        if rule.owner_kind == "role":
            return Finding("L012", f"this statement opens nothing: the hosts of {self.owner(rule)} have no firewall "
                           "(`firewall none`)", rule.span, "remove it, or the `firewall none`", (), scope)
        if rule.ports is None:
            why = "no app listens" + (f" in cluster {', '.join(rule.clusters)}" if rule.clusters else "")
        elif rule.clusters:
            why = f"no app runs in cluster {', '.join(rule.clusters)}"
        else:
            why = "no app falls under it"
        return Finding("L012", f"this statement opens nothing: {why}", rule.span,
                       "give it ports, name a cluster that runs apps, or remove it", (), scope)

    # ------------------------------------------------------------------ L020, L021
    def unused(self) -> Iterator[Finding]:
        # services: only the syntax tree still says which service a port list named
        refs: dict[str, set[str]] = defaultdict(set)  # service -> services it includes
        roots: set[str] = set()

        def named(items: Iterable | None) -> set[str]:
            return {i.name.value for i in items or () if isinstance(i, s.ServiceRef)}

        for f in self.files:
            for d in f.declarations:
                if isinstance(d, s.Service):
                    refs[d.name.value] |= named(d.ports)
                elif isinstance(d, s.Role | s.App):
                    for r in d.rules:
                        roots |= named(r.ports)
                    for st in getattr(d, "settings", ()):
                        if st.keyword == "listen" and st.values:
                            roots |= named(st.values[0])
        used = _closure(roots, refs)
        for svc in self.model.services.values():
            if svc.name not in used:
                users = sorted(k for k, v in refs.items() if svc.name in v)
                span = self.names.get(("service", svc.name), svc.span)
                notes = (((f"named only by service(s) {', '.join(users)}, which are not used", None),)
                         if users else ())
                yield Finding("L020", f"service `{svc.name}` is never used", span,
                              "remove it, or name it in a statement", notes, (svc.span,))
        nets: dict[str, set[str]] = {n.name: {p.name for p in (*n.members, *n.excluded) if p.kind == "network"}
                                     for n in self.model.networks.values()}
        net_roots = {p.name for r in self.rules for p in r.peers if p.kind == "network"}
        used = _closure(net_roots, nets)
        for net in self.model.networks.values():
            if net.name not in used:
                users = sorted(k for k, v in nets.items() if net.name in v)
                span = self.names.get(("network", net.name), net.span)
                notes = (((f"named only by network(s) {', '.join(users)}, which are not used", None),)
                         if users else ())
                yield Finding("L021", f"network `{net.name}` is never used", span,
                              "remove it, or name it in a statement", notes, (net.span,))

    # ------------------------------------------------------------------ L031
    def exposure(self) -> Iterator[Finding]:
        """Ports exposed with care open to any address. The sensitive ones need `exposed` to
        compile (E701), and `exposed` says the statement is meant, so neither is reported here."""
        for rule in self.rules:
            if rule.direction != "ingress" or rule.exposed is not None:
                continue
            for u in self.units[id(rule)]:
                if not ex.anywhere(u.peer):
                    continue
                admitted = [e for e in u.effects if e.kind in ("host", "pod-in")]
                if not admitted:
                    continue
                hits = ex.sensitive_hits(p for e in admitted for p in e.ports)
                if not hits["warning"]:
                    continue
                who = f"`{u.peer.label}`"
                if u.peer.kind not in ("any", "internet"):
                    who += " (half an address family or more)"
                yield Finding("L031", f"{who} may reach {self.owner(rule)} on "
                              f"{', '.join(f'{w} ({p})' for w, p in hits['warning'])}", u.peer.span,
                              "fine when the service is meant for the world and authenticates its clients: say so "
                              "with `exposed \"why\"`; otherwise narrow the sources", (), (rule.span,))

    # ------------------------------------------------------------------ L040, L041
    def expiry(self) -> Iterator[Finding]:
        for rule in self.rules:
            if rule.expires is None:
                continue
            days = (rule.expires - self.today).days
            if days < 0:
                yield Finding("L040", f"this statement expired on {rule.expires} ({-days} day(s) ago) and is still "
                              "in force", rule.span, "remove it, or move its expiry date", (), (rule.span,))
            elif days < EXPIRY_NOTICE:
                when = "today, its last day in force" if days == 0 else f"in {days} day(s)"
                yield Finding("L041", f"this statement expires on {rule.expires}, {when}", rule.span,
                              "plan its removal, or move its expiry date", (), (rule.span,))

    # ------------------------------------------------------------------ L050, L051
    def overlaps(self) -> Iterator[Finding]:
        """Named networks that share addresses without one holding the other. A network with the
        same addresses as an earlier one is compared once, as the earlier one; two networks built
        only from topology names overlap by construction and are not reported."""
        firsts: dict[frozenset, m.Network] = {}
        for n in sorted(self.model.networks.values(), key=lambda n: n.span):
            if n.cidrs:
                firsts.setdefault(frozenset(n.cidrs), n)
        nets = sorted(firsts.values(), key=lambda n: n.span)
        sets = {n.name: IPSet(n.cidrs) for n in nets}
        written = {n.name: {c for p in n.members if p.kind == "cidr" for c in p.cidrs} for n in nets}
        partial: dict[str, list[str]] = defaultdict(list)
        pairs = []
        for a, b in _touching(nets):
            shared = sets[a.name] & sets[b.name]
            if shared != sets[a.name] and shared != sets[b.name]:
                partial[a.name].append(b.name)
                partial[b.name].append(a.name)
                pairs.append((a, b, shared))

        def picked(n: m.Network) -> bool:
            """Its addresses all come out of the networks it partly overlaps, as VIPs out of VIP ranges."""
            return sets[n.name].issubset(IPSet(c for o in partial[n.name] for c in sets[o].iter_cidrs()))

        for a, b, shared in pairs:
            span = self.names.get(("network", b.name), b.span)
            scope = (a.span, b.span)
            note = ((f"network `{a.name}` is here", a.span),)
            same = m.family_sorted(written[a.name] & written[b.name])
            if same:
                yield Finding("L050", f"networks `{a.name}` and `{b.name}` both list {_cidrs_text(same)}, but neither "
                              "holds the other", span, "a range copied into the wrong network? remove it from the one "
                              "it does not belong to", note, scope)
                continue
            if not (written[a.name] or written[b.name]) or picked(a) or picked(b):
                continue
            yield Finding("L051", f"networks `{a.name}` and `{b.name}` share {_cidrs_text(shared.iter_cidrs())} but "
                          "neither holds the other", span, "check their prefixes for a typo if one is meant to be part "
                          "of the other; an overlap on purpose can say so with `# lint: allow L051`", note, scope)


def _touching(nets: list[m.Network]) -> list[tuple[m.Network, m.Network]]:
    """The pairs of networks (in the list's order) with a prefix in common: prefixes nest or are
    apart, so one sweep over them sorted by start, keeping the open ones, finds every pair."""
    order = {n.name: i for i, n in enumerate(nets)}
    items = sorted(((c.version, c.first, -c.size, c.last, n) for n in nets for c in n.cidrs),
                   key=lambda x: x[:3])
    pairs: set[tuple[int, int]] = set()
    open_: list[tuple[int, int, m.Network]] = []  # (version, last, network), each inside the one before
    for version, first, _, last, net in items:
        while open_ and (open_[-1][0] != version or open_[-1][1] < first):
            open_.pop()
        for _, _, other in open_:
            if other is not net:
                i, j = sorted((order[other.name], order[net.name]))
                pairs.add((i, j))
        open_.append((version, last, net))
    return [(nets[i], nets[j]) for i, j in sorted(pairs)]


def _cidrs_text(cidrs: Iterable, most: int = 3) -> str:
    cidrs = list(cidrs)
    return ", ".join(str(c) for c in cidrs[:most]) + (f" and {len(cidrs) - most} more" if len(cidrs) > most else "")


def _closure(roots: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(edges.get(n, ()))
    return seen


# ---------------------------------------------------------------------------- `# lint: allow`

def _comment_start(line: str) -> int | None:
    """The column (0-based) of the `#` that starts the line's comment, outside strings."""
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return i
        i += 1
    return None


def pragmas(sources: dict[str, str]) -> dict[tuple[str, int], Pragma]:
    out: dict[tuple[str, int], Pragma] = {}
    for path, text in sources.items():
        for n, line in enumerate(text.split("\n"), start=1):
            at = _comment_start(line)
            if at is None:
                continue
            match = PRAGMA.match(line, at)
            if match is None:
                continue
            codes = tuple(PRAGMA_CODE.findall(match.group(1).split("--")[0]))
            col = at + 1
            out[(path, n)] = Pragma(Span(path, n, col, n, len(line.rstrip()) + 1), codes, not line[:at].strip())
    return out


def _silence(found: list[Finding], sources: dict[str, str]) -> Report:
    marks = pragmas(sources)
    lines = {path: text.split("\n") for path, text in sources.items()}
    used: set[tuple[tuple[str, int], str]] = set()
    report = Report()
    for f in sorted(found, key=lambda f: (f.span, f.code, f.message)):
        hit = None
        for scope in f.scope or (f.span,):
            for key in _pragma_lines(scope, marks, lines.get(scope.file, [])):
                if f.code in marks[key].codes:
                    hit = key
                    break
            if hit:
                break
        if hit is None:
            report.findings.append(f)
        else:
            used.add((hit, f.code))
            report.allowed.append((f, marks[hit]))
    for key, p in sorted(marks.items()):
        unknown = [c for c in p.codes if c not in CODES or c == "L090"]
        idle = [c for c in p.codes if c in CODES and c != "L090" and (key, c) not in used]
        if not p.codes:
            report.findings.append(Finding("L090", "`lint: allow` names no code", p.span,
                                           "write the codes it silences: `# lint: allow L031 -- reason`"))
        for c in unknown:
            report.findings.append(Finding("L090", f"`lint: allow` names `{c}`, which is not a lint code", p.span,
                                           f"lint codes: {', '.join(k for k in CODES if k != 'L090')}"))
        for c in idle:
            report.findings.append(Finding("L090", f"`lint: allow {c}` silences nothing here", p.span,
                                           "remove it: the finding it was for is gone, or it is on the wrong line"))
    report.findings.sort(key=lambda f: (f.span, f.code, f.message))
    return report


def _pragma_lines(scope: Span, marks: dict[tuple[str, int], Pragma], lines: list[str]) -> Iterator[tuple[str, int]]:
    """The comments that speak for a statement: on its lines, and alone on the lines just above it."""
    for n in range(scope.line, scope.end_line + 1):
        if (scope.file, n) in marks:
            yield (scope.file, n)
    n = scope.line - 1
    while n >= 1 and n <= len(lines) and lines[n - 1].strip().startswith("#"):
        if (scope.file, n) in marks:
            yield (scope.file, n)
        n -= 1

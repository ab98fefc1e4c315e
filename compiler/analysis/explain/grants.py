"""What each policed end lets through, from the model: the statements (a DSL rule, or a built-in of
a backend) and their grants, one per far peer. The Calico egress or ingress of an app's pods in one
cluster (flows whose end is the app or every app; an app of the cluster as a peer by label, anything
else by address; the default deny's built-in ICMP), and a host firewall as `analysis.host_firewalls()`
says, with the ICMP every ferm file accepts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from netaddr import IPNetwork, IPSet

from ... import model as m
from ...diagnostics import Span
from .. import host_firewalls
from ..hostfw import Admit, summary
from .cover import FULL, cover, ipset
from .ends import Party
from .question import Query

# What the backends add on their own; explain must know them to judge, the files confirm them.
CALICO_BUILTIN = (("icmp", 3, 4, "built in: ICMP fragmentation needed (path MTU discovery)"),
                  ("icmpv6", 2, None, "built in: ICMPv6 packet too big (path MTU discovery)"),
                  ("icmpv6", 133, None, "built in: ICMPv6 router solicitation"),
                  ("icmpv6", 134, None, "built in: ICMPv6 router advertisement"),
                  ("icmpv6", 135, None, "built in: ICMPv6 neighbour solicitation"),
                  ("icmpv6", 136, None, "built in: ICMPv6 neighbour advertisement"))
FERM_ICMPV6 = (1, 2, 3, 4, 128, 133, 134, 135, 136, 137)


@dataclass(frozen=True)
class Statement:
    """A DSL statement (or a built-in of a backend) that decides an end."""

    location: str | None  # file:line; None for the fixed lines of every ferm file
    span: Span | None
    owner: str
    summary: str
    description: str | None = None
    builtin: bool = False

    @property
    def key(self) -> tuple:
        return (self.location or "", self.owner, self.summary)

    def as_json(self, text_of: Callable[[Span], str] | None = None) -> dict:
        out = {"location": self.location, "owner": self.owner, "summary": self.summary,
               "description": self.description, "builtin": self.builtin}
        if text_of is not None and self.span is not None and not self.builtin:
            out["text"] = text_of(self.span)
        return out


def _owner(model: m.Model, rule: m.Rule) -> str:
    table = model.roles if rule.owner_kind == "role" else model.apps
    owner = table.get(rule.owner)
    return f"{'default ' if owner is not None and owner.default else ''}{rule.owner_kind} {rule.owner}"


def rule_statement(model: m.Model, rule: m.Rule) -> Statement:
    return Statement(rule.span.location, rule.span, _owner(model, rule), summary(rule), rule.description)


@dataclass(frozen=True)
class Grant:
    """One peer of one statement at one end: what it lets through, and from or to whom."""

    statement: Statement
    ports: tuple[m.PortMatch, ...]
    peer: str  # the far peer as written
    anyone: bool = False
    label: tuple[str, str] | None = None  # (app, cluster) selected by label
    nets: tuple[IPNetwork, ...] = ()
    inactive: str | None = None  # why it does not hold here (`in cluster`)

    @functools.cached_property
    def _covers(self) -> dict[tuple[str, str, int], str]:
        return {}

    def cover(self, far: Party, family: int) -> str:
        """Whether the peer holds all, part or none of the far party's addresses of the family."""
        key = (far.kind, far.label, family)
        if key not in self._covers:
            self._covers[key] = self._cover(far, family)
        return self._covers[key]

    def _cover(self, far: Party, family: int) -> str:
        if self.anyone:
            return FULL
        if self.label is not None and far.kind == "app" and (far.name, far.cluster) == self.label:
            return FULL
        return cover(far.of(family), self.nets_of(family))

    def port_ok(self, query: Query, family: int) -> bool:
        return any(query.matched_by(p, family) for p in self.ports)

    def nets_of(self, family: int) -> IPSet:
        return ipset(self.nets, family)


def _app_peer_grants(model: m.Model, statement: Statement, ports: tuple[m.PortMatch, ...], peer: m.Endpoint,
                     cluster: str, inactive: str | None, only: tuple[str, ...] = ()) -> list[Grant]:
    """A peer at a Calico end of `cluster`: an app of the cluster by label, its pods elsewhere (and
    any other peer) by address, `any` as anyone. `only`: an app's pods in these clusters alone (the
    statement's `in cluster` when the peer is its owner)."""
    if peer.kind == "any":
        return [Grant(statement, ports, "any", anyone=True, inactive=inactive)]
    if peer.kind == "all-apps":
        return [g for name in peer.apps
                for g in _app_peer_grants(model, statement, ports, m.Endpoint("app", name, (), (name,), peer.span),
                                          cluster, inactive, only)]
    if peer.kind == "app":
        app = model.apps.get(peer.name)
        if app is None:
            return []
        label = (app.name, cluster) if cluster in app.clusters and (not only or cluster in only) else None
        nets = tuple(n for c in app.clusters if c != cluster and (not only or c in only)
                     for n in model.clusters[c].pod_cidrs)
        return [Grant(statement, ports, peer.label, label=label, nets=nets, inactive=inactive)]
    return [Grant(statement, ports, peer.label, nets=peer.cidrs, inactive=inactive)]


def calico_grants(model: m.Model, app: str, cluster: str, direction: str) -> list[Grant]:
    """What the Calico policies of `app`'s pods in `cluster` allow in one direction, in source order;
    statements restricted to other clusters are kept, marked inactive, for the nearest statements."""
    out: list[Grant] = []
    for flow in model.flows:
        local, far = (flow.sources, flow.destinations) if direction == "egress" else (flow.destinations, flow.sources)
        if not any((e.kind == "app" and e.name == app) or e.kind == "all-apps" for e in local):
            continue
        # `in cluster` limits the statement's owner: its own end, and the owner seen from the other end
        owner_is_local = flow.rule.direction == direction
        inactive = None if not owner_is_local or flow.rule.applies_in(cluster) else \
            f"holds only in cluster {', '.join(flow.rule.clusters)} (`in cluster`)"
        statement = rule_statement(model, flow.rule)
        for peer in far:
            out += _app_peer_grants(model, statement, flow.ports, peer, cluster, inactive,
                                    () if owner_is_local else flow.rule.clusters)
    c = model.clusters[cluster]
    for proto, t, code, text in CALICO_BUILTIN:
        st = Statement(c.span.location, c.span, f"cluster {cluster}", text, builtin=True)
        out.append(Grant(st, (m.PortMatch(proto, icmp_type=t, icmp_code=code),), "any", anyone=True))
    return out


def ferm_grants(model: m.Model, host: str) -> list[Grant]:
    """What the host firewall admits: `analysis.host_firewalls()`, then the ICMP every ferm file accepts."""
    fw = host_firewalls(model)[host]
    rules = {f.rule.span: f.rule for f in model.flows}
    out: list[Grant] = []
    for a in fw.admits:
        out.append(_admit_grant(model, a, rules))
    out.append(Grant(Statement(None, None, "every host firewall", "built in: IPv4 ICMP", builtin=True),
                     (m.PortMatch("icmp"),), "any", anyone=True))
    out.append(Grant(Statement(None, None, "every host firewall",
                               "built in: ICMPv6 errors, echo-request and neighbour discovery", builtin=True),
                     tuple(m.PortMatch("icmpv6", icmp_type=t) for t in FERM_ICMPV6), "any", anyone=True))
    return out


def _admit_grant(model: m.Model, a: Admit, rules: dict[Span, m.Rule]) -> Grant:
    rule = rules.get(a.span)
    if rule is not None and not a.bgp:
        statement = rule_statement(model, rule)
    else:
        statement = Statement(a.span.location, a.span, a.origin, a.text)
    if a.sources is None:
        return Grant(statement, a.ports, "any", anyone=True)
    peer = ", ".join(s.name if s.kind in ("cidr", "any", "internet", "all-hosts") else
                     f"pods of cluster {s.name}" if s.kind == "pods" else f"{s.kind} {s.name}" for s in a.sources)
    return Grant(statement, a.ports, peer, nets=tuple(n for s in a.sources for n in s.cidrs))

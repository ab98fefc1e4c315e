"""The BGP peering graph: every session, derived from topology and each cluster's `peer-with`.

This is the single source of truth for BGP: the Calico resources, the routers'
neighbour lists, the picture, the redundancy analysis and the host firewalls'
TCP 179 rules are all rendered from it.

Sessions are per address family (Calico runs IPv4 and IPv6 separately):
- `routers`: a node peers multihop with each core router of its site, at the loopbacks.
- `tor`: a node peers directly with its rack's ToR, at the rack gateway.
- `route-reflectors`: a client peers with every reflector (iBGP, route-reflector client);
  reflectors are meshed with each other and peer multihop with the site's routers.
The fabric is part of the graph as adjacencies: each ToR peers with the spines of
its row (or site), and each spine with its uplink routers; without spines a ToR
peers with the site's routers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from netaddr import IPAddress

from .. import model as m
from ..diagnostics import Span

SpeakerKind = Literal["node", "reflector", "router", "tor", "spine"]
SessionKind = Literal["node-router", "node-tor", "client-reflector", "reflector-mesh", "reflector-router"]


@dataclass(frozen=True)
class Speaker:
    """One BGP speaker. Nodes and reflectors speak with their cluster's ASN."""

    name: str
    kind: SpeakerKind
    site: str
    row: str | None
    rack: str | None
    asn: int | None
    addresses: tuple[IPAddress, ...]  # at most one per family: the address sessions use
    cluster: str | None
    span: Span

    def address(self, family: int) -> IPAddress | None:
        return next((a for a in self.addresses if a.version == family), None)

    @property
    def router_id(self) -> IPAddress | None:
        return self.address(4)


@dataclass(frozen=True, order=True)
class Session:
    """One BGP session of one family. `a` is the downstream end (node, client, ToR, spine)."""

    family: int
    a: str
    b: str
    kind: str
    cluster: str | None
    a_ip: IPAddress = field(compare=False)
    b_ip: IPAddress = field(compare=False)
    a_asn: int | None = field(compare=False)
    b_asn: int | None = field(compare=False)
    multihop: bool = field(compare=False)
    rr_client: bool = field(compare=False)  # b reflects a's routes
    span: Span = field(compare=False)

    @property
    def ebgp(self) -> bool:
        return self.a_asn != self.b_asn

    def other(self, name: str) -> str:
        return self.b if name == self.a else self.a


@dataclass(frozen=True, order=True)
class FabricLink:
    """A ToR-spine, spine-router or ToR-router adjacency: a link and the fabric's BGP session on it."""

    a: str
    b: str
    kind: str


@dataclass(frozen=True)
class Problem:
    """Something the graph could not be built for: a node with no ToR, a speaker with no ASN."""

    code: str
    message: str
    element: str
    cluster: str | None
    span: Span
    hint: str | None = None
    node: str | None = None  # the node left without a session, when there is one


@dataclass(frozen=True)
class PeeringGraph:
    speakers: dict[str, Speaker]
    sessions: tuple[Session, ...]
    fabric: tuple[FabricLink, ...]
    problems: tuple[Problem, ...]

    def of(self, name: str) -> list[Session]:
        return [s for s in self.sessions if name in (s.a, s.b)]

    def cluster_sessions(self, cluster: str) -> list[Session]:
        return [s for s in self.sessions if s.cluster == cluster]


def _node_addresses(host: m.Host) -> tuple[IPAddress, ...]:
    """The lowest address of each family: what Calico autodetects for a single-homed node."""
    out = []
    for family in (4, 6):
        mine = sorted(a for a in host.addresses if a.version == family)
        if mine:
            out.append(mine[0])
    return tuple(out)


class _Builder:
    def __init__(self, model: m.Model):
        self.model = model
        self.speakers: dict[str, Speaker] = {}
        self.sessions: set[Session] = set()
        self.fabric: set[FabricLink] = set()
        self.problems: list[Problem] = []

    def speaker(self, name: str) -> Speaker:
        return self.speakers[name]

    def add_host(self, host: m.Host, kind: SpeakerKind, cluster: m.Cluster) -> Speaker:
        existing = self.speakers.get(host.name)
        if existing is not None and (existing.kind == "reflector" or kind == "node"):
            return existing
        sp = Speaker(host.name, kind, host.site, host.row, host.rack, cluster.asn, _node_addresses(host),
                     cluster.name, host.span)
        self.speakers[host.name] = sp
        return sp

    def add_router(self, router: m.Router) -> Speaker:
        if router.name not in self.speakers:
            self.speakers[router.name] = Speaker(router.name, "router", router.site, None, None, router.asn,
                                                 tuple(router.loopbacks), None, router.span)
        return self.speakers[router.name]

    def add_switch(self, switch: m.Switch) -> Speaker:
        if switch.name not in self.speakers:
            rack = self.model.racks.get(switch.rack) if switch.rack else None
            addresses = tuple(rack.gateways) if rack else ()
            kind: SpeakerKind = "tor" if switch.kind == "tor" else "spine"
            self.speakers[switch.name] = Speaker(switch.name, kind, switch.site, switch.row, switch.rack, switch.asn,
                                                 addresses, None, switch.span)
        return self.speakers[switch.name]

    def session(self, kind: str, a: Speaker, b: Speaker, cluster: str | None, multihop: bool, rr_client: bool,
                span: Span) -> None:
        for family in (4, 6):
            a_ip, b_ip = a.address(family), b.address(family)
            if a_ip is None or b_ip is None:
                continue
            self.sessions.add(Session(family, a.name, b.name, kind, cluster, a_ip, b_ip, a.asn, b.asn, multihop,
                                      rr_client, span))

    def problem(self, code: str, message: str, element: str, cluster: str | None, span: Span,
                hint: str | None = None, node: str | None = None) -> None:
        self.problems.append(Problem(code, message, element, cluster, span, hint, node))

    # -------------------------------------------------------------- clusters
    def cluster(self, c: m.Cluster) -> None:
        routers = [self.add_router(self.model.routers[r]) for r in self.model.sites[c.site].routers]
        for p in c.peerings:
            if p.mode == "routers":
                self.routers_mode(c, p, routers)
            elif p.mode == "tor":
                self.tor_mode(c, p)
            else:
                self.reflector_mode(c, p, routers)

    def routers_mode(self, c: m.Cluster, p: m.Peering, routers: list[Speaker]) -> None:
        if not routers:
            self.problem("R105", f"site {c.site} declares no router for the nodes of cluster {c.name} to peer with",
                         c.site, c.name, p.span)
        for n in p.nodes:
            node = self.add_host(self.model.hosts[n], "node", c)
            for r in routers:
                self.session("node-router", node, r, c.name, True, False, p.span)

    def tor_mode(self, c: m.Cluster, p: m.Peering) -> None:
        for n in p.nodes:
            host = self.model.hosts[n]
            node = self.add_host(host, "node", c)
            rack = self.model.racks[host.rack]
            if rack.layer != "l3" or rack.switch is None:
                self.problem("R106", f"node {n} peers with its rack's ToR, but rack {rack.key} has none "
                             "(an L2 rack)", n, c.name, p.span,
                             "scope the ToR mode to L3 racks: `peer-with tor for row SITE/ROW`", node=n)
                continue
            tor = self.add_switch(self.model.switches[rack.switch])
            if tor.asn is None:
                self.problem("R107", f"ToR {tor.name} has no ASN, so node {n} cannot peer with it", tor.name,
                             c.name, p.span, f"declare it: `switch {tor.name} asn N`", node=n)
                continue
            self.session("node-tor", node, tor, c.name, False, False, p.span)

    def reflector_mode(self, c: m.Cluster, p: m.Peering, routers: list[Speaker]) -> None:
        reflectors = [self.add_host(self.model.hosts[r], "reflector", c) for r in p.reflectors]
        for n in p.nodes:
            if n in p.reflectors:
                continue
            client = self.add_host(self.model.hosts[n], "node", c)
            for rr in reflectors:
                multihop = self.model.hosts[n].row != self.model.hosts[rr.name].row
                self.session("client-reflector", client, rr, c.name, multihop, True, p.span)
        for i, a in enumerate(reflectors):
            for b in reflectors[i + 1:]:
                self.session("reflector-mesh", a, b, c.name, True, False, p.span)
            for r in routers:
                self.session("reflector-router", a, r, c.name, True, False, p.span)

    # -------------------------------------------------------------- fabric
    def build_fabric(self) -> None:
        """ToR -> spines of its row (or site) -> uplink routers, for every ToR in use."""
        for tor in [s for s in self.speakers.values() if s.kind == "tor"]:
            switch = self.model.switches[tor.name]
            spines = [self.model.switches[n] for n in self._spines_for(switch)]
            if not spines:
                for r in self.model.sites[switch.site].routers:
                    self._fabric_session("tor-router", tor, self.add_router(self.model.routers[r]))
                continue
            for sp in spines:
                spine = self.add_switch(sp)
                self._fabric_session("tor-spine", tor, spine)
                for up in sp.uplinks:
                    if up in self.model.routers:
                        self._fabric_session("spine-router", spine, self.add_router(self.model.routers[up]))

    def _spines_for(self, switch: m.Switch) -> tuple[str, ...]:
        row = self.model.rows[switch.row] if switch.row else None
        if row and row.spines:
            return row.spines
        return self.model.sites[switch.site].spines

    def _fabric_session(self, kind: str, a: Speaker, b: Speaker) -> None:
        """The fabric's own sessions (ToR-spine-router) run on its links, at addresses the policy
        does not declare; they are recorded as adjacencies that carry both families."""
        self.fabric.add(FabricLink(a.name, b.name, kind))


def build(model: m.Model) -> PeeringGraph:
    b = _Builder(model)
    for c in model.clusters.values():
        b.cluster(c)
    b.build_fabric()
    # sorted by the fields Session orders by, as a key tuple: the generated __lt__ costs as much
    # as the rest of the build on 10,000 nodes
    sessions = tuple(sorted(b.sessions, key=lambda s: (s.family, s.a, s.b, s.kind, s.cluster)))
    return PeeringGraph(dict(sorted(b.speakers.items())), sessions, tuple(sorted(b.fabric)),
                        tuple(sorted(b.problems, key=lambda p: (p.span, p.code, p.element))))

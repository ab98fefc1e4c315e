"""What each host firewall admits: the host's share of the flows, and its BGP sessions.

The ferm backend formats this and the lock-out guard (`lockout`) checks it, so the guard
judges exactly what is rendered. Only hosts with a firewall (no `firewall none` role) get one.

A host admits:
- every flow whose destinations name the host itself: `host H`, `role R` for a role the host
  has, `all hosts` (the default role). A destination that is a set of addresses (network,
  rack, row, site, cluster, cidr, internet) is a statement about addresses, not about a host's
  services, and opens no host firewall;
- as a Kubernetes node or route reflector, TCP 179 from each of its BGP peers, per family, as
  the peering graph gives them (routers at their loopbacks, a ToR at its rack gateway,
  reflectors and their clients at their addresses).
Sources: an address endpoint by its addresses, kept as the named set it was written as;
`any` as no source match; an app as the pod ranges of the clusters it runs in (only those of
the rule's `in cluster`, when it says one); `all apps` likewise for every app.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork

from .. import model as m
from ..diagnostics import Span
from ..ranges import Ranges
from .peering import PeeringGraph, Session

BGP_PORT = 179
HOST_KINDS = ("host", "role", "all-hosts")  # destination kinds that name hosts


@dataclass(frozen=True, order=True)
class AddressSet:
    """A set of addresses admitted as written: `kind` network, role, pods (of a cluster), rack,
    row, site, internet, all-hosts, host, router, switch, cidr or bgp-peer; `name` its name."""

    kind: str
    name: str
    cidrs: tuple[IPNetwork, ...]

    def of(self, family: int) -> tuple[IPNetwork, ...]:
        return self._families[family]

    @functools.cached_property
    def _families(self) -> dict[int, tuple[IPNetwork, ...]]:
        """Split once: a role's set is asked for by every host that admits it, per family."""
        return {f: tuple(c for c in self.cidrs if c.version == f) for f in (4, 6)}


@dataclass(frozen=True, eq=False)
class Admit:
    """One statement's share of a host firewall: `sources` (None: from anywhere) may reach the
    host on `ports`. `span` is the statement (for BGP, the `peer-with`), `origin` its owner
    (`role base`, `app eventgate-main`, `cluster wikikube-eqiad`), `text` its description."""

    sources: tuple[AddressSet, ...] | None
    ports: tuple[m.PortMatch, ...]
    span: Span
    origin: str
    text: str
    bgp: bool = False

    @functools.cached_property
    def _ranges(self) -> Ranges:
        """The sources as merged ranges: a lookup is a bisection (an IPSet lookup costs ~50 times more)."""
        return Ranges(c for s in self.sources or () for c in s.cidrs)

    def admits(self, address: IPAddress, protocol: str, port: int | None = None) -> bool:
        """Whether a packet from `address` of `protocol` (to `port`) matches this admit."""
        if not any(_port_matches(p, address.version, protocol, port) for p in self.ports):
            return False
        if self.sources is None:
            return True
        return self._ranges.holds(address.version, int(address))


def _port_matches(p: m.PortMatch, family: int, protocol: str, port: int | None) -> bool:
    if p.protocol == "any":
        return True
    if p.protocol in ("icmp", "icmpv6"):
        return p.protocol == protocol and (p.protocol == "icmp") == (family == 4) and (
            p.icmp_type is None or p.icmp_type == port)
    if p.protocol != protocol:
        return False
    return p.first is None or (port is not None and p.first <= port <= (p.last or p.first))


@dataclass(frozen=True)
class HostFirewall:
    host: str
    roles: tuple[str, ...]  # the default role first, then the host's own
    admits: tuple[Admit, ...]  # in source order; the BGP admits last
    bgp_cluster: str | None  # the cluster whose node or reflector this host is

    def admits_packet(self, address: IPAddress, protocol: str, port: int | None = None) -> bool:
        return any(a.admits(address, protocol, port) for a in self.admits)

    @property
    def policy(self) -> tuple[Admit, ...]:
        return tuple(a for a in self.admits if not a.bgp)


def summary(rule: m.Rule) -> str:
    """A rule without a description, as it was written (near enough)."""
    verb, word = ("allow", "from") if rule.direction == "ingress" else ("connect", "to")
    ports = ", ".join(str(p) for p in rule.ports) if rule.ports is not None else ""
    peers = ", ".join(p.label for p in rule.peers)
    return " ".join(x for x in (verb, ports, word, peers) if x)


class _Builder:
    def __init__(self, model: m.Model, graph: PeeringGraph):
        self.model = model
        self.graph = graph
        self.by_destination: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, f in enumerate(model.flows):
            for d in f.destinations:
                if d.kind in HOST_KINDS:
                    self.by_destination[(d.kind, d.name if d.kind != "all-hosts" else "")].append(i)
        self.default_roles = tuple(r.name for r in model.roles.values() if r.default)
        self.sources: dict[int, tuple[AddressSet, ...] | None] = {}
        self.admit_cache: dict[tuple[int, ...], Admit] = {}
        self.sessions = sessions_by_speaker(graph)
        self.bgp_cache: dict[tuple[object, ...], tuple[Admit, ...]] = {}

    def flow_sources(self, i: int) -> tuple[AddressSet, ...] | None:
        if i not in self.sources:
            f = self.model.flows[i]
            out: set[AddressSet] = set()
            anywhere = False
            for ep in f.sources:
                if ep.kind == "any":
                    anywhere = True
                elif ep.kind in ("app", "all-apps"):
                    out.update(self._pods(ep.apps, f.rule.clusters))
                elif ep.kind == "cluster":
                    out.add(AddressSet("pods", ep.name, ep.cidrs))
                else:
                    out.add(AddressSet(ep.kind, ep.name, ep.cidrs))
            self.sources[i] = None if anywhere else tuple(sorted(out))
        return self.sources[i]

    def _pods(self, apps: Iterable[str], only: tuple[str, ...]) -> set[AddressSet]:
        out = set()
        for name in apps:
            app = self.model.apps.get(name)
            for c in app.clusters if app else ():
                if (not only or c in only) and c in self.model.clusters:
                    out.add(AddressSet("pods", c, self.model.clusters[c].pod_cidrs))
        return out

    def admit(self, flows: tuple[int, ...]) -> Admit:
        """One statement's flows that reach a host, with the same ports: their sources together."""
        if flows not in self.admit_cache:
            rule, ports = self.model.flows[flows[0]].rule, self.model.flows[flows[0]].ports
            sources: set[AddressSet] = set()
            anywhere = False
            for i in flows:
                s = self.flow_sources(i)
                if s is None:
                    anywhere = True
                else:
                    sources.update(s)
            owner = f"{'default ' if self._default(rule) else ''}{rule.owner_kind} {rule.owner}"
            self.admit_cache[flows] = Admit(None if anywhere else tuple(sorted(sources)), ports, rule.span, owner,
                                            rule.description or summary(rule))
        return self.admit_cache[flows]

    def _default(self, rule: m.Rule) -> bool:
        owner = (self.model.roles if rule.owner_kind == "role" else self.model.apps).get(rule.owner)
        return bool(owner and owner.default)

    def host(self, host: m.Host) -> HostFirewall:
        found: set[int] = set(self.by_destination.get(("all-hosts", ""), ()))
        for r in host.roles:
            found.update(self.by_destination.get(("role", r), ()))
        found.update(self.by_destination.get(("host", host.name), ()))
        groups: dict[tuple[int, tuple[m.PortMatch, ...]], list[int]] = defaultdict(list)
        for i in sorted(found):
            f = self.model.flows[i]
            groups[(id(f.rule), f.ports)].append(i)
        admits = sorted((self.admit(tuple(g)) for g in groups.values()), key=lambda a: (a.span, a.origin, a.ports))
        bgp, cluster = self.bgp(host)
        return HostFirewall(host.name, self.default_roles + host.roles, tuple(admits) + bgp, cluster)

    def bgp(self, host: m.Host) -> tuple[tuple[Admit, ...], str | None]:
        speaker = self.graph.speakers.get(host.name)
        if speaker is None or speaker.kind not in ("node", "reflector"):
            return (), None
        ends = tuple((s.span, s.cluster, s.kind) + ((s.b, s.b_ip) if s.a == host.name else (s.a, s.a_ip))
                     for s in self.sessions.get(host.name, ()))
        # the nodes of a rack (or of a cluster, with reflectors) have the same peers: one build each
        key = tuple((span, cluster, kind, peer, ip.version, int(ip)) for span, cluster, kind, peer, ip in ends)
        if key not in self.bgp_cache:
            self.bgp_cache[key] = self._bgp_admits(ends)
        return self.bgp_cache[key], speaker.cluster

    def _bgp_admits(self, ends: Iterable[tuple[Span, str | None, str, str, IPAddress]]) -> tuple[Admit, ...]:
        by_span: dict[tuple[Span, str | None], dict[str, set[IPNetwork]]] = defaultdict(lambda: defaultdict(set))
        kinds: dict[tuple[Span, str | None], set[str]] = defaultdict(set)
        for span, cluster, kind, peer, ip in ends:
            by_span[(span, cluster)][peer].add(IPNetwork(ip))
            kinds[(span, cluster)].add(kind)
        out = []
        port = (m.PortMatch("tcp", BGP_PORT, BGP_PORT),)
        for (span, cluster), peers in sorted(by_span.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            sets = tuple(AddressSet("bgp-peer", p, m.family_sorted(ips))
                         for p, ips in sorted(peers.items()))
            text = (f"BGP from its peers ({', '.join(sorted(kinds[(span, cluster)]))}): "
                    f"{', '.join(sorted(peers))}")
            out.append(Admit(sets, port, span, f"cluster {cluster}", text, bgp=True))
        return tuple(out)


def sessions_by_speaker(graph: PeeringGraph) -> dict[str, list[Session]]:
    """Each speaker's sessions (`graph.of` scans them all, once per call)."""
    out: dict[str, list[Session]] = defaultdict(list)
    for s in graph.sessions:
        out[s.a].append(s)
        out[s.b].append(s)
    return out


def build(model: m.Model, graph: PeeringGraph) -> dict[str, HostFirewall]:
    """The firewall of every host that has one, by host name (sorted)."""
    b = _Builder(model, graph)
    return {name: b.host(h) for name, h in model.hosts.items() if h.firewall}

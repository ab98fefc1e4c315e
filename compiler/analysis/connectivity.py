"""Connectivity facts: who may reach whom, on which ports, in which address family.

Each flow is expanded over concrete, named ends:
- an app end is one app in one cluster (`in cluster` keeps only those clusters, at both ends, as
  the Calico and ferm backends do); `all apps` is each app;
- a host end is one host: `host H`, every host of `role R`, every host for `all hosts`;
- anything else is an address set, kept by its kind and name (`network internal`, `10.3.0.1/32`,
  `any`, `internet`, `cluster C`, `rack eqiad/a4`...); its addresses are recorded beside the facts.
A fact is (source, destination, family, port match); it holds in a family when both ends have
addresses of it (an app: its cluster's pod ranges) and the protocol exists in it (`icmp` is IPv4,
`icmpv6` IPv6). The ports of one (source, destination, family) are merged into one normalised set,
so facts can be compared exactly: `subtract` gives what one side allows and the other does not.

BGP sessions are not facts: they come from the peering graph, which has them by family.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from netaddr import IPNetwork

from .. import model as m

FAMILIES = (4, 6)
PORTED = ("tcp", "udp", "sctp")
ALL_PORTS = (1, 65535)


@dataclass(frozen=True, order=True)
class End:
    """One end of a fact: `app` (with its `cluster`), `host`, or an address set's kind and name."""

    kind: str
    name: str
    cluster: str = ""

    def __str__(self) -> str:
        if self.kind == "app":
            return f"app {self.name} ({self.cluster})"
        if self.kind in ("cidr", "any", "internet"):
            return self.name
        return f"{self.kind} {self.name}"

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "cluster": self.cluster or None}


Pair = tuple[End, End]


@dataclass
class Connectivity:
    """`ports[(source, destination)][family]`: the normalised ports allowed; `flows[pair]`: the flows
    that state them (for `explain`); `addresses[end]`: the addresses of each host and address-set end."""

    ports: dict[Pair, dict[int, tuple[m.PortMatch, ...]]] = field(default_factory=dict)
    flows: dict[Pair, list[m.Flow]] = field(default_factory=dict)
    addresses: dict[End, tuple[IPNetwork, ...]] = field(default_factory=dict)

    def facts(self) -> list[tuple[End, End, int, m.PortMatch]]:
        return [(s, d, f, p) for (s, d), fam in sorted(self.ports.items())
                for f, pp in sorted(fam.items()) for p in pp]


def _families(cidrs) -> frozenset[int]:
    return frozenset(c.version for c in cidrs)


def port_families(p: m.PortMatch) -> frozenset[int]:
    return {"icmp": frozenset({4}), "icmpv6": frozenset({6})}.get(p.protocol, frozenset(FAMILIES))


class _Expander:
    def __init__(self, model: m.Model):
        self.model = model
        self.addresses: dict[End, tuple[IPNetwork, ...]] = {}

    def ends(self, ep: m.Endpoint, clusters: tuple[str, ...]) -> list[tuple[End, frozenset[int]]]:
        """The concrete ends of one endpoint, each with the families it has addresses in."""
        model = self.model
        if ep.kind in ("app", "all-apps"):
            out = []
            for name in ep.apps:
                app = model.apps.get(name)
                for c in app.clusters if app else ():
                    if c in model.clusters and (not clusters or c in clusters):
                        out.append((End("app", name, c), _families(model.clusters[c].pod_cidrs)))
            return out
        if ep.kind in ("host", "role", "all-hosts"):
            if ep.kind == "host":
                names: tuple[str, ...] = (ep.name,)
            elif ep.kind == "role":
                names = model.roles[ep.name].hosts if ep.name in model.roles else ()
            else:
                names = tuple(model.hosts)
            out = []
            for h in names:
                end = End("host", h)
                nets = tuple(IPNetwork(a) for a in model.hosts[h].addresses)
                self.addresses[end] = nets
                out.append((end, _families(nets)))
            return out
        end = End(ep.kind, ep.name)
        self.addresses[end] = ep.cidrs
        return [(end, _families(ep.cidrs))]


def build(model: m.Model) -> Connectivity:
    """Every fact of the model's flows (see the module docstring)."""
    x = _Expander(model)
    found: dict[Pair, dict[int, list[m.PortMatch]]] = defaultdict(lambda: defaultdict(list))
    flows: dict[Pair, list[m.Flow]] = defaultdict(list)
    for flow in model.flows:
        only = flow.rule.clusters
        sources = [e for ep in flow.sources for e in x.ends(ep, only)]
        destinations = [e for ep in flow.destinations for e in x.ends(ep, only)]
        for src, src_fams in sources:
            for dst, dst_fams in destinations:
                pair = (src, dst)
                added = False
                for p in flow.ports:
                    for f in sorted(src_fams & dst_fams & port_families(p)):
                        found[pair][f].append(p)
                        added = True
                if added and (not flows[pair] or flows[pair][-1] is not flow):
                    flows[pair].append(flow)
    ports = {pair: {f: normalise(pp) for f, pp in sorted(fam.items())} for pair, fam in sorted(found.items())}
    return Connectivity(ports, dict(flows), dict(sorted(x.addresses.items())))


# ------------------------------------------------------------------ port sets


def _ranges(ports, protocol: str) -> list[tuple[int, int]]:
    """The port ranges of one protocol, merged (adjacent ranges too)."""
    spans = sorted((p.first, p.last or p.first) if p.first is not None else ALL_PORTS
                   for p in ports if p.protocol == protocol)
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _ported(protocol: str, a: int, b: int) -> m.PortMatch:
    return m.PortMatch(protocol) if (a, b) == ALL_PORTS else m.PortMatch(protocol, a, b)


def _icmp_covers(wide: m.PortMatch, p: m.PortMatch) -> bool:
    return wide.protocol == p.protocol and (
        wide.icmp_type is None or (wide.icmp_type == p.icmp_type and wide.icmp_code in (None, p.icmp_code)))


def normalise(ports) -> tuple[m.PortMatch, ...]:
    """One sorted set: `any` alone if present; each protocol's ranges merged; ICMP items that a
    wider one covers dropped."""
    ports = set(ports)
    if any(p.protocol == "any" for p in ports):
        return (m.PortMatch("any"),)
    out = [_ported(proto, a, b) for proto in PORTED for a, b in _ranges(ports, proto)]
    icmp = [p for p in ports if p.protocol in ("icmp", "icmpv6")]
    out += [p for p in icmp if not any(w != p and _icmp_covers(w, p) for w in icmp)]
    return tuple(sorted(out))


def subtract(ports: tuple[m.PortMatch, ...], other: tuple[m.PortMatch, ...]) -> tuple[m.PortMatch, ...]:
    """What `ports` allows and `other` does not, as port matches (both normalised)."""
    if any(p.protocol == "any" for p in other):
        return ()
    out: list[m.PortMatch] = []
    for p in ports:
        if p.protocol in PORTED:
            (a, b), = _ranges([p], p.protocol)
            for c, d in _ranges(other, p.protocol):
                if d < a or c > b:
                    continue
                if c > a:
                    out.append(_ported(p.protocol, a, c - 1))
                a = max(a, d + 1)
            if a <= b:
                out.append(_ported(p.protocol, a, b))
        elif p.protocol == "any" or not any(_icmp_covers(o, p) for o in other):
            out.append(p)
    return tuple(sorted(out))


# ------------------------------------------------------------------ comparing two models' facts

Ports = tuple[tuple[m.PortMatch, tuple[int, ...]], ...]  # port matches, each with its families


@dataclass(frozen=True)
class Change:
    """What changed between two ends: `added` (a pair only the new side has), `removed` (only the
    old side), or `changed` (ports or families gained and lost)."""

    source: End
    destination: End
    status: str
    added: Ports
    removed: Ports


def _by_port(per_family: dict[int, tuple[m.PortMatch, ...]]) -> Ports:
    families: dict[m.PortMatch, list[int]] = defaultdict(list)
    for f, ports in sorted(per_family.items()):
        for p in ports:
            families[p].append(f)
    return tuple((p, tuple(fs)) for p, fs in sorted(families.items()))


def compare(old: Connectivity, new: Connectivity) -> list[Change]:
    """The facts only one side has, per pair of ends, in sorted order."""
    out = []
    for pair in sorted(old.ports.keys() | new.ports.keys()):
        before, after = old.ports.get(pair, {}), new.ports.get(pair, {})
        gained = {f: subtract(after.get(f, ()), before.get(f, ())) for f in FAMILIES}
        lost = {f: subtract(before.get(f, ()), after.get(f, ())) for f in FAMILIES}
        if not any(gained.values()) and not any(lost.values()):
            continue
        status = "added" if not before else "removed" if not after else "changed"
        out.append(Change(*pair, status, _by_port(gained), _by_port(lost)))
    return out


def _net_key(n: IPNetwork) -> tuple:
    return (n.version, n)


def compare_addresses(old: Connectivity, new: Connectivity
                      ) -> list[tuple[End, tuple[IPNetwork, ...], tuple[IPNetwork, ...]]]:
    """Ends on both sides whose addresses changed: (end, addresses gained, addresses lost)."""
    out = []
    for end in sorted(old.addresses.keys() & new.addresses.keys()):
        before, after = set(old.addresses[end]), set(new.addresses[end])
        if before != after:
            out.append((end, tuple(sorted(after - before, key=_net_key)), tuple(sorted(before - after, key=_net_key))))
    return out

"""Small valid estates as policy text, with the intent they declare, for the no-widening property test.

`estates()` is a hypothesis strategy of `Estate`: the text of one site (1-3 rows, L2 or L3, racks with
subnets and hosts with roles), one or two clusters with pod ranges, roles and apps with `allow` and
`connect` statements naming apps, roles, hosts, networks, CIDRs, clusters, `internet` and `any` on
port lists, services and `listen` defaults, `in cluster`, and sometimes a default role, a default
app, an `ssh-gateway` role and a `firewall none` role. The generator keeps its own record of what
it wrote, and `Estate` answers, from that record and docs/language.md alone (nothing is imported
from the compiler), what each enforcement point should admit.

Each statement is one flow per peer (docs/language.md, "Allow and connect"): the owner at its end
(a role's hosts, every host for the default role, an app's pods in the clusters of its `in
cluster`, every app's for the default app), the peer at the other, on the written ports or the
destination app's `listen`. A flow is enforced wherever one of its ends is policed:

- `ferm_admits(host, source, packet)` ("Host firewalls (ferm)"): every flow whose destination names
  the host (`host`, one of its roles, the default role's hosts), from its source's addresses (an
  app as the pod ranges of its clusters, the owner's only those of its `in cluster`); TCP 179
  from the routers' loopbacks on a node, in each family the node has; and the built-ins: every
  ICMP over IPv4, ICMPv6 1-4, 128 and 133-137 (loopback and established are probed apart).
- `calico_admits(cluster, app, direction, peer, packet)` ("Apps"): at an app pod's egress every
  flow whose source names the app in this cluster, at its ingress every flow whose destination
  does; the far end as an app's pods here by label and its pods in its other clusters by those
  clusters' pod ranges (labels do not cross clusters: calico.py's contract), the owner only in
  its `in cluster`; and the built-ins of netpolc-default-deny: DNS to kube-dns, ICMP 3/4 and
  ICMPv6 2, 133-136 both ways.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hypothesis import strategies as st

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# docs/language.md, "Peers": internet is everything minus these and minus the estate's addresses
SPECIAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "ff00::/8")]

ROUTERS = [("cr1", "208.80.154.196", "2620:0:861:ffff::1"), ("cr2", "208.80.154.197", "2620:0:861:ffff::2")]
PUBLIC_CIDRS = ["93.184.216.0/24", "2606:2800:220::/48", "8.8.4.4"]  # not the estate's: inside internet
PLAIN_ROLES = ["web", "db", "cache", "mon"]
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
# ports away from the sensitive ones (SSH, etcd, kubelet, databases), so that no safe-default
# check refuses an estate for a reason this test is not about
PORT_ITEMS = [("tcp", 8080, 8080), ("tcp", 8443, 8443), ("tcp", 9000, 9010), ("udp", 5000, 5000),
              ("udp", 6000, 6003), ("sctp", 3868, 3868), ("tcp", None, None), ("udp", None, None),
              ("icmp", 8, None), ("icmpv6", 128, None), ("icmp", 3, 4), ("icmp", None, None), ("any", None, None)]
WIDE = {("tcp", None, None), ("udp", None, None), ("any", None, None)}


# ====================================================================== addresses
@dataclass(frozen=True)
class AddrSet:
    """A set of addresses: `nets`, plus everything (`anywhere`) or the internet, minus `minus`."""

    nets: tuple[IPNet, ...] = ()
    anywhere: bool = False
    internet: bool = False
    minus: tuple[IPNet, ...] = ()

    def contains(self, address: IPAddress, estate: Estate) -> bool:
        if any(address in n for n in self.minus):
            return False
        if self.anywhere or any(address in n for n in self.nets):
            return True
        return self.internet and estate.in_internet(address)

    def __or__(self, other: AddrSet) -> AddrSet:
        assert not self.minus and not other.minus
        return AddrSet(self.nets + other.nets, self.anywhere or other.anywhere, self.internet or other.internet)


def net(text: str) -> IPNet:
    return ipaddress.ip_network(text)


# ====================================================================== what was written
@dataclass(frozen=True)
class Port:
    """tcp/udp/sctp with a range (None: every port), icmp/icmpv6 with a type and code, or any."""

    protocol: str
    first: int | None = None
    last: int | None = None

    def text(self) -> str:
        if self.protocol == "any":
            return "any"
        if self.protocol in ("icmp", "icmpv6"):
            if self.first is None:
                return self.protocol
            names = {("icmp", 8): "echo-request", ("icmpv6", 128): "echo-request"}
            if (self.protocol, self.first) in names and self.last is None:
                return f"{self.protocol} {names[(self.protocol, self.first)]}"
            return f"{self.protocol} {self.first}" + (f" code {self.last}" if self.last is not None else "")
        if self.first is None:
            return self.protocol
        return f"{self.protocol} {self.first}" + (f"-{self.last}" if self.last != self.first else "")

    def admits(self, packet: Probe) -> bool:
        if self.protocol == "any":
            return True
        if self.protocol != packet.protocol:
            return False
        if self.protocol in ("icmp", "icmpv6"):
            return (self.first is None or self.first == packet.icmp_type) and (
                self.last is None or self.last == packet.icmp_code)
        return self.first is None or self.first <= packet.port <= self.last


@dataclass(frozen=True)
class Peer:
    kind: str  # app role host network cidr internet any cluster
    name: str = ""

    def text(self) -> str:
        return self.kind if self.kind in ("internet", "any") else (
            self.name if self.kind == "cidr" else f"{self.kind} {self.name}")


@dataclass(frozen=True)
class Statement:
    owner_kind: str  # role | app
    owner: str
    default: bool
    direction: str  # allow | connect
    ports: tuple[Port, ...] | None  # None: the listen default
    port_text: str  # as written (services included)
    peers: tuple[Peer, ...]
    clusters: tuple[str, ...] = ()  # `in cluster`

    def text(self) -> str:
        word = "from" if self.direction == "allow" else "to"
        out = f"  {self.direction} {self.port_text + ' ' if self.port_text else ''}{word} "
        out += ", ".join(p.text() for p in self.peers)
        if self.clusters:
            out += " in cluster " + ", ".join(self.clusters)
        return out


@dataclass
class Host:
    name: str
    addresses: tuple[IPAddress, ...]
    roles: tuple[str, ...]


@dataclass
class Rack:
    """One rack, alone in its row (`rack s1/k<N>` in `row s1/r<N>`)."""

    name: str
    row: str
    l3: bool
    subnets: tuple[IPNet, ...]
    gateways: tuple[IPAddress, ...]
    hosts: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    name: str
    pods: tuple[IPNet, ...]
    services: tuple[IPNet, ...]
    node_role: str


@dataclass
class App:
    name: str
    clusters: tuple[str, ...]
    namespace: str
    listen: tuple[Port, ...]


@dataclass(frozen=True)
class Probe:
    """A packet (without addresses): tcp/udp/sctp to a port, or icmp/icmpv6 type and code."""

    protocol: str
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int = 0

    @property
    def family(self) -> int | None:
        return {"icmp": 4, "icmpv6": 6}.get(self.protocol)


@dataclass
class Estate:
    text: str = ""
    hosts: dict[str, Host] = field(default_factory=dict)
    subnets: list[IPNet] = field(default_factory=list)
    gateways: list[IPAddress] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    roles: dict[str, dict] = field(default_factory=dict)  # name -> {"firewall": bool, "ssh": bool}
    default_role: str | None = None
    default_app: str | None = None
    apps: dict[str, App] = field(default_factory=dict)
    networks: dict[str, AddrSet] = field(default_factory=dict)
    statements: list[Statement] = field(default_factory=list)
    router_count: int = 1
    racks: dict[str, Rack] = field(default_factory=dict)
    tor_racks: set[tuple[str, str]] = field(default_factory=set)  # (cluster, rack): `peer-with tor for rack`
    _internet: dict = field(default_factory=dict)
    _flows: list | None = None
    _grants: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ addresses
    def estate_nets(self) -> list[IPNet]:
        out = list(self.subnets)
        out += [ipaddress.ip_network(a) for h in self.hosts.values() for a in h.addresses]
        out += [ipaddress.ip_network(a) for a in self.gateways]
        out += [net(a) for _, v4, v6 in ROUTERS[:self.router_count] for a in (v4, v6)]
        out += [n for c in self.clusters.values() for n in (*c.pods, *c.services)]
        return out

    def in_internet(self, address: IPAddress) -> bool:
        if address not in self._internet:
            self._internet[address] = not any(address in n for n in SPECIAL + self.estate_nets())
        return self._internet[address]

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts.values() if role in h.roles]

    def host_nets(self, hosts: list[Host]) -> tuple[IPNet, ...]:
        return tuple(ipaddress.ip_network(a) for h in hosts for a in h.addresses)

    def firewalled(self, host: Host) -> bool:
        return all(self.roles[r]["firewall"] for r in host.roles)

    def pod_ranges(self, clusters) -> tuple[IPNet, ...]:
        return tuple(n for c in clusters for n in self.clusters[c].pods)

    def addresses(self, peer: Peer) -> AddrSet:
        """A peer as addresses (an app as its clusters' pod ranges): what a host firewall sees."""
        if peer.kind == "any":
            return AddrSet(anywhere=True)
        if peer.kind == "internet":
            return AddrSet(internet=True)
        if peer.kind == "cidr":
            return AddrSet((net(peer.name),))
        if peer.kind == "host":
            return AddrSet(self.host_nets([self.hosts[peer.name]]))
        if peer.kind == "role":
            return AddrSet(self.host_nets(self.hosts_with(peer.name)))
        if peer.kind == "cluster":
            return AddrSet(self.clusters[peer.name].pods)
        if peer.kind == "app":
            return AddrSet(self.pod_ranges(self.apps[peer.name].clusters))
        if peer.kind == "network":
            return self.networks[peer.name]
        if peer.kind == "router":
            return AddrSet(tuple(net(a) for name, v4, v6 in ROUTERS if name == peer.name for a in (v4, v6)))
        if peer.kind == "site":  # its rows' and racks' subnets and its routers' loopbacks
            loopbacks = (net(a) for _, v4, v6 in ROUTERS[:self.router_count] for a in (v4, v6))
            return AddrSet((*self.subnets, *loopbacks))
        rack = next(r for r in self.racks.values() if peer.name in (f"s1/{r.name}", f"s1/{r.row}", f"lsw-{r.row}"))
        if peer.kind == "switch":  # an L3 rack's ToR: the rack's gateways
            return AddrSet(tuple(ipaddress.ip_network(a) for a in rack.gateways))
        if peer.kind == "row" or rack.l3:  # a row's subnets (its one rack's); an L3 rack's subnets
            return AddrSet(rack.subnets)
        return AddrSet(self.host_nets([self.hosts[h] for h in rack.hosts]))  # an L2 rack: its hosts

    def anywhere(self, peer: Peer) -> bool:
        """`any`, `internet`, or a network holding it: every port from there would reach the
        sensitive ones (safe defaults, E701), and egress there must say `internet` (E703)."""
        return peer.kind in ("any", "internet") or (peer.kind == "network" and (
            self.networks[peer.name].internet or self.networks[peer.name].anywhere))

    # ------------------------------------------------------------------ flows
    def flows(self) -> list[Flow]:
        """Each statement as one flow per peer ("Allow and connect"): the owner at its end (a role's
        hosts, all hosts, an app's pods in the clusters of its `in cluster`, every app's), the peer at
        the other; a missing port list is the destination app's `listen` (per listening app for the
        default app's `allow from`)."""
        if self._flows is None:
            self._flows = [f for s in self.statements for f in self._statement_flows(s)]
        return self._flows

    def _statement_flows(self, s: Statement) -> list[Flow]:
        out = []
        if s.owner_kind == "role":
            owner = FlowEnd("hosts", hosts=tuple(sorted(self.hosts) if s.default else
                                                  (h.name for h in self.hosts_with(s.owner))))
            for p in s.peers:
                if s.direction == "allow":
                    out.append(Flow((FlowEnd("peer", p),), (owner,), s.ports))
                else:
                    out.append(Flow((owner,), (FlowEnd("peer", p),), s.ports or self.apps[p.name].listen))
            return out
        owners = sorted(self.apps) if s.default else [s.owner]

        def pods(names) -> FlowEnd:
            return FlowEnd("apps", apps=tuple((a, tuple(c for c in self.apps[a].clusters
                                                        if not s.clusters or c in s.clusters)) for a in names))
        for p in s.peers:
            if s.direction == "connect":
                out.append(Flow((pods(owners),), (FlowEnd("peer", p),), s.ports or self.apps[p.name].listen))
            elif s.ports is not None:
                out.append(Flow((FlowEnd("peer", p),), (pods(owners),), s.ports))
            else:  # each (listening) owner on its own listen ports
                out += [Flow((FlowEnd("peer", p),), (pods([a]),), self.apps[a].listen)
                        for a in owners if self.apps[a].listen]
        return out

    def end_addresses(self, end: FlowEnd) -> AddrSet:
        """An end as addresses (an app's pods as its clusters' pod ranges): what a host firewall sees."""
        if end.kind == "peer":
            return self.addresses(end.peer)
        if end.kind == "hosts":
            return AddrSet(self.host_nets([self.hosts[h] for h in end.hosts]))
        return AddrSet(tuple(dict.fromkeys(n for _, cs in end.apps for n in self.pod_ranges(cs))))

    def end_apps(self, end: FlowEnd) -> dict[str, tuple[str, ...]]:
        """The apps an end names, each with the clusters it names them in."""
        if end.kind == "apps":
            return dict(end.apps)
        if end.kind == "peer" and end.peer.kind == "app":
            return {end.peer.name: self.apps[end.peer.name].clusters}
        return {}

    def names_host(self, end: FlowEnd, host: Host) -> bool:
        if end.kind == "hosts":
            return host.name in end.hosts
        return end.kind == "peer" and ((end.peer.kind == "host" and end.peer.name == host.name)
                                       or (end.peer.kind == "role" and end.peer.name in host.roles))

    # ------------------------------------------------------------------ host firewalls
    def ferm_grants(self, host: Host) -> list[tuple[AddrSet, tuple[Port, ...]]]:
        """Every flow whose destination names the host; BGP from the routers on a node."""
        out = [(self.end_addresses(src), f.ports) for f in self.flows()
               if any(self.names_host(d, host) for d in f.destinations) for src in f.sources]
        node_of = [c for c in self.clusters.values() if c.node_role in host.roles]
        if node_of:  # BGP from its peers (routers' loopbacks, or its rack's ToR), per family the node has
            families = {a.version for a in host.addresses}
            rack = next((r for r in self.racks.values() if host.name in r.hosts), None)
            if rack is not None and (node_of[0].name, rack.name) in self.tor_racks:
                peers = [ipaddress.ip_network(a) for a in rack.gateways]
            else:
                peers = [net(a) for _, v4, v6 in ROUTERS[:self.router_count] for a in (v4, v6)]
            out.append((AddrSet(tuple(p for p in peers if p.version in families)), (Port("tcp", 179, 179),)))
        return out

    def ferm_admits(self, host: Host, source: IPAddress, packet: Probe) -> bool:
        if ferm_builtin(packet):
            return True
        if host.name not in self._grants:
            self._grants[host.name] = self.ferm_grants(host)
        return any(src.contains(source, self) and any(p.admits(packet) for p in ports)
                   for src, ports in self._grants[host.name])

    # ------------------------------------------------------------------ app pods (Calico)
    def calico_grants(self, cluster: str, app: str, direction: str) -> list[tuple[Matcher, tuple[Port, ...]]]:
        """Every flow that names the app's pods in this cluster at this end: its far ends."""
        out = []
        for f in self.flows():
            local, far = (f.destinations, f.sources) if direction == "ingress" else (f.sources, f.destinations)
            if any(cluster in self.end_apps(e).get(app, ()) for e in local):
                out += [(self.matcher(e, cluster), f.ports) for e in far]
        return out

    def matcher(self, end: FlowEnd, cluster: str) -> Matcher:
        """An end seen from a pod of `cluster`: apps' pods here by label, elsewhere by pod ranges."""
        apps = self.end_apps(end)
        if not apps:
            return Matcher(self.end_addresses(end), frozenset())
        labels = frozenset(a for a, cs in apps.items() if cluster in cs)
        ranges = tuple(dict.fromkeys(n for cs in apps.values() for n in self.pod_ranges(c for c in cs if c != cluster)))
        return Matcher(AddrSet(ranges), labels)

    def calico_admits(self, cluster: str, app: str, direction: str, peer: End, packet: Probe) -> bool:
        if calico_builtin(direction, peer, packet):
            return True
        key = (cluster, app, direction)
        if key not in self._grants:
            self._grants[key] = self.calico_grants(cluster, app, direction)
        return any(mt.matches(peer, self) and any(p.admits(packet) for p in ports) for mt, ports in self._grants[key])


@dataclass(frozen=True)
class FlowEnd:
    """One end of a flow: a peer as written, a role's hosts (`hosts`), or an owner app's pods
    (`apps`: each app with the clusters the statement holds in)."""

    kind: str  # peer | hosts | apps
    peer: Peer | None = None
    hosts: tuple[str, ...] = ()
    apps: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Flow:
    sources: tuple[FlowEnd, ...]
    destinations: tuple[FlowEnd, ...]
    ports: tuple[Port, ...]


@dataclass(frozen=True)
class End:
    """A probe end: an address, and for a pod of this cluster its app (or `kube-dns`)."""

    address: IPAddress
    pod_app: str | None = None  # an app's pod of the cluster being checked
    kube_dns: bool = False


@dataclass(frozen=True)
class Matcher:
    addresses: AddrSet
    apps: frozenset[str]  # apps whose pods of this cluster match by label

    def matches(self, end: End, estate: Estate) -> bool:
        return (end.pod_app is not None and end.pod_app in self.apps) or self.addresses.contains(end.address, estate)


ICMPV6_FERM = {1, 2, 3, 4, 128, 133, 134, 135, 136, 137}


def ferm_builtin(packet: Probe) -> bool:
    """docs/language.md, "Host firewalls": every ICMP over IPv4; ICMPv6 errors 1-4, echo-request
    and neighbour discovery 133-137 (established and loopback are probed apart)."""
    return packet.protocol == "icmp" or (packet.protocol == "icmpv6" and packet.icmp_type in ICMPV6_FERM)


def calico_builtin(direction: str, peer: End, packet: Probe) -> bool:
    """netpolc-default-deny: DNS (UDP and TCP 53) out to kube-dns; ICMP 3/4, ICMPv6 2 and 133-136."""
    if packet.protocol == "icmp":
        return (packet.icmp_type, packet.icmp_code) == (3, 4)
    if packet.protocol == "icmpv6":
        return packet.icmp_type in (2, 133, 134, 135, 136)
    return direction == "egress" and peer.kube_dns and packet.protocol in ("udp", "tcp") and packet.port == 53


# ====================================================================== the strategy
@st.composite
def estates(draw) -> Estate:  # noqa: C901 - one recipe, read top to bottom
    e = Estate()
    lines: list[str] = []
    e.router_count = draw(st.integers(1, 2))
    cluster_count = draw(st.integers(1, 2))
    node_roles = [f"worker{k}" for k in range(1, cluster_count + 1)]
    with_bastion = draw(st.booleans())
    with_lvs = draw(st.booleans())
    e.roles = {r: {"firewall": True, "ssh": False} for r in PLAIN_ROLES + node_roles}
    if with_bastion:
        e.roles["bastion"] = {"firewall": True, "ssh": True}
    if with_lvs:
        e.roles["lvs"] = {"firewall": False, "ssh": False}

    # ---- the site: rows, racks, hosts
    lines.append("site s1 {")
    for name, v4, v6 in ROUTERS[:e.router_count]:
        lines.append(f"  router {name} loopback {v4} {v6} asn 14907")
    rows = draw(st.integers(1, 3))
    host_index = 0
    for r in range(1, rows + 1):
        l3 = draw(st.booleans())
        dual = draw(st.booleans())
        sub4, sub6 = net(f"10.{r}.0.0/24"), net(f"2620:0:861:{r}::/64")
        e.subnets += [sub4] + ([sub6] if dual else [])
        e.gateways += [sub4[1]] + ([sub6[1]] if dual else [])
        subnet = f"subnet {sub4}" + (f" {sub6}" if dual else "")
        gateway = f"gateway {sub4[1]}" + (f" {sub6[1]}" if dual else "")
        lines.append(f"  row r{r} {{")
        if not l3:
            lines += [f"    switch asw-r{r}", f"    {subnet}", f"    {gateway}"]
        rack = Rack(f"k{r}", f"r{r}", l3, tuple([sub4] + ([sub6] if dual else [])),
                    tuple([sub4[1]] + ([sub6[1]] if dual else [])))
        e.racks[rack.name] = rack
        lines.append(f"    rack k{r} {{")
        if l3:
            lines += [f"      switch lsw-r{r} asn {64800 + r}", f"      {subnet}", f"      {gateway}"]
        for _ in range(draw(st.integers(1, 3))):
            host_index += 1
            name = f"h{host_index}"
            addresses = [sub4[10 + host_index]]
            if dual and draw(st.booleans()):
                addresses.append(sub6[10 + host_index])
            roles = draw(st.lists(st.sampled_from(PLAIN_ROLES), max_size=2, unique=True))
            extra = draw(st.sampled_from([None, *node_roles, *(["bastion"] if with_bastion else []),
                                          *(["lvs"] if with_lvs else [])]))
            if extra:
                roles.append(extra)
            e.hosts[name] = Host(name, tuple(addresses), tuple(roles))
            rack.hosts.append(name)
            role_text = f" roles {', '.join(roles)}" if roles else ""
            lines.append(f"      host {name} {' '.join(map(str, addresses))}{role_text}")
        lines += ["    }", "  }"]
    lines.append("}")
    # every node role and the ssh-gateway role on a host of their own (a cluster needs nodes)
    needed = [*node_roles, *(["bastion"] if with_bastion else [])]
    missing = [r for r in needed if not e.hosts_with(r)]
    if missing:
        lines.insert(-1, "  row rx {")
        sub4, sub6 = net("10.9.0.0/24"), net("2620:0:861:9::/64")
        e.subnets += [sub4, sub6]
        e.gateways += [sub4[1], sub6[1]]
        lines[-1:-1] = ["    switch asw-rx", f"    subnet {sub4} {sub6}", f"    gateway {sub4[1]} {sub6[1]}",
                        "    rack kx {"]
        e.racks["kx"] = Rack("kx", "rx", False, (sub4, sub6), (sub4[1], sub6[1]))
        for i, role in enumerate(missing):
            h = Host(f"x{i + 1}", (sub4[20 + i], sub6[20 + i]), (role,))
            e.hosts[h.name] = h
            e.racks["kx"].hosts.append(h.name)
            lines.insert(-1, f"      host {h.name} {' '.join(map(str, h.addresses))} roles {role}")
        lines[-1:-1] = ["    }", "  }"]

    # ---- clusters
    for k in range(1, cluster_count + 1):
        pods = [net(f"10.{100 + k}.0.0/22")]
        nodes = e.hosts_with(f"worker{k}")
        if all(len(h.addresses) == 2 for h in nodes) and draw(st.booleans()):  # IPv6 pods need IPv6 nodes
            pods.append(net(f"2620:0:861:ca{k:02x}::/64"))
        services = [net(f"10.{110 + k}.0.0/24")] if draw(st.booleans()) else []
        c = Cluster(f"c{k}", tuple(pods), tuple(services), f"worker{k}")
        e.clusters[c.name] = c
        lines += [f"cluster {c.name} {{", "  site s1", f"  asn {64600 + k}",
                  "  pods " + " ".join(map(str, pods))]
        if services:
            lines.append("  services " + " ".join(map(str, services)))
        lines.append(f"  nodes role {c.node_role}")
        racks = sorted({r.name for r in e.racks.values() for h in nodes if h.name in r.hosts})
        l3 = [r for r in racks if e.racks[r].l3]
        # the nodes of some L3 racks peer with their ToR, the others with the routers (nodes all
        # in one rack with a single uplink each is R104)
        tor = draw(st.lists(st.sampled_from(l3), unique=True).map(sorted)) if l3 and len(racks) > 1 else []
        for r in tor:
            e.tor_racks.add((c.name, r))
            lines.append(f"  peer-with tor for rack s1/{r}")
        if len(tor) < len(racks):
            lines.append("  peer-with routers")
        if tor:
            lines.append("  single-uplink max-share 100%")
        lines.append("}")

    # ---- apps (their names and listen first: statements need them)
    cluster_names = sorted(e.clusters)
    for i in range(1, draw(st.integers(1, 4)) + 1):
        clusters = tuple(draw(st.lists(st.sampled_from(cluster_names), min_size=1, unique=True).map(sorted)))
        namespace = draw(st.sampled_from([f"a{i}", "shared", f"ns{i}"]))
        listen = tuple(draw(st.lists(port_items(narrow=True), max_size=2, unique=True)))
        e.apps[f"a{i}"] = App(f"a{i}", clusters, namespace, listen)

    # ---- networks and services
    for i in range(1, draw(st.integers(0, 2)) + 1):
        members = draw(st.lists(network_members(e), min_size=1, max_size=3, unique=True))
        excepted = draw(st.lists(network_members(e).filter(lambda p: p.kind != "internet"), max_size=2,
                                 unique=True))
        union = AddrSet()
        for p in members:
            union = union | e.addresses(p)
        minus = tuple(n for p in excepted for n in e.addresses(p).nets)
        e.networks[f"n{i}"] = AddrSet(union.nets, union.anywhere, union.internet, minus)
        text = f"network n{i} = " + ", ".join(p.text() for p in members)
        if excepted:
            text += " except " + ", ".join(p.text() for p in excepted)
        lines.append(text)
    services: dict[str, tuple[Port, ...]] = {}
    for i in range(1, draw(st.integers(0, 2)) + 1):
        ports = tuple(draw(st.lists(port_items(), min_size=1, max_size=2, unique=True)))
        services[f"s{i}"] = ports
        lines.append(f"service s{i} = " + ", ".join(p.text() for p in ports))

    # ---- roles
    default_role = draw(st.booleans()) or with_bastion
    if default_role:
        e.default_role = "base"
        e.roles["base"] = {"firewall": True, "ssh": False}
    for role in sorted(e.roles):
        info = e.roles[role]
        body = []
        if not info["firewall"]:
            body.append("  firewall none")
        if info["ssh"]:
            body.append("  ssh-gateway")
        is_default = role == e.default_role
        if is_default and with_bastion:
            s = Statement("role", role, True, "allow", (Port("tcp", 22, 22),), "tcp 22", (Peer("role", "bastion"),))
            e.statements.append(s)
            body.append(s.text())
        for _ in range(draw(st.integers(0, 2))):
            s = draw(statements(e, "role", role, is_default, services))
            if s is not None:
                e.statements.append(s)
                body.append(s.text())
        lines.append(("default role " if is_default else "role ") + role + " {")
        lines += body + ["}"]

    # ---- apps
    if draw(st.booleans()):
        e.default_app = "everyone"
    for name in ([e.default_app] if e.default_app else []) + sorted(e.apps):
        is_default = name == e.default_app
        body = []
        if not is_default:
            a = e.apps[name]
            body.append(f"  clusters {', '.join(a.clusters)}")
            body.append(f"  namespace {a.namespace}")
            if a.listen:
                body.append("  listen " + ", ".join(p.text() for p in a.listen))
        for _ in range(draw(st.integers(0, 3))):
            s = draw(statements(e, "app", name, is_default, services))
            if s is not None:
                e.statements.append(s)
                body.append(s.text())
        lines.append(("default app " if is_default else "app ") + name + " {")
        lines += body + ["}"]
    e.text = "\n".join(lines) + "\n"
    return e


def port_items(narrow: bool = False) -> st.SearchStrategy[Port]:
    """A port item; `narrow`: not every port of a protocol (for `listen`, which `allow from any` may use)."""
    return st.sampled_from([t for t in PORT_ITEMS if not (narrow and t in WIDE)]).map(lambda t: Port(*t))


def network_members(e: Estate) -> st.SearchStrategy[Peer]:
    options = [Peer("host", h) for h in sorted(e.hosts)] + [Peer("role", r) for r in PLAIN_ROLES]
    options += [Peer("cidr", c) for c in ("10.1.0.0/25", "10.2.0.0/16", *PUBLIC_CIDRS)]
    options += [Peer("cluster", c) for c in sorted(e.clusters)] + [Peer("internet")] + topology_peers(e)
    return st.sampled_from(options)


def topology_peers(e: Estate) -> list[Peer]:
    """Routers, the site, every row and rack, and the ToR switches of L3 racks."""
    out = [Peer("router", name) for name, _, _ in ROUTERS[:e.router_count]] + [Peer("site", "s1")]
    for r in e.racks.values():
        out += [Peer("rack", f"s1/{r.name}"), Peer("row", f"s1/{r.row}")]
        if r.l3:
            out.append(Peer("switch", f"lsw-{r.row}"))
    return out


@st.composite
def statements(draw, e: Estate, owner_kind: str, owner: str, default: bool,
               services: dict[str, tuple[Port, ...]]) -> Statement | None:
    direction = draw(st.sampled_from(["allow", "connect"]))
    peer_options = [Peer("app", a) for a in sorted(e.apps)] + [Peer("role", r) for r in sorted(e.roles)
                                                                if r != e.default_role]
    peer_options += [Peer("host", h) for h in sorted(e.hosts)] + [Peer("network", n) for n in sorted(e.networks)]
    peer_options += [Peer("cidr", c) for c in ("10.1.0.0/25", "10.2.0.0/16", *PUBLIC_CIDRS)]
    peer_options += [Peer("cluster", c) for c in sorted(e.clusters)] + [Peer("internet"), Peer("any")]
    peer_options += topology_peers(e)
    if direction == "connect":  # egress to the whole internet names `internet` (safe defaults, E703)
        peer_options = [p for p in peer_options if not e.anywhere(p) or p.kind == "internet"]
    peers = tuple(draw(st.lists(st.sampled_from(peer_options), min_size=1, max_size=3, unique=True)))
    # the ports: written, a service, or (where the language allows it) the listen default
    listen_ok = owner_kind == "app" and (
        (direction == "allow" and (default or e.apps[owner].listen))
        or (direction == "connect" and all(p.kind == "app" and e.apps[p.name].listen for p in peers)))
    if owner_kind == "role" and direction == "connect":
        listen_ok = all(p.kind == "app" and e.apps[p.name].listen for p in peers)
    choice = draw(st.sampled_from(["ports", "service", "listen"]))
    if choice == "listen" and listen_ok:
        ports, text = None, ""
    elif choice == "service" and services:
        name = draw(st.sampled_from(sorted(services)))
        ports, text = services[name], f"service {name}"
    else:
        ports = tuple(draw(st.lists(port_items(), min_size=1, max_size=3, unique=True)))
        text = ", ".join(p.text() for p in ports)
    if ports is not None and any(e.anywhere(p) for p in peers) and WIDE & {
            (p.protocol, p.first, p.last) for p in ports}:
        return None  # every port from anywhere would reach the sensitive ones: a safe-default question
    clusters: tuple[str, ...] = ()
    if owner_kind == "app" and draw(st.integers(0, 3)) == 0:
        pool = sorted(e.clusters) if default else list(e.apps[owner].clusters)
        clusters = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, unique=True).map(sorted)))
    return Statement(owner_kind, owner, default, direction, ports, text, peers, clusters)

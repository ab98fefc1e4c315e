"""The Calico output admits exactly the declared intent: a connectivity matrix per cluster.

For each cluster of the reference estate (policies/), the emitted `calico/<cluster>/*.yaml` are
evaluated with tests/calico_eval.py (an independent model of Calico; nothing is imported from the
backend) and compared, packet by packet, with what the model's flows declare. The backend's
contract (the Calico spec of issue 4) fixes only what the intent cannot: the baseline of
netpolc-default-deny and how pods of other clusters are covered.

The matrix: every (source, destination, family) where at least one end is a pod of the cluster
(traffic between two addresses is not Calico's), over a probe set of TCP/UDP/SCTP ports (every port
of the intent with its neighbours, range ends and a port inside each range, a few fixed samples,
each tried with all three protocols) and ICMP/ICMPv6 types. Ends: a pod of every app of the
cluster, the kube-dns pod, a stray pod labelled like an app in a namespace netpolc does not manage,
every address of every host, an address in (and, for single addresses, next to) every CIDR of the
intent that holds no host (LVS VIPs, CDN addresses), and outside addresses (public and unrouted
private, both families). Pods of the other clusters are checked apart (see
test_pods_of_other_clusters_follow_the_contract). Faults seeded into the emitted text show the
matrix notices them; a small estate (TRICKY) covers the cases of verification.md 2.2 that the
reference estate lacks or masks.

Expected, per policed end (Calico polices a pod's egress and a pod's ingress, nothing else):
- a pod of an app of the cluster allows, in a direction, the ports of every flow (applying in this
  cluster) that names its app at that end (an `app` or `all-apps` endpoint) and whose other end
  matches the peer: an app endpoint matches pods of that app in this cluster; an address endpoint
  matches an address inside its CIDRs (pods included: a pod's address lies in `kubepods`); `any`
  matches everything; plus the contract's baseline: DNS (UDP and TCP 53) out to kube-dns, and in
  and out ICMP 3/4 and ICMPv6 2, 133-136;
- any other pod (kube-dns, the stray pod) is selected by no policy and allows everything;
- a connection is allowed iff both policed ends allow it.
Why per end and not "some flow names both ends": a flow names each end once, and the backend
compiles only the ends that are apps. `all-apps -> network kubepods, any` lets every pod send to
every pod address, but the destination pod still admits only what its own flows name (the flow's
own description says so); `network kubepods -> role cassandra` is a host firewall rule (a role's
`allow` is its hosts' firewall, docs/language.md "Allow and connect"), not a licence for every
pod's egress. Reading the flows as whole-connection facts would call both of
these allowed, which no per-end policy (Calico's or Kubernetes') can express.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml
from calico_eval import EGRESS, INGRESS, Cluster, IPAddress, Packet, Pod, make_pod

from compiler import model as m
from compiler.project import Result, compile_folder

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"

PORT_PROTOCOLS = ("tcp", "udp", "sctp")
FIXED_PORTS = {22, 80, 443, 53, 123, 38412}
ICMP_SAMPLES = {4: {(8, 0), (0, 0), (3, 4), (3, 1), (11, 0)},
                6: {(128, 0), (129, 0), (1, 4), (2, 0), (133, 0), (134, 0), (135, 0), (136, 0), (137, 0)}}
# the contract's baseline (netpolc-default-deny): ICMP type 3 code 4; ICMPv6 types 2, 133-136, any code
BASELINE_ICMP = {4: {(3, 4)}, 6: {(2, None), (133, None), (134, None), (135, None), (136, None)}}
BASELINE_DNS = {Packet("udp", 53), Packet("tcp", 53)}
OUTSIDE = ("8.8.8.8", "2001:4860:4860::8888", "192.168.254.77", "fd00:77::77")
KUBE_DNS = "kube-dns"
STRAY_NAMESPACE = "sandbox"  # a namespace netpolc does not manage


# ================================================================================ the estate
@cache
def estate() -> Result:
    result = compile_folder(POLICIES)
    assert result.ok, [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics if d.severity == "error"]
    return result


def clusters_with_apps(model: m.Model) -> list[str]:
    return sorted({c for a in model.apps.values() if not a.default for c in a.clusters})


def calico_texts(result: Result, cluster: str) -> dict[str, bytes]:
    return {path: data for path, data in result.files.items()
            if Path(path).parts[:2] == ("calico", cluster) and path.endswith(".yaml")}


def _networks(cidrs: Iterable) -> tuple:
    return tuple(ipaddress.ip_network(str(c)) for c in cidrs)


# ================================================================================ matrix ends
@dataclass(frozen=True, eq=False)
class End:
    """One end of the matrix: a pod of the cluster (app set when the pod is an app's), or an address
    (with app and cluster set for a pod of another cluster)."""

    name: str
    pod: Pod | None = None
    app: str | None = None
    address: IPAddress | None = None
    cluster: str | None = None

    def families(self) -> set[int]:
        return {a.version for a in self.pod.addresses} if self.pod else {self.address.version}

    def at(self, family: int) -> IPAddress:
        return self.pod.address(family) if self.pod else self.address

    @property
    def is_kube_dns(self) -> bool:
        return self.pod is not None and self.pod.labels.get("k8s-app") == KUBE_DNS


def pod_address(net: ipaddress.IPv4Network | ipaddress.IPv6Network, index: int) -> IPAddress:
    """A deterministic address inside the pod range: kube-dns at +53, the stray pod at +54, the apps
    at +100, +101, ..."""
    return net[index]


def pods_of(model: m.Model, cluster: str) -> list[End]:
    """kube-dns, a stray pod labelled like the first app but in an unmanaged namespace, and a pod of
    every app of the cluster."""
    nets = _networks(model.clusters[cluster].pod_cidrs)
    apps = sorted(a.name for a in model.apps.values() if not a.default and cluster in a.clusters)
    ends = [End(f"pod {KUBE_DNS}", make_pod("coredns-0", "kube-system", {"k8s-app": KUBE_DNS},
                                           [pod_address(n, 53) for n in nets])),
            End(f"pod {STRAY_NAMESPACE}/{apps[0]}", make_pod(f"{apps[0]}-lookalike", STRAY_NAMESPACE,
                                                              {"app": apps[0]}, [pod_address(n, 54) for n in nets]))]
    for i, name in enumerate(apps):
        app = model.apps[name]
        pod = make_pod(f"{name}-0", app.namespace or name, {"app": name}, [pod_address(n, 100 + i) for n in nets])
        ends.append(End(f"pod {name}", pod, name))
    return ends


def remote_pods_of(model: m.Model, cluster: str) -> list[End]:
    """The app pods of the other clusters, at the addresses they have in their own cluster's matrix."""
    return [End(f"remote pod {other}/{e.app} {a}", address=a, app=e.app, cluster=other)
            for other in clusters_with_apps(model) if other != cluster
            for e in pods_of(model, other) if e.app for a in e.pod.addresses]


def addresses_of(model: m.Model) -> list[End]:
    """Every host address; for every CIDR of an address endpoint of the intent that holds no host
    (LVS VIPs, CDN addresses, ranges), an address inside it and, for a single address, the next one;
    the outside addresses."""
    ends = [End(f"host {h.name} {a}", address=ipaddress.ip_address(str(a)))
            for h in model.hosts.values() for a in h.addresses]
    seen = {e.address for e in ends}
    cidrs = {net: e.label for f in model.flows for e in (*f.sources, *f.destinations)
             if e.kind not in ("app", "all-apps", "any") for net in _networks(e.cidrs)}
    for net, label in sorted(cidrs.items(), key=lambda item: (item[0].version, item[0])):
        if any(a in net for a in seen):
            continue
        inside = net[0] if net.num_addresses == 1 else net[1]
        ends.append(End(f"address {inside} (in {label})", address=inside))
        seen.add(inside)
        after = net.broadcast_address + 1
        if net.num_addresses == 1 and after not in seen:
            ends.append(End(f"address {after} (next to {label})", address=after))
            seen.add(after)
    ends += [End(f"outside {a}", address=ipaddress.ip_address(a)) for a in OUTSIDE]
    return ends


# ================================================================================ probes
def all_port_matches(model: m.Model) -> list[m.PortMatch]:
    found = [p for f in model.flows for p in f.ports]
    found += [p for a in model.apps.values() for p in a.listen]
    return found


def probes(model: m.Model) -> dict[int, tuple[Packet, ...]]:
    """The packets tried per family: ports of the intent and around them in every port protocol, ICMP."""
    ports = set(FIXED_PORTS)
    icmp = {4: set(ICMP_SAMPLES[4]), 6: set(ICMP_SAMPLES[6])}
    for pm in all_port_matches(model):
        if pm.protocol in PORT_PROTOCOLS:
            if pm.first is None:
                ports |= {1, 1024, 65535}
            else:
                ports |= {pm.first - 1, pm.first, pm.last, pm.last + 1, (pm.first + pm.last) // 2}
        elif pm.protocol in ("icmp", "icmpv6") and pm.icmp_type is not None:
            family = 4 if pm.protocol == "icmp" else 6
            icmp[family] |= {(pm.icmp_type, pm.icmp_code or 0), (pm.icmp_type, (pm.icmp_code or 0) + 1)}
    layer4 = [Packet(proto, port) for proto in PORT_PROTOCOLS for port in sorted(ports) if 1 <= port <= 65535]
    return {family: tuple(layer4 + [Packet("icmp" if family == 4 else "icmpv6", icmp_type=t, icmp_code=c)
                                    for t, c in sorted(icmp[family])])
            for family in (4, 6)}


# ================================================================================ the intent
def port_allows(pm: m.PortMatch, packet: Packet) -> bool:
    if pm.protocol == "any":
        return True
    if pm.protocol != packet.protocol:
        return False
    if pm.protocol in ("icmp", "icmpv6"):
        return (pm.icmp_type is None or pm.icmp_type == packet.icmp_type) and (
            pm.icmp_code is None or pm.icmp_code == packet.icmp_code)
    return pm.first is None or pm.first <= packet.port <= pm.last


def baseline_allows(direction: str, peer: End, packet: Packet, family: int) -> bool:
    if packet.protocol in ("icmp", "icmpv6"):
        return any(t == packet.icmp_type and c in (None, packet.icmp_code) for t, c in BASELINE_ICMP[family])
    return direction == EGRESS and peer.is_kube_dns and packet in BASELINE_DNS


class Intent:
    """What the model's flows allow at one policed end in one cluster."""

    def __init__(self, model: m.Model, cluster: str):
        self.model = model
        self.cluster = cluster
        self.local_apps = {a.name for a in model.apps.values() if not a.default and cluster in a.clusters}
        self.flows = [f for f in model.flows if not f.rule.clusters or cluster in f.rule.clusters]
        self._nets = {id(e): _networks(e.cidrs) for f in self.flows for e in (*f.sources, *f.destinations)}
        self._results: dict[tuple, frozenset[Packet]] = {}
        self._packet_tuples: dict[int, tuple[Packet, ...]] = {}  # keeps the tuples keyed by id() alive

    @staticmethod
    def names_app(endpoint: m.Endpoint, app: str) -> bool:
        return endpoint.kind in ("app", "all-apps") and app in endpoint.apps

    def matches(self, endpoint: m.Endpoint, end: End, family: int) -> bool:
        if endpoint.kind in ("app", "all-apps"):
            if end.cluster is None and end.app is None:
                # a bare address: inside another cluster's pod range it is a pod there, which an app
                # peer running in that cluster covers by the range (see below)
                address = end.at(family)
                return any(address in ipaddress.ip_network(str(n)) for b in endpoint.apps
                           for c in self.model.apps[b].clusters if c != self.cluster
                           for n in self.model.clusters[c].pod_cidrs if n.version == family)
            if end.cluster is None:
                return end.app is not None and end.app in endpoint.apps
            # A pod of another cluster: an app peer covers its pods in its other clusters through
            # those clusters' pod ranges (any pod there, at this end; the pod's own end polices
            # the rest). See test_pods_of_other_clusters_follow_the_contract.
            return any(end.cluster in self.model.apps[b].clusters for b in endpoint.apps)
        address = end.at(family)
        return any(address in net for net in self._nets[id(endpoint)])

    def granting_flows(self, end: End, direction: str, peer: End, family: int) -> tuple[int, ...]:
        """Indices of the flows that name `end` (a pod of an app) at its side and match the peer."""
        out = []
        for i, f in enumerate(self.flows):
            local, remote = (f.sources, f.destinations) if direction == EGRESS else (f.destinations, f.sources)
            if any(self.names_app(e, end.app) for e in local) and any(self.matches(e, peer, family) for e in remote):
                out.append(i)
        return tuple(out)

    def allowed(self, end: End, direction: str, peer: End, family: int, packets: tuple[Packet, ...]) -> frozenset:
        if end.app is None:  # not an app of the cluster: no policy selects it
            return frozenset(packets)
        granting = self.granting_flows(end, direction, peer, family)
        self._packet_tuples.setdefault(id(packets), packets)
        key = (granting, direction, peer.is_kube_dns, family, id(packets))
        if key not in self._results:
            ports = [p for i in granting for p in self.flows[i].ports]
            self._results[key] = frozenset(
                pk for pk in packets
                if baseline_allows(direction, peer, pk, family) or any(port_allows(p, pk) for p in ports))
        return self._results[key]

    def explain(self, end: End, direction: str, peer: End, family: int, packet: Packet) -> str:
        if end.app is None:
            return f"{direction.lower()} at {end.name}: not an app, unpoliced"
        if baseline_allows(direction, peer, packet, family):
            return f"{direction.lower()} at {end.name}: the contract's baseline"
        for i in self.granting_flows(end, direction, peer, family):
            f = self.flows[i]
            if any(port_allows(p, packet) for p in f.ports):
                return f"{direction.lower()} at {end.name}: flow {f.rule.span} ({f.rule.owner} {f.rule.direction})"
        return f"{direction.lower()} at {end.name}: no flow"


# ================================================================================ the matrix
@dataclass
class Difference:
    source: End
    destination: End
    family: int
    unintended: list[Packet]  # allowed by Calico, not by the intent
    missing: list[Packet]  # intended, denied by Calico


class Matrix:
    def __init__(self, result: Result, cluster: str, texts: dict[str, bytes] | None = None):
        self.model = result.model
        self.cluster_name = cluster
        self.texts = calico_texts(result, cluster) if texts is None else texts
        self.pods = pods_of(self.model, cluster)
        self.addresses = addresses_of(self.model)
        self.calico = Cluster.from_yaml(self.texts.values(), [e.pod for e in self.pods])
        self.intent = Intent(self.model, cluster)
        self.probes = probes(self.model)
        self.ends = {e.name: e for e in self.pods + self.addresses}

    def verdict(self, source: str, destination: str, packet: Packet, family: int = 4) -> tuple[bool, bool]:
        """(Calico's answer, the intent's answer) for one packet between two named ends."""
        src, dst, single = self.ends[source], self.ends[destination], (packet,)
        calico = self.calico.allows(src.pod or src.address, dst.pod or dst.address, packet, family)
        intent = True
        if src.pod:
            intent &= packet in self.intent.allowed(src, EGRESS, dst, family, single)
        if dst.pod:
            intent &= packet in self.intent.allowed(dst, INGRESS, src, family, single)
        return calico, intent

    def pairs(self, peers: list[End] | None = None) -> Iterable[tuple[End, End, int]]:
        for a in self.pods:
            for b in self.pods + self.addresses if peers is None else peers:
                for family in sorted(a.families() & b.families()):
                    yield a, b, family
                    if b.pod is None:
                        yield b, a, family

    def actual(self, src: End, dst: End, family: int) -> frozenset[Packet]:
        packets = self.probes[family]
        allowed = frozenset(packets)
        if src.pod:
            allowed &= self.calico.end_allowed_packets(src.pod, EGRESS, dst.at(family), packets)
        if dst.pod:
            allowed &= self.calico.end_allowed_packets(dst.pod, INGRESS, src.at(family), packets)
        return allowed

    def expected(self, src: End, dst: End, family: int) -> frozenset[Packet]:
        packets = self.probes[family]
        allowed = frozenset(packets)
        if src.pod:
            allowed &= self.intent.allowed(src, EGRESS, dst, family, packets)
        if dst.pod:
            allowed &= self.intent.allowed(dst, INGRESS, src, family, packets)
        return allowed

    def differences(self, peers: list[End] | None = None) -> list[Difference]:
        out = []
        for src, dst, family in self.pairs(peers):
            got, want = self.actual(src, dst, family), self.expected(src, dst, family)
            if got != want:
                out.append(Difference(src, dst, family, sorted(got - want), sorted(want - got)))
        return out

    def describe(self, d: Difference, limit: int = 1) -> list[str]:
        lines = [f"{self.cluster_name}: {d.source.name} -> {d.destination.name} (IPv{d.family})"]
        for label, packets in (("allowed, not intended", d.unintended), ("intended, denied", d.missing)):
            if not packets:
                continue
            lines.append(f"  {label}: {summarize(packets)}")
            for packet in packets[:limit]:
                _, reasons = self.calico.connection(d.source.pod or d.source.address,
                                                    d.destination.pod or d.destination.address, packet, d.family)
                intent = [self.intent.explain(e, direction, peer, d.family, packet)
                          for e, direction, peer in ((d.source, EGRESS, d.destination),
                                                     (d.destination, INGRESS, d.source)) if e.pod]
                lines.append(f"    {packet}: calico: {'; '.join(reasons)}")
                lines.append(f"    {packet}: intent: {'; '.join(intent)}")
        return lines


def summarize(packets: list[Packet]) -> str:
    by_protocol: dict[str, list[str]] = {}
    for p in packets:
        detail = str(p).split(" ", 1)[1]
        by_protocol.setdefault(p.protocol, []).append(detail)
    return "; ".join(f"{proto} {', '.join(items)}" for proto, items in by_protocol.items())


@cache
def matrix(cluster: str) -> Matrix:
    return Matrix(estate(), cluster)


def report(mx: Matrix, diffs: list[Difference], shown: int = 25) -> str:
    lines = [f"{len(diffs)} (source, destination, family) cells differ in {mx.cluster_name}; the first {shown}:"]
    for d in diffs[:shown]:
        lines += mx.describe(d)
    return "\n".join(lines)


CLUSTERS = clusters_with_apps(compile_folder(POLICIES, render=False).model)


# ================================================================================ the tests
def test_every_cluster_with_apps_has_its_three_kinds_of_files():
    result = estate()
    for cluster in CLUSTERS:
        names = {Path(p).name for p in calico_texts(result, cluster)}
        namespaces = {a.namespace or a.name for a in result.model.apps.values()
                      if not a.default and cluster in a.clusters}
        assert names == {"globalnetworksets.yaml", "globalnetworkpolicies.yaml"} | {f"{n}.yaml" for n in namespaces}
        for path, data in calico_texts(result, cluster).items():
            assert data.decode().startswith("# Generated by netpolc; do not edit.\n"), path


def test_each_file_holds_its_kind_sorted_by_name():
    for cluster in CLUSTERS:
        for path, data in calico_texts(estate(), cluster).items():
            docs = [d for d in yaml.safe_load_all(data) if d is not None]
            stem = Path(path).stem
            kind = {"globalnetworksets": "GlobalNetworkSet", "globalnetworkpolicies": "GlobalNetworkPolicy"}.get(
                stem, "NetworkPolicy")
            assert {d["kind"] for d in docs} == {kind}, path
            names = [d["metadata"]["name"] for d in docs]
            assert names == sorted(names), path
            if kind == "NetworkPolicy":
                assert {d["metadata"]["namespace"] for d in docs} == {stem}, path


def test_the_outside_addresses_are_outside():
    """The public and private probes are in no endpoint of the intent but `any` and `internet`:
    they test the default (and, for `internet`, its set)."""
    model = estate().model
    for address in OUTSIDE:
        a = ipaddress.ip_address(address)
        holders = {e.label for f in model.flows for e in (*f.sources, *f.destinations)
                   if e.kind not in ("any", "internet") and any(a in net for net in _networks(e.cidrs))}
        assert holders == set(), (address, holders)
    assert not {e.kind for f in model.flows for e in (*f.sources, *f.destinations) if e.apps} - {"app", "all-apps"}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_calico_admits_exactly_the_intent(cluster):
    mx = matrix(cluster)
    diffs = mx.differences()
    assert not diffs, report(mx, diffs)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_pods_of_other_clusters_follow_the_contract(cluster):
    """Pod ranges are routed between clusters, so pods of other clusters are peers too. An app peer
    covers its pods in its other clusters through their pod ranges (at this end, any pod there): so
    `allow tcp 4969 from app citoid` in zotero admits citoid pods of the other clusters, and
    `allow tcp 4492 from app mobileapps` in eventgate-main the staging mobileapps pods. That each end
    alone admits the whole remote range is the price of labels not crossing clusters; the remote
    pod's own policy narrows the connection to the app."""
    mx = matrix(cluster)
    diffs = mx.differences(remote_pods_of(mx.model, cluster))
    assert not diffs, report(mx, diffs)


# Faults seeded into the emitted text (not into the compiler): the matrix must notice each one.
# (file, text to replace, replacement, the kind of difference expected)
SEEDED_FAULTS = [
    ("wikikube-eqiad", "eventgate-main.yaml", '"9092:9093"', '"9092:9094"', "unintended"),  # a range end
    ("wikikube-eqiad", "eventgate-main.yaml", '"9092:9093"', '"9093:9093"', "missing"),
    ("staging-eqiad", "zotero.yaml", "protocol: TCP", "protocol: UDP", "both"),  # TCP opened as UDP
    # the peer app's namespace dropped: app == 'citoid' then means citoid pods in zotero's namespace
    ("staging-eqiad", "zotero.yaml", "namespaceSelector: \"projectcalico.org/name == 'citoid'\"\n", "", "missing"),
    # the default deny selecting every namespace: kube-dns becomes policed and refuses DNS
    ("staging-eqiad", "globalnetworkpolicies.yaml",
     "namespaceSelector: \"projectcalico.org/name in {'citoid', 'mathoid', 'mobileapps', 'proton', "
     "'push-notifications', 'termbox', 'zotero'}\"\n  order: 2000", "order: 2000", "missing"),
    ("staging-eqiad", "globalnetworksets.yaml", "  - 10.2.1.16/32\n", "  - 10.2.1.16/32\n  - 8.8.8.8/32\n",
     "unintended"),  # a set too wide
    ("staging-eqiad", "citoid.yaml", "  - Egress\n", "", "missing"),  # citoid's own egress rules ignored
]


@pytest.mark.parametrize(("cluster", "file", "old", "new", "kind"), SEEDED_FAULTS,
                         ids=[f"{c}-{f}-{i}" for i, (c, f, *_) in enumerate(SEEDED_FAULTS)])
def test_the_matrix_notices_seeded_faults(cluster, file, old, new, kind):
    texts = dict(calico_texts(estate(), cluster))
    path = f"calico/{cluster}/{file}"
    assert old in texts[path].decode(), f"the seed no longer applies to {path}: {old!r}"
    texts[path] = texts[path].decode().replace(old, new).encode()
    diffs = Matrix(estate(), cluster, texts).differences()
    unintended, missing = any(d.unintended for d in diffs), any(d.missing for d in diffs)
    assert (unintended, missing) == {"unintended": (True, False), "missing": (False, True), "both": (True, True)}[kind]


# ================================================================================ tricky cases (verification.md 2.2)
# Each check states the answer and requires both Calico's (from the emitted YAML) and the intent's.
ALLOWED, DENIED = (True, True), (False, False)


def tcp(port: int) -> Packet:
    return Packet("tcp", port)


def udp(port: int) -> Packet:
    return Packet("udp", port)


def sctp(port: int) -> Packet:
    return Packet("sctp", port)


def icmp(icmp_type: int, code: int = 0) -> Packet:
    return Packet("icmp", icmp_type=icmp_type, icmp_code=code)


def icmp6(icmp_type: int, code: int = 0) -> Packet:
    return Packet("icmpv6", icmp_type=icmp_type, icmp_code=code)


# A small dual-stack estate written for the cases the reference estate does not show (or masks:
# its default app allows every ICMP and every pod address, hiding the contract's baseline).
TRICKY = """\
site eqiad {
  router cr1-eqiad loopback 208.80.154.196 2620:0:861:ffff::1 asn 14907
  router cr2-eqiad loopback 208.80.154.197 2620:0:861:ffff::2 asn 14907
  row a {
    switch asw2-a-eqiad
    subnet 10.64.0.0/22 2620:0:861:101::/64
    gateway 10.64.0.1 2620:0:861:101::1
    rack a4 {
      host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker
      host prom1001 10.64.0.20 2620:0:861:101::20 roles prometheus
      host mon1001 10.64.0.30 2620:0:861:101::30 roles monitoring
    }
  }
  row b {
    switch asw2-b-eqiad
    subnet 10.64.16.0/22 2620:0:861:102::/64
    gateway 10.64.16.1 2620:0:861:102::1
    rack b2 {
      host kube1001 10.64.16.11 2620:0:861:102::11 roles k8s-worker
      host kube1002 10.64.16.12 2620:0:861:102::12 roles k8s-worker
      host kube1003 10.64.16.13 2620:0:861:102::13 roles aux-worker
    }
  }
}

cluster wikikube-eqiad {
  site eqiad
  asn 64601
  pods 10.64.64.0/21 2620:0:861:cabe::/64
  services 10.64.72.0/24
  nodes role k8s-worker
  peer-with routers
}

cluster aux-eqiad {
  site eqiad
  asn 64602
  pods 10.64.80.0/21 2620:0:861:cafe::/64
  services 10.64.88.0/24
  nodes role aux-worker
  peer-with routers
}

role kafka-broker { allow tcp 9092 from network internal }
role prometheus { connect tcp 9100 to role k8s-worker }
role monitoring { connect tcp 22 to role k8s-worker }
role k8s-worker { allow tcp 9100 from role prometheus }
role aux-worker { allow tcp 9100 from role prometheus }

network internal = 10.0.0.0/8
network kafka1001-v4 = 10.64.0.10
network monitoring-v4 = 10.64.0.30

default app everywhere {
  allow tcp 9102 from role prometheus
}

app web {
  cluster wikikube-eqiad
  listen tcp 8080
  connect to app api
}

app api {
  cluster wikikube-eqiad
  listen tcp 9000, 9001
  allow from app web
}

app tricky {
  clusters wikikube-eqiad, aux-eqiad
  namespace trick
  listen tcp 8000-8010
  allow from app web description "its listen range"
  allow udp 5353 from app api
  allow sctp 38412 from role kafka-broker
  allow tcp from network monitoring-v4
  connect tcp 9092 to network kafka1001-v4
  connect udp to role kafka-broker
  connect tcp 9094 to network kafka1001-v4 in cluster aux-eqiad
}
"""
KAFKA4, KAFKA6 = "host kafka1001 10.64.0.10", "host kafka1001 2620:0:861:101::10"
MON4, MON6 = "host mon1001 10.64.0.30", "host mon1001 2620:0:861:101::30"
PROM4 = "host prom1001 10.64.0.20"
STRAY_API = f"pod {STRAY_NAMESPACE}/api"  # app == 'api' (the first app) in an unmanaged namespace


@pytest.fixture(scope="module")
def tricky_estate(tmp_path_factory) -> Result:
    folder = tmp_path_factory.mktemp("tricky")
    (folder / "estate.npl").write_text(TRICKY)
    result = compile_folder(folder)
    assert result.ok, [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics]
    return result


@pytest.fixture(scope="module")
def tricky(tricky_estate) -> Matrix:
    return Matrix(tricky_estate, "wikikube-eqiad")


@pytest.fixture(scope="module")
def tricky_aux(tricky_estate) -> Matrix:
    return Matrix(tricky_estate, "aux-eqiad")


def test_tricky_estate_admits_exactly_its_intent(tricky, tricky_aux):
    for mx in (tricky, tricky_aux):
        diffs = mx.differences() + mx.differences(remote_pods_of(mx.model, mx.cluster_name))
        assert not diffs, report(mx, diffs)


def test_a_statement_in_one_cluster_only(tricky, tricky_aux):
    assert tricky_aux.verdict("pod tricky", KAFKA4, tcp(9094)) == ALLOWED
    assert tricky.verdict("pod tricky", KAFKA4, tcp(9094)) == DENIED
    assert tricky.verdict("pod tricky", KAFKA4, tcp(9092)) == ALLOWED


def test_an_app_of_another_cluster_is_its_pod_ranges(tricky_aux):
    # web runs in wikikube-eqiad only: in aux-eqiad, `allow from app web` admits its pod ranges
    web = next(e for e in remote_pods_of(tricky_aux.model, "aux-eqiad") if e.app == "web" and e.address.version == 4)
    pod = tricky_aux.ends["pod tricky"].pod
    assert tricky_aux.calico.end_allows(pod, INGRESS, web.address, tcp(8000))
    assert tricky_aux.calico.end_allows(pod, INGRESS, ipaddress.ip_address("10.64.64.1"), tcp(8000))
    assert not tricky_aux.calico.end_allows(pod, INGRESS, ipaddress.ip_address("10.64.72.1"), tcp(8000))


def test_one_peer_ands_selector_and_namespace_two_peers_or(tricky):
    assert tricky.verdict("pod api", "pod tricky", udp(5353)) == ALLOWED
    assert tricky.verdict("pod web", "pod tricky", tcp(8000)) == ALLOWED
    # the peers are ORed, each with its own ports
    assert tricky.verdict("pod web", "pod tricky", udp(5353)) == DENIED
    assert tricky.verdict("pod api", "pod tricky", tcp(8000)) == DENIED
    # app == 'api' in another namespace is not app api: selector AND namespaceSelector
    assert tricky.verdict(STRAY_API, "pod tricky", udp(5353)) == DENIED
    assert not tricky.calico.end_allows(tricky.ends["pod tricky"].pod, INGRESS,
                                        tricky.ends[STRAY_API].pod.address(4), udp(5353))


def test_protocol_only_rules_open_every_port_of_that_protocol_only(tricky):
    for port in (1, 22, 7999, 8011, 65535):
        assert tricky.verdict(MON4, "pod tricky", tcp(port)) == ALLOWED, port
    assert tricky.verdict(MON4, "pod tricky", udp(22)) == DENIED
    assert tricky.verdict(MON4, "pod tricky", sctp(22)) == DENIED
    assert tricky.verdict(MON4, "pod tricky", icmp(8)) == DENIED
    for port in (1, 53, 65535):
        assert tricky.verdict("pod tricky", KAFKA4, udp(port)) == ALLOWED, port
        assert tricky.verdict("pod tricky", KAFKA6, udp(port), 6) == ALLOWED, port
    assert tricky.verdict("pod tricky", KAFKA4, tcp(53)) == DENIED


def test_port_range_ends_and_just_outside(tricky):
    for port, answer in ((7999, DENIED), (8000, ALLOWED), (8005, ALLOWED), (8010, ALLOWED), (8011, DENIED)):
        assert tricky.verdict("pod web", "pod tricky", tcp(port)) == answer, port
        assert tricky.verdict("pod web", "pod tricky", tcp(port), 6) == answer, port
        assert tricky.verdict("pod web", "pod tricky", udp(port)) == DENIED, port


def test_sctp_and_udp_never_open_tcp(tricky):
    for family, kafka in ((4, KAFKA4), (6, KAFKA6)):
        assert tricky.verdict(kafka, "pod tricky", sctp(38412), family) == ALLOWED
        assert tricky.verdict(kafka, "pod tricky", tcp(38412), family) == DENIED
        assert tricky.verdict(kafka, "pod tricky", udp(38412), family) == DENIED
    assert tricky.verdict("pod api", "pod tricky", tcp(5353)) == DENIED
    assert tricky.verdict("pod api", "pod tricky", sctp(5353)) == DENIED


def test_an_ipv4_only_set_does_not_admit_ipv6(tricky):
    assert tricky.verdict("pod tricky", KAFKA4, tcp(9092)) == ALLOWED
    assert tricky.verdict("pod tricky", KAFKA6, tcp(9092), 6) == DENIED
    assert tricky.verdict(MON6, "pod tricky", tcp(22), 6) == DENIED


def test_several_policies_select_one_pod(tricky):
    pod = tricky.ends["pod tricky"].pod
    for direction in (INGRESS, EGRESS):
        assert [(t.name, [(p.name, p.order) for p in ps]) for t, ps in tricky.calico.applicable(pod, direction)] == [
            ("default", [("tricky", 100), ("netpolc-app-everywhere", 200), ("netpolc-default-deny", 2000)])]
    # each policy decides what only it allows; what none allows meets the end of the tier
    decided_by = {
        (PROM4, tcp(9102)): "GlobalNetworkPolicy netpolc-app-everywhere ingress",
        (MON4, tcp(9102)): "NetworkPolicy trick/tricky ingress",
        ("outside 8.8.8.8", icmp(3, 4)): "GlobalNetworkPolicy netpolc-default-deny ingress",
        ("outside 8.8.8.8", icmp(8)): "end of tier default",
    }
    for (peer, packet), policy in decided_by.items():
        assert tricky.calico.end_decision(pod, INGRESS, tricky.ends[peer].address, packet)[1].startswith(policy)
    assert tricky.verdict(PROM4, "pod tricky", tcp(9102)) == ALLOWED
    assert tricky.verdict(PROM4, "pod tricky", tcp(9103)) == DENIED


def test_the_baseline_dns_and_icmp(tricky):
    assert tricky.verdict("pod web", "pod kube-dns", udp(53)) == ALLOWED
    assert tricky.verdict("pod web", "pod kube-dns", tcp(53), 6) == ALLOWED
    assert tricky.verdict("pod web", "pod kube-dns", udp(54)) == DENIED
    assert tricky.verdict("pod web", "outside 8.8.8.8", udp(53)) == DENIED  # DNS goes to kube-dns only
    for peer, family in (("outside 8.8.8.8", 4), ("outside 2001:4860:4860::8888", 6)):
        for a, b in ((peer, "pod web"), ("pod web", peer)):
            good, bad = ((icmp(3, 4), [icmp(3, 1), icmp(8), icmp(0)]) if family == 4
                         else (icmp6(2), [icmp6(128), icmp6(137), icmp6(1, 4)]))
            assert tricky.verdict(a, b, good, family) == ALLOWED
            for packet in bad:
                assert tricky.verdict(a, b, packet, family) == DENIED, packet
        if family == 6:
            for t in (133, 134, 135, 136):
                assert tricky.verdict(peer, "pod web", icmp6(t), 6) == ALLOWED, t


def test_unselected_pods_allow_everything(tricky):
    for name in ("pod kube-dns", STRAY_API):
        pod = tricky.ends[name].pod
        assert tricky.calico.applicable(pod, INGRESS) == () and tricky.calico.applicable(pod, EGRESS) == ()
        assert tricky.verdict("outside 8.8.8.8", name, tcp(12345)) == ALLOWED
        assert tricky.verdict(name, "outside 2001:4860:4860::8888", sctp(9), 6) == ALLOWED


# the same cases where the reference estate has them
def test_reference_range_ends_and_protocols():
    mx = matrix("wikikube-eqiad")
    kafka = next(n for n in mx.ends if n.startswith("host kafka1001 10."))
    for port, answer in ((9091, DENIED), (9092, ALLOWED), (9093, ALLOWED), (9094, DENIED)):
        assert mx.verdict("pod eventgate-main", kafka, tcp(port)) == answer, port
        assert mx.verdict("pod eventgate-main", kafka, udp(port)) == DENIED, port
    statsd = "address 10.64.32.155 (in network statsd)"
    assert mx.verdict("pod citoid", statsd, udp(8125)) == ALLOWED
    assert mx.verdict("pod citoid", statsd, tcp(8125)) == DENIED
    assert mx.verdict("pod citoid", statsd, sctp(8125)) == DENIED


def test_reference_and_peers_multiple_policies_and_unselected_pods():
    mx = matrix("staging-eqiad")
    zotero, stray = mx.ends["pod zotero"].pod, mx.ends[f"pod {STRAY_NAMESPACE}/citoid"].pod
    assert mx.calico.end_allows(zotero, INGRESS, mx.ends["pod citoid"].pod.address(4), tcp(4969))
    assert not mx.calico.end_allows(zotero, INGRESS, stray.address(4), tcp(4969))  # app == 'citoid', not citoid
    assert mx.verdict(f"pod {STRAY_NAMESPACE}/citoid", "pod zotero", tcp(4969)) == DENIED
    assert [p.name for _, ps in mx.calico.applicable(zotero, INGRESS) for p in ps] == [
        "zotero", "netpolc-app-baseline", "netpolc-default-deny"]
    for name in ("pod kube-dns", f"pod {STRAY_NAMESPACE}/citoid"):
        assert mx.verdict("outside 8.8.8.8", name, tcp(4242)) == ALLOWED

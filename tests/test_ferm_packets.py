"""Real packets through the compiled host firewalls (issue 5, "Real packets").

For a Kubernetes worker in an L2 row and one in an L3 rack, an etcd server, a Kafka broker, a
bastion and a MariaDB host of the reference estate (policies/), the test builds a lab of network
namespaces (tests/ferm_netns.py): one for the host, with its real IPv4 and IPv6 addresses, and one
per class of sources, each with a real address of that class (a bastion, a cumin master, a
Prometheus server, an icinga host, an ordinary host, pods of the clusters, BGP speakers that are
and are not the host's peers, an address outside the estate...), all joined by a bridge in a
switch namespace. Then, as the Puppet module (examples/puppet) deploys it:

1. KUBE-* and cali-* chains (and jumps to them) are seeded with the legacy tools ferm uses;
2. the compiled file is the whole ruleset: `<tmp>/etc/ferm/ferm.conf` is `@include 'conf.d/';`
   and the file is `conf.d/netpolc.conf`; the real `ferm` applies it in the host's namespace;
3. the seeded chains are still there, INPUT is the file's (policy DROP, no seeded jump);
4. echo servers listen in the host's namespace on every TCP/UDP port the policy declares for
   the host and on a sample of undeclared ones, both protocols on each, both families;
5. every source class probes every (protocol, port, family), all in parallel with 1.5 s per
   probe; meanwhile the host connects out to a listener in the outside class's namespace
   (TCP and UDP, both families), whose replies only the ESTABLISHED/RELATED line can let in;
6. the observed matrix (source class, protocol, port, family) -> open must equal the expected
   one exactly. The expectation is computed here from the model's flows and the BGP peering
   graph, not from compiler.analysis.hostfw nor from the file: a flow opens port P to a source
   on host H when one of its destinations is `host H`, a role H has (the default role
   included) or `all hosts`, and the source's address is in one of its source endpoints (an
   app: the pod ranges of its clusters, only those of the rule's `in cluster`; `any`: every
   address); TCP 179 is open to the host's BGP peers as the peering graph gives them, per
   family. Hand-written facts from policies/*.npl check that expectation too.

IPv6 working at all proves neighbour discovery passes the file (no probe can be answered
without it; addresses are `nodad` and nothing talks before the file is applied). Every
namespace and process is removed afterwards, and leftovers of a crashed run at the start.
Like the other ferm tests it skips only when not root and CI is unset; under CI it runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ferm_format import parse
from ferm_netns import Endpoint, Lab, cleanup_leftovers
from netaddr import IPAddress, IPNetwork, IPSet

from compiler import analysis
from compiler import model as m
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
SBIN = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
TOOLS = ("ip", "sysctl", "ferm", "iptables-legacy-restore", "ip6tables-legacy-restore", "iptables-legacy-save",
         "ip6tables-legacy-save")
# ports probed on every host besides its declared ones (each with TCP and UDP)
SAMPLE_PORTS = (23, 53, 80, 443, 2379, 3306, 5473, 6443, 8443, 9092, 10250, 30080)
OUTBOUND_PORT = 8443  # the host connects out to this port of the outside class
FERM_CONF = "# Managed by Puppet (netpolc_ferm): the ruleset is in conf.d/, compiled by netpolc.\n@include 'conf.d/';\n"


# ------------------------------------------------------------------ the source classes (hand-picked)
@dataclass(frozen=True)
class Source:
    """A class of sources: `label` in the matrix; `kind`/`name` say what its addresses are (the
    test checks it against the model): a host, a cluster's pods, a router's loopback, a rack's
    gateway (its ToR), an address of a named network, or `outside` (in nothing the estate names)."""

    label: str
    kind: str
    name: str
    addresses: tuple[str, ...]


def _s(label: str, kind: str, name: str, *addresses: str) -> Source:
    return Source(label, kind, name, addresses)


COMMON = (
    _s("bastion bast2001", "host", "bast2001", "208.80.153.5", "2620:0:860:1:208:80:153:5"),
    _s("cumin neodymium", "host", "neodymium", "10.64.32.20", "2620:0:861:103:10:64:32:20"),
    _s("prometheus1003", "host", "prometheus1003", "10.64.16.93", "2620:0:861:102:10:64:16:93"),
    _s("icinga einsteinium", "host", "einsteinium", "208.80.155.119", "2620:0:861:4:208:80:155:119"),
    _s("plain host deploy1001", "host", "deploy1001", "10.64.32.16", "2620:0:861:103:10:64:32:16"),
    _s("pod wikikube-eqiad", "pods", "wikikube-eqiad", "10.64.64.7", "2620:0:861:cabe::7"),
    _s("pod wikikube-codfw", "pods", "wikikube-codfw", "10.192.64.7", "2620:0:860:cabe::7"),
    _s("pod staging-eqiad", "pods", "staging-eqiad", "10.64.75.7", "2620:0:861:babe::7"),
    _s("outside", "outside", "", "198.51.100.7", "2001:db8:ffff::7"),
)
LVS_VIP = _s("lvs vip restbase", "network", "lvs-restbase", "10.2.2.17")  # in $INTERNAL, no production subnet
CR1_EQIAD = _s("router cr1-eqiad", "router", "cr1-eqiad", "208.80.154.196", "2620:0:861:ffff::1")
TOR_E1 = _s("tor lsw1-e1-eqiad", "gateway", "eqiad/e1", "10.64.130.1", "2620:0:861:109::1")

HOSTS: dict[str, tuple[Source, ...]] = {
    "kubernetes1001": COMMON + (  # row a (L2): peers with cr1/cr2-eqiad
        CR1_EQIAD, TOR_E1,
        _s("k8s master argon", "host", "argon", "10.64.0.40", "2620:0:861:101:10:64:0:40"),
        _s("node kubernetes1005", "host", "kubernetes1005", "10.64.0.145", "2620:0:861:101:10:64:0:145"),
        _s("codfw node kubernetes2001", "host", "kubernetes2001", "10.192.0.11", "2620:0:860:101:10:192:0:11"),
    ),
    "kubernetes1007": COMMON + (  # rack eqiad/e1 (L3): peers with its ToR only
        CR1_EQIAD, TOR_E1,
        _s("k8s master chlorine", "host", "chlorine", "10.64.32.41", "2620:0:861:103:10:64:32:41"),
        _s("node kubernetes1001", "host", "kubernetes1001", "10.64.0.121", "2620:0:861:101:10:64:0:121"),
    ),
    "etcd1001": COMMON + (
        LVS_VIP,
        _s("worker kubernetes1001", "host", "kubernetes1001", "10.64.0.121", "2620:0:861:101:10:64:0:121"),
        _s("etcd peer etcd1002", "host", "etcd1002", "10.64.16.210", "2620:0:861:102:10:64:16:210"),
        _s("fundraising 208.80.155.10", "network", "frack-networks", "208.80.155.10"),
    ),
    "kafka1001": COMMON + (
        LVS_VIP,
        _s("fundraising 10.195.0.7", "network", "frack-networks", "10.195.0.7"),
        _s("broker kafka1002", "host", "kafka1002", "10.64.16.41", "2620:0:861:102:10:64:16:41"),
    ),
    "bast1002": COMMON + (CR1_EQIAD,),
    "db1115": COMMON + (LVS_VIP,),
}

# hand-written facts from policies/*.npl: (host, source label, proto, port, family, open)
EVERY_HOST = [
    ("bastion bast2001", "tcp", 22, 4, True), ("bastion bast2001", "tcp", 22, 6, True),  # base: bastion-hosts
    ("cumin neodymium", "tcp", 22, 4, True), ("cumin neodymium", "tcp", 22, 6, True),  # base: cumin-masters
    ("prometheus1003", "tcp", 9100, 4, True), ("prometheus1003", "tcp", 9100, 6, True),  # base: node-exporter
    ("prometheus1003", "tcp", 22, 4, False),
    ("icinga einsteinium", "udp", 53, 4, True), ("icinga einsteinium", "tcp", 30080, 6, True),  # base: any
    ("plain host deploy1001", "tcp", 22, 4, False), ("plain host deploy1001", "tcp", 22, 6, False),
    ("plain host deploy1001", "tcp", 9100, 4, False), ("pod wikikube-eqiad", "tcp", 22, 4, False),
    ("outside", "tcp", 9100, 4, False), ("outside", "udp", 53, 6, False), ("outside", "tcp", 443, 4, False),
]
FACTS = {
    "kubernetes1001": [
        ("router cr1-eqiad", "tcp", 179, 4, True), ("router cr1-eqiad", "tcp", 179, 6, True),  # peer-with routers
        ("router cr1-eqiad", "udp", 179, 4, False), ("router cr1-eqiad", "tcp", 22, 4, False),
        ("tor lsw1-e1-eqiad", "tcp", 179, 4, False), ("tor lsw1-e1-eqiad", "tcp", 179, 6, False),  # not its peer
        ("plain host deploy1001", "tcp", 179, 4, False), ("outside", "tcp", 179, 4, False),
        ("k8s master argon", "tcp", 10250, 4, True), ("k8s master argon", "tcp", 10250, 6, True),  # k8s-worker
        ("prometheus1003", "tcp", 10255, 4, True), ("prometheus1003", "tcp", 10250, 4, False),
        ("pod wikikube-eqiad", "tcp", 10250, 4, False),
        ("node kubernetes1005", "tcp", 5473, 4, True), ("node kubernetes1005", "tcp", 5473, 6, True),  # typha
        ("codfw node kubernetes2001", "tcp", 5473, 4, False),
        ("outside", "tcp", 22, 4, False), ("outside", "tcp", 6443, 4, False),
    ],
    "kubernetes1007": [
        ("tor lsw1-e1-eqiad", "tcp", 179, 4, True), ("tor lsw1-e1-eqiad", "tcp", 179, 6, True),  # peer-with tor
        ("router cr1-eqiad", "tcp", 179, 4, False), ("router cr1-eqiad", "tcp", 179, 6, False),
        ("node kubernetes1001", "tcp", 179, 4, False), ("node kubernetes1001", "tcp", 5473, 6, True),
        ("k8s master chlorine", "tcp", 10250, 6, True),
    ],
    "etcd1001": [  # role k8s-etcd: 2379, 2380 from network domain-networks (subnets + pod ranges)
        ("worker kubernetes1001", "tcp", 2379, 4, True), ("worker kubernetes1001", "tcp", 2380, 6, True),
        ("worker kubernetes1001", "udp", 2379, 4, False), ("worker kubernetes1001", "tcp", 22, 4, False),
        ("etcd peer etcd1002", "tcp", 2380, 4, True), ("pod wikikube-eqiad", "tcp", 2379, 4, True),
        ("pod staging-eqiad", "tcp", 2379, 6, True), ("pod wikikube-codfw", "tcp", 2379, 6, True),
        ("fundraising 208.80.155.10", "tcp", 2379, 4, False), ("lvs vip restbase", "tcp", 2379, 4, False),
        ("outside", "tcp", 2379, 4, False), ("outside", "tcp", 2379, 6, False),
    ],
    "kafka1001": [  # role kafka-broker: 9092, 9093 from production-networks and frack-networks (IPv4 only)
        ("fundraising 10.195.0.7", "tcp", 9092, 4, True), ("fundraising 10.195.0.7", "tcp", 22, 4, False),
        ("broker kafka1002", "tcp", 9093, 6, True), ("plain host deploy1001", "tcp", 9092, 4, True),
        ("pod staging-eqiad", "tcp", 9093, 4, True), ("pod wikikube-codfw", "tcp", 9092, 6, True),
        ("lvs vip restbase", "tcp", 9092, 4, False), ("outside", "tcp", 9092, 4, False),
        ("broker kafka1002", "udp", 9092, 4, False), ("broker kafka1002", "tcp", 2379, 4, False),
    ],
    "bast1002": [  # role bastion: ssh from any
        ("outside", "tcp", 22, 4, True), ("outside", "tcp", 22, 6, True), ("outside", "udp", 22, 4, False),
        ("outside", "tcp", 80, 6, False), ("router cr1-eqiad", "tcp", 22, 6, True),
        ("plain host deploy1001", "tcp", 22, 4, True),
    ],
    "db1115": [  # role mariadb: 3306/3322/3325 from $INTERNAL; cxserver (3306, 3325) and linkrecommendation
        # (3306, 3322) pods of wikikube-eqiad/codfw; 3307 from mysql-root-clients (db1115 alone)
        ("pod wikikube-codfw", "tcp", 3306, 6, True), ("pod wikikube-codfw", "tcp", 3325, 6, True),
        ("pod wikikube-eqiad", "tcp", 3322, 6, True), ("pod staging-eqiad", "tcp", 3306, 6, False),
        ("pod staging-eqiad", "tcp", 3306, 4, True), ("lvs vip restbase", "tcp", 3325, 4, True),
        ("plain host deploy1001", "tcp", 3306, 4, True), ("plain host deploy1001", "tcp", 3306, 6, True),
        ("plain host deploy1001", "tcp", 3307, 4, False), ("outside", "tcp", 3306, 4, False),
    ],
}

Key = tuple[str, str, int, int]  # source label, protocol, port, family


# ------------------------------------------------------------------ the expected matrix, from the model
def _names_host(model: m.Model, host: m.Host, d: m.Endpoint) -> bool:
    if d.kind == "all-hosts":
        return True
    if d.kind == "host":
        return d.name == host.name
    if d.kind == "role":
        return d.name in host.roles or model.roles[d.name].default
    return False  # addresses (networks, racks, clusters...) open no host firewall


def _source_nets(model: m.Model, flow: m.Flow, ep: m.Endpoint) -> list[IPNetwork] | None:
    """The addresses a source endpoint stands for; None: every address."""
    if ep.kind == "any":
        return None
    if ep.kind in ("app", "all-apps"):  # pods are routed, no NAT: the pod ranges of the app's clusters
        return [c for app in ep.apps for name in model.apps[app].clusters
                if not flow.rule.clusters or name in flow.rule.clusters for c in model.clusters[name].pod_cidrs]
    return list(ep.cidrs)


def _port_opens(p: m.PortMatch, proto: str, port: int) -> bool:
    if p.protocol == "any":
        return True
    last = p.last if p.last is not None else p.first
    return p.protocol == proto and (p.first is None or p.first <= port <= last)


@dataclass
class Expectation:
    host: m.Host
    flows: list[m.Flow]  # the flows that name the host
    sources: list[list[IPNetwork] | None]  # per flow: its sources' addresses (None: anywhere)
    peers: dict[int, set[IPAddress]]  # BGP peers' addresses per family

    def opens(self, address: IPAddress, proto: str, port: int) -> list[m.Flow | str]:
        """What opens the port to the address: the flows, or `bgp`."""
        out: list[m.Flow | str] = []
        for flow, nets in zip(self.flows, self.sources, strict=True):
            if any(_port_opens(p, proto, port) for p in flow.ports) and (
                    nets is None or any(address in n for n in nets)):
                out.append(flow)
        if proto == "tcp" and port == 179 and address in self.peers.get(address.version, ()):
            out.append("bgp")
        return out

    def ports(self) -> list[int]:
        """Every TCP/UDP port the policy names for the host (a range: its ends), and 179 for a BGP speaker."""
        out = {n for f in self.flows for p in f.ports if p.protocol in ("tcp", "udp") and p.first is not None
               for n in (p.first, p.last if p.last is not None else p.first)}
        if self.peers:
            out.add(179)
        return sorted(out)


def expectation(model: m.Model, graph: analysis.peering.PeeringGraph, name: str) -> Expectation:
    host = model.hosts[name]
    flows = [f for f in model.flows if any(_names_host(model, host, d) for d in f.destinations)]
    sources = []
    for f in flows:
        nets: list[IPNetwork] | None = []
        for ep in f.sources:
            found = _source_nets(model, f, ep)
            if found is None:
                nets = None
                break
            nets.extend(found)
        sources.append(nets)
    peers: dict[int, set[IPAddress]] = {}
    for s in graph.sessions:
        if name in (s.a, s.b):
            peers.setdefault(s.family, set()).add(IPAddress(s.b_ip if s.a == name else s.a_ip))
    return Expectation(host, flows, sources, peers)


def _plan(exp: Expectation, sources: tuple[Source, ...]) -> tuple[list[int], dict[Key, bool], dict[Key, str]]:
    """The probed ports, the expected matrix, and each key's source address."""
    ports = sorted(set(exp.ports()) | set(SAMPLE_PORTS))
    expected: dict[Key, bool] = {}
    address: dict[Key, str] = {}
    for src in sources:
        for a in src.addresses:
            ip = IPAddress(a)
            if exp.host.addresses and not any(h.version == ip.version for h in exp.host.addresses):
                continue
            for proto in ("tcp", "udp"):
                for port in ports:
                    key = (src.label, proto, port, ip.version)
                    expected[key] = bool(exp.opens(ip, proto, port))
                    address[key] = a
    return ports, expected, address


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def compiled() -> tuple[m.Model, dict[str, bytes]]:
    result = compile_folder(POLICIES)
    assert result.ok and result.model is not None, [d.message for d in result.diagnostics if d.severity == "error"]
    return result.model, {p: b for p, b in result.files.items() if p.startswith("ferm/")}


@pytest.fixture(scope="module")
def graph(compiled) -> analysis.peering.PeeringGraph:
    return analysis.peering_graph(compiled[0])


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """Skip unless root or CI; under CI a missing tool fails. Removes a crashed run's leftovers."""
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("needs root, network namespaces, ferm and iptables (CI runs it as root)")
    found = {t: shutil.which(t, path=SBIN) for t in TOOLS}
    missing = [t for t, p in found.items() if not p]
    assert not missing, f"missing {missing}: `make system-deps` installs them (ferm, iptables, iproute2, procps)"
    cleanup_leftovers(found["ip"])
    return found  # type: ignore[return-value]


@pytest.fixture
def lab(tools: dict[str, str], tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tools, tmp_path / "lab")
    problems: list[str] = []
    try:
        yield lab
    finally:
        problems = lab.close()
    assert problems == [], problems


# ------------------------------------------------------------------ tests without root: the plan itself
def _all_estate(model: m.Model) -> IPSet:
    nets = [c for n in model.networks.values() for c in n.cidrs]
    nets += [IPNetwork(a) for h in model.hosts.values() for a in h.addresses]
    nets += [c for c in model.clusters.values() for c in (*c.pod_cidrs, *c.service_cidrs)]
    nets += [s for x in (*model.rows.values(), *model.racks.values()) for s in x.subnets]
    nets += [IPNetwork(a) for r in model.routers.values() for a in r.loopbacks]
    return IPSet(nets)


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_source_classes_are_what_they_claim(compiled, host: str):
    model = compiled[0]
    estate = _all_estate(model)
    seen: set[str] = set(str(a) for a in model.hosts[host].addresses)
    for src in HOSTS[host]:
        assert src.addresses and len({IPAddress(a).version for a in src.addresses}) == len(src.addresses), src
        for a in src.addresses:
            ip = IPAddress(a)
            assert a not in seen, f"{src.label}: {a} is used twice (or is the host's own)"
            seen.add(a)
            if src.kind == "host":
                assert ip in model.hosts[src.name].addresses, (src, a)
            elif src.kind == "pods":
                assert any(ip in c for c in model.clusters[src.name].pod_cidrs), (src, a)
            elif src.kind == "router":
                assert ip in model.routers[src.name].loopbacks, (src, a)
            elif src.kind == "gateway":
                assert ip in model.racks[src.name].gateways, (src, a)
            elif src.kind == "network":
                assert any(ip in c for c in model.networks[src.name].cidrs), (src, a)
            else:
                assert src.kind == "outside" and ip not in estate, (src, a)


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_expected_matrix_agrees_with_hand_written_facts(compiled, graph, host: str):
    exp = expectation(compiled[0], graph, host)
    _, expected, _ = _plan(exp, HOSTS[host])
    # (on a bastion, role bastion opens ssh to everyone)
    facts = [(host, *f) for f in EVERY_HOST if not (host == "bast1002" and f[1:3] == ("tcp", 22))]
    facts += [(host, *f) for f in FACTS[host]]
    wrong = [f for f in facts if expected.get(f[1:5]) != f[5]]
    assert wrong == [], f"the expectation from the model disagrees with policies/*.npl: {wrong}"
    # a BGP speaker's peers come from the graph: what the facts above say by hand
    if host == "kubernetes1001":
        assert exp.peers == {4: {IPAddress("208.80.154.196"), IPAddress("208.80.154.197")},
                             6: {IPAddress("2620:0:861:ffff::1"), IPAddress("2620:0:861:ffff::2")}}
    if host == "kubernetes1007":
        assert exp.peers == {4: {IPAddress("10.64.130.1")}, 6: {IPAddress("2620:0:861:109::1")}}


# ------------------------------------------------------------------ the packets
SEED = """\
*filter
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:cali-INPUT - [0:0]
:cali-FORWARD - [0:0]
:cali-fw-cali0123abcd - [0:0]
-A INPUT -j cali-INPUT
-A INPUT -j KUBE-FIREWALL
-A FORWARD -j cali-FORWARD
-A FORWARD -j KUBE-FORWARD
-A cali-INPUT -j ACCEPT
-A KUBE-FIREWALL -j DROP
-A KUBE-FORWARD -j ACCEPT
-A cali-FORWARD -j cali-fw-cali0123abcd
-A cali-fw-cali0123abcd -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-ABCDEFGHIJKLMNOP - [0:0]
:cali-nat-outgoing - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -j KUBE-SVC-ABCDEFGHIJKLMNOP
-A KUBE-SVC-ABCDEFGHIJKLMNOP -j RETURN
-A POSTROUTING -j cali-nat-outgoing
COMMIT
*mangle
:KUBE-PROXY-CANARY - [0:0]
:cali-PREROUTING - [0:0]
-A PREROUTING -j cali-PREROUTING
COMMIT
*raw
:cali-PREROUTING - [0:0]
-A PREROUTING -j cali-PREROUTING
COMMIT
"""


def _saved(lab: Lab, ns: str, tool: str) -> list[str]:
    """`<tool> -save` as `table line` lines, counters and comments dropped."""
    out, table = [], ""
    for line in lab.exec(ns, [lab.tools[tool]]).stdout.decode().splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line and not line.startswith("#") and line != "COMMIT":
            out.append(f"{table} {line.split(' [')[0] if line.startswith(':') else line}")
    return out


def _seed_and_apply(lab: Lab, host: Endpoint, text: bytes, workdir: Path) -> list[str]:
    """Seed kube-proxy's and Calico's chains, apply the file with ferm as Puppet deploys it, and
    return what is wrong with the chains afterwards."""
    seeded = {}
    for restore, save in (("iptables-legacy-restore", "iptables-legacy-save"),
                          ("ip6tables-legacy-restore", "ip6tables-legacy-save")):
        lab.exec(host.ns, [lab.tools[restore], "--noflush"], stdin=SEED.encode())
        seeded[save] = _saved(lab, host.ns, save)
    etc = workdir / "etc" / "ferm"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "ferm.conf").write_text(FERM_CONF)
    (etc / "conf.d" / "netpolc.conf").write_bytes(text)
    lab.exec(host.ns, [lab.tools["ferm"], str(etc / "ferm.conf")])
    problems = []
    for save, before in seeded.items():
        after = _saved(lab, host.ns, save)
        kept = [x for x in before if not x.startswith(("filter :INPUT", "filter -A INPUT"))]
        lost = [x for x in kept if x not in after]
        if lost:
            problems.append(f"{save}: lost {lost}")
        if "filter :INPUT DROP" not in after:
            problems.append(f"{save}: INPUT policy is not DROP")
        jumps = [x for x in after if x.startswith("filter -A INPUT") and ("KUBE" in x or "cali" in x)]
        if jumps:
            problems.append(f"{save}: INPUT still has the seeded jumps {jumps}")
        if not any(x.startswith("filter -A INPUT") and "--dport 22" in x for x in after):
            problems.append(f"{save}: no SSH line in INPUT: the file was not applied with the legacy tools")
    return problems


def _line_text(line) -> str:
    """A parsed ferm line, short: its statements (`file:line`) and its match."""
    where = " ".join(c.split()[1] for c in line.comments) or "(no comment)"
    ports = ("dport " + " ".join(f"{a}" if a == b else f"{a}:{b}" for a, b in line.ports)) if line.ports else ""
    saddr = f"saddr ({' '.join(line.terms)})" if line.terms else ""
    return f"[{where}] " + " ".join(x for x in (f"proto {line.proto}" if line.proto else "", ports, saddr) if x)


def _explain(exp: Expectation, text: str, address: str, proto: str, port: int, family: int) -> str:
    """The ferm lines that admit the packet, and the statements that open it."""
    lines = [_line_text(x) for x in parse(text).chains[family] if x.admits(IPAddress(address), proto, port)]
    why = [o if isinstance(o, str) else f"{o.rule.span.file}:{o.rule.span.line} {o.rule.owner_kind} {o.rule.owner}"
           for o in exp.opens(IPAddress(address), proto, port)]
    return f"ferm lines admitting it: {'; '.join(lines) or 'none'}. Statements opening it: {', '.join(why) or 'none'}"


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_real_packets_match_the_policy(compiled, graph, lab: Lab, tmp_path: Path, name: str):
    model, files = compiled
    started = time.monotonic()
    text = files[f"ferm/{name}.conf"]
    exp = expectation(model, graph, name)
    sources = HOSTS[name]
    ports, expected, address = _plan(exp, sources)

    host = lab.endpoint(name, model.hosts[name].addresses)
    classes = {src.label: lab.endpoint(src.label, src.addresses) for src in sources}
    chain_problems = _seed_and_apply(lab, host, text, tmp_path)

    lab.serve(host, [(p, a, n) for p in ("tcp", "udp") for a in host.addresses for n in ports])
    outside = classes["outside"]
    lab.serve(outside, [(p, a, OUTBOUND_PORT) for p in ("tcp", "udp") for a in outside.addresses])

    batches: dict[str, tuple[Endpoint, list[dict]]] = {}
    for key in address:
        label, proto, port, family = key
        target = host.address(family)
        batches.setdefault(label, (classes[label], []))[1].append(
            {"id": "|".join(map(str, key)), "proto": proto, "address": str(target), "port": port})
    outbound = [{"id": f"{p}|{a.version}", "proto": p, "address": str(a), "port": OUTBOUND_PORT}
                for p in ("tcp", "udp") for a in outside.addresses if host.address(a.version)]
    batches["(host, outbound)"] = (host, outbound)
    results = lab.probe_all(batches)

    observed: dict[Key, bool] = {}
    odd = []
    for label, got in results.items():
        if label == "(host, outbound)":
            continue
        for pid, result in got.items():
            lbl, proto, port, family = pid.split("|")
            key = (lbl, proto, int(port), int(family))
            observed[key] = result == "open"
            if result not in ("open", "timeout"):
                odd.append(f"{key} from {address[key]}: {result}")
    outbound_failed = {k: v for k, v in results["(host, outbound)"].items() if v != "open"}

    diffs = []
    for key in sorted(expected):
        if observed.get(key) != expected[key]:
            label, proto, port, family = key
            state = {True: "OPEN", False: "closed", None: "not probed"}
            diffs.append(f"  {name} <- {label} {address[key]} {proto}/{port} IPv{family}: observed "
                         f"{state[observed.get(key)]}, expected {state[expected[key]]}\n      "
                         + _explain(exp, text.decode(), address[key], proto, port, family))
    opened = sum(expected.values())
    print(f"\n{name}: {len(expected)} probes ({len(sources)} source classes, {len(ports)} ports x tcp/udp, "
          f"IPv4+IPv6), {opened} expected open; {time.monotonic() - started:.1f}s")
    failures = []
    if chain_problems:
        failures.append("kube-proxy's and Calico's chains after the apply:\n"
                        + "\n".join(f"  {p}" for p in chain_problems))
    if odd:
        failures.append("probes that neither got an echo nor timed out (a listener missing?):\n"
                        + "\n".join(f"  {x}" for x in odd))
    if diffs:
        failures.append(f"{len(diffs)} differences between the packets and the policy:\n" + "\n".join(diffs))
    if len(outbound) != 4 or outbound_failed:
        failures.append(f"replies to connections {name} opens (to the outside class, port {OUTBOUND_PORT}) were "
                        f"dropped: {outbound_failed}")
    assert not failures, f"{name}:\n" + "\n".join(failures)
    # IPv6 carried traffic (neighbour discovery passes the file), and IPv6 is filtered too
    assert any(v for k, v in observed.items() if k[3] == 6) and not all(v for k, v in observed.items() if k[3] == 6)

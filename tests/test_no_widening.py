"""Nothing widens by accident: over generated estates, what the emitted Calico and ferm files allow
is exactly what the estate declares, plus the documented built-ins.

Each example is a small valid estate written by tests/widen_estates.py, which records its own intent
(never the compiler's model). The estate is compiled as `netpolc compile` does (it must succeed);
then the emitted files are judged by evaluators that share no code with the backends:
- Calico: tests/calico_eval.py on each cluster's `calico/<cluster>/*.yaml`, at both ends of every
  app pod (ingress and egress), against every probe end;
- ferm: the real `ferm --noexec --lines` expands each `ferm/<host>.conf` into iptables-restore
  rules, judged by tests/iptables_eval.py (filter table, INPUT), for every probe source.
Probe ends: a pod of every app in every cluster (a labelled pod here, a bare address elsewhere),
kube-dns, an unused pod address and a service address per cluster, every host, router loopback and
gateway, the first and last address of every CIDR the generator can write and the addresses just
outside, internet addresses and unrouted private ones, IPv4 and IPv6. Probe packets: every port the
generator writes, its neighbours and range ends, a few fixed ports, each in TCP, UDP and SCTP, and
ICMP/ICMPv6 types and codes.

Asserted per enforcement point: allowed <= declared (nothing widens) and declared <= allowed (the
semantics are exact here, so a missing rule is a failure too). NETPOLC_WIDEN_EXAMPLES raises the
number of estates (default 25, about a minute); the run is derandomized, so CI sees the same ones.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import iptables_eval as ie
import pytest
import widen_estates as g
from calico_eval import Cluster as CalicoCluster
from calico_eval import Packet as CalicoPacket
from calico_eval import make_pod
from conftest import TODAY
from hypothesis import HealthCheck, Phase, given, settings

from compiler.project import compile_folder

EXAMPLES = int(os.environ.get("NETPOLC_WIDEN_EXAMPLES", "25"))
# shrinking recompiles hundreds of estates (minutes); the report prints the whole estate anyway.
# NETPOLC_WIDEN_SHRINK=1 turns it on to minimise a failing estate by hand.
SHRINK = [Phase.shrink] if os.environ.get("NETPOLC_WIDEN_SHRINK") else []
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, *SHRINK]
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FIXED_PORTS = {1, 22, 53, 179, 443, 65535}
ICMP_PROBES = {4: [(8, 0), (0, 0), (3, 4), (3, 1), (11, 0), (5, 0)],
               6: [(128, 0), (129, 0), (1, 4), (2, 0), (3, 0), (133, 0), (135, 0), (136, 0), (137, 0), (143, 0)]}
OUTSIDE = ["8.8.8.8", "2001:4860:4860::8888", "192.168.1.1", "fd00::1", "10.50.0.1", "2620:0:861:ff00::5"]
POD_INDEX, UNUSED_POD, KUBE_DNS_POD = 100, 7, 53


# ====================================================================== probes
def probe_packets(e: g.Estate) -> dict[int, list[g.Probe]]:
    ports = set(FIXED_PORTS)
    items = [p for s in e.statements for p in s.ports or ()] + [p for a in e.apps.values() for p in a.listen]
    items += [g.Port(*t) for t in g.PORT_ITEMS]
    for p in items:
        if p.protocol in g.PORT_PROTOCOLS and p.first is not None:
            ports |= {p.first - 1, p.first, p.last, p.last + 1, (p.first + p.last) // 2}
    layer4 = [g.Probe(proto, port) for proto in g.PORT_PROTOCOLS for port in sorted(ports) if 1 <= port <= 65535]
    return {f: layer4 + [g.Probe("icmp" if f == 4 else "icmpv6", icmp_type=t, icmp_code=c) for t, c in ICMP_PROBES[f]]
            for f in (4, 6)}


def pod_address(e: g.Estate, cluster: str, family: int, index: int) -> ipaddress._BaseAddress | None:
    nets = [n for n in e.clusters[cluster].pods if n.version == family]
    return nets[0][index] if nets else None


def app_index(e: g.Estate, app: str) -> int:
    return POD_INDEX + sorted(e.apps).index(app)


def probe_addresses(e: g.Estate) -> list[ipaddress._BaseAddress]:
    """Every address a probe comes from or goes to (check_calico labels the app pods' addresses of
    the cluster it checks; in the other clusters they stay bare addresses)."""
    out = [a for h in e.hosts.values() for a in h.addresses] + list(e.gateways)
    out += [n[200] for n in e.subnets]  # in a subnet (a row, a rack, the site) but no host's
    out += [ipaddress.ip_address(a) for _, v4, v6 in g.ROUTERS for a in (v4, v6)]
    for c in e.clusters.values():
        for n in (*c.pods, *c.services):
            out += [n[UNUSED_POD]]
        for f in (4, 6):
            out += [a for a in [pod_address(e, c.name, f, KUBE_DNS_POD)] if a is not None]
            out += [pod_address(e, c.name, f, app_index(e, a)) for a in e.apps
                    if c.name in e.apps[a].clusters and pod_address(e, c.name, f, 0) is not None]
    for text in ("10.1.0.0/25", "10.2.0.0/16", *g.PUBLIC_CIDRS):
        n = ipaddress.ip_network(text)
        out += [n[0], n[-1], n[0] - 1, n[-1] + 1]
    out += [ipaddress.ip_address(a) for a in OUTSIDE]
    return sorted(set(out), key=lambda a: (a.version, a))


# ====================================================================== compiling
def compile_estate(e: g.Estate) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "estate.npl").write_text(e.text)
        result = compile_folder(Path(folder), today=TODAY)
    errors = [f"{d.span.line if d.span else ''}: {d.code} {d.message}" for d in result.diagnostics
              if d.severity == "error"]
    assert result.ok and not errors, f"a valid estate did not compile: {errors}\n{e.text}"
    return result.files


FERM = shutil.which("ferm")


@lru_cache(maxsize=512)
def ferm_tables(rules: bytes) -> tuple[ie.Table, ie.Table]:
    """ferm's own expansion of a file (comments stripped first: they do not change the rules, and
    hosts of the same roles then share one run of ferm)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".conf") as f:
        f.write(rules)
        f.flush()
        done = subprocess.run([FERM, "--noexec", "--lines", f.name], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    by_family = ie.split_by_family(done.stdout.decode())
    return ie.Table(by_family[4], 4), ie.Table(by_family[6], 6)


def _strip_comments(data: bytes) -> bytes:
    return re.sub(rb"(?m)^\s*#.*\n", b"", data)


# ====================================================================== the checks
def check_ferm(e: g.Estate, files: dict[str, bytes]) -> list[str]:
    problems = []
    packets = probe_packets(e)
    addresses = probe_addresses(e)
    written = {Path(p).stem for p in files if p.startswith("ferm/")}
    expected = {h.name for h in e.hosts.values() if e.firewalled(h)}
    if written != expected:
        problems.append(f"ferm files for {sorted(written)}, hosts with a firewall {sorted(expected)}")
    for name in sorted(written & expected):
        host = e.hosts[name]
        tables = dict(zip((4, 6), ferm_tables(_strip_comments(files[f"ferm/{name}.conf"])), strict=True))
        admitted: dict[int, ie.Packet] = {}  # per family, a packet the file accepts: then INVALID must not pass
        for source in addresses:
            table = tables[source.version]
            for p in packets[source.version]:
                packet = ie.Packet(source, p.protocol, p.port, p.icmp_type, p.icmp_code)
                got, why = table.verdict(packet)
                if got and p.protocol in g.PORT_PROTOCOLS:
                    admitted.setdefault(source.version, packet)
                want = e.ferm_admits(host, source, p)
                if got != want:
                    problems.append(f"ferm {name}: {source} {p.protocol} {p.port or (p.icmp_type, p.icmp_code)}: "
                                    f"{'allowed' if got else 'denied'} ({why}), declared {want}")
        for family, source in ((4, "8.8.8.8"), (6, "2001:4860:4860::8888")):  # the built-ins
            outside = ipaddress.ip_address(source)
            if not tables[family].accepts(ie.Packet(outside, "tcp", 9999, state="ESTABLISHED")):
                problems.append(f"ferm {name}: established replies are dropped (IPv{family})")
            if not tables[family].accepts(ie.Packet(outside, "tcp", 9999, interface="lo")):
                problems.append(f"ferm {name}: loopback is dropped (IPv{family})")
            if family in admitted and tables[family].accepts(replace(admitted[family], state="INVALID")):
                problems.append(f"ferm {name}: an invalid packet is accepted (IPv{family})")
    return problems


def check_calico(e: g.Estate, files: dict[str, bytes]) -> list[str]:
    problems = []
    probes = probe_packets(e)
    packets = {f: tuple(_calico_packet(p) for p in probes[f]) for f in (4, 6)}
    for c in sorted(e.clusters):
        apps = [a for a in sorted(e.apps) if c in e.apps[a].clusters]
        texts = [data for path, data in sorted(files.items()) if path.startswith(f"calico/{c}/")]
        if not apps:
            if texts:
                problems.append(f"calico/{c}: files for a cluster without apps")
            continue
        families = [f for f in (4, 6) if pod_address(e, c, f, 0) is not None]
        pods = {a: make_pod(f"{a}-0", e.apps[a].namespace, {"app": a},
                            [pod_address(e, c, f, app_index(e, a)) for f in families]) for a in apps}
        dns = make_pod("coredns-0", "kube-system", {"k8s-app": "kube-dns"},
                       [pod_address(e, c, f, KUBE_DNS_POD) for f in families])
        calico = CalicoCluster.from_yaml(texts, [*pods.values(), dns])
        own = {pod.address(f): a for a, pod in pods.items() for f in families}
        ends = [g.End(a, pod_app=own.get(a), kube_dns=a in dns.addresses) for a in probe_addresses(e)
                if a.version in families]
        for app in apps:
            for direction in ("ingress", "egress"):
                for end in ends:
                    got = calico.end_allowed_packets(pods[app], direction.capitalize(), end.address,
                                                     packets[end.address.version])
                    for probe, packet in zip(probes[end.address.version], packets[end.address.version], strict=True):
                        want = e.calico_admits(c, app, direction, end, probe)
                        if (packet in got) != want:
                            what = f"pod of {end.pod_app}" if end.pod_app else "kube-dns" if end.kube_dns else "address"
                            problems.append(f"calico {c} {app} {direction} {end.address} ({what}) {packet}: "
                                            f"{'allowed' if packet in got else 'denied'}, declared {want}")
    return problems


def _calico_packet(p: g.Probe) -> CalicoPacket:
    if p.protocol in ("icmp", "icmpv6"):
        return CalicoPacket(p.protocol, icmp_type=p.icmp_type, icmp_code=p.icmp_code)
    return CalicoPacket(p.protocol, p.port)


def report(e: g.Estate, problems: list[str]) -> str:
    return f"{len(problems)} difference(s), first ones:\n" + "\n".join(problems[:15]) + f"\n\nestate:\n{e.text}"


@pytest.mark.skipif(FERM is None and not os.environ.get("CI"), reason="ferm is not installed (`make system-deps`)")
@PROPERTY
@given(g.estates())
def test_emitted_firewalls_allow_exactly_what_was_declared(estate: g.Estate):
    files = compile_estate(estate)
    problems = check_calico(estate, files) + check_ferm(estate, files)
    assert not problems, report(estate, problems)


# ====================================================================== regressions the property found
IN_CLUSTER = """\
site s1 {
  router cr1 loopback 208.80.154.196 asn 14907
  row r1 {
    switch asw-r1
    subnet 10.1.0.0/24
    gateway 10.1.0.1
    rack k1 {
      host x1 10.1.0.11 roles worker1
      host x2 10.1.0.12 roles worker2
    }
  }
}
cluster c1 {
  site s1
  asn 64601
  pods 10.101.0.0/22
  nodes role worker1
  peer-with routers
}
cluster c2 {
  site s1
  asn 64602
  pods 10.102.0.0/22
  nodes role worker2
  peer-with routers
}
role worker1 {}
role worker2 {}
app src {
  clusters c1, c2
  connect tcp 8443 to app dst in cluster c1
}
app dst {
  clusters c1, c2
  allow tcp 9000 from app src in cluster c1
}
"""


def test_in_cluster_limits_the_owner_at_both_ends():
    """`connect ... to app dst in cluster c1` in src: only src's pods in c1 may connect. dst's
    ingress in c1 used to admit the whole pod range of c2 (src's other cluster), where the
    statement does not hold: any pod of c2 got in. And dst's ingress in c2 admitted nothing, though
    src's pods in c1 may connect to every dst. Likewise for `allow ... in cluster c1` in dst: src's
    egress is opened in both clusters, towards dst's pods in c1 only."""
    e = g.Estate()
    e.clusters = {"c1": g.Cluster("c1", (g.net("10.101.0.0/22"),), (), "worker1"),
                  "c2": g.Cluster("c2", (g.net("10.102.0.0/22"),), (), "worker2")}
    e.apps = {"dst": g.App("dst", ("c1", "c2"), "dst", ()), "src": g.App("src", ("c1", "c2"), "src", ())}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "estate.npl").write_text(IN_CLUSTER)
        result = compile_folder(Path(folder), today=TODAY)
    assert result.ok, [d.message for d in result.diagnostics]

    def cluster(c: str) -> tuple[CalicoCluster, dict]:
        pods = {a: make_pod(f"{a}-0", a, {"app": a}, [pod_address(e, c, 4, app_index(e, a))]) for a in e.apps}
        texts = [d for p, d in sorted(result.files.items()) if p.startswith(f"calico/{c}/")]
        return CalicoCluster.from_yaml(texts, pods.values()), pods

    c1, pods1 = cluster("c1")
    c2, pods2 = cluster("c2")
    src1, dst1, src2, dst2 = (pods1["src"].address(4), pods1["dst"].address(4), pods2["src"].address(4),
                              pods2["dst"].address(4))
    other2 = ipaddress.ip_address("10.102.0.7")  # a pod of c2 that is not src's
    tcp = CalicoPacket("tcp", 8443)
    assert c1.end_allows(pods1["dst"], "Ingress", src1, tcp)
    assert not c1.end_allows(pods1["dst"], "Ingress", src2, tcp)  # the widening
    assert not c1.end_allows(pods1["dst"], "Ingress", other2, tcp)
    assert c2.end_allows(pods2["dst"], "Ingress", src1, tcp)  # was missing
    assert not c2.end_allows(pods2["dst"], "Ingress", src2, tcp)
    assert c1.end_allows(pods1["src"], "Egress", dst1, tcp) and c1.end_allows(pods1["src"], "Egress", dst2, tcp)
    assert not c2.end_allows(pods2["src"], "Egress", dst2, tcp)
    # allow ... from app src in cluster c1 (in dst): dst's ingress in c1 only; src's egress everywhere
    port = CalicoPacket("tcp", 9000)
    assert c1.end_allows(pods1["dst"], "Ingress", src1, port) and c1.end_allows(pods1["dst"], "Ingress", src2, port)
    assert not c2.end_allows(pods2["dst"], "Ingress", src2, port)
    assert c1.end_allows(pods1["src"], "Egress", dst1, port) and not c1.end_allows(pods1["src"], "Egress", dst2, port)
    assert c2.end_allows(pods2["src"], "Egress", dst1, port)  # was missing
    assert not c2.end_allows(pods2["src"], "Egress", dst2, port)


# ====================================================================== the checks can fail
# A small estate, written out with its record by hand, and faults seeded into its emitted text
# (not into the compiler): each must be reported, as a widening or as a missing rule.
SEED = """\
site s1 {
  router cr1 loopback 208.80.154.196 2620:0:861:ffff::1 asn 14907
  row r1 {
    switch asw-r1
    subnet 10.1.0.0/24 2620:0:861:1::/64
    gateway 10.1.0.1 2620:0:861:1::1
    rack k1 {
      host h1 10.1.0.11 2620:0:861:1::b roles web
      host h2 10.1.0.12 roles worker1
    }
  }
}
cluster c1 {
  site s1
  asn 64601
  pods 10.101.0.0/22
  nodes role worker1
  peer-with routers
}
role web {
  allow tcp 8080 from host h2
}
role worker1 {
}
app a1 {
  clusters c1
  namespace a1
  listen tcp 9000-9010
  connect udp 5000 to 10.2.0.0/16
  allow from role web
}
"""


def seed_estate() -> g.Estate:
    e = g.Estate(text=SEED)
    ip = ipaddress.ip_address
    e.hosts = {"h1": g.Host("h1", (ip("10.1.0.11"), ip("2620:0:861:1::b")), ("web",)),
               "h2": g.Host("h2", (ip("10.1.0.12"),), ("worker1",))}
    e.subnets = [g.net("10.1.0.0/24"), g.net("2620:0:861:1::/64")]
    e.gateways = [ip("10.1.0.1"), ip("2620:0:861:1::1")]
    e.clusters = {"c1": g.Cluster("c1", (g.net("10.101.0.0/22"),), (), "worker1")}
    e.roles = {"web": {"firewall": True, "ssh": False}, "worker1": {"firewall": True, "ssh": False}}
    e.apps = {"a1": g.App("a1", ("c1",), "a1", (g.Port("tcp", 9000, 9010),))}
    e.statements = [
        g.Statement("role", "web", False, "allow", (g.Port("tcp", 8080, 8080),), "", (g.Peer("host", "h2"),)),
        g.Statement("app", "a1", False, "connect", (g.Port("udp", 5000, 5000),), "", (g.Peer("cidr", "10.2.0.0/16"),)),
        g.Statement("app", "a1", False, "allow", None, "", (g.Peer("role", "web"),)),
    ]
    return e


# (file, text, replacement, what the checks must report: "widening", "missing" or "both")
SEEDED_FAULTS = [
    ("ferm/h1.conf", " saddr 10.1.0.12 ACCEPT", " ACCEPT", "widening"),  # a source dropped
    ("ferm/h1.conf", "dport 8080 ", "dport 8080:8081 ", "widening"),  # a range one too long
    ("ferm/h1.conf", "proto tcp dport 8080", "proto udp dport 8080", "both"),  # the protocol
    ("ferm/h1.conf", "    interface lo ACCEPT;\n", "    interface lo ACCEPT;\n    proto sctp ACCEPT;\n", "widening"),
    ("ferm/h1.conf", "    proto icmp ACCEPT;\n", "", "missing"),  # a built-in lost
    ("ferm/h1.conf", "    policy DROP;\n", "    policy ACCEPT;\n", "widening"),
    ("ferm/h1.conf", "    mod state state INVALID DROP;\n", "", "widening"),  # invalid packets accepted
    ("ferm/h2.conf", "    proto tcp dport 179 saddr 208.80.154.196 ACCEPT;\n", "", "missing"),  # BGP lost
    ("calico/c1/a1.yaml", '"9000:9010"', '"9000:9011"', "widening"),
    ("calico/c1/a1.yaml", "protocol: UDP", "protocol: TCP", "both"),
    ("calico/c1/globalnetworksets.yaml", "  - 10.2.0.0/16\n", "  - 10.0.0.0/8\n", "widening"),
    ("calico/c1/globalnetworksets.yaml", "  - 10.1.0.11/32\n", "", "missing"),  # h1 out of role web's set
    ("calico/c1/globalnetworkpolicies.yaml", "      code: 4\n", "", "widening"),  # every type 3 code
]


@pytest.fixture(scope="module")
def seed_files() -> dict[str, bytes]:
    return compile_estate(seed_estate())


def test_the_seed_estate_is_exact(seed_files):
    e = seed_estate()
    assert check_calico(e, seed_files) + check_ferm(e, seed_files) == []


@pytest.mark.skipif(FERM is None and not os.environ.get("CI"), reason="ferm is not installed (`make system-deps`)")
@pytest.mark.parametrize(("path", "old", "new", "kind"), SEEDED_FAULTS,
                         ids=[f"{i}-{p.split('/')[-1]}" for i, (p, *_) in enumerate(SEEDED_FAULTS)])
def test_the_checks_notice_seeded_faults(seed_files, path, old, new, kind):
    files = dict(seed_files)
    text = files[path].decode()
    assert old in text, f"the seed no longer applies to {path}: {old!r}"
    files[path] = text.replace(old, new, 1).encode()
    problems = check_calico(seed_estate(), files) + check_ferm(seed_estate(), files)
    widened = any(re.search(r": allowed\b.*declared False|accepted", p) for p in problems)
    missing = any(re.search(r": denied\b.*declared True|dropped", p) for p in problems)
    assert (widened, missing) == {"widening": (True, False), "missing": (False, True), "both": (True, True)}[kind], \
        problems[:5]

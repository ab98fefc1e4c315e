"""The ferm backend: every file ferm and the kernel accept, what the reference estate's hosts admit,
the chains of kube-proxy and Calico kept, determinism, and the lock-out guard.

Tests that need root, network namespaces, ferm and iptables skip only when not root and CI is
unset; under CI (which runs as root) they run and fail if a tool is missing. Every namespace is
created fresh and deleted after. The expectations for the reference estate are worked out by hand
from policies/*.npl (cited per test), not copied from the compiler's output.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE, compile_sources, compile_text, errors
from ferm_format import FermFile, parse
from netaddr import IPAddress, IPNetwork

from compiler import analysis
from compiler.analysis.hostfw import HostFirewall
from compiler.analysis.lockout import check as lockout_check
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir()
                  if p.is_dir() and p.name != "weak" and any(p.rglob("*.npl")))
SOURCES = [POLICIES, *EXAMPLES]
SBIN = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
TIMEOUT = 60
# the small estate of tests/conftest.py, with its bastion role as the SSH gateway
SMALL = BASE.replace("role bastion { allow tcp 22 from any", "role bastion { ssh-gateway allow tcp 22 from any")


# ------------------------------------------------------------------ helpers
def _compiled(folder: Path) -> dict[str, bytes]:
    result = compile_folder(folder)
    assert result.ok, [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics if d.severity == "error"]
    return {p: b for p, b in result.files.items() if p.startswith("ferm/")}


@pytest.fixture(scope="module")
def reference() -> dict[str, FermFile]:
    return {Path(p).stem: parse(b.decode()) for p, b in _compiled(POLICIES).items()}


def _tool(name: str) -> str:
    path = shutil.which(name, path=SBIN)
    assert path, f"`{name}` is missing: `make system-deps` installs it (Debian packages ferm, iptables, iproute2)"
    return path


def require_root_tools(*tools: str) -> dict[str, str]:
    """Skip unless root or CI; under CI a missing tool fails the test."""
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("needs root, network namespaces and ferm/iptables (CI runs it as root)")
    return {t: _tool(t) for t in tools}


def _run(argv: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards whatever happens."""
    tools = require_root_tools("ip")
    name = f"fermt-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    done = _run([tools["ip"], "netns", "add", name])
    assert done.returncode == 0, done.stderr.decode()
    try:
        _run([tools["ip"], "netns", "exec", name, tools["ip"], "link", "set", "lo", "up"])
        yield name
    finally:
        _run([tools["ip"], "netns", "del", name])
    assert name not in _run([tools["ip"], "netns", "list"]).stdout.decode()


# ------------------------------------------------------------------ ferm and the kernel accept every file
def _check_file(ns: str, tools: dict[str, str], path: Path) -> list[str]:
    """ferm --noexec --lines for each domain, then iptables-restore --test of its output (both
    the nf_tables tools and the legacy ones ferm itself uses). Returns the problems found."""
    problems = []
    ns_exec = [tools["ip"], "netns", "exec", ns]
    for domain, restores in (("ip", ("iptables-restore", "iptables-legacy-restore")),
                             ("ip6", ("ip6tables-restore", "ip6tables-legacy-restore"))):
        ferm = _run([*ns_exec, tools["ferm"], "--noexec", "--lines", "--domain", domain, str(path)])
        if ferm.returncode != 0:
            problems.append(f"{path.name} ferm --domain {domain}: {ferm.stderr.decode().strip()}")
            continue
        save = ferm.stdout
        text = save.decode()
        if "*filter" not in text or ":INPUT DROP" not in text:
            problems.append(f"{path.name} {domain}: no INPUT DROP in ferm's output")
        for restore in restores:
            test = _run([*ns_exec, tools[restore], "--test"], stdin=save)
            if test.returncode != 0:
                problems.append(f"{path.name} {restore} --test: {test.stderr.decode().strip()}")
    return problems


@pytest.mark.parametrize("folder", SOURCES, ids=lambda p: p.name)
def test_every_file_passes_ferm_and_iptables_restore(folder: Path, netns: str, tmp_path: Path):
    tools = require_root_tools("ip", "ferm", "iptables-restore", "ip6tables-restore", "iptables-legacy-restore",
                               "ip6tables-legacy-restore")
    files = _compiled(folder)
    assert files, f"{folder.name} has hosts with firewalls, so it must produce ferm files"
    paths = []
    for rel, data in files.items():
        copy = tmp_path / Path(rel).name  # a copy: the file alone is the whole configuration
        copy.write_bytes(data)
        paths.append(copy)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for found in pool.map(lambda f: _check_file(netns, tools, f), paths) for p in found]
    assert problems == []


FEATURES = """
role web {
  allow tcp 80, 443, udp 443 from network internal description "web"
  allow tcp 8000-8010 from network internal description "alt"
  allow sctp 3868 from network internal
  allow icmp 3 code 4, icmpv6 packet-too-big, icmp echo-request from any
  allow udp from network monitoring
  allow any from 192.0.2.7, 2001:db8::7
  allow tcp from internet exposed "every TCP port, on purpose"
}
"""


def test_every_kind_of_line_passes_ferm_and_iptables_restore(netns: str, tmp_path: Path):
    """Protocols without ports, ranges, sctp, ICMP types with codes, literal sources, `internet`."""
    tools = require_root_tools("ip", "ferm", "iptables-restore", "ip6tables-restore", "iptables-legacy-restore",
                               "ip6tables-legacy-restore")
    src = SMALL.replace("host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker",
                        "host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker, web")
    path = tmp_path / "kafka1001.conf"
    path.write_text(_compiled_text(src + FEATURES, "kafka1001"))
    assert _check_file(netns, tools, path) == []


# ------------------------------------------------------------------ kube-proxy's and Calico's chains survive
SEED = """
{t} -N KUBE-FIREWALL
{t} -A KUBE-FIREWALL -m comment --comment "kube-proxy drops martians" -j DROP
{t} -A INPUT -j KUBE-FIREWALL
{t} -N KUBE-FORWARD
{t} -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -j ACCEPT
{t} -A FORWARD -j KUBE-FORWARD
{t} -N cali-INPUT
{t} -N cali-wl-to-host
{t} -A cali-INPUT -j cali-wl-to-host
{t} -I INPUT 1 -j cali-INPUT
{t} -N cali-FORWARD
{t} -N cali-fw-cali0123abcd
{t} -A cali-fw-cali0123abcd -j ACCEPT
{t} -A cali-FORWARD -j cali-fw-cali0123abcd
{t} -A FORWARD -j cali-FORWARD
{t} -P FORWARD DROP
{t} -t nat -N KUBE-SERVICES
{t} -t nat -N KUBE-SVC-ABCDEFGHIJKLMNOP
{t} -t nat -A KUBE-SVC-ABCDEFGHIJKLMNOP -j RETURN
{t} -t nat -A KUBE-SERVICES -j KUBE-SVC-ABCDEFGHIJKLMNOP
{t} -t nat -A PREROUTING -j KUBE-SERVICES
{t} -t nat -N cali-nat-outgoing
{t} -t nat -A POSTROUTING -j cali-nat-outgoing
{t} -t mangle -N KUBE-PROXY-CANARY
{t} -t mangle -N cali-PREROUTING
{t} -t mangle -A PREROUTING -j cali-PREROUTING
{t} -t raw -N cali-PREROUTING
{t} -t raw -A cali-PREROUTING -j ACCEPT
{t} -t raw -A PREROUTING -j cali-PREROUTING
"""


def _save(ns: str, tools: dict[str, str], tool: str) -> list[str]:
    out = _run([tools["ip"], "netns", "exec", ns, tools[tool]])
    assert out.returncode == 0, out.stderr.decode()
    return [re.sub(r" \[\d+:\d+\]$", "", x) for x in out.stdout.decode().splitlines() if x and not x.startswith("#")]


def _others(lines: list[str]) -> list[str]:
    """Everything but the INPUT chain of the filter table (which the file owns)."""
    out, table = [], ""
    for x in lines:
        if x.startswith("*"):
            table = x
        if table == "*filter" and (x.startswith("-A INPUT ") or x.startswith(":INPUT ")):
            continue
        out.append(f"{table} {x}")
    return out


def test_applying_a_worker_file_keeps_the_kube_and_calico_chains(netns: str, tmp_path: Path):
    tools = require_root_tools("ip", "ferm", "iptables-legacy", "ip6tables-legacy", "iptables-legacy-save",
                               "ip6tables-legacy-save")
    conf = tmp_path / "kubernetes1001.conf"
    conf.write_bytes(_compiled(POLICIES)["ferm/kubernetes1001.conf"])
    ns_exec = [tools["ip"], "netns", "exec", netns]
    for t in ("iptables-legacy", "ip6tables-legacy"):  # ferm uses the legacy tools when they are installed
        for cmd in SEED.strip().splitlines():
            argv = [tools[t], *[a.strip('"') for a in re.findall(r'"[^"]*"|\S+', cmd)[1:]]]
            done = _run([*ns_exec, *argv])
            assert done.returncode == 0, (cmd, done.stderr.decode())
    before = {t: _save(netns, tools, t) for t in ("iptables-legacy-save", "ip6tables-legacy-save")}
    assert any("KUBE-SVC-ABCDEFGHIJKLMNOP" in x for x in before["iptables-legacy-save"])
    for _ in range(2):  # a reload must keep them too
        done = _run([*ns_exec, tools["ferm"], str(conf)])
        assert done.returncode == 0, done.stderr.decode()
    for t, lines in before.items():
        after = _save(netns, tools, t)
        kept = set(_others(after))
        lost = [x for x in _others(lines) if x not in kept]
        assert lost == [], f"{t}: lost {lost}"
        assert "*filter :INPUT DROP" in {f"*filter {x}" for x in after if x.startswith(":INPUT")}
        # INPUT is the file's own: its rules, not the seeded jumps (kube-proxy and Felix put those back)
        assert not any(x.startswith("-A INPUT") and ("KUBE" in x or "cali" in x) for x in after)
        assert any("--dport 179" in x for x in after if x.startswith("-A INPUT"))
        chains = {x.split()[0][1:] for x in after if x.startswith(":")}
        assert {"KUBE-FIREWALL", "KUBE-FORWARD", "cali-INPUT", "cali-fw-cali0123abcd", "KUBE-SVC-ABCDEFGHIJKLMNOP",
                "cali-nat-outgoing", "KUBE-PROXY-CANARY", "cali-PREROUTING"} <= chains
        assert ":FORWARD DROP" in after  # a chain the file does not own keeps its policy


# ------------------------------------------------------------------ which hosts get a file
def test_every_host_with_a_firewall_gets_a_file_and_lvs_gets_none():
    result = compile_folder(POLICIES)
    assert result.model is not None
    files = {Path(p).stem for p in result.files if p.startswith("ferm/")}
    hosts = result.model.hosts
    # policies/roles.npl: role lvs-balancer says `firewall none`
    lvs = {h for h, x in hosts.items() if "lvs-balancer" in x.roles}
    assert lvs == {"lvs1013", "lvs1014", "lvs1015", "lvs1016", "lvs2007", "lvs2008", "lvs2009", "lvs2010"}
    assert files == set(hosts) - lvs
    assert all(p.endswith(".conf") for p in result.files if p.startswith("ferm/"))


def test_output_is_deterministic():
    first = _compiled(POLICIES)
    second = _compiled(POLICIES)
    assert first == second
    for data in first.values():
        text = data.decode()
        assert text.endswith("\n") and "\r" not in text
        assert not re.search(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", text)  # no timestamps


def test_the_committed_output_is_current():
    files = _compiled(POLICIES)
    on_disk = {f"ferm/{p.name}": p.read_bytes() for p in (REPO / "out" / "ferm").glob("*.conf")}
    assert on_disk == files, "out/ferm is stale: run `python -m compiler compile`"


# ------------------------------------------------------------------ the reference estate, worked out by hand
BASTIONS_V4 = ["208.80.154.86", "208.80.153.5", "91.198.174.113", "198.35.26.6", "103.102.166.7"]  # sites/*.npl
BASTIONS_V6 = ["2620:0:861:3:208:80:154:86", "2620:0:860:1:208:80:153:5", "2620:0:862:1:91:198:174:113",
               "2620:0:863:1:198:35:26:6", "2001:df2:e500:1:103:102:166:7"]
CUMIN = ["10.64.32.20", "2620:0:861:103:10:64:32:20", "10.192.0.140", "2620:0:860:101:10:192:0:140"]
PROMETHEUS = ["10.64.16.93", "10.64.48.92", "10.192.0.145", "10.192.32.145", "2620:0:861:102:10:64:16:93"]
MONITORING = ["208.80.155.119", "208.80.153.74", "2620:0:861:4:208:80:155:119"]  # einsteinium, tegmen
DEPLOY1001 = ["10.64.32.16", "2620:0:861:103:10:64:32:16"]  # role deploy: no special access
OUTSIDE = ["8.8.8.8", "2001:4860:4860::8888"]


def _base_expectations(f: FermFile) -> None:
    """The default role `base` (policies/roles.npl): SSH from bastions and cumin, 9100 from
    prometheus, anything from the icinga hosts; nothing from an ordinary host or the outside."""
    for a in BASTIONS_V4 + BASTIONS_V6 + CUMIN:
        assert f.admits(a, "tcp", 22), a
    for a in PROMETHEUS:
        assert f.admits(a, "tcp", 9100), a
    for a in MONITORING:
        assert f.admits(a, "tcp", 12345) and f.admits(a, "udp", 53), a
    for a in DEPLOY1001 + OUTSIDE:
        assert not f.admits(a, "tcp", 22) and not f.admits(a, "tcp", 9100), a


def test_kafka_broker(reference: dict[str, FermFile]):
    f = reference["kafka1001"]
    _base_expectations(f)
    # role kafka-broker: service kafka (tcp 9092, 9093) from network production-networks (= domain-networks:
    # every subnet of the sites and the three clusters' pod ranges) and frack-networks
    clients = ["10.64.32.16", "2620:0:861:103:10:64:32:16", "10.192.16.42",  # deploy1001, kubernetes2002
               "10.64.64.5", "2620:0:861:cabe::5", "10.192.64.9", "10.64.75.3",  # pods of all three clusters
               "208.80.155.10", "10.195.0.7"]  # frack-networks (INV ranges)
    for a in clients:
        assert f.admits(a, "tcp", 9092) and f.admits(a, "tcp", 9093), a
        assert not f.admits(a, "tcp", 9094) and not f.admits(a, "udp", 9092), a
    for a in OUTSIDE + ["172.16.0.1"]:
        assert not f.admits(a, "tcp", 9092), a
    # no app connects to `role kafka-broker` (they name `network kafka-main-*`, which opens no host
    # firewall), so no line admits pods alone: the kafka line is the production and frack networks
    (kafka,) = f.lines(4, "tcp", 9092)
    assert kafka.terms == ("$FRACK_NETWORKS_V4", "$PRODUCTION_NETWORKS_V4") and kafka.ports == ((9092, 9093),)
    (kafka6,) = f.lines(6, "tcp", 9092)
    assert kafka6.terms == ("$PRODUCTION_NETWORKS_V6",)  # frack-networks has no IPv6 address
    assert not f.admits("208.80.154.196", "tcp", 179)  # not a BGP speaker


def test_kubernetes_worker_in_an_l2_row_peers_with_the_routers(reference: dict[str, FermFile]):
    f = reference["kubernetes1001"]  # rack eqiad/a4, row a: `peer-with routers` of wikikube-eqiad
    _base_expectations(f)
    (bgp4,) = [x for x in f.lines(4, "tcp", 179) if x.ports == ((179, 179),)]
    (bgp6,) = [x for x in f.lines(6, "tcp", 179) if x.ports == ((179, 179),)]
    assert bgp4.terms == ("208.80.154.196", "208.80.154.197")  # cr1-eqiad, cr2-eqiad loopbacks
    assert bgp6.terms == ("2620:0:861:ffff::1", "2620:0:861:ffff::2")
    for a in ("208.80.153.192", "10.64.130.1", "10.64.0.145", "10.64.0.1"):  # cr1-codfw, a ToR, a node, gateway
        assert not f.admits(a, "tcp", 179), a
    # k8s-worker: kubelet 10250 from the k8s-master role (both DCs), 10255 from prometheus;
    # wikikube-eqiad-node: typha 5473 from the cluster's own nodes
    for a in ("10.64.0.40", "10.64.32.41", "10.192.0.27", "2620:0:861:101:10:64:0:40"):  # argon, chlorine, acrab
        assert f.admits(a, "tcp", 10250), a
    assert not f.admits("10.64.16.93", "tcp", 10250) and f.admits("10.64.16.93", "tcp", 10255)
    assert f.admits("10.64.130.11", "tcp", 5473) and not f.admits("10.192.0.11", "tcp", 5473)  # codfw node
    assert not f.admits("10.64.64.7", "tcp", 10250)  # a pod


def test_kubernetes_worker_in_an_l3_rack_peers_with_its_tor(reference: dict[str, FermFile]):
    f = reference["kubernetes1007"]  # rack eqiad/e1: `peer-with tor for row eqiad/e`
    (bgp4,) = f.lines(4, "tcp", 179)
    (bgp6,) = f.lines(6, "tcp", 179)
    assert (bgp4.terms, bgp6.terms) == (("10.64.130.1",), ("2620:0:861:109::1",))  # the rack gateway = ToR
    assert not f.admits("208.80.154.196", "tcp", 179) and not f.admits("10.64.131.1", "tcp", 179)
    assert (reference["kubernetes1008"].lines(4, "tcp", 179)[0].terms == ("10.64.131.1",))  # rack e2


def test_etcd_server(reference: dict[str, FermFile]):
    f = reference["etcd1001"]  # role k8s-etcd: 2379 and 2380 from network domain-networks
    _base_expectations(f)
    for a in ("10.64.0.121", "10.192.0.11", "10.64.64.20", "2620:0:861:101:10:64:0:121"):
        assert f.admits(a, "tcp", 2379) and f.admits(a, "tcp", 2380), a
    assert not f.admits("8.8.8.8", "tcp", 2379) and not f.admits("10.64.0.121", "tcp", 2381)
    assert not f.lines(4, "tcp", 179)


def test_bastion(reference: dict[str, FermFile]):
    f = reference["bast1002"]  # role bastion: service ssh from any
    for a in OUTSIDE + DEPLOY1001:
        assert f.admits(a, "tcp", 22), a
        assert not f.admits(a, "tcp", 80), a
    assert [x.sources for x in f.lines(4, "tcp", 22) if x.sources is None]  # a line without saddr


def test_apps_reach_host_roles_from_their_pods(reference: dict[str, FermFile]):
    # api-gateway (wikikube-eqiad, wikikube-codfw) connects to role redis-misc on 6380, changeprop on 6379;
    # redis-misc also allows both from network kubepods (every pod range, staging included)
    f = reference["rdb1011"]
    for a in ("10.64.64.9", "10.192.64.9", "2620:0:861:cabe::9", "10.64.75.9"):
        assert f.admits(a, "tcp", 6379) and f.admits(a, "tcp", 6380), a
    assert not f.admits("10.64.32.16", "tcp", 6379)  # a host, not a pod
    # cxserver (3306, 3325) and linkrecommendation (3306, 3322) connect to role mariadb from their pods;
    # role mariadb allows 3306, 3322, 3325 from $INTERNAL (10.0.0.0/8: the IPv4 pods too)
    db = reference["db1115"]
    for port in (3306, 3322, 3325):
        assert db.admits("2620:0:860:cabe::1", "tcp", port)  # a wikikube-codfw pod over IPv6: the app rules
        assert not db.admits("2620:0:861:babe::1", "tcp", port)  # a staging pod: neither app runs there
    assert db.admits("10.64.32.16", "tcp", 3306) and not db.admits("10.64.32.16", "tcp", 3307)


def test_sources_are_written_per_family(reference: dict[str, FermFile]):
    # the parser (tests/ferm_format.py) refuses an address of the wrong family in a domain;
    # here: every variable ends in its family and holds only addresses of it
    for host, f in reference.items():
        for name, items in f.variables.items():
            family = 4 if name.endswith("_V4") else 6 if name.endswith("_V6") else None
            assert family is not None, (host, name)
            assert {IPNetwork(i).version for i in items} == {family}, (host, name)


def test_every_line_has_its_source_statement(reference: dict[str, FermFile]):
    for host, f in reference.items():
        for family in (4, 6):
            for line in f.chains[family]:
                assert line.comments, (host, line)
                for c in line.comments:
                    assert re.match(r"# [\w/.-]+\.npl:\d+ (default )?(role|app|cluster) [\w-]+: .+", c), (host, c)


# ------------------------------------------------------------------ rules of the backend on small policies
def _ferm(sources: dict[str, str]) -> dict[str, FermFile]:
    model, diags = compile_sources(sources)
    assert model is not None and not errors(diags), [d.message for d in diags]
    from compiler.backends import ferm
    return {Path(p).stem: parse(b.decode()) for p, b in ferm.render(model).items()}


def test_networks_open_no_host_firewall_but_roles_and_hosts_do():
    extra = """
network brokers = host kafka1001
role prometheus-extra {}
app scraper {
  cluster wikikube-eqiad
  connect tcp 7000 to network brokers
  connect tcp 7001 to role kafka-broker
  connect tcp 7002 to host kafka1001
  connect tcp 7003 to row eqiad/a
}
"""
    files = _ferm({"a.npl": SMALL + extra})
    f = files["kafka1001"]
    pod = "10.64.64.20"
    assert not f.admits(pod, "tcp", 7000) and not f.admits(pod, "tcp", 7003)
    assert f.admits(pod, "tcp", 7001) and f.admits(pod, "tcp", 7002)
    assert f.admits("2620:0:861:cabe::20", "tcp", 7001)
    assert not f.admits("10.64.16.11", "tcp", 7001)  # kube1001: a host, not a pod


def test_in_cluster_limits_the_pods_admitted():
    extra = """
cluster other {
  site eqiad
  asn 64620
  pods 10.70.0.0/16
  nodes host kafka1001
  peer-with routers
}
app batch {
  clusters wikikube-eqiad, other
  connect tcp 5432 to role kafka-broker in cluster other
}
"""
    f = _ferm({"a.npl": SMALL + extra})["kafka1001"]
    assert f.admits("10.70.1.1", "tcp", 5432)
    assert not f.admits("10.64.64.1", "tcp", 5432)  # wikikube-eqiad: not named by `in cluster`


def test_ports_protocols_and_ranges_are_grouped():
    extra = """
role web {
  allow tcp 80, 443, udp 443 from network internal description "web"
  allow tcp 8000-8010 from network internal description "alt"
  allow sctp 3868 from network internal
  allow icmp 3 code 4, icmpv6 packet-too-big from any
  allow udp from network monitoring
}
"""
    src = SMALL.replace("host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker",
                        "host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker, web")
    f = _ferm({"a.npl": src + extra})["kafka1001"]
    (tcp,) = [x for x in f.lines(4, "tcp") if x.terms == ("$INTERNAL_V4",)]
    assert tcp.ports == ((80, 80), (443, 443), (8000, 8010), (9092, 9093)) and len(tcp.comments) == 3
    assert f.admits("10.1.2.3", "udp", 443) and not f.admits("10.1.2.3", "udp", 80)
    assert f.admits("10.1.2.3", "sctp", 3868) and f.admits("2620:0:860::1", "sctp", 3868)
    assert f.admits("10.64.16.12", "udp", 9999) and not f.admits("10.64.16.12", "tcp", 9999)  # kube1002: prometheus
    text = _compiled_text(src + extra, "kafka1001")
    assert "proto tcp dport (80 443 8000:8010 9092:9093) saddr $INTERNAL_V4 ACCEPT;" in text
    assert "proto icmp icmp-type 3/4 ACCEPT;" in text and "proto ipv6-icmp icmpv6-type 2 ACCEPT;" in text


def _compiled_text(source: str, host: str) -> str:
    model, diags = compile_sources({"a.npl": source})
    assert model is not None, [d.message for d in diags]
    from compiler.backends import ferm
    return ferm.render(model)[f"ferm/{host}.conf"].decode()


def test_a_family_without_sources_gets_no_line():
    # bast1001 has only an IPv4 address; role bastion's hosts are the sources of kafka1001's SSH line
    f = _ferm({"a.npl": SMALL})["kafka1001"]
    assert f.admits("208.80.154.10", "tcp", 22)
    assert all(x.terms != () for x in f.chains[6])
    assert not [x for x in f.lines(6, "tcp", 22)]


def test_variable_names_do_not_clash():
    extra = "network role-bastion = 10.9.9.0/24\nrole x { allow tcp 1 from network role-bastion, role bastion }\n"
    src = SMALL.replace("roles kafka-broker", "roles kafka-broker, x", 1)
    text = _compiled_text(src + extra, "kafka1001")
    assert "@def $ROLE_BASTION_V4 = (" in text and "@def $ROLE_BASTION_2_V4 = (" in text
    f = parse(text)
    assert f.admits("10.9.9.9", "tcp", 1) and f.admits("208.80.154.10", "tcp", 1)


def test_bgp_from_route_reflectors_and_their_clients():
    files = {Path(p).stem: parse(b.decode()) for p, b in _compiled(REPO / "examples" / "route-reflectors").items()}
    # examples/route-reflectors: reflectors k8s-rr1001 (10.64.0.40), k8s-rr1002 (10.64.16.40)
    client = files["kubernetes1001"]
    (bgp,) = client.lines(4, "tcp", 179)
    assert bgp.terms == ("10.64.0.40", "10.64.16.40")
    rr = files["k8s-rr1001"]
    (rr4,) = rr.lines(4, "tcp", 179)
    # its clients (the other four workers), the other reflector, and cr1/cr2
    assert rr4.terms == ("10.64.0.21", "10.64.0.22", "10.64.16.21", "10.64.16.22", "10.64.16.40",
                         "208.80.154.196", "208.80.154.197")
    assert not files["etcd1001"].lines(4, "tcp", 179)


# ------------------------------------------------------------------ the lock-out guard
def _f00x(diags) -> list:
    return [d for d in diags if d.code.startswith("F")]


def _guard(source: str) -> list:
    """The lock-out guard's findings on a policy (as diagnostics), the policy itself being valid."""
    model, diags = compile_text(source)
    assert model is not None and not errors(diags), [d.message for d in diags]
    return [f.as_diagnostic() for f in analysis.lockout(model)]


def test_the_reference_estate_passes_the_guard():
    result = compile_folder(POLICIES)
    assert result.model is not None and not _f00x(result.diagnostics)
    assert [r.name for r in result.model.roles.values() if r.ssh_gateway] == ["bastion"]


def test_a_default_role_that_forgets_ssh_fails_naming_the_hosts():
    src = SMALL.replace("  allow tcp 22 from role bastion\n", "  allow tcp 9100 from role bastion\n")
    found = _guard(src)
    assert {d.code for d in found} == {"F001"} and all(d.severity == "error" for d in found)
    # every host with a firewall but the bastion itself (its own address arrives over lo)
    named = {re.match(r"host (\S+) ", d.message).group(1) for d in found}
    assert named == {"kafka1001", "kube1001", "kube1002", "kube1003"}
    d = next(d for d in found if "kafka1001" in d.message)
    assert d.span.line == 11 and "bast1001 (208.80.154.10)" in d.message  # the host's statement
    assert d.notes and "ssh-gateway" in d.notes[0][0] and d.notes[0][1].line == 54


def test_the_guard_stops_the_compile(tmp_path: Path):
    src = SMALL.replace("  allow tcp 22 from role bastion\n", "")
    (tmp_path / "a.npl").write_text(src)
    result = compile_folder(tmp_path)
    assert not result.ok and result.files == {}
    assert any(d.code == "F001" for d in result.diagnostics)


def test_the_guard_checks_each_family_the_gateway_and_host_share():
    # a dual-stack bastion; kafka1001 admits SSH from it over IPv4 only
    src = SMALL.replace('host bast1001 208.80.154.10 roles bastion', 'host bast1001 208.80.154.10 2620:0:861:101::99 '
                        'roles bastion').replace("  allow tcp 22 from role bastion\n",
                                                 "  allow tcp 22 from 208.80.154.10\n")
    found = _guard(src)
    kafka = [d for d in found if "host kafka1001 " in d.message]
    assert len(kafka) == 1 and "2620:0:861:101::99" in kafka[0].message and "208.80.154.10" not in kafka[0].message
    # kube1001 has no IPv6 address: the IPv4 line is enough
    assert not [d for d in found if "host kube1001 " in d.message]


def test_no_ssh_gateway_means_no_ssh_check():
    src = BASE.replace("  allow tcp 22 from role bastion\n", "")
    assert not _guard(src)


def test_a_missing_bgp_line_is_f002():
    model, diags = compile_text(SMALL)
    assert model is not None and not errors(diags)
    firewalls = analysis.host_firewalls(model)
    stripped = {h: HostFirewall(fw.host, fw.roles, fw.policy, fw.bgp_cluster) for h, fw in firewalls.items()}
    found = lockout_check(model, stripped, analysis.peering_graph(model))
    f002 = {f.host: f for f in found if f.code == "F002"}
    assert set(f002) == {"kube1001", "kube1002", "kube1003"}  # the wikikube-eqiad nodes (`peer-with routers`)
    assert "cr1-eqiad (208.80.154.196" in f002["kube1003"].message
    assert "2620:0:861:ffff::1" in f002["kube1003"].message  # kube1003 is dual-stack: both sessions
    assert f002["kube1001"].notes[0][1].file == "a.npl"  # the `peer-with` statement
    assert not [f for f in lockout_check(model, firewalls, analysis.peering_graph(model)) if f.code == "F002"]


def test_ssh_gateway_statement_rules():
    _, diags = compile_text(SMALL.replace("default role base {", "default role base {\n  ssh-gateway"))
    assert [d.code for d in errors(diags)] == ["E606"]
    _, diags = compile_text(SMALL.replace("ssh-gateway allow", "ssh-gateway ssh-gateway allow"))
    assert [d.code for d in errors(diags)] == ["E601"]
    # a contextual keyword: still a name where only a name fits
    model, diags = compile_text(SMALL.replace("host bast1001 ", "host ssh-gateway 208.80.154.11 roles bastion\n"
                                              "      host bast1001 "))
    assert model is not None and not errors(diags)
    assert model.roles["bastion"].hosts == ("bast1001", "ssh-gateway")
    _, diags = compile_text("role bastion { ssh-gatway }")
    assert [(d.code, d.hint) for d in diags] == [("E004", "did you mean `ssh-gateway`?")]


def test_the_guard_codes_are_documented():
    doc = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    source = (REPO / "compiler" / "analysis" / "lockout.py").read_text(encoding="utf-8")
    codes = set(re.findall(r"\"(F\d{3})\"", source))
    assert codes == {"F001", "F002"}
    assert codes <= set(re.findall(r"^\| (F\d{3}) \|", doc, re.M))
    assert "ssh-gateway" in doc


def test_the_lockout_guard_is_exact_on_own_addresses():
    # the bastion's own address arrives over lo: the bastion needs no line for itself
    model, diags = compile_text(SMALL)
    assert model is not None and not errors(diags)
    fw = analysis.host_firewalls(model)["bast1001"]
    assert not fw.admits_packet(IPAddress("208.80.154.10"), "tcp", 9100)
    assert not [f for f in analysis.lockout(model) if f.host == "bast1001"]

"""`netpolc explain`: allowed or denied, and why, checked against answers written by hand.

The expected statements are found by their text in the policy (`line_of`), and the expected
compiled lines by reading the compiled files here, independently of the explain module: a Calico
rule is the `- action: Allow` item that holds its `netpolc.io/source` annotation (and, where
several rules share it, its selector); a ferm line is the first line after the statement's
`# file:line` comment in the chain of its family.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compiler import cli
from compiler.analysis import explain as ex
from compiler.backends import calico, ferm
from compiler.output import write_tree
from compiler.project import Result, compile_folder

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"

SMALL = """\
site s1 {
  router cr1-s1 loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  router cr2-s1 loopback 192.0.2.2 2001:db8:ffff::2 asn 65000
  row a {
    switch asw-a-s1
    subnet 10.1.0.0/24 2001:db8:1::/64
    gateway 10.1.0.1 2001:db8:1::1
    rack a1 {
      host web1 10.1.0.10 2001:db8:1::10 roles web
      host db1 10.1.0.11 2001:db8:1::11 roles db
      host old1 10.1.0.12 roles web
      host bast1 10.1.0.20 2001:db8:1::20 roles bastion
      host kube1 10.1.0.30 2001:db8:1::30 roles worker
      host kube2 10.1.0.31 2001:db8:1::31 roles worker2
      host lb1 10.1.0.40 2001:db8:1::40 roles balancer
    }
  }
}

cluster k1 {
  site s1
  asn 64601
  pods 10.2.0.0/16
  nodes role worker
  peer-with routers
}

cluster k2 {
  site s1
  asn 64602
  pods 10.3.0.0/16 2001:db8:3::/64
  nodes role worker2
  peer-with routers
}

service syslog = udp 514
network v4-clients = 10.1.0.0/24
network db = host db1
network clients-and-pods = network v4-clients, cluster k1

default role base {
  allow tcp 22 from role bastion
}
role bastion {
  ssh-gateway
  allow tcp 22 from any exposed "the way in"
}
role web { }
role worker { }
role worker2 { }
role balancer { firewall none }
role db {
  allow tcp 5432 from network v4-clients description "clients by IPv4 only"
  allow service syslog from role web
}

app front {
  clusters k1, k2
  listen tcp 8080
  allow tcp 8080 from any
  connect tcp 9000 to app api
  connect tcp 5432 to host db1 in cluster k1
}
app api {
  clusters k1, k2
  listen tcp 9000, 9001
  allow from app front
}
"""


# ------------------------------------------------------------------------------- helpers
def compiled(root: Path) -> Result:
    result = compile_folder(root, render=False)
    assert result.ok and result.model is not None, result.diagnostics
    result.files = {**calico.render(result.model), **ferm.render(result.model)}
    return result


@pytest.fixture(scope="module")
def estate() -> Result:
    return compiled(POLICIES)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Result:
    root = tmp_path_factory.mktemp("small") / "policies"
    root.mkdir()
    (root / "estate.npl").write_text(SMALL)
    return compiled(root)


def ask(result: Result, *words: str) -> ex.Report:
    assert result.model is not None
    src, dst, query = ex.parse_words(words)
    report = ex.explain(result.model, result.files, src, dst, query)
    assert report.problems == []  # the compiled files agree with the model
    return report


def line_of(result: Result, file: str, snippet: str) -> str:
    """`file:line` of the one line of a policy file that holds `snippet` (`$`: at the line's end)."""
    lines = result.sources[file].split("\n")
    if snippet.endswith("$"):
        found = [i for i, line in enumerate(lines, 1) if line.rstrip().endswith(snippet[:-1])]
    else:
        found = [i for i, line in enumerate(lines, 1) if snippet in line]
    assert len(found) == 1, (snippet, found)
    return f"{file}:{found[0]}"


def calico_rules(result: Result, path: str, location: str, selector: str | None = None) -> list[int]:
    """The lines of the `- action: Allow` items that carry this annotation (and selector)."""
    lines = result.files[path].decode().split("\n")
    out = []
    for i, line in enumerate(lines):
        if line.strip() == f"netpolc.io/source: {location}" and line.startswith("        "):
            start = max(j for j in range(i) if lines[j].lstrip().startswith("- action: Allow"))
            end = next((j for j in range(i, len(lines)) if lines[j].lstrip().startswith("- action")
                        or not lines[j].startswith("    ")), len(lines))
            if selector is None or any(selector in x for x in lines[start:end]):
                out.append(start + 1)
    return out


def ferm_line(result: Result, host: str, location: str, family: int) -> int:
    """The line right after the comments that name the statement, in the chain of the family."""
    lines = result.files[f"ferm/{host}.conf"].decode().split("\n")
    chain = lines.index(f"domain {'ip' if family == 4 else 'ip6'} table filter chain INPUT {{")
    i = next(j for j in range(chain, len(lines)) if lines[j].startswith(f"    # {location} "))
    return next(j for j in range(i, len(lines)) if not lines[j].lstrip().startswith("#")) + 1


def pair(report: ex.Report, source: str, destination: str) -> ex.PairResult:
    found = [p for p in report.pairs if p.source.label == source and p.destination.label == destination]
    assert len(found) == 1, [(p.source.label, p.destination.label) for p in report.pairs]
    return found[0]


def fam(p: ex.PairResult, family: int) -> ex.FamilyResult:
    return next(f for f in p.families if f.family == family)


def end(p: ex.PairResult, family: int, which: str) -> ex.EndResult:
    return next(e for e in fam(p, family).ends if e.end == which)


def locations(e: ex.EndResult) -> list[str | None]:
    return [s.location for s in e.statements]


def emitted(e: ex.EndResult) -> set[tuple[str, int]]:
    return {(x.file, x.line) for x in e.emitted}


# ------------------------------------------------------------------------------- the reference estate
def test_app_to_app_allowed_with_the_statements_and_both_calico_rules(estate: Result) -> None:
    # eventgate-main: `allow tcp 4492 from app mobileapps, changeprop`, compiled at both ends; the
    # default app's `connect any to network kubepods` opens the egress of every pod to every pod range;
    # `allow tcp 4492 from network mw-appserver-networks` holds the wikikube-eqiad pod range too.
    report = ask(estate, "app", "mobileapps@wikikube-eqiad", "app", "eventgate-main@wikikube-eqiad", "4492/tcp")
    assert report.verdict == "allowed"
    p = pair(report, "app mobileapps@wikikube-eqiad", "app eventgate-main@wikikube-eqiad")
    both = line_of(estate, "apps/eventing.npl", "allow tcp 4492 from app mobileapps, changeprop")
    pod_to_pod = line_of(estate, "apps/baseline.npl", "connect any to network kubepods")
    appservers = line_of(estate, "apps/eventing.npl", "allow tcp 4492 from network mw-appserver-networks")
    for family in (4, 6):
        assert fam(p, family).verdict == "allowed"
        egress, ingress = end(p, family, "source"), end(p, family, "destination")
        assert (egress.enforcer, ingress.enforcer) == ("calico", "calico")
        assert sorted(locations(egress)) == sorted([pod_to_pod, both])
        assert sorted(locations(ingress)) == sorted([appservers, both])
        gnp = "calico/wikikube-eqiad/globalnetworkpolicies.yaml"
        assert emitted(egress) == {(gnp, n) for n in calico_rules(estate, gnp, pod_to_pod)} | {
            ("calico/wikikube-eqiad/mobileapps.yaml", n) for n in calico_rules(
                estate, "calico/wikikube-eqiad/mobileapps.yaml", both, "app == 'eventgate-main'")}
        mine = "calico/wikikube-eqiad/eventgate-main.yaml"
        assert emitted(ingress) == {(mine, n) for n in calico_rules(estate, mine, appservers)} | {
            (mine, n) for n in calico_rules(estate, mine, both, "app == 'mobileapps'")}
        assert len(emitted(ingress)) == 2


def test_app_to_kafka_role_calico_egress_and_ferm_line_on_each_broker(estate: Result) -> None:
    # eventgate-main: `connect service kafka to network kafka-main-eqiad` (kafka100[1-3]); the
    # brokers' role: `allow service kafka from network production-networks, frack-networks`, and
    # production-networks holds the pod ranges. The jumbo and codfw brokers are not in its egress.
    report = ask(estate, "app eventgate-main@wikikube-eqiad", "role kafka-broker", "9092/tcp")
    assert report.verdict == "mixed"
    connect = line_of(estate, "apps/eventing.npl", "connect service kafka to network kafka-main-eqiad$")
    broker = line_of(estate, "roles.npl", "allow service kafka from network production-networks")
    policy = "calico/wikikube-eqiad/eventgate-main.yaml"
    for host in ("kafka1001", "kafka1002", "kafka1003"):
        p = pair(report, "app eventgate-main@wikikube-eqiad", f"host {host}")
        assert p.verdict == "allowed"
        for family in (4, 6):
            egress, firewall = end(p, family, "source"), end(p, family, "destination")
            assert locations(egress) == [connect]
            assert emitted(egress) == {(policy, n) for n in calico_rules(estate, policy, connect)}
            assert firewall.enforcer == "ferm" and locations(firewall) == [broker]
            assert emitted(firewall) == {(f"ferm/{host}.conf", ferm_line(estate, host, broker, family))}
    for host in ("kafka2001", "kafka-jumbo1001"):
        p = pair(report, "app eventgate-main@wikikube-eqiad", f"host {host}")
        assert p.verdict == "denied"
        egress, firewall = end(p, 4, "source"), end(p, 4, "destination")
        assert egress.verdict == "denied" and firewall.verdict == "allowed"  # the egress denies it
        assert egress.hint is not None and f"connect tcp 9092 to host {host}" in egress.hint
    # the nearest for kafka2001: changeprop reaches the codfw brokers on this port
    near = end(pair(report, "app eventgate-main@wikikube-eqiad", "host kafka2001"), 4, "source").nearest
    changeprop = line_of(estate, "apps/eventing.npl", "connect service kafka to network kafka-main-eqiad, kafka-main")
    assert changeprop in [n.statement.location for n in near]


def test_a_udp_only_service_does_not_allow_tcp(estate: Result) -> None:
    # the default app: `connect service statsd to network statsd`, and statsd is `udp 8125`
    statsd = line_of(estate, "apps/baseline.npl", "connect service statsd to network statsd")
    udp = ask(estate, "app zotero@wikikube-eqiad", "network statsd", "8125/udp")
    assert udp.verdict == "allowed"
    e = end(pair(udp, "app zotero@wikikube-eqiad", "network statsd"), 4, "source")
    gnp = "calico/wikikube-eqiad/globalnetworkpolicies.yaml"
    assert locations(e) == [statsd] and emitted(e) == {(gnp, n) for n in calico_rules(estate, gnp, statsd)}
    tcp = ask(estate, "app zotero@wikikube-eqiad", "network statsd", "8125/tcp")
    assert tcp.verdict == "denied"
    p = pair(tcp, "app zotero@wikikube-eqiad", "network statsd")
    assert fam(p, 6).verdict == "n/a"  # statsd has IPv4 addresses only
    e = end(p, 4, "source")
    assert e.verdict == "denied" and e.statements == [] and e.emitted == []
    assert e.nearest[0].statement.location == statsd
    assert "udp 8125, not tcp 8125" in e.nearest[0].why
    assert end(p, 4, "destination").verdict == "not policed"


def test_denied_names_the_denying_end_and_the_nearest_statement(estate: Result) -> None:
    # mathoid: `allow tcp 4001 from network mw-appserver-networks`, which holds the wikikube pod
    # ranges but not staging-eqiad's: citoid reaches mathoid in wikikube-eqiad, not in staging.
    appservers = line_of(estate, "apps/content.npl", "allow tcp 4001 from network mw-appserver-networks")
    report = ask(estate, "app citoid@staging-eqiad", "app mathoid@staging-eqiad", "4001/tcp")
    assert report.verdict == "denied"
    p = pair(report, "app citoid@staging-eqiad", "app mathoid@staging-eqiad")
    for family in (4, 6):
        egress, ingress = end(p, family, "source"), end(p, family, "destination")
        assert egress.verdict == "allowed"
        assert ingress.verdict == "denied"
        assert ingress.subject == "Calico ingress of app mathoid in cluster staging-eqiad"
        assert ingress.nearest[0].statement.location == appservers
        assert "does not hold app citoid@staging-eqiad" in ingress.nearest[0].why
        assert ingress.hint is not None and "`allow tcp 4001 from app citoid`" in ingress.hint
    allowed = ask(estate, "app citoid@wikikube-eqiad", "app mathoid@wikikube-eqiad", "4001/tcp")
    e = end(pair(allowed, "app citoid@wikikube-eqiad", "app mathoid@wikikube-eqiad"), 4, "destination")
    assert allowed.verdict == "allowed" and locations(e) == [appservers]


def test_host_to_host_through_the_ferm_file(estate: Result) -> None:
    # the default role: `allow service node-exporter from role prometheus` (tcp 9100)
    exporter = line_of(estate, "roles.npl", "allow service node-exporter from role prometheus")
    report = ask(estate, "host prometheus1003", "kubernetes1001", "9100/tcp")
    p = pair(report, "host prometheus1003", "host kubernetes1001")
    assert report.verdict == "allowed"
    for family in (4, 6):
        assert end(p, family, "source").verdict == "not policed"  # hosts send unfiltered
        e = end(p, family, "destination")
        assert locations(e) == [exporter]
        assert emitted(e) == {("ferm/kubernetes1001.conf", ferm_line(estate, "kubernetes1001", exporter, family))}
    denied = ask(estate, "host prometheus1003", "kubernetes1001", "9101/tcp")
    e = end(pair(denied, "host prometheus1003", "host kubernetes1001"), 4, "destination")
    assert denied.verdict == "denied" and e.nearest[0].statement.location == exporter
    assert "tcp 9100, not tcp 9101" in e.nearest[0].why


def test_ssh_from_outside_to_a_bastion_is_allowed_to_a_worker_denied(estate: Result) -> None:
    # role bastion: `allow service ssh from any`; the default role: ssh only from the bastions and cumin
    anywhere = line_of(estate, "roles.npl", "allow service ssh from any")
    bastions = line_of(estate, "roles.npl", "allow service ssh from network bastion-hosts")
    report = ask(estate, "93.184.216.34", "role bastion", "22/tcp")
    assert report.verdict == "allowed" and len(report.pairs) == 5
    p = pair(report, "93.184.216.34 (outside the estate)", "host bast1002")
    assert fam(p, 6).verdict == "n/a" and "has no IPv6 address" in (fam(p, 6).reason or "")
    e = end(p, 4, "destination")
    assert locations(e) == [anywhere]
    assert emitted(e) == {("ferm/bast1002.conf", ferm_line(estate, "bast1002", anywhere, 4))}
    worker = ask(estate, "93.184.216.34", "host kubernetes1001", "22/tcp")
    assert worker.verdict == "denied"
    p = pair(worker, "93.184.216.34 (outside the estate)", "host kubernetes1001")
    assert end(p, 4, "source").verdict == "not policed"
    e = end(p, 4, "destination")
    assert e.verdict == "denied" and e.enforcer == "ferm"
    near = [n.statement.location for n in e.nearest]
    assert near[0] == bastions and anywhere in near  # the same port from the bastions; the bastions' own rule


def test_internet_keyword_and_icmp(estate: Result) -> None:
    report = ask(estate, "internet", "host bast1002", "22/tcp")
    assert report.verdict == "allowed"
    # every ferm file accepts IPv4 ICMP before any statement; the default app allows all ICMP
    ping = ask(estate, "app zotero@wikikube-eqiad", "host kafka1001", "8/icmp")
    p = pair(ping, "app zotero@wikikube-eqiad", "host kafka1001")
    assert ping.verdict == "allowed" and fam(p, 6).verdict == "n/a"
    assert None in locations(end(p, 4, "destination"))  # the built-in line, first of its kind in the file
    first = estate.files["ferm/kafka1001.conf"].decode().split("\n").index("    proto icmp ACCEPT;") + 1
    assert ("ferm/kafka1001.conf", first) in emitted(end(p, 4, "destination"))


# ------------------------------------------------------------------------------- small estates
def test_ipv4_and_ipv6_differ_when_a_network_has_one_family(small: Result) -> None:
    clients = line_of(small, "estate.npl", "allow tcp 5432 from network v4-clients")
    report = ask(small, "web1", "db1", "5432/tcp")
    p = pair(report, "host web1", "host db1")
    assert report.verdict == "mixed" and fam(p, 4).verdict == "allowed" and fam(p, 6).verdict == "denied"
    assert locations(end(p, 4, "destination")) == [clients]
    assert emitted(end(p, 4, "destination")) == {("ferm/db1.conf", ferm_line(small, "db1", clients, 4))}
    e6 = end(p, 6, "destination")
    assert e6.emitted == [] and e6.nearest[0].statement.location == clients
    assert "over IPv4, but over IPv6" in e6.nearest[0].why


def test_a_source_with_one_family_is_answered_in_that_family_only(small: Result) -> None:
    report = ask(small, "host old1", "host db1", "5432/tcp")
    p = pair(report, "host old1", "host db1")
    assert report.verdict == "allowed"
    assert fam(p, 4).verdict == "allowed"
    assert (fam(p, 6).verdict, fam(p, 6).reason) == ("n/a", "host old1 has no IPv6 address")
    # an app whose cluster has IPv4 pods only, likewise
    apps = ask(small, "app front@k1", "app api@k1", "9000/tcp")
    p = pair(apps, "app front@k1", "app api@k1")
    assert fam(p, 4).verdict == "allowed" and fam(p, 6).verdict == "n/a"


def test_app_to_app_other_port_is_denied_at_the_source_with_the_nearest(small: Result) -> None:
    connect = line_of(small, "estate.npl", "connect tcp 9000 to app api")
    allow = line_of(small, "estate.npl", "allow from app front")  # api listens on tcp 9000, 9001
    ok = ask(small, "app front@k2", "app api@k2", "9000/tcp")
    p = pair(ok, "app front@k2", "app api@k2")
    assert ok.verdict == "allowed"
    e = end(p, 6, "source")
    assert locations(e) == [connect, allow]
    assert emitted(e) == {("calico/k2/front.yaml", n) for loc in (connect, allow)
                          for n in calico_rules(small, "calico/k2/front.yaml", loc, "app == 'api'")}
    report = ask(small, "app front@k2", "app api@k2", "9002/tcp")
    p = pair(report, "app front@k2", "app api@k2")
    egress, ingress = end(p, 4, "source"), end(p, 4, "destination")
    assert report.verdict == "denied" and egress.verdict == "denied" and ingress.verdict == "denied"
    assert egress.nearest[0].statement.location == allow  # tcp 9000-9001 is nearer to 9002 than 9000
    assert "not tcp 9002" in egress.nearest[0].why
    assert egress.hint == f"in app front ({line_of(small, 'estate.npl', 'app front {')}): " \
                          "`connect tcp 9002 to app api`"


def test_in_cluster_statement_is_the_nearest_in_another_cluster(small: Result) -> None:
    restricted = line_of(small, "estate.npl", "connect tcp 5432 to host db1 in cluster k1")
    k1 = ask(small, "app front@k1", "host db1", "5432/tcp")
    assert k1.verdict == "allowed"
    assert locations(end(pair(k1, "app front@k1", "host db1"), 4, "destination")) == [
        restricted]  # v4-clients (10.1.0.0/24) does not hold the pods of k1 (10.2.0.0/16)
    k2 = ask(small, "app front@k2", "host db1", "5432/tcp")
    egress = end(pair(k2, "app front@k2", "host db1"), 4, "source")
    assert k2.verdict == "denied" and egress.nearest[0].statement.location == restricted
    assert "holds only in cluster k1" in egress.nearest[0].why


def test_unpoliced_ends_and_addresses(small: Result) -> None:
    # lb1's role says `firewall none`: nothing polices its INPUT; an address resolves to its host
    report = ask(small, "bast1", "10.1.0.40", "22/tcp")
    p = pair(report, "host bast1", "host lb1 (10.1.0.40)")
    assert report.verdict == "allowed" and end(p, 4, "destination").verdict == "not policed"
    assert "firewall none" in end(p, 4, "destination").reason
    # an address in a pod range: its app is unknown, so its egress is not judged
    pod = ask(small, "10.2.0.7", "db1", "5432/tcp")
    assert pod.verdict == "unknown"
    assert end(pod.pairs[0], 4, "source").verdict == "unknown"
    assert end(pod.pairs[0], 4, "destination").verdict == "allowed"


def test_a_set_admitted_in_parts_and_one_admitted_only_in_part(small: Result) -> None:
    clients = line_of(small, "estate.npl", "allow tcp 5432 from network v4-clients")
    pods = line_of(small, "estate.npl", "connect tcp 5432 to host db1 in cluster k1")
    # 10.1.0.0/24 by the role's statement, the pods of k1 by front's `connect ... to host db1`
    both = ask(small, "network clients-and-pods", "db1", "5432/tcp")
    e = end(pair(both, "network clients-and-pods", "host db1"), 4, "destination")
    assert both.verdict == "allowed" and sorted(locations(e)) == sorted([clients, pods])
    assert emitted(e) == {("ferm/db1.conf", ferm_line(small, "db1", clients, 4))}  # one line holds both
    # a /23 of which only the first half is admitted
    half = ask(small, "10.1.0.0/23", "db1", "5432/tcp")
    e = end(pair(half, "10.1.0.0/23 (partly in the estate)", "host db1"), 4, "destination")
    assert half.verdict == "denied" and "for part of its addresses only" in e.reason
    assert e.nearest[0].statement.location == clients and "holds only part of 10.1.0.0/23" in e.nearest[0].why


# ------------------------------------------------------------------------------- the command line
def test_cli_text_answer_on_the_reference_estate(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                estate: Result) -> None:
    write_tree(tmp_path / "out", compile_folder(POLICIES).files)
    connect = line_of(estate, "apps/eventing.npl", "connect service kafka to network kafka-main-eqiad$")
    policy = "calico/wikikube-eqiad/eventgate-main.yaml"
    [rule] = calico_rules(estate, policy, connect)
    broker = line_of(estate, "roles.npl", "allow service kafka from network production-networks")
    code = cli.main(["explain", "app", "eventgate-main@wikikube-eqiad", "host", "kafka1001", "9092/tcp",
                     "--policy", str(POLICIES), "--out", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert code == 0
    assert text.startswith("app eventgate-main@wikikube-eqiad -> host kafka1001 on tcp 9092: allowed\n")
    assert f"{connect}: app eventgate-main: connect service kafka to network kafka-main-eqiad" in text
    assert f"{tmp_path}/out/{policy}:{rule}: egress rule of NetworkPolicy eventgate-main" in text
    for family in (4, 6):
        line = ferm_line(estate, "kafka1001", broker, family)
        assert f"[IPv{family}] {tmp_path}/out/ferm/kafka1001.conf:{line}: proto tcp dport 9092:9093" in text
    assert "note:" not in text  # the out/ written above is current


def test_cli_json_and_stale_note(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = cli.main(["explain", "93.184.216.34 host kubernetes1001 22/tcp", "--policy", str(POLICIES),
                     "--out", str(tmp_path / "nowhere"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["verdict"] == "denied" and doc["problems"] == []
    ends = doc["pairs"][0]["families"]["ipv4"]["ends"]
    assert [e["verdict"] for e in ends] == ["not policed", "denied"]
    assert ends[1]["nearest"][0]["statement"]["text"].startswith("allow service ssh from network bastion-hosts")
    assert doc["pairs"][0]["families"]["ipv6"]["verdict"] == "n/a"
    code = cli.main(["explain", "bast1002", "kubernetes1001", "22/tcp", "--policy", str(POLICIES),
                     "--out", str(tmp_path / "nowhere")])
    text = capsys.readouterr().out
    assert code == 0 and f"note: {tmp_path}/nowhere/ferm/kubernetes1001.conf" in text


@pytest.mark.parametrize("words, message", [
    (["app", "zotero", "host", "kafka1001"], "the last word must be PORT/PROTO"),
    (["app", "zotero", "host", "kafka1001", "9092"], "a port without its protocol"),
    (["app", "zotero", "host", "kafka1001", "99999/tcp"], "a port is a number from 1 to 65535"),
    (["app", "zotero", "host", "kafka1001", "9092/tpc"], "unknown protocol `tpc`"),
    (["app", "zotero", "9092/tcp"], "got 1 end(s)"),
    (["zotero", "kafka1001", "extra", "9092/tcp"], "got 3 end(s)"),
    (["app", "host", "kafka1001", "22/tcp"], "`host` is a kind, not a name"),
    (["host", "kafka1001@wikikube-eqiad", "bast1002", "22/tcp"], "only an app is qualified by a cluster"),
    (["10.64.0.11/8", "bast1002", "22/tcp"], "has host bits set"),
    (["10.64.0", "bast1002", "22/tcp"], "is not an IP address or CIDR"),
    (["zotero", "bast1002", "300/icmp"], "is not an icmp type"),
    ([], "expected SOURCE DESTINATION PORT/PROTO"),
])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], words: list[str], message: str) -> None:
    code = cli.main(["explain", *words, "--policy", str(POLICIES)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "usage: netpolc explain" in err


@pytest.mark.parametrize("words, message, hint", [
    (["app", "zotro", "host", "kafka1001", "9092/tcp"], "unknown app `zotro`", "did you mean `app zotero`?"),
    (["zotro", "kafka1001", "9092/tcp"], "unknown name `zotro`", "did you mean `app zotero`?"),
    (["app", "zotero", "host", "kafak1001", "9092/tcp"], "unknown host `kafak1001`", "did you mean `host kafka1001`?"),
    (["role", "kafka1001", "bast1002", "22/tcp"], "`kafka1001` is not a role", "it is a host: write `host kafka1001`"),
    (["app", "zotero@wikikube-codfx", "bast1002", "22/tcp"], "does not run in cluster wikikube-codfx",
     "its clusters: staging-eqiad, wikikube-codfw, wikikube-eqiad"),
    (["role", "base", "bast1002", "22/tcp"], "role base is the default role", None),
])
def test_unknown_names_exit_1_with_a_hint(capsys: pytest.CaptureFixture[str], words: list[str], message: str,
                                          hint: str | None) -> None:
    code = cli.main(["explain", *words, "--policy", str(POLICIES)])
    err = capsys.readouterr().err
    assert code == 1 and message in err
    assert hint is None or f"= help: {hint}" in err
    assert "usage:" not in err


def test_ambiguous_bare_name_lists_the_candidates(capsys: pytest.CaptureFixture[str], small: Result) -> None:
    code = cli.main(["explain", "db", "web1", "22/tcp", "--policy", small.root])
    err = capsys.readouterr().err
    assert code == 1
    assert "`db` is ambiguous: it names role db, network db" in err and "`role db`, `network db`" in err
    code = cli.main(["explain", "network", "db", "web1", "22/tcp", "--policy", small.root])
    assert code == 0 and capsys.readouterr().out.startswith("network db -> web1 on tcp 22: denied")


def test_a_policy_that_does_not_compile_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bad.npl").write_text("role web { allow tcp 443 from role wbe }\n")
    code = cli.main(["explain", "internet", "role", "web", "443/tcp", "--policy", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "error[E103]" in err and "does not compile" in err


# ------------------------------------------------------------------------------- agreement
def test_model_and_compiled_files_agree_across_the_reference_estate(estate: Result) -> None:
    """Each end is judged on the model and, independently, on the compiled files; any disagreement
    is a problem. Every app (each cluster) to every app of its cluster on its ports, and to hosts."""
    assert estate.model is not None
    explainer = ex.Explainer(estate.model, estate.files)
    apps = [a for a in estate.model.apps.values() if not a.default]
    queries = [ex.Query("tcp", port=p) for p in (22, 443, 4492, 8081, 9092, 9102, 10250)] + [
        ex.Query("udp", port=53), ex.Query("icmp", icmp_type=3, icmp_code=4), ex.Query("icmpv6", icmp_type=135)]
    hosts = [ex.resolve(estate.model, ex.Spec("host", h))[0] for h in ("kafka1001", "kubernetes1007", "db1115")]
    outside = ex.resolve(estate.model, ex.Spec(None, "internet"))[0]
    verdicts: set[str] = set()
    for a in apps:
        for src in ex.resolve(estate.model, ex.Spec("app", a.name)):
            others = [d for b in apps for d in ex.resolve(estate.model, ex.Spec("app", b.name))
                      if d.cluster == src.cluster]
            for dst in [*others[::2], *hosts, outside]:
                for q in queries[::2] if dst.kind == "app" else queries:
                    result = explainer.pair(src, dst, q)
                    verdicts.add(result.verdict)
                    assert not [x for f in result.families for e in f.ends for x in e.problems]
    assert {"allowed", "denied"} <= verdicts


def test_the_examples_in_the_docs_are_real_runs(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (REPO / "docs" / "workflow.md").read_text()
    section = doc[doc.index("## `netpolc explain`"):]
    examples = re.findall(r"```text\n\$ netpolc (explain [^\n]*)\n(.*?)```", section, re.S)
    assert len(examples) >= 2
    monkeypatch.chdir(REPO)
    for command, expected in examples:
        assert cli.main(command.split()) == 0
        assert capsys.readouterr().out == expected, command


def test_statement_text_drops_comments_and_keeps_quotes() -> None:
    span = ex.Span("a.npl", 1, 3, 2, 40)
    sources = {"a.npl": '  allow tcp 22 from any  # a comment\n    description "a # is \\"kept\\"" # gone\n'}
    assert ex.statement_text(sources, span) == 'allow tcp 22 from any description "a # is \\"kept\\""'


def test_queries_parse() -> None:
    assert ex.parse_query("9092/tcp") == ex.Query("tcp", port=9092)
    assert ex.parse_query("udp") == ex.Query("udp")
    assert ex.parse_query("echo-request/icmp") == ex.Query("icmp", icmp_type=8)
    assert ex.parse_query("3/4/icmp") == ex.Query("icmp", icmp_type=3, icmp_code=4)
    assert ex.parse_query("128/ICMPv6").families == (6,)
    assert re.fullmatch(r"icmp 3 code 4", ex.parse_query("3/4/icmp").dsl)

"""The policy sets in examples/ and the examples of docs/language.md compile cleanly and mean what they say.

Every folder under examples/ with *.npl files must compile with no error and no warning. The facts
checked per example are written from the example's text, not copied from compiler output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork, IPSet

from compiler import model as m
from compiler.parser import CONTEXTUAL, keywords, reserved_words
from compiler.project import compile_folder
from compiler.resolve.endpoints import SPECIAL_PURPOSE

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
LANGUAGE_DOC = REPO / "docs" / "language.md"

# examples/weak/ holds designs that must fail verification; tests/test_redundancy.py checks them
EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "weak" and any(p.rglob("*.npl")))


def compiled(path: Path) -> m.Model:
    result = compile_folder(path)
    assert result.diagnostics == [], [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics]
    assert result.ok
    assert result.model is not None
    return result.model


def flow(model: m.Model, owner: str, destination: str) -> m.Flow:
    """The one flow stated by `owner` whose destination is labelled `destination`."""
    found = [f for f in model.flows if f.rule.owner == owner and [d.label for d in f.destinations] == [destination]]
    assert len(found) == 1, [(f.rule.owner, [d.label for d in f.destinations]) for f in model.flows]
    return found[0]


def ports(f: m.Flow) -> list[str]:
    return [str(p) for p in f.ports]


def addresses(model: m.Model, host: str) -> set[IPAddress]:
    return set(model.hosts[host].addresses)


def test_the_expected_examples_exist():
    names = {p.name for p in EXAMPLE_DIRS}
    assert {"minimal-site", "app-egress", "route-reflectors", "dual-stack-cluster"} <= names
    for d in EXAMPLE_DIRS:
        assert (d / "README.md").is_file(), f"{d.name} has no README.md"


@pytest.mark.parametrize("folder", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_compiles_without_diagnostics(folder: Path):
    result = compile_folder(folder)
    assert result.ok
    assert result.diagnostics == []
    assert "estate.json" in result.files


def test_minimal_site():
    model = compiled(EXAMPLES / "minimal-site")
    assert sorted(model.hosts) == ["bast1003", "web1001"]
    assert addresses(model, "web1001") == {IPAddress("10.64.0.20"), IPAddress("2620:0:861:101:10:64:0:20")}
    rack = model.racks["eqiad/a4"]
    assert rack.layer == "l2" and rack.switch is None
    assert model.rows["eqiad/a"].switch == "asw2-a-eqiad"
    assert model.rows["eqiad/a"].gateways == (IPAddress("10.64.0.1"), IPAddress("2620:0:861:101::1"))
    base = model.roles["base"]
    assert base.default and base.hosts == ("bast1003", "web1001")
    assert all(h.firewall for h in model.hosts.values())
    (ssh,) = [f for f in model.flows if f.rule.owner == "base"]
    assert [d.kind for d in ssh.destinations] == ["all-hosts"]
    assert ssh.destinations[0].ipset() == IPSet(h for name in ("bast1003", "web1001") for h in addresses(model, name))
    assert [s.label for s in ssh.sources] == ["role bastion"]
    assert ports(ssh) == ["tcp 22"]
    web = sorted(ports(f) for f in model.flows if f.rule.owner == "web")
    assert web == [["icmp 8", "icmpv6 128"], ["tcp 80", "tcp 443"]]


def test_app_egress():
    model = compiled(EXAMPLES / "app-egress")
    assert len(model.hosts) == 4
    cluster = model.clusters["wikikube-eqiad"]
    assert cluster.nodes == ("kubernetes1001", "kubernetes1002")
    assert cluster.peerings[0].mode == "routers"
    assert cluster.pod_cidrs == (IPNetwork("10.64.64.0/21"), IPNetwork("2620:0:861:cabe::/64"))
    assert model.apps["mediawiki"].namespace == "mw"
    assert model.apps["eventgate"].namespace == "eventgate"  # the default: the app's name

    # app -> app without ports: the destination's `listen`
    assert ports(flow(model, "mediawiki", "app eventgate")) == ["tcp 8192"]
    # app -> hosts of a role, through a named service
    kafka = flow(model, "eventgate", "role kafka-broker")
    assert ports(kafka) == ["tcp 9092-9093"]
    assert [s.label for s in kafka.sources] == ["app eventgate"]
    assert kafka.destinations[0].ipset() == IPSet(["10.64.0.31", "10.64.0.32", "2620:0:861:101:10:64:0:31",
                                                   "2620:0:861:101:10:64:0:32"])

    # the exclusion cuts the pods out of the production ranges
    clients = IPSet(model.networks["kafka-clients"].cidrs)
    assert IPAddress("10.64.0.21") in clients and IPAddress("2620:0:861:101:10:64:0:21") in clients
    assert IPAddress("10.64.64.7") not in clients and IPAddress("2620:0:861:cabe::7") not in clients

    # the internet: public addresses, not the estate's own, not private ranges
    internet = flow(model, "mediawiki", "internet")
    assert ports(internet) == ["tcp 443"]
    public = internet.destinations[0].ipset()
    assert IPAddress("198.35.26.96") in public
    assert IPAddress("208.80.154.196") not in public  # the router's loopback
    assert IPAddress("2620:0:861:101:10:64:0:31") not in public  # a broker
    assert IPAddress("10.64.0.21") not in public


def test_route_reflectors():
    model = compiled(EXAMPLES / "route-reflectors")
    cluster = model.clusters["wikikube-eqiad"]
    assert cluster.peerings[0].mode == "route-reflectors"
    assert cluster.peerings[0].reflectors == ("k8s-rr1001", "k8s-rr1002")
    assert cluster.peerings[0].cluster_id == IPAddress("244.0.0.1")
    assert {model.hosts[h].row for h in cluster.peerings[0].reflectors} == {"eqiad/a", "eqiad/b"}
    assert set(cluster.survive) == {"router", "row", "route-reflector"}
    assert len(cluster.nodes) == 6 and set(cluster.peerings[0].reflectors) <= set(cluster.nodes)
    assert sorted(model.routers) == ["cr1-eqiad", "cr2-eqiad"]
    assert not [f for f in model.flows if "tcp 179" in ports(f)]  # BGP follows from peer-with, not from rules


def test_dual_stack_cluster():
    model = compiled(EXAMPLES / "dual-stack-cluster")
    cluster = model.clusters["wikikube-eqiad"]
    assert cluster.pod_cidrs == (IPNetwork("10.67.128.0/18"), IPNetwork("2620:0:861:cabe::/64"))
    assert cluster.service_cidrs == (IPNetwork("10.67.0.0/20"), IPNetwork("2620:0:861:cabf::/108"))
    assert cluster.peerings[0].mode == "tor"
    assert cluster.single_uplink_max_share == 40
    assert cluster.survive == ("rack",)
    assert len(cluster.nodes) == 6
    for name in cluster.nodes:
        assert {ip.version for ip in model.hosts[name].addresses} == {4, 6}, name
    assert addresses(model, "kubernetes1009") == {IPAddress("10.64.131.11"), IPAddress("2620:0:861:10a:10:64:131:11")}
    for n in (1, 2, 3):
        rack = model.racks[f"eqiad/e{n}"]
        assert rack.layer == "l3"
        assert rack.switch == f"lsw1-e{n}-eqiad"
        assert model.switches[rack.switch].kind == "tor"
        assert model.switches[rack.switch].asn == 64810 + n
    assert model.switches["ssw1-e1-eqiad"].uplinks == ("cr1-eqiad", "cr2-eqiad")
    # the ToR of each rack is where its nodes peer: its gateways, one per family
    assert [str(g) for g in model.racks["eqiad/e1"].gateways] == ["10.64.130.1", "2620:0:861:109::1"]
    (peering,) = cluster.peerings
    assert (peering.mode, peering.nodes) == ("tor", cluster.nodes)
    assert not [f for f in model.flows if "tcp 179" in ports(f)]  # BGP follows from peer-with, not from rules


# ---------------------------------------------------------------- docs/language.md

def _doc() -> str:
    return LANGUAGE_DOC.read_text(encoding="utf-8")


def test_language_doc_examples_compile_together(tmp_path: Path):
    blocks = re.findall(r"```npl\n(.*?)```", _doc(), re.S)
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        (tmp_path / f"block-{i:02}.npl").write_text(block, encoding="utf-8")
    model = compiled(tmp_path)
    # what the doc says about defaults
    assert ports(flow(model, "eventgate-main", "app schema")) == ["tcp 8190"]
    allow_from_app = [f for f in model.flows if f.rule.owner == "eventgate-main"
                      and [s.label for s in f.sources] == ["app mediawiki"]]
    assert [ports(f) for f in allow_from_app] == [["tcp 4492", "tcp 9102"]]
    # the default app's `allow` without ports: each app that listens, on its own ports
    baseline = [(f.destinations[0].label, ports(f)) for f in model.flows if f.rule.owner == "baseline"
                and [s.label for s in f.sources] == ["role lvs-balancer"]]
    assert sorted(baseline) == [("app eventgate-main", ["tcp 4492", "tcp 9102"]), ("app mediawiki", ["tcp 8080"]),
                                ("app schema", ["tcp 8190"])]
    # `in cluster`: the statement holds in that one of the app's clusters
    (kafka,) = [r for r in model.apps["mediawiki"].rules if r.clusters]
    assert kafka.clusters == ("wikikube-eqiad",) and [p.label for p in kafka.peers] == ["network kafka-main-eqiad"]
    # mixed peering: the nodes of row e with their ToR, the rest with the routers
    peerings = {p.mode: (p.nodes, p.scoped) for p in model.clusters["wikikube-eqiad"].peerings}
    assert peerings == {"routers": (("kubernetes1001",), False),
                        "tor": (("kubernetes1007", "kubernetes1008", "kubernetes1009"), True)}
    # a private and a public gateway in one row; spines at the site, in no row
    assert [str(g) for g in model.rows["eqiad/a"].gateways] == ["10.64.0.1", "208.80.154.1", "2620:0:861:1::1",
                                                              "2620:0:861:101::1"]
    assert model.sites["eqiad"].spines == ("ssw1-e1-eqiad", "ssw1-f1-eqiad")
    assert model.switches["ssw1-e1-eqiad"].row is None
    # BGP is never written by hand: `peer-with` gives it
    assert not [f for f in model.flows if "tcp 179" in ports(f)]


def _word_list_after(marker: str) -> set[str]:
    """The words of the first indented code paragraph (a blank line, then two spaces and a backtick) after `marker`."""
    section = _doc().split(marker, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"\n\n  `([^`]+)`", section)
    assert found, f"no word list after {marker}"
    return set(found.group(1).split())


def test_language_doc_lists_every_keyword():
    reserved = _word_list_after("**Keywords are reserved**")
    contextual = _word_list_after("**contextual keywords**")
    assert reserved == reserved_words()
    assert contextual == CONTEXTUAL
    assert not reserved & contextual
    assert reserved | contextual == keywords()


def test_language_doc_lists_the_special_purpose_ranges():
    section = _doc().split("**`internet`** is", 1)[1].split("## ", 1)[0]
    listed = {c for c in re.findall(r"`([0-9a-f:./]+/\d+)`", section) if c not in ("0.0.0.0/0", "::/0")}
    assert IPSet(listed) == SPECIAL_PURPOSE


def test_language_doc_lists_every_diagnostic_code():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "compiler").rglob("*.py"))
    # diagnostics, the codes of an unsafe output path (E009, E010) and those of a failed write (`code = "E008"`)
    used = set(re.findall(r"(?:(?:diags\.(?:error|warning)|OutputPathError)\(|\bcode = )\s*\"([EW]\d{3})\"", source))
    # the analyses' findings: `self.add(span, "R1xx", ...)` in redundancy.py, `Problem` codes in peering.py,
    # the lock-out guard's warnings (W007) in lockout.py
    analysis = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "compiler" / "analysis").glob("*.py")))
    findings = set(re.findall(r"\"([RW]\d{3})\"", analysis))
    documented = set(re.findall(r"^\| ([EWR]\d{3}) \|", _doc(), re.M))
    assert used, "no diagnostic codes found in the compiler"
    assert {"R101", "R105", "R120", "R130"} <= findings, "the finding codes of compiler/analysis/ were not found"
    assert used | findings == documented

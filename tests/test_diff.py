"""`netpolc diff`: hand-made before/after pairs of a small estate, with the answers written by hand.

The estate (SITE, CLUSTER, POLICY below): kafka1 and kafka2 (dual-stack) take Kafka (tcp 9092) from
`network internal` (10.0.0.0/8, IPv4 only) and from app api; bast1 (IPv4 only) reaches every host on
tcp 22; app web reaches app api on api's listen port (9000); api reaches db1 (IPv4 only) on 5432.
Cluster k1's pods are dual-stack and its nodes kube1 and kube2 peer with both routers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from compiler import cli
from compiler.analysis import connectivity as conn
from compiler.commands import diff, diff_format
from compiler.model import PortMatch
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent

SITE = """\
site s1 {
  router cr1-s1 loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  router cr2-s1 loopback 192.0.2.2 2001:db8:ffff::2 asn 65000
  row a {
    switch asw-a-s1
    subnet 10.1.0.0/24 2001:db8:1::/64
    gateway 10.1.0.1 2001:db8:1::1
    rack a1 {
      host kafka1 10.1.0.10 2001:db8:1::10 roles kafka-broker
      host kafka2 10.1.0.11 2001:db8:1::11 roles kafka-broker
      host bast1 10.1.0.20 roles bastion
      host kube1 10.1.0.30 2001:db8:1::30 roles k8s-worker
    }
    rack a2 {
      host kube2 10.1.0.31 2001:db8:1::31 roles k8s-worker
      host db1 10.1.0.40 roles db
    }
  }
}
"""

CLUSTER = """\
cluster k1 {
  site s1
  asn 64601
  pods 10.2.0.0/16 2001:db8:2::/64
  nodes role k8s-worker
  peer-with routers
}
"""

POLICY = """\
service kafka = tcp 9092
network internal = 10.0.0.0/8
role kafka-broker { allow service kafka from network internal }
role bastion { description "jump hosts" }
role db { allow tcp 5432 from app api }
role k8s-worker { description "kubernetes nodes" }
default role base { allow tcp 22 from role bastion }
app web {
  cluster k1
  listen tcp 8080
  connect to app api
}
app api {
  cluster k1
  listen tcp 9000
  allow from app web
  connect service kafka to role kafka-broker
}
"""

BEFORE = {"site.npl": SITE, "cluster.npl": CLUSTER, "policy.npl": POLICY}


def write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def edited(file: str, old: str, new: str) -> dict[str, str]:
    """BEFORE with one edit; the edit must apply exactly once."""
    assert BEFORE[file].count(old) == 1, old
    return {**BEFORE, file: BEFORE[file].replace(old, new)}


def report(tmp_path: Path, after: dict[str, str]) -> diff.Report:
    old = compile_folder(write(tmp_path / "old", BEFORE))
    new = compile_folder(write(tmp_path / "new", after))
    assert old.ok and new.ok, [str(d) for d in old.diagnostics + new.diagnostics]
    return diff.compare(old, new, "old", "new")


def ports(sign: str, items: conn.Ports) -> list[str]:
    return [f"{sign}{p} {'+'.join(f'v{f}' for f in fams)}" for p, fams in items]


def flows(r: diff.Report) -> set[tuple[str, str, str, str]]:
    """Each change as (status, source, destination, ports), e.g. `+tcp 9093 v4+v6`."""
    return {(c.status, str(c.source), str(c.destination), ", ".join(ports("+", c.added) + ports("-", c.removed)))
            for c in r.flows}


def sessions(items: list[diff.Session]) -> set[tuple[str, str, str, int]]:
    return {(s.a, s.b, s.kind, s.family) for s in items}


def main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = cli.main(["diff", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------ the facts of one side


def test_facts_of_the_estate_written_by_hand(tmp_path: Path):
    model = compile_folder(write(tmp_path / "p", BEFORE)).model
    facts = {f"{s} -> {d} v{f} {p}" for s, d, f, p in conn.build(model).facts()}
    bastion = {f"host bast1 -> host {h} v4 tcp 22" for h in ("kafka1", "kafka2", "bast1", "kube1", "kube2", "db1")}
    assert facts == bastion | {
        "network internal -> host kafka1 v4 tcp 9092",  # internal is IPv4 only
        "network internal -> host kafka2 v4 tcp 9092",
        "app api (k1) -> host kafka1 v4 tcp 9092", "app api (k1) -> host kafka1 v6 tcp 9092",
        "app api (k1) -> host kafka2 v4 tcp 9092", "app api (k1) -> host kafka2 v6 tcp 9092",
        "app api (k1) -> host db1 v4 tcp 5432",  # db1 has no IPv6 address
        "app web (k1) -> app api (k1) v4 tcp 9000", "app web (k1) -> app api (k1) v6 tcp 9000",
    }


def test_port_sets_subtract_exactly():
    tcp = lambda a, b: PortMatch("tcp", a, b)  # noqa: E731
    assert conn.normalise([tcp(80, 80), tcp(81, 90), tcp(85, 95)]) == (tcp(80, 95),)
    assert conn.subtract((tcp(80, 100),), (tcp(85, 90), tcp(95, 95))) == (tcp(80, 84), tcp(91, 94), tcp(96, 100))
    assert conn.subtract((tcp(80, 90),), (PortMatch("any"),)) == ()
    assert conn.subtract((PortMatch("tcp"),), (tcp(1, 1023),)) == (tcp(1024, 65535),)
    echo = PortMatch("icmp", icmp_type=8)
    assert conn.normalise([echo, PortMatch("icmp")]) == (PortMatch("icmp"),)
    assert conn.subtract((echo,), (PortMatch("icmp"),)) == ()
    assert conn.subtract((PortMatch("icmp"),), (echo,)) == (PortMatch("icmp"),)


# ------------------------------------------------------------------ before/after pairs


def test_adding_a_port_to_a_service_adds_exactly_those_facts(tmp_path: Path):
    r = report(tmp_path, edited("policy.npl", "service kafka = tcp 9092", "service kafka = tcp 9092, 9093"))
    assert flows(r) == {
        ("changed", "network internal", "host kafka1", "+tcp 9093 v4"),
        ("changed", "network internal", "host kafka2", "+tcp 9093 v4"),
        ("changed", "app api (k1)", "host kafka1", "+tcp 9093 v4+v6"),
        ("changed", "app api (k1)", "host kafka2", "+tcp 9093 v4+v6"),
    }
    assert r.addresses == [] and not any(r.sessions.values())
    # the brokers' firewalls, api's egress, and the inventory, which lists services
    assert r.files == {"added": [], "removed": [],
                       "modified": ["calico/k1/api.yaml", "estate.json", "ferm/kafka1.conf", "ferm/kafka2.conf"]}
    assert r.firewalls == {"added": [], "removed": [], "modified": ["kafka1", "kafka2"]}


def test_changing_a_port_range_reports_what_is_gained_and_lost(tmp_path: Path):
    before_after = edited("policy.npl", "allow tcp 5432 from app api", "allow tcp 5432-5440 from app api")
    old = compile_folder(write(tmp_path / "old", before_after))
    new = compile_folder(write(tmp_path / "new", edited("policy.npl", "allow tcp 5432 from app api",
                                                         "allow tcp 5436-5450 from app api")))
    r = diff.compare(old, new, "old", "new")
    assert flows(r) == {("changed", "app api (k1)", "host db1", "+tcp 5441-5450 v4, -tcp 5432-5435 v4")}


def test_removing_an_apps_connect_removes_its_egress_and_the_destinations_ingress(tmp_path: Path):
    r = report(tmp_path, edited("policy.npl", "  connect service kafka to role kafka-broker\n", ""))
    assert flows(r) == {
        ("removed", "app api (k1)", "host kafka1", "-tcp 9092 v4+v6"),
        ("removed", "app api (k1)", "host kafka2", "-tcp 9092 v4+v6"),
    }
    # api's egress and the brokers' ingress are gone; nothing else changes meaning
    assert {"calico/k1/api.yaml", "ferm/kafka1.conf", "ferm/kafka2.conf"} <= set(r.files["modified"])
    assert r.firewalls["modified"] == ["kafka1", "kafka2"]


def test_a_connect_the_destination_also_allows_changes_no_fact(tmp_path: Path):
    """web's `connect to app api` and api's `allow from app web` state one flow; either alone
    keeps it (Calico compiles a flow at both of its pod ends), so dropping one changes nothing."""
    r = report(tmp_path, edited("policy.npl", "  connect to app api\n", ""))
    assert r.flows == [] and r.addresses == [] and not any(r.sessions.values())
    assert "calico/k1/web.yaml" in r.files["modified"]  # the rule now cites api's statement only


def test_moving_a_host_to_another_rack_changes_no_connectivity(tmp_path: Path):
    line = "      host kube2 10.1.0.31 2001:db8:1::31 roles k8s-worker\n"
    kube1 = "      host kube1 10.1.0.30 2001:db8:1::30 roles k8s-worker\n"
    site = SITE.replace(line, "").replace(kube1, kube1 + line)  # from rack a2 to rack a1, same address
    assert site.count("host kube2") == 1 and site.index("host kube2") < site.index("rack a2")
    r = report(tmp_path, {**BEFORE, "site.npl": site})
    assert r.flows == [] and r.addresses == [] and not any(r.sessions.values())
    assert {"estate.json", "bgp/k1/nodes.yaml"} <= set(r.files["modified"])
    assert not [p for p in r.files["modified"] if p.startswith("calico/")]
    assert r.firewalls["modified"] == ["kube2"]  # its ferm header names the rack
    new_nodes = compile_folder(tmp_path / "new").files["bgp/k1/nodes.yaml"].decode()
    kube2 = new_nodes[new_nodes.index("name: kube2") - 400:new_nodes.index("name: kube2")]
    assert "netpolc.io/rack: s1.a1" in kube2
    text = diff_format.text(r)
    assert "flows: 0 pair(s) of ends added, 0 removed, 0 changed" in text
    assert "BGP sessions: 0 added, 0 removed" in text


def test_changing_a_clusters_peer_with_adds_and_removes_bgp_sessions(tmp_path: Path):
    r = report(tmp_path, edited("cluster.npl", "peer-with routers",
                                "peer-with route-reflectors host kube1 cluster-id 244.0.0.1"))
    both = (4, 6)  # kube1, kube2 and the routers are dual-stack
    assert sessions(r.sessions["removed"]) == {(n, rtr, "node-router", f) for n in ("kube1", "kube2")
                                               for rtr in ("cr1-s1", "cr2-s1") for f in both}
    assert sessions(r.sessions["added"]) == (
        {("kube2", "kube1", "client-reflector", f) for f in both}
        | {("kube1", rtr, "reflector-router", f) for rtr in ("cr1-s1", "cr2-s1") for f in both})
    assert r.flows == [] and r.sessions["changed"] == []
    assert r.firewalls["modified"] == ["kube1", "kube2"]  # TCP 179 from other peers
    assert "bgp/k1/bgppeers.yaml" in r.files["modified"]


def test_a_changed_role_on_a_host_changes_that_hosts_firewall_only(tmp_path: Path):
    r = report(tmp_path, edited("site.npl", "host db1 10.1.0.40 roles db", "host db1 10.1.0.40 roles kafka-broker"))
    assert flows(r) == {
        ("changed", "app api (k1)", "host db1", "+tcp 9092 v4, -tcp 5432 v4"),
        ("added", "network internal", "host db1", "+tcp 9092 v4"),
    }
    assert r.firewalls == {"added": [], "removed": [], "modified": ["db1"]}
    text = diff_format.text(r)
    assert "Host firewalls (Puppet): modified: db1\n" in text


def test_an_app_in_a_new_cluster_with_a_statement_for_that_cluster_only(tmp_path: Path):
    site = SITE.replace("      host db1 10.1.0.40 roles db\n",
                        "      host db1 10.1.0.40 roles db\n      host kube3 10.1.0.32 roles k2-worker\n")
    cluster = CLUSTER + "cluster k2 { site s1 asn 64602 pods 10.3.0.0/16 nodes role k2-worker peer-with routers }\n"
    policy = POLICY.replace("role k8s-worker {", "role k2-worker { description \"k2 nodes\" }\nrole k8s-worker {")
    policy = policy.replace("  cluster k1\n  listen tcp 8080\n",
                            "  clusters k1, k2\n  listen tcp 8080\n"
                            "  connect tcp 443 to network internal in cluster k2\n")
    r = report(tmp_path, {"site.npl": site, "cluster.npl": cluster, "policy.npl": policy})
    assert flows(r) == {
        ("added", "app web (k2)", "app api (k1)", "+tcp 9000 v4"),  # k2's pods are IPv4 only
        ("added", "app web (k2)", "network internal", "+tcp 443 v4"),  # `in cluster k2`: not from web (k1)
        ("added", "host bast1", "host kube3", "+tcp 22 v4"),
    }
    assert sessions(r.sessions["added"]) == {("kube3", rtr, "node-router", 4) for rtr in ("cr1-s1", "cr2-s1")}
    assert r.sessions["removed"] == []
    assert "ferm/kube3.conf" in r.files["added"] and "calico/k2/web.yaml" in r.files["added"]
    assert r.firewalls["added"] == ["kube3"]
    text = diff_format.text(r)
    assert "kube3 - cr1-s1 (node-router, cluster k2): IPv4\n" in text


def test_a_renumbered_host_is_an_address_change(tmp_path: Path):
    r = report(tmp_path, edited("site.npl", "host db1 10.1.0.40", "host db1 10.1.0.41"))
    assert r.flows == []
    assert [(str(e), [str(n) for n in gained], [str(n) for n in lost]) for e, gained, lost in r.addresses] == [
        ("host db1", ["10.1.0.41/32"], ["10.1.0.40/32"])]


def test_a_renumbered_node_changes_its_bgp_sessions(tmp_path: Path):
    r = report(tmp_path, edited("site.npl", "host kube1 10.1.0.30", "host kube1 10.1.0.33"))
    assert r.flows == [] and r.sessions["added"] == r.sessions["removed"] == []
    assert [(o.a, o.b, o.family, o.detail, n.detail) for o, n in r.sessions["changed"]] == [
        ("kube1", rtr, 4, f"10.1.0.30 AS64601 - {ip} AS65000 multihop", f"10.1.0.33 AS64601 - {ip} AS65000 multihop")
        for rtr, ip in (("cr1-s1", "192.0.2.1"), ("cr2-s1", "192.0.2.2"))]
    assert [str(e) for e, _, _ in r.addresses] == ["host kube1"]
    assert "kube1 - cr1-s1 (node-router) IPv4: 10.1.0.30 AS64601" in diff_format.text(r)


# ------------------------------------------------------------------ the command line and formats


def test_identical_folders_give_an_empty_diff_and_exit_0(tmp_path: Path, capsys):
    a, b = write(tmp_path / "a", BEFORE), write(tmp_path / "b", BEFORE)
    code, out, err = main(capsys, str(a), str(b), "--exit-code")
    assert (code, err) == (0, "")
    assert "no change in connectivity, BGP sessions or output files" in out
    code, out, _ = main(capsys, str(a), str(b), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["changed"] is False and doc["flows"] == [] and doc["files"]["modified"] == []


def test_the_reference_estate_against_itself(capsys):
    policies = str(REPO / "policies")
    assert main(capsys, policies, policies, "--exit-code")[0] == 0


@pytest.fixture
def kafka_pair(tmp_path: Path) -> tuple[str, str]:
    after = edited("policy.npl", "service kafka = tcp 9092", "service kafka = tcp 9092, 9093")
    return str(write(tmp_path / "a", BEFORE)), str(write(tmp_path / "b", after))


def test_text_format(kafka_pair, capsys):
    code, out, _ = main(capsys, *kafka_pair, "--exit-code")
    assert code == 1
    assert "Flows changed (4 pair(s) of ends):" in out
    # the brokers are exactly role kafka-broker's hosts: one line for both
    assert "  app api (k1) -> role kafka-broker hosts (kafka1, kafka2): + tcp 9093 (IPv4, IPv6)\n" in out
    assert "  network internal -> role kafka-broker hosts (kafka1, kafka2): + tcp 9093 (IPv4)\n" in out
    assert "  ~ ferm/kafka1.conf\n" in out
    assert "Host firewalls (Puppet): modified: kafka1, kafka2" in out
    assert main(capsys, *kafka_pair)[0] == 0  # a change is exit 0 without --exit-code


def test_markdown_format(kafka_pair, capsys, monkeypatch):
    code, out, _ = main(capsys, *kafka_pair, "--format", "markdown")
    assert code == 0
    assert out.startswith(f"### netpolc diff: `{kafka_pair[0]}` → `{kafka_pair[1]}`\n")
    assert "#### Flows changed\n\n| from | to | ports |\n| --- | --- | --- |\n" in out
    assert "| app api (k1) | role kafka-broker hosts (kafka1, kafka2) | + tcp 9093 (IPv4, IPv6) |\n" in out
    assert "| `ferm/kafka2.conf` | modified |\n" in out
    assert "<details>" not in out
    monkeypatch.setattr(diff_format, "MAX_ROWS", 3)  # 4 files: the list folds away
    _, out, _ = main(capsys, *kafka_pair, "--format", "markdown")
    assert "<details><summary>4 files</summary>\n\n| file | change |" in out and out.count("</details>") == 1


def test_json_format(kafka_pair, capsys):
    code, out, _ = main(capsys, *kafka_pair, "--format", "json", "--exit-code")
    doc = json.loads(out)
    assert code == 1 and doc["changed"] is True
    assert sorted(doc) == ["addresses", "bgp_sessions", "changed", "files", "files_line_numbers_only", "flows",
                           "host_firewalls", "new", "old"]
    api = [f for f in doc["flows"] if f["source"]["name"] == "api" and f["destination"]["name"] == "kafka1"]
    assert api == [{
        "source": {"kind": "app", "name": "api", "cluster": "k1"},
        "destination": {"kind": "host", "name": "kafka1", "cluster": None},
        "status": "changed",
        "added": [{"protocol": "tcp", "first": 9093, "last": 9093, "icmp_type": None, "icmp_code": None,
                   "text": "tcp 9093", "families": [4, 6]}],
        "removed": [],
    }]
    assert doc["host_firewalls"] == {"added": [], "removed": [], "modified": ["kafka1", "kafka2"]}


def test_source_line_moves_are_told_apart(tmp_path: Path, capsys):
    a = write(tmp_path / "a", BEFORE)
    b = write(tmp_path / "b", {**BEFORE, "policy.npl": "# a comment moves every line down\n" + POLICY})
    code, out, _ = main(capsys, str(a), str(b))
    assert code == 0 and "flows: 0 pair(s) of ends added, 0 removed, 0 changed" in out
    assert "  ~ ferm/kafka1.conf (source line numbers only)\n" in out


def test_a_side_with_errors_exits_1_with_diagnostics(tmp_path: Path, capsys):
    a = write(tmp_path / "a", BEFORE)
    b = write(tmp_path / "b", edited("policy.npl", "from network internal", "from network internl"))
    code, out, err = main(capsys, str(a), str(b))
    assert code == 1 and out == ""
    assert "does not compile" in err and "error[E103]: unknown network `internl`" in err
    assert f"{b}/policy.npl:3:" in err


def test_usage_errors_exit_2(tmp_path: Path, capsys):
    a = str(write(tmp_path / "a", BEFORE))
    assert main(capsys, a)[0] == 2
    assert main(capsys, "--git", "HEAD", a, a)[0] == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["diff", a, a, "--format", "yaml"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ --git


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root / "policies", BEFORE)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "estate")
    return root


def test_git_against_head(repo: Path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    assert main(capsys, "--git", "HEAD", "--exit-code")[0] == 0  # POLICY_DIR defaults to policies
    (repo / "policies" / "policy.npl").write_text(POLICY.replace("tcp 9092", "tcp 9092, 9093"))
    status = git(repo, "status", "--porcelain")
    code, out, err = main(capsys, "--git", "HEAD", "policies", "--exit-code")
    assert code == 1, err
    assert out.startswith("netpolc diff HEAD:policies -> policies: ")
    assert "app api (k1) -> role kafka-broker hosts (kafka1, kafka2): + tcp 9093 (IPv4, IPv6)" in out
    assert git(repo, "status", "--porcelain") == status  # read only


def test_git_from_outside_the_repository_and_in_a_subfolder(repo: Path, tmp_path: Path, capsys, monkeypatch):
    (repo / "policies" / "policy.npl").write_text(POLICY.replace("allow tcp 22 from", "allow tcp 22, 2222 from"))
    git(repo, "commit", "-q", "-am", "ssh on 2222 too")
    (repo / "policies" / "policy.npl").write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    code, out, err = main(capsys, "--git", "HEAD", str(repo / "policies"), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["old"] == "HEAD:policies"
    assert {(f["status"], f["destination"]["name"]) for f in doc["flows"]} == {
        ("changed", h) for h in ("kafka1", "kafka2", "bast1", "kube1", "kube2", "db1")}
    assert {p["text"] for f in doc["flows"] for p in f["removed"]} == {"tcp 2222"}


def test_git_errors(repo: Path, tmp_path: Path, capsys):
    code, _, err = main(capsys, "--git", "no-such-rev", str(repo / "policies"))
    assert code == 2 and "unknown revision `no-such-rev`" in err
    outside = write(tmp_path / "elsewhere", BEFORE)
    code, _, err = main(capsys, "--git", "HEAD", str(outside))
    assert code == 2 and "not in a git repository" in err
    write(repo / "new-policies", BEFORE)  # not committed: nothing at HEAD to compare with
    code, _, err = main(capsys, "--git", "HEAD", str(repo / "new-policies"))
    assert code == 1 and "HEAD:new-policies does not compile" in err


# ------------------------------------------------------------------ pre-commit and the CI example


def test_pre_commit_hooks_and_ci_example_run_real_commands():
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["netpolc-check", "netpolc-lint", "netpolc-fmt"]
    for h in hooks:
        argv = shlex.split(h["entry"])
        assert argv[0] == "netpolc" and h["pass_filenames"] is False and h["language"] == "python"
        cli._parser().parse_args(argv[1:])  # a command and options netpolc has
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "netpolc.yml").read_text())
    runs = "\n".join(s.get("run", "") for s in workflow["jobs"]["policy"]["steps"])
    for command in ("netpolc check policies --out out", "netpolc lint policies",
                    'netpolc diff --git "origin/$GITHUB_BASE_REF" policies --format markdown'):
        assert command in runs
    assert (REPO / "examples" / "ci" / "README.md").is_file()


def test_a_markdown_report_too_long_for_a_comment_is_cut(kafka_pair, capsys, monkeypatch):
    monkeypatch.setattr(diff_format, "MAX_ROWS", 1)
    _, whole, _ = main(capsys, *kafka_pair, "--format", "markdown")
    monkeypatch.setattr(diff_format, "MAX_COMMENT", len(whole) - 100)
    _, out, _ = main(capsys, *kafka_pair, "--format", "markdown")
    assert len(out) <= len(whole) - 100 and out.count("<details>") == out.count("</details>")
    assert "The report is cut here" in out

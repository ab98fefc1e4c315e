"""The BGP redundancy analysis: local rules, placement, and the failure sweep, with witnesses.

Every expected value is worked out by hand from the policy text in each test.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import analysis
from compiler.diagnostics import Diagnostics
from compiler.project import build_model, load_sources

REPO = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 25)


def model_of(folder: Path):
    diags = Diagnostics()
    model = build_model(load_sources(folder, diags), diags, TODAY)
    assert model is not None, [d.message for d in diags.items]
    return model


def model_text(text: str, tmp_path: Path):
    (tmp_path / "a.npl").write_text(text)
    return model_of(tmp_path)


def findings(model, code: str | None = None):
    return [f for f in analysis.redundancy(model).findings if code is None or f.code == code]


def sweep(model, failure: str):
    (res,) = [s for s in analysis.redundancy(model).sweeps if s.failure == failure]
    return res


# ---------------------------------------------------------------- the reference estate

@pytest.fixture(scope="module")
def estate():
    return model_of(REPO / "policies")


def test_reference_estate_meets_its_goals(estate):
    assert [f for f in findings(estate) if f.severity == "error"] == []
    # staging-eqiad runs one API server (neon, row b) and declares only `survive router`: a warning
    (w,) = findings(estate)
    assert (w.code, w.severity, w.cluster, w.element, w.failure) == ("R120", "warning", "staging-eqiad", "neon",
                                                                      "row eqiad/b")


def test_losing_a_core_router_keeps_everyone_routed(estate):
    for router in ("router cr1-eqiad", "router cr2-eqiad", "router cr1-codfw", "router cr2-codfw"):
        res = sweep(estate, router)
        assert res.ok and res.lost == (), router


def test_losing_a_row_switch_cuts_off_that_rows_nodes(estate):
    # row a of eqiad holds kubernetes1001 (a4), kubestage1001 (a6) and kubernetes1005 (a7), all behind asw2-a-eqiad
    res = sweep(estate, "switch asw2-a-eqiad")
    assert res.cut_off == {4: ("kubernetes1001", "kubernetes1005", "kubestage1001"),
                           6: ("kubernetes1001", "kubernetes1005", "kubestage1001")}
    assert not res.ok


def test_a_single_uplink_node_goes_with_its_tor(estate):
    # kubernetes1007 is the only node in e1; wikikube-eqiad declares single-uplink racks
    res = sweep(estate, "switch lsw1-e1-eqiad")
    assert res.lost == ("kubernetes1007",) and res.ok


def test_losing_row_e_loses_its_nodes_and_no_one_else(estate):
    res = sweep(estate, "row eqiad/e")
    assert res.lost == ("kubernetes1007", "kubernetes1008")
    assert res.ok


def test_every_failure_domain_of_eqiad_is_swept(estate):
    kinds = {}
    for s in analysis.redundancy(estate).for_site("eqiad"):
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    # 2 routers; 4 access switches + 3 ToRs + 2 spines; 5 rows (a-e); racks as declared in sites/eqiad.npl
    assert kinds["router"] == 2 and kinds["switch"] == 9 and kinds["row"] == 5
    assert kinds["rack"] == len([r for r in estate.racks.values() if r.site == "eqiad"])
    assert "reflector" not in kinds


# ---------------------------------------------------------------- the weak examples

def test_reflectors_in_one_row_are_flagged_with_the_row_as_witness():
    model = model_of(REPO / "examples" / "weak" / "reflectors-in-one-row")
    r130 = findings(model, "R130")
    assert [(f.failure, f.element, f.severity) for f in r130] == [("row eqiad/a", "node2", "error")]
    assert "node2, node3" in r130[0].message and "IPv4 and IPv6" in r130[0].message
    r103 = findings(model, "R103")
    assert sorted((f.element, f.failure) for f in r103) == [("node1", "row eqiad/a"), ("node2", "row eqiad/a"),
                                                           ("node3", "row eqiad/a")]
    res = sweep(model, "row eqiad/a")
    assert res.lost == ("etcd1", "node1", "rr1", "rr2") or res.lost == ("node1", "rr1", "rr2")
    assert res.cut_off[4] == ("node2", "node3")


def test_one_router_is_flagged():
    model = model_of(REPO / "examples" / "weak" / "one-router")
    (f,) = findings(model, "R130")
    assert (f.failure, f.element) == ("router cr1-s1", "node1")
    assert sweep(model, "router cr1-s1").cut_off == {4: ("node1", "node2"), 6: ("node1", "node2")}


@pytest.mark.parametrize("name", ["reflectors-in-one-row", "one-router"])
def test_verify_and_compile_fail_on_weak_designs(name: str, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    folder = str(REPO / "examples" / "weak" / name)
    v = subprocess.run([sys.executable, "-m", "compiler", "verify", folder], capture_output=True, text=True,
                       env=env, timeout=120)
    assert v.returncode == 1 and "error[R130]" in v.stderr and "declared redundancy not met" in v.stdout
    c = subprocess.run([sys.executable, "-m", "compiler", "compile", folder, "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert c.returncode == 1 and not (tmp_path / "out").exists()


def test_verify_passes_on_the_reference_estate():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    v = subprocess.run([sys.executable, "-m", "compiler", "verify", str(REPO / "policies")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert v.returncode == 0, v.stderr
    assert "switch asw2-a-eqiad: cuts off kubernetes1001, kubernetes1005, kubestage1001 (IPv4+IPv6)" in v.stdout
    assert v.stdout.rstrip().endswith("verify: ok")


# ---------------------------------------------------------------- local rules, one defect each

SITE = """\
site s1 {
  router cr1 loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  router cr2 loopback 192.0.2.2 2001:db8:ffff::2 asn 65000
  row a {
    switch asw-a
    subnet 10.1.0.0/24 2001:db8:1::/64
    gateway 10.1.0.1 2001:db8:1::1
    rack a1 { host a1n1 10.1.0.11 2001:db8:1::11 roles w  host cp1 10.1.0.21 roles cp }
    rack a2 { host a2n1 10.1.0.12 2001:db8:1::12 roles w }
  }
  row b {
    switch asw-b
    subnet 10.2.0.0/24 2001:db8:2::/64
    gateway 10.2.0.1 2001:db8:2::1
    rack b1 { host b1n1 10.2.0.11 2001:db8:2::11 roles w  host cp2 10.2.0.21 roles cp }
  }
  row c {
    switch asw-c
    subnet 10.3.0.0/24 2001:db8:3::/64
    gateway 10.3.0.1 2001:db8:3::1
    rack c1 { host c1n1 10.3.0.11 2001:db8:3::11 roles w  host cp3 10.3.0.21 roles cp }
  }
  row e {
    rack e1 { switch tor-e1 asn 64800  subnet 10.5.1.0/24 2001:db8:5:1::/64  gateway 10.5.1.1 2001:db8:5:1::1
              host e1n1 10.5.1.11 2001:db8:5:1::11 roles t  host e1n2 10.5.1.12 2001:db8:5:1::12 roles t }
    rack e2 { switch tor-e2 asn 64800  subnet 10.5.2.0/24 2001:db8:5:2::/64  gateway 10.5.2.1 2001:db8:5:2::1
              host e2n1 10.5.2.11 2001:db8:5:2::11 roles t }
  }
}
role w {}
role t {}
role cp {}
"""


def cluster(body: str) -> str:
    return SITE + "cluster k {\n  site s1\n  asn 64601\n  pods 10.64.0.0/20 2001:db8:cafe::/64\n" + body + "}\n"


def test_a_good_design_has_no_findings(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  control-plane host cp1, cp2\n  etcd role cp\n"
                               "  peer-with routers\n  survive router, row\n"), tmp_path)
    assert findings(model) == []


def test_single_uplink_share_is_enforced(tmp_path: Path):
    # rack e1 holds 2 of the 3 ToR nodes: 67% > 50%
    model = model_text(cluster("  nodes role t\n  peer-with tor\n  single-uplink max-share 50%\n"
                               "  survive rack\n"), tmp_path)
    (f,) = findings(model, "R104")
    assert (f.element, f.failure, f.severity) == ("s1/e1", "rack s1/e1", "error")
    assert "holds 2 single-uplink node(s) of the 3 nodes" in f.message and "(67%)" in f.message


def test_tor_without_single_uplink_declared_is_a_weak_node(tmp_path: Path):
    model = model_text(cluster("  nodes role t\n  peer-with tor\n  survive rack\n"), tmp_path)
    assert sorted((f.element, f.failure) for f in findings(model, "R103")) == [
        ("e1n1", "switch tor-e1"), ("e1n2", "switch tor-e1"), ("e2n1", "switch tor-e2")]


def test_tor_mode_in_an_l2_rack_is_an_error(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  peer-with tor\n"), tmp_path)
    assert sorted(f.element for f in findings(model, "R106")) == ["a1n1", "a2n1", "b1n1", "c1n1"]
    assert "rack s1/a1 has none" in findings(model, "R106")[0].message


def test_tor_without_asn_is_an_error(tmp_path: Path):
    model = model_text(cluster("  nodes role t\n  peer-with tor\n").replace(
        "switch tor-e2 asn 64800", "switch tor-e2"), tmp_path)
    (f,) = findings(model, "R107")
    assert f.element == "tor-e2" and "node e2n1" in f.message


def test_cluster_id_equal_to_a_router_id_is_an_error(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  peer-with route-reflectors host a1n1, b1n1 cluster-id 192.0.2.1\n"),
                       tmp_path)
    (f,) = findings(model, "R108")
    assert f.element == "192.0.2.1"


def test_node_without_a_family_the_pods_use(tmp_path: Path):
    model = model_text(cluster("  nodes host cp1, a1n1\n  peer-with routers\n"), tmp_path)
    (f,) = findings(model, "R101")
    assert f.element == "cp1" and "no IPv6 address" in f.message


def test_etcd_even_count_and_control_plane_in_one_row(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  control-plane host a1n1, a2n1\n  etcd host cp1, cp2\n"
                               "  peer-with routers\n  survive router, row\n"), tmp_path)
    (cp,) = findings(model, "R120")
    assert (cp.severity, cp.failure) == ("error", "row s1/a") and "2 API server(s) in 1 row(s)" in cp.message
    (etcd,) = findings(model, "R121")
    assert etcd.severity == "error" and "2 etcd member(s)" in etcd.message


def test_etcd_majority_in_one_row(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  control-plane host cp1, cp2\n  etcd host cp1, a1n1, cp2\n"
                               "  peer-with routers\n  survive row\n"), tmp_path)
    (etcd,) = findings(model, "R121")
    assert etcd.failure == "row s1/a" and "row s1/a holds a majority" in etcd.message


def test_one_reflector_is_a_single_point_of_failure(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  peer-with route-reflectors host a1n1 cluster-id 244.0.0.1\n"
                               "  survive route-reflector\n"), tmp_path)
    assert "one route reflector" in " ".join(f.message for f in findings(model, "R103"))
    res = sweep(model, "reflector a1n1")
    assert res.cut_off[4] == ("a2n1", "b1n1", "c1n1")
    assert [f.failure for f in findings(model, "R130")] == ["reflector a1n1"]


def test_a_failure_that_splits_the_cluster_is_found(tmp_path: Path):
    # One router. Reflector group A (a1n1, a2n1: row a) serves row a; group B (b1n1, b1n2: row b)
    # serves the rest, i.e. c1n1 in row c. Rows only meet through cr1, so losing it leaves two
    # islands (each row's reflectors still reach each other through their row switch) and cuts
    # c1n1 off (its sessions to row b ran through the router).
    text = cluster("  nodes role w\n"
                   "  peer-with route-reflectors host a1n1, a2n1 cluster-id 244.0.0.1 for row s1/a\n"
                   "  peer-with route-reflectors host b1n1, b1n2 cluster-id 244.0.0.2\n"
                   "  survive router\n")
    text = text.replace("  router cr2 loopback 192.0.2.2 2001:db8:ffff::2 asn 65000\n", "")
    text = text.replace("host cp2 10.2.0.21 roles cp", "host cp2 10.2.0.21 roles cp  host b1n2 10.2.0.12 "
                        "2001:db8:2::12 roles w")
    model = model_text(text, tmp_path)
    res = sweep(model, "router cr1")
    assert res.cut_off[4] == ("c1n1",)
    assert res.split[4] == (("a1n1", "a2n1"), ("b1n1", "b1n2"))
    (f,) = findings(model, "R131")
    assert f.failure == "router cr1" and "into 2 IPv4 and IPv6 routing islands: a1n1, a2n1; b1n1, b1n2" in f.message
    assert [g.element for g in findings(model, "R130")] == ["c1n1"]


def test_shared_asn_with_the_routers_is_warned(tmp_path: Path):
    model = model_text(cluster("  nodes role w\n  peer-with routers\n").replace("asn 64601", "asn 65000"),
                       tmp_path)
    assert [f.code for f in findings(model)] == ["R110"]


def test_verify_draws_the_weak_design_with_faults_in_red(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    folder = str(REPO / "examples" / "weak" / "reflectors-in-one-row")
    v = subprocess.run([sys.executable, "-m", "compiler", "verify", folder, "--draw", str(tmp_path / "draw"),
                        "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert v.returncode == 1
    import json
    doc = json.loads(v.stdout)
    assert {d["code"] for d in doc["diagnostics"]} == {"R103", "R130"}
    row_a = [s for s in doc["sweep"] if s["failure"] == "row eqiad/a"]
    assert row_a and row_a[0]["cut_off"] == {"ipv4": ["node2", "node3"], "ipv6": ["node2", "node3"]}
    dot = (tmp_path / "draw" / "bgp" / "eqiad" / "peering.dot").read_text()
    assert 'subgraph "cluster-eqiad/a" { label="row eqiad/a"; style=filled; fillcolor="#dbeafe"; color="#dc2626"' in dot
    assert '"node2" [shape=box, fillcolor="#ffffff", color="#dc2626"' in dot
    assert (tmp_path / "draw" / "bgp" / "eqiad" / "peering.svg").read_bytes().lstrip().startswith(b"<?xml")


def test_single_uplink_share_counts_only_single_uplink_nodes(tmp_path: Path):
    # 4 routers-mode nodes in rows a-c and 3 ToR nodes in row e (e1: 2, e2: 1) of 7: rack e1 holds
    # 2/7 = 29% single-uplink nodes; with 30% allowed that passes, although row a holds 2/7 too
    model = model_text(cluster("  nodes role w, t\n  peer-with routers\n  peer-with tor for row s1/e\n"
                               "  single-uplink max-share 30%\n  survive router\n"), tmp_path)
    assert findings(model, "R104") == []
    model = model_text(cluster("  nodes role w, t\n  peer-with routers\n  peer-with tor for row s1/e\n"
                               "  single-uplink max-share 25%\n  survive router\n"), tmp_path)
    assert [f.element for f in findings(model, "R104")] == ["s1/e1"]


def test_a_dot_that_takes_too_long_is_a_backend_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """graphviz's layout of thousands of speakers outlasts the timeout: an error, not a traceback."""
    from compiler.backends import BackendError, bgp_report

    slow = tmp_path / "dot"
    slow.write_text("#!/bin/sh\nexec sleep 10\n")
    slow.chmod(0o755)
    monkeypatch.setattr(bgp_report.shutil, "which", lambda name: str(slow))
    monkeypatch.setattr(bgp_report, "DOT_TIMEOUT", 0.3)
    with pytest.raises(BackendError, match="took more than 0.3 s"):
        bgp_report.render_svg("graph { a -- b; }\n")


# ---------------------------------------------------------------- the picture of a large site

def _racks_estate(nodes_in_a1: int, nodes_in_b1: int) -> str:
    """Two racks of alike nodes (same cluster, same sessions: both routers, v4 only)."""
    a = "".join(f"      host a{i} 10.1.0.{10 + i} roles w\n" for i in range(1, nodes_in_a1 + 1))
    b = "".join(f"      host b{i} 10.2.0.{10 + i} roles w\n" for i in range(1, nodes_in_b1 + 1))
    return f"""site s {{
  router r1 loopback 10.0.0.1 asn 65000
  router r2 loopback 10.0.0.2 asn 65000
  row a {{ switch asw-a
    subnet 10.1.0.0/24
    gateway 10.1.0.1
    rack a1 {{
{a}    }}
  }}
  row b {{ switch asw-b
    subnet 10.2.0.0/24
    gateway 10.2.0.1
    rack b1 {{
{b}    }}
  }}
}}
role w {{}}
cluster k {{ site s asn 64601 pods 10.8.0.0/16 services 10.9.0.0/24 nodes role w peer-with routers }}
"""


def test_alike_nodes_of_a_rack_are_one_box_from_five_on(tmp_path: Path):
    from compiler.backends import bgp_report

    model = model_text(_racks_estate(12, 4), tmp_path)
    graph = analysis.peering_graph(model)
    dot = bgp_report.peering_dot(model, graph, analysis.redundancy(model), "s")
    # rack a1: 12 nodes, each with one session to r1 and one to r2 -> one box, named after a1, two edges
    assert '"a1" [shape=folder, fillcolor="#ffffff", label="a1 … a12\\n12 alike nodes, k AS 64601"];' in dot
    assert all(f'"a{i}"' not in dot for i in range(2, 13))
    assert dot.count('"a1" -- ') == 2 and '"a1" -- "r1" [style=dashed, label="eBGP v4 ×12"];' in dot
    # rack b1: 4 nodes stay 4 boxes, each with its own two sessions
    assert all(f'"b{i}" [shape=box' in dot for i in range(1, 5))
    assert sum(dot.count(f'"b{i}" -- ') for i in range(1, 5)) == 8
    # every session of the graph is drawn: 16 nodes x 2 routers, folded into 2 + 8 edges
    assert len(graph.sessions) == 32 and dot.count(" -- ") == 10


def test_a_faulty_node_is_never_folded_with_sound_ones(tmp_path: Path):
    from compiler.backends import bgp_report

    model = model_text(_racks_estate(6, 1), tmp_path)
    report = analysis.redundancy(model)
    dot = bgp_report.peering_dot(model, analysis.peering_graph(model), report, "s")
    # b1 is alone in row b: the sweep flags row b; rack a1's six sound nodes are one box
    assert "6 alike nodes" in dot and '"b1" [shape=box' in dot


def test_pictures_are_drawn_while_the_other_backends_run(tmp_path: Path):
    """render_all's concurrent drawing gives the bytes of a plain `dot -Tsvg` of each source."""
    from compiler.backends import bgp_report, render_all

    model = model_of(REPO / "policies")
    files = render_all(model)
    svgs = [p for p in files if p.endswith("peering.svg")]
    assert svgs
    for path in svgs:
        dot_source = files[path.replace(".svg", ".dot")].decode()
        assert files[path] == bgp_report.render_svg(dot_source)


def test_a_failed_backend_stops_the_drawing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from compiler import backends
    from compiler.backends import bgp_report

    started: list[bgp_report.Drawing] = []
    real_start = bgp_report.start
    monkeypatch.setattr(bgp_report, "start", lambda model: started.append(real_start(model)) or started[-1])

    def broken(model):
        raise RuntimeError("a backend bug")

    monkeypatch.setattr(backends, "BACKENDS", (broken, *backends.BACKENDS))
    with pytest.raises(RuntimeError):
        backends.render_all(model_of(REPO / "policies"))
    (drawing,) = started
    assert drawing._jobs == {} and not Path(drawing._tmp.name).exists()

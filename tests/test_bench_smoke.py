"""The benchmark's generators produce policies that compile, at a tiny size (the timing itself is
`python bench/run.py`, never part of the test suite).

- bench/estate_gen.py: the 40-host shape compiles with no error, its redundancy goals met, with
  the grid, reflectors and apps it says; the same seed gives the same files.
- bench/peer_workload.py: a hand-written workload in gen_policy.py's format (adjacent prefixes,
  an IPv6-only client, an IPv4-only server, overlapping services) compiles, and reading the
  output back finds the counts worked out by hand below; a tampered workload is caught.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import TODAY, errors

from compiler.project import compile_folder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import estate_gen  # noqa: E402
import peer_workload  # noqa: E402


@pytest.mark.parametrize("size", [40, 80])
def test_tiny_estate_compiles_with_its_goals_met(tmp_path: Path, size: int):
    shape = estate_gen.SHAPES[size]
    estate_gen.write(shape, tmp_path)
    result = compile_folder(tmp_path, TODAY)
    assert not errors(result.diagnostics), [d.message for d in result.diagnostics][:5]
    model = result.model
    assert len(model.hosts) == size == shape.hosts
    assert len([a for a in model.apps.values() if not a.default]) == shape.apps == size // 8
    assert sorted(model.clusters) == [f"ks{i}" for i in range(shape.sites)]
    for cluster in model.clusters.values():
        assert {"router", "row", "route-reflector"} <= set(cluster.survive)
        reflectors = {r for p in cluster.peerings for r in p.reflectors}
        assert len(reflectors) == shape.reflectors == 3
        assert len({model.hosts[r].row for r in reflectors}) == 3  # one per row: a lost row keeps two
        assert len(cluster.nodes) > size // shape.sites // 2
    assert any(f.startswith("ferm/") for f in result.files) and any(f.startswith("calico/") for f in result.files)


def test_estate_generator_is_deterministic_and_seeded():
    shape = estate_gen.SHAPES[40]
    assert estate_gen.generate(shape, 1) == estate_gen.generate(shape, 1)
    assert estate_gen.generate(shape, 1)["apps.npl"] != estate_gen.generate(shape, 2)["apps.npl"]


SERVICES = {"TCP_80": {"proto": "tcp", "ports": [[80, 80]]}, "TCP_8080": {"proto": "tcp", "ports": [[8080, 8080]]},
            "TCPR_8000_8099": {"proto": "tcp", "ports": [[8000, 8099]]}}
WORKLOAD = {
    "seed": 0, "n_apps": 3, "services": SERVICES,
    "clients": {"CLI_00000": ["10.0.0.0/24", "10.0.1.0/24"],  # adjacent: one /23 once merged
                "CLI_00001": ["fd00:c::/120"],                 # IPv6 only
                "CLI_00002": ["10.0.2.7/32", "fd00:c::100/124"]},
    "apps": [
        {"app": "app00000", "term": "a00000", "servers": ["172.16.0.0/28", "fd00:5::/124"],
         "sources": ["CLI_00000", "CLI_00001"], "services": ["TCP_80"]},
        {"app": "app00001", "term": "a00001", "servers": ["172.16.0.16/32"],  # IPv4 only
         "sources": ["CLI_00001", "CLI_00002"], "services": ["TCP_8080", "TCPR_8000_8099"]},
        {"app": "app00002", "term": "a00002", "servers": ["172.16.0.32/30", "fd00:5::10/128"],
         "sources": ["CLI_00002"], "services": ["TCP_80", "TCP_8080"]},
    ],
}


def _compile_peer(tmp_path: Path, workload: dict) -> dict[str, bytes]:
    peer_workload.write_policy(workload, tmp_path / "policy")
    result = compile_folder(tmp_path / "policy", TODAY)
    assert not errors(result.diagnostics), [d.message for d in result.diagnostics][:5]
    return result.files


def test_peer_workload_compiles_and_reads_back_as_the_same_intent(tmp_path: Path):
    files = _compile_peer(tmp_path, WORKLOAD)
    got, problems = peer_workload.compare(WORKLOAD, files)
    assert problems == []
    # worked out by hand: (source prefix, server prefix) pairs per family, after merging
    # a00000: v4 {10.0.0.0/23} x 1, v6 {fd00:c::/120} x 1; a00001: v4 {10.0.2.7} x 1, no v6 server;
    # a00002: v4 {10.0.2.7} x 1, v6 {fd00:c::100/124} x 1
    assert (got["src_dst_pairs_v4"], got["src_dst_pairs_v6"]) == (3, 2)
    assert (got["apps_with_v4_flow"], got["apps_with_v6_flow"]) == (3, 2)
    # Calico: a00000 /23 + v6 /120, a00001 v6 /120 + 10.0.2.7 + v6 /124, a00002 10.0.2.7 + v6 /124
    assert got["k8s_ipblock_peers"] == 7
    # ports: a00000 {80}, a00001 8080 lies in 8000-8099 -> {8000-8099}, a00002 {80, 8080}
    assert got["port_ranges_merged"] == 4
    assert got["calico_rules"] == 5  # one per source network
    assert got["ferm_files"] == got["calico_policies"] == 3


def test_peer_read_back_catches_a_different_intent(tmp_path: Path):
    files = _compile_peer(tmp_path, WORKLOAD)
    tampered = {**WORKLOAD, "clients": {**WORKLOAD["clients"], "CLI_00002": ["10.0.2.8/32", "fd00:c::100/124"]}}
    _, problems = peer_workload.compare(tampered, files)
    assert any("a00001" in p and "ferm IPv4" in p for p in problems)
    assert any("a00002" in p and "Calico sources" in p for p in problems)
    other_ports = {**WORKLOAD, "services": {**SERVICES, "TCP_80": {"proto": "tcp", "ports": [[81, 81]]}}}
    _, problems = peer_workload.compare(other_ports, files)
    assert any("a00000" in p and "ports" in p for p in problems)

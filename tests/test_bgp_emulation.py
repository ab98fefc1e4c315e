"""The compiled BGP output, proven with real BIRD sessions in network namespaces.

Needs root (namespaces, veths, bridges) and BIRD 2 (`bird`, `birdc`) and iproute2. CI runs
as root with CI=true and installs them (.ci/run): there these tests never skip. On a
machine without root they are skipped; deselect them with `-m "not needs_root"`.

The lab is tests/bgp_lab/policies (one site, two core routers, two L2 rows, one L3 row with
a ToR, five dual-stack nodes), compiled with `netpolc compile`; its weak variant,
tests/bgp_lab/weak, does not compile (its redundancy goal is not met), so the BGP backend's
files are taken from the backend itself for it. tests/bgp_emulation.py builds the site and
renders every BIRD config from the compiled YAML.

(a) the sessions that come up are exactly the sessions of the compiled graph, per family;
(b) every node gets every other node's pod blocks (kernel routes) and can ping its pods;
(c) for each failure domain of the redundancy sweep, the surviving nodes have exactly the
    routes the analysis predicts (without the analysis: the harness' own reachability);
(d) the weak variant: losing the reflectors' row cuts the clients off, as flagged.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bgp_emulation as emu
import pytest

from compiler import analysis
from compiler.analysis import peering
from compiler.project import compile_folder

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LAB = HERE / "bgp_lab" / "policies"
WEAK = HERE / "bgp_lab" / "weak"
MIXED = HERE / "bgp_lab" / "mixed"
SITE = "lab"
CONVERGE = 30.0  # seconds, at most, for any convergence

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
IN_CI = bool(os.environ.get("CI"))

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(not IS_ROOT and not IN_CI, reason="needs root (network namespaces, BIRD); CI runs it as root"),
]


def _require_environment() -> None:
    if not IS_ROOT:
        pytest.fail("CI=true but not root: the BGP emulation needs root and must not be skipped in CI")
    missing = emu.tools_missing()
    if missing:
        message = f"missing {', '.join(missing)}: apt-get install bird2 iproute2 (.ci/run does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Run:
    lab: emu.Lab
    model: Any
    graph: Any
    report: Any  # compiler.analysis.redundancy.Report, or None without the analysis


def _analyse(model: Any, graph: Any) -> Any:
    redundancy = getattr(analysis, "redundancy", None)
    if callable(redundancy):
        return redundancy(model)
    try:
        from compiler.analysis.redundancy import analyse
    except ImportError:
        return None
    return analyse(model, graph)


def _bring_up(policy: Path, out: Path, tag: str, from_backend: bool) -> Run:
    _require_environment()
    result = compile_folder(policy, render=False)
    assert result.model is not None, [str(d) for d in result.diagnostics]
    model = result.model
    graph = peering.build(model)
    if from_backend:
        # the compiler refuses to write a design that misses its goals: take what its BGP
        # backend renders for the model, written the way `netpolc compile` writes files
        from compiler.backends import bgp

        for rel, data in bgp.render(model).items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
    else:
        proc = subprocess.run([sys.executable, "-m", "compiler", "compile", str(policy), "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"netpolc compile {policy} failed:\n{proc.stdout}{proc.stderr}"
    compiled = emu.read_compiled(out)
    assert compiled.clusters and compiled.neighbours.get(SITE), \
        f"no bgp/<cluster>/*.yaml or bgp/{SITE}/neighbours.yaml in {out}: {sorted(p.name for p in out.rglob('*'))}"
    lab = emu.Lab(model, graph, compiled, SITE, tag)
    try:
        lab.up()
    except BaseException:
        lab.down()
        raise
    # NPC_BGP_BY_HAND=1: ignore the analysis, check against the harness' own reachability
    return Run(lab, model, graph, None if os.environ.get("NPC_BGP_BY_HAND") else _analyse(model, graph))


@pytest.fixture(scope="class")
def good(tmp_path_factory: pytest.TempPathFactory):
    run = _bring_up(LAB, tmp_path_factory.mktemp("bgp-lab-out"), "g", from_backend=False)
    try:
        yield run
    finally:
        run.lab.down()


@pytest.fixture(scope="class")
def mixed(tmp_path_factory: pytest.TempPathFactory):
    run = _bring_up(MIXED, tmp_path_factory.mktemp("bgp-mixed-out"), "m", from_backend=False)
    try:
        yield run
    finally:
        run.lab.down()


@pytest.fixture(scope="class")
def weak(tmp_path_factory: pytest.TempPathFactory):
    run = _bring_up(WEAK, tmp_path_factory.mktemp("bgp-weak-out"), "w", from_backend=True)
    try:
        yield run
    finally:
        run.lab.down()


# --------------------------------------------------------------------------- helpers
def graph_sessions(run: Run) -> set[tuple[str, str, int]]:
    """Both ends of every session of the site in the compiled graph: (speaker, peer, family)."""
    out = set()
    for s in run.graph.sessions:
        if run.graph.speakers[s.a].site == SITE:
            out |= {(s.a, s.b, s.family), (s.b, s.a, s.family)}
    return out


def _summary(result: dict) -> str:
    return (f"{result['failure']}: down {', '.join(result['devices'])}; converged in {result['converged_s']} s, "
            f"healthy again {result['restored_s']} s after restore; {len(result['problems'])} problem(s)")


def _fmt(items: set | list) -> str:
    return "\n  ".join(str(i) for i in sorted(items)) or "(none)"


def healthy(lab: emu.Lab) -> Callable[[emu.Snapshot], list[str]]:
    """Every configured session (compiled, fabric and core) up; every node has every other block."""
    want = lab.configured_sessions(compiled_only=False)

    def check(snap: emu.Snapshot) -> list[str]:
        problems = [f"session not established: {s}" for s in sorted(want - snap.established(lab, False))]
        for n in lab.nodes():
            for f in emu.FAMILIES:
                missing = set(lab.nodes()) - {n} - lab.learned(snap, n, f)
                if missing:
                    problems.append(f"{n} has no IPv{f} route to the pods of {sorted(missing)}")
        return problems

    return check


def failure_check(lab: emu.Lab, expected: dict[int, dict[str, set[str]]], cut: dict[int, set[str]],
                  failed: set[str]) -> Callable[[emu.Snapshot], list[str]]:
    def check(snap: emu.Snapshot) -> list[str]:
        problems = []
        est = snap.established(lab, compiled_only=False)
        problems += [f"{a} still has a session with failed {b}" for a, b, _ in est if b in failed]
        for f, per_node in expected.items():
            for n, want in sorted(per_node.items()):
                if lab.devices[n].failed:
                    continue
                got = lab.learned(snap, n, f)
                if got != want:
                    problems.append(f"{n} IPv{f}: has the pods of {sorted(got)}, expected {sorted(want)}")
                sessions = {b for a, b, fam in est if a == n and fam == f}
                if n in cut.get(f, set()) and sessions:
                    problems.append(f"{n} IPv{f}: cut off per the analysis, but has sessions with {sorted(sessions)}")
                if n not in cut.get(f, set()) and not sessions:
                    problems.append(f"{n} IPv{f}: the analysis keeps a session, the emulation has none")
        return problems

    return check


def hand_expectation(lab: emu.Lab) -> tuple[dict[int, dict[str, set[str]]], dict[int, set[str]]]:
    """Without the analysis: a session can come up when both ends run and the (re-routed)
    underlay joins them; routes then flow through routers, ToRs, spines and reflectors,
    never through a plain node. Returns (expected learned sets, cut-off nodes)."""
    expected: dict[int, dict[str, set[str]]] = {}
    cut: dict[int, set[str]] = {}
    for f in emu.FAMILIES:
        adj: dict[str, set[str]] = {d: set() for d in lab.devices}
        for dev in lab.devices.values():
            if dev.failed or not dev.bird_conf:
                continue
            reach = set(lab.routes_for(dev, f)) | lab.connected(dev, f)
            for p in dev.peers:
                other = lab.peer_name(p)
                if p.family != f or other not in lab.devices or lab.devices[other].failed:
                    continue
                if any(p.ip in net for net in reach):
                    adj[dev.name].add(other)
        both = {a: {b for b in bs if a in adj[b]} for a, bs in adj.items()}
        expected[f], cut[f] = {}, set()
        for n in lab.nodes():
            if lab.devices[n].failed:
                continue
            if not both[n]:
                cut[f].add(n)
            seen, stack = {n}, [n]
            while stack:
                x = stack.pop()
                if x != n and lab.devices[x].kind == "node":
                    continue  # a plain node does not pass routes on
                for y in both[x]:
                    if y not in seen:
                        seen.add(y)
                        stack.append(y)
            expected[f][n] = {x for x in seen if x != n and x in lab.nodes()}
    return expected, cut


def foreign_next_hops(lab: emu.Lab) -> list[str]:
    """Routers and ToRs must send a node's pod block to that node (or to a switch on the way),
    never to another Kubernetes node, which would have to hand it back."""
    owner = {b: n for n in lab.nodes() for b in lab.blocks(n).values()}
    nodes = set(lab.nodes())
    problems = []
    for dev in lab.devices.values():
        if dev.kind in ("router", "tor") and dev.bird_conf and not dev.failed:
            for block, hops in sorted(lab.pod_next_hops(dev).items(), key=lambda kv: str(kv[0])):
                wrong = (hops & nodes) - {owner[block]}
                if wrong:
                    problems.append(f"{dev.name} sends the pods of {owner[block]} ({block}) to {sorted(wrong)}")
    return problems


def exercise(run: Run, failure: str, sweep: Any | None, probe: bool = True) -> dict:
    """Take one failure domain down, wait for the predicted state, check it, restore."""
    lab = run.lab
    devices = lab.devices_of(failure)
    lab_nodes = set(lab.nodes())
    taken = devices & lab_nodes
    problems: list[str] = []
    if sweep is not None:
        lost = set(sweep.lost) & lab_nodes
        by_design = {n for n in lost - taken if sweep.kind == "switch"
                     and run.model.racks[run.model.hosts[n].rack].switch == failure.split(" ", 1)[1]}
        if lost - by_design != taken:
            problems.append(f"the analysis loses {sorted(lost)}, the lab takes down {sorted(taken)}")
    t0 = time.monotonic()
    lab.fail(devices)
    try:
        if sweep is not None:
            expected = emu.expected_from_sweep(sweep, sorted(lab_nodes))
            cut = {f: set(sweep.cut_off.get(f, ())) for f in emu.FAMILIES}
        else:
            expected, cut = hand_expectation(lab)
        snap, left, took = lab.converge(failure_check(lab, expected, cut, devices), timeout=CONVERGE, settle=1.0)
        problems += left
        if not left and probe:
            pairs = [(a, b) for f in emu.FAMILIES for a, bs in expected[f].items() for b in bs]
            problems += [f"ping failed: {p}" for p in lab.ping_pods(sorted(set(pairs)))]
    finally:
        lab.restore()
    _, restore_left, restore_took = lab.converge(healthy(lab), timeout=CONVERGE)
    if restore_left:
        problems.append(f"not healthy {CONVERGE:.0f} s after restoring {failure}: {restore_left[:5]}")
    return {"failure": failure, "devices": sorted(devices), "converged_s": round(took, 1),
            "restored_s": round(restore_took, 1), "total_s": round(time.monotonic() - t0, 1), "problems": problems,
            "snapshot": snap}


# --------------------------------------------------------------------------- the lab
class TestLab:
    def test_sessions_equal_compiled_graph(self, good: Run) -> None:
        lab = good.lab
        want = graph_sessions(good)
        configured = lab.configured_sessions()
        node_side = {s for s in configured if lab.devices[s[0]].kind in ("node", "reflector")}
        device_side = configured - node_side
        assert node_side == {s for s in want if lab.devices[s[0]].kind in ("node", "reflector")}, (
            f"Calico resources give sessions the graph has not:\n  {_fmt(node_side - want)}\n"
            f"and miss sessions of the graph:\n  {_fmt({s for s in want - node_side if s[0] in lab.node_birds})}")
        assert device_side == want - node_side, (
            f"neighbours.yaml gives sessions the graph has not:\n  {_fmt(device_side - want)}\n"
            f"and misses:\n  {_fmt(want - node_side - device_side)}")
        # wait for every session, the harness' own fabric and core ones (not in the compiled output)
        # too: checking those once, right after the compiled ones came up, raced them (CI saw the
        # cores' IPv6 session still connecting)
        everything = lab.configured_sessions(compiled_only=False)
        snap, problems, took = lab.converge(
            lambda s: [str(x) for x in sorted(everything - s.established(lab, compiled_only=False))],
            timeout=CONVERGE)
        established = snap.established(lab)
        assert not problems, (f"not established after {took:.1f} s:\n  "
                              f"{_fmt(everything - snap.established(lab, compiled_only=False))}")
        assert established == want, f"extra:\n  {_fmt(established - want)}\nmissing:\n  {_fmt(want - established)}"
        infra = everything - configured
        assert infra and infra <= snap.established(lab, compiled_only=False) - established

    def test_every_node_learns_every_pod_block(self, good: Run) -> None:
        lab = good.lab
        snap, problems, took = lab.converge(healthy(lab), timeout=CONVERGE)
        assert not problems, f"after {took:.1f} s:\n  " + "\n  ".join(problems)
        for n in lab.nodes():
            for f in emu.FAMILIES:
                assert lab.learned(snap, n, f) == set(lab.nodes()) - {n}
        assert not foreign_next_hops(lab)
        failed = lab.ping_pods([(a, b) for a in lab.nodes() for b in lab.nodes() if a != b])
        assert not failed, f"pod to pod UDP echo failed: {failed}"
        # the service ranges the nodes announce reach the routers and the ToR, within import_prefixes
        services = [ipaddress.ip_network(item["cidr"]) for c in lab.compiled.clusters.values()
                    for d in c.configuration for item in (d.get("spec") or {}).get("serviceClusterIPs") or []]
        for dev in lab.devices.values():
            if dev.kind in ("router", "tor"):
                routes = lab.kernel_routes(dev)
                assert all(s in routes[s.version] for s in services), f"{dev.name} lacks service routes {services}"

    def test_failure_domains_match_the_analysis(self, good: Run) -> None:
        """Each failure domain of the sweep, one at a time, then restored. Without the
        redundancy analysis, the expectation is computed by hand (hand_expectation)."""
        lab = good.lab
        _, problems, _ = lab.converge(healthy(lab), timeout=CONVERGE)
        assert not problems, problems
        if good.report is not None:
            cases = [(s.failure, s) for s in good.report.for_site(SITE)]
        else:  # by hand: every router, switch, rack and row of the site
            site = good.model.sites[SITE]
            names = [f"router {r}" for r in site.routers]
            names += [f"switch {d}" for d, dev in lab.devices.items() if dev.kind in ("switch", "tor", "spine")]
            names += [f"rack {k}" for r in site.rows for k in good.model.rows[r].racks]
            names += [f"row {r}" for r in site.rows]
            cases = [(n, None) for n in names]
        assert cases
        results = [exercise(good, failure, sweep) for failure, sweep in cases]
        print("\nfailure domains (lab):", *(_summary(r) for r in results), sep="\n  ")
        bad = [r for r in results if r["problems"]]
        assert not bad, "\n".join(f"{r['failure']}: {r['problems']}" for r in bad)


# --------------------------------------------------------------------------- the weak variant
class TestWeakLab:
    def test_compile_refuses_and_the_analysis_flags_the_row(self, tmp_path: Path) -> None:
        proc = subprocess.run([sys.executable, "-m", "compiler", "compile", str(WEAK), "--out", str(tmp_path / "o")],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "R130" in proc.stderr and "losing row lab/a" in proc.stderr, proc.stderr
        assert not (tmp_path / "o" / "bgp").exists()

    def test_reflectors_row_lost_cuts_the_clients_off(self, weak: Run) -> None:
        lab = weak.lab
        want = graph_sessions(weak)
        snap, problems, took = lab.converge(healthy(lab), timeout=CONVERGE)
        assert not problems, f"the weak design does not even work intact ({took:.1f} s):\n  " + "\n  ".join(problems)
        assert snap.established(lab) == want
        reflectors = sorted(n for n, d in lab.devices.items() if d.kind == "reflector")
        clients = sorted(n for n in lab.nodes() if n not in reflectors and weak.model.hosts[n].row != "lab/a")
        assert len(reflectors) == 2 and {weak.model.hosts[r].row for r in reflectors} == {"lab/a"}
        if weak.report is None:
            result = exercise(weak, "row lab/a", None, probe=False)
            assert not result["problems"], result["problems"]
            results = [result]
        else:
            sweeps = {s.failure: s for s in weak.report.for_site(SITE)}
            flagged = {f.failure for f in weak.report.findings if f.code in ("R130", "R131")}
            assert flagged == {"row lab/a"}, f"the sweep flags {sorted(flagged)}"
            row = sweeps["row lab/a"]
            assert not row.ok and set(row.lost) == {*reflectors, "kube-a1"}
            assert {f: set(row.cut_off.get(f, ())) for f in emu.FAMILIES} == {f: set(clients) for f in emu.FAMILIES}
            # the emulation, for the flagged failure and every other failure the sweep finds harmful
            cases = ["row lab/a"] + sorted(f for f, s in sweeps.items() if not s.ok and f != "row lab/a")
            # control plane only: the data plane of reflector designs is TestMixedLab's matter
            results = [exercise(weak, failure, sweeps[failure], probe=False) for failure in cases]
            print("\nfailure domains (weak):", *(_summary(r) for r in results), sep="\n  ")
            bad = [r for r in results if r["problems"]]
            assert not bad, "\n".join(f"{r['failure']}: {r['problems']}" for r in bad)
        # in so many words: with row a lost, no client outside row a has a session or a pod route
        snap = results[0]["snapshot"]
        established = snap.established(lab, compiled_only=False)
        assert clients == ["kube-b1", "kube-b2", "kube-c1"]
        for c in clients:
            for f in emu.FAMILIES:
                assert lab.learned(snap, c, f) == set(), f"{c} still reaches pods over IPv{f}"
            assert not {s for s in established if s[0] == c}, f"{c} still has BGP sessions"


# --------------------------------------------------------------------------- reflectors plus a ToR rack
class TestMixedLab:
    """Reflector clients and a ToR-peered rack in one cluster: a design the analysis passes."""

    def test_sessions_equal_compiled_graph(self, mixed: Run) -> None:
        lab = mixed.lab
        want = graph_sessions(mixed)
        assert lab.configured_sessions() == want
        snap, problems, took = lab.converge(lambda s: sorted(map(str, want - s.established(lab))), timeout=CONVERGE)
        assert not problems and snap.established(lab) == want, problems

    def test_reflector_clients_learn_the_tor_rack(self, mixed: Run) -> None:
        lab = mixed.lab
        clients = [n for n in lab.nodes() if lab.devices[n].kind == "node" and n != "kube-c1"]

        def all_but_the_tor_rack(snap: emu.Snapshot) -> list[str]:
            # what does converge today: everything, but the clients' routes to kube-c1
            return [p for p in healthy(lab)(snap) if not any(p.startswith(f"{c} has no") and p.endswith("['kube-c1']")
                                                             for c in clients)]

        _, problems, took = lab.converge(all_but_the_tor_rack, timeout=CONVERGE, settle=2.0)
        assert not problems, f"more is wrong than the known defect ({took:.1f} s): {problems}"
        _, problems, _ = lab.converge(healthy(lab), timeout=4)
        assert not problems, "\n".join(problems)

    def test_routers_forward_to_the_owning_node(self, mixed: Run) -> None:
        lab = mixed.lab
        blocks = {b for n in lab.nodes() for b in lab.blocks(n).values()}
        routers = [d for d in lab.devices.values() if d.kind == "router"]

        def routers_have_every_block(snap: emu.Snapshot) -> list[str]:
            return [f"{d.name} lacks {sorted(map(str, blocks - set(lab.pod_next_hops(d))))}" for d in routers
                    if blocks - set(lab.pod_next_hops(d))]

        _, missing, _ = lab.converge(routers_have_every_block, timeout=CONVERGE, settle=2.0)
        assert not missing, f"more is wrong than the known defect: {missing}"
        problems = foreign_next_hops(lab)
        assert not problems, "\n".join(problems)

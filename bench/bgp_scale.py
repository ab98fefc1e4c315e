#!/usr/bin/env python3
"""Time the BGP peering graph and redundancy analysis on a generated site of N nodes.

    python bench/bgp_scale.py --nodes 10000

The site has two core routers, two site-level spines, half the rows L2 (nodes peer with
the routers) and half L3 (one ToR per rack, nodes peer with their ToR), 25 racks a
row, dual-stack addresses; one cluster spanning all of it with `survive router, row`.
Prints the time of each phase: parse+resolve, peering graph, redundancy analysis (local
rules and the sweep over every router, switch, rack and row).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.analysis.peering import build as build_graph  # noqa: E402
from compiler.analysis.redundancy import analyse  # noqa: E402
from compiler.diagnostics import Diagnostics  # noqa: E402
from compiler.parser import gc_paused  # noqa: E402
from compiler.project import build_model, load_sources  # noqa: E402

RACKS_PER_ROW = 25


def generate(nodes: int) -> str:
    per_rack = max(1, nodes // (RACKS_PER_ROW * 20))
    rows = max(4, -(-nodes // (RACKS_PER_ROW * per_rack)))
    rows += rows % 2
    out = ["site s1 {",
           "  router cr1-s1 loopback 192.0.2.1 2001:db8:ffff::1 asn 65000",
           "  router cr2-s1 loopback 192.0.2.2 2001:db8:ffff::2 asn 65000",
           "  spine sp1-s1 asn 64900 uplink cr1-s1",
           "  spine sp2-s1 asn 64900 uplink cr2-s1"]
    made = 0
    for r in range(rows):
        l3 = r >= rows // 2
        out.append(f"  row r{r} {{")
        if not l3:
            out += [f"    switch asw-r{r}", f"    subnet 10.{r}.0.0/16 2001:db8:a:{r:x}::/64",
                    f"    gateway 10.{r}.0.1 2001:db8:a:{r:x}::1"]
        for k in range(RACKS_PER_ROW):
            out.append(f"    rack r{r}k{k} {{")
            if l3:
                v6 = f"2001:db8:b:{r:02x}{k:02x}"
                out += [f"      switch tor-r{r}k{k} asn 64800", f"      subnet 10.{100 + r}.{k}.0/24 {v6}::/64",
                        f"      gateway 10.{100 + r}.{k}.1 {v6}::1"]
            for n in range(per_rack):
                if made >= nodes:
                    break
                if l3:
                    v4, v6 = f"10.{100 + r}.{k}.{10 + n}", f"2001:db8:b:{r:02x}{k:02x}::{10 + n:x}"
                else:
                    v4, v6 = f"10.{r}.{k}.{10 + n}", f"2001:db8:a:{r:x}::{k:x}:{10 + n:x}"
                out.append(f"      host n{made} {v4} {v6} roles {'l3-worker' if l3 else 'l2-worker'}")
                made += 1
            out.append("    }")
        out.append("  }")
    out.append("}")
    out += ["role l2-worker {}", "role l3-worker {}",
            "cluster big {", "  site s1  asn 64601  pods 10.200.0.0/14 2001:db8:cafe::/56",
            "  nodes role l2-worker, l3-worker",
            "  control-plane host n0, n" + str(RACKS_PER_ROW * per_rack),
            "  etcd host n1, n" + str(RACKS_PER_ROW * per_rack + 1) + ", n" + str(2 * RACKS_PER_ROW * per_rack + 1),
            "  peer-with routers", "  peer-with tor for role l3-worker",
            "  survive router, row", "  single-uplink max-share 10%", "}"]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "site.npl").write_text(generate(args.nodes))
        diags = Diagnostics()
        with gc_paused():
            t0 = time.perf_counter()
            model = build_model(load_sources(Path(tmp), diags), diags)
            t1 = time.perf_counter()
            if model is None:
                raise SystemExit("\n".join(d.message for d in diags.items[:5]))
            graph = build_graph(model)
            t2 = time.perf_counter()
            report = analyse(model, graph)
            t3 = time.perf_counter()
    errors = [f for f in report.findings if f.severity == "error"]
    print(f"nodes {len(model.clusters['big'].nodes)}, sessions {len(graph.sessions)}, "
          f"failure domains {len(report.sweeps)}, error findings {len(errors)}")
    print(f"parse+resolve {t1 - t0:.2f} s, peering graph {t2 - t1:.2f} s, redundancy analysis {t3 - t2:.2f} s")


if __name__ == "__main__":
    main()

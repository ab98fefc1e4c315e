#!/usr/bin/env python3
"""Time each stage of one compile, in this process, and print the times as JSON.

    python bench/stages.py POLICY_DIR OUT_DIR [--profile FILE]

Stages: load (read the `*.npl` files), parse, resolve, the peering graph, the redundancy
analysis, the host firewalls and lock-out guard, each backend, then the write of `out/`
(compiler/output.py `write_tree` into a fresh folder) and the floor: the same bytes written
into another fresh folder the way `write_tree` writes them (mkdir, write, rename), with no
compilation. The cycle collector is off as in `compile_folder`. bench/run.py runs this in a
fresh child per size under GNU time for the peak RSS.

The stages run one after another, in one process, so each is its cost on one core; `compile`
overlaps some of them on a second core (`analysis.prepare` sweeps the redundancy in a forked
child while the host firewalls are built; `render_all` renders estate.json and half the ferm
files in one), so on a large estate the sum of the stages exceeds the compile's wall time.
The backends otherwise run as `render_all` (compiler/backends/__init__.py) runs them: `bgp_report.start`
first (the reports, and graphviz's `dot` started on each site's peering picture in child
processes; `bgp_report start`), then the other backends while `dot` draws, then
`Drawing.finish()`: `dot wait` is how long the compile still waits for the pictures once the
other backends are done. `dot CPU` is the CPU time of those `dot` children (their rusage),
which is about the time `dot` alone takes: it draws on one core each.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler import analysis  # noqa: E402
from compiler.backends import BACKENDS, bgp_report  # noqa: E402
from compiler.diagnostics import Diagnostics  # noqa: E402
from compiler.output import write_tree  # noqa: E402
from compiler.parser import gc_paused  # noqa: E402
from compiler.project import load_sources, parse_all  # noqa: E402
from compiler.resolve import resolve  # noqa: E402


def floor_write(out: Path, files: dict[str, bytes]) -> None:
    """The bytes alone: a fresh temporary folder beside `out`, each file written, renamed into place."""
    out = out.absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    for rel, data in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    tmp.rename(out)


def run(policy: Path, out: Path) -> dict:
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    diags = Diagnostics()
    with gc_paused():
        sources = load_sources(policy, diags)
        lap("load")
        files = parse_all(sources, diags)
        lap("parse")
        model = resolve(files, diags) if files is not None else None
        lap("resolve")
        if model is None:
            raise SystemExit("; ".join(d.message for d in diags.items[:5]))
        analysis.peering_graph(model)
        lap("peering")
        findings = analysis.redundancy(model).findings
        lap("redundancy")
        lockout = analysis.lockout(model)
        lap("hostfw+lockout")
        errors = [f for f in findings if f.severity == "error"] + list(lockout)
        if errors:
            raise SystemExit(f"{len(errors)} redundancy/lock-out error(s), e.g. {errors[0]}")
        rendered: dict[str, bytes] = {}
        dot_cpu = children_cpu()
        drawing = bgp_report.start(model)  # as render_all: the pictures first, collected last
        lap("bgp_report start")
        try:
            for backend in BACKENDS:
                if backend is bgp_report.render:
                    continue
                rendered.update(backend(model))
                lap(backend.__module__.rsplit(".", 1)[1])
            rendered.update(drawing.finish())
            lap("dot wait")
        finally:
            drawing.cancel()
        times["dot CPU"] = children_cpu() - dot_cpu
        rendered = dict(sorted(rendered.items()))
        clock = time.perf_counter()
        write_tree(out, rendered)
        lap("write")
        floor_write(out.with_name(out.name + "-floor"), rendered)
        lap("floor")
    return {"times": times, "files": len(rendered), "bytes": sum(len(b) for b in rendered.values()),
            "source_bytes": sum(len(t.encode()) for t in sources.values()),
            "pictures": len(drawing.sources), "hosts": len(model.hosts), "apps": len(model.apps),
            "flows": len(model.flows), "pid": os.getpid()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policy", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--profile", type=Path, help="write a cProfile of the whole run here")
    args = ap.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        result = prof.runcall(run, args.policy, args.out)
        prof.dump_stats(args.profile)
    else:
        result = run(args.policy, args.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time each stage of one compile, in this process, and print the times as JSON.

    python bench/stages.py POLICY_DIR OUT_DIR [--stub-dot] [--profile FILE]

Stages: load (read the `*.npl` files), parse, resolve, the peering graph, the redundancy
analysis, the host firewalls and lock-out guard, each backend, then the write of `out/`
(compiler/output.py `write_tree` into a fresh folder) and the floor: the same bytes written
into another fresh folder the way `write_tree` writes them (mkdir, write, rename), with no
compilation. The cycle collector is off as in `compile_folder`. bench/run.py runs this in a
fresh child per size under GNU time for the peak RSS.

`bgp_report` runs graphviz's `dot` for the peering picture; its time is reported apart
(`dot`), and `--stub-dot` skips it (an empty picture), for estates where `dot` takes minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler import analysis  # noqa: E402
from compiler.backends import BACKENDS, bgp_report  # noqa: E402
from compiler.diagnostics import Diagnostics  # noqa: E402
from compiler.output import write_tree  # noqa: E402
from compiler.project import _no_gc_pauses, load_sources, parse_all  # noqa: E402
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


def run(policy: Path, out: Path, stub_dot: bool) -> dict:
    times: dict[str, float] = {}
    dot_time = [0.0]
    real_svg = bgp_report.render_svg

    def timed_svg(source: str) -> bytes:
        if stub_dot:
            return b""
        start = time.perf_counter()
        try:
            return real_svg(source)
        finally:
            dot_time[0] += time.perf_counter() - start

    bgp_report.render_svg = timed_svg  # type: ignore[assignment]
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    diags = Diagnostics()
    with _no_gc_pauses():
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
        for backend in BACKENDS:
            name = backend.__module__.rsplit(".", 1)[1]
            rendered.update(backend(model))
            lap(name)
        times["bgp_report"] -= dot_time[0]
        times["dot"] = dot_time[0]
        rendered = dict(sorted(rendered.items()))
        clock = time.perf_counter()
        write_tree(out, rendered)
        lap("write")
        floor_write(out.with_name(out.name + "-floor"), rendered)
        lap("floor")
    return {"times": times, "files": len(rendered), "bytes": sum(len(b) for b in rendered.values()),
            "source_bytes": sum(len(t.encode()) for t in sources.values()),
            "hosts": len(model.hosts), "apps": len(model.apps), "flows": len(model.flows), "pid": os.getpid()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policy", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--stub-dot", action="store_true", help="skip graphviz (report dot as 0)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the whole run here")
    args = ap.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        result = prof.runcall(run, args.policy, args.out, args.stub_dot)
        prof.dump_stats(args.profile)
    else:
        result = run(args.policy, args.out, args.stub_dot)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

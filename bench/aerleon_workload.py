#!/usr/bin/env python3
"""Render the Aerleon benchmark's `workload.json` into netpolc's language, and time netpolc on it.

The workload (../shared/bench/aerleon/gen_policy.py) has N apps, each admitting 1-3 client
networks on 1-3 TCP services. Here each app becomes an `app` in one cluster with an `allow`
statement naming the same client networks and services, so the two tools read the same intent.

    python bench/aerleon_workload.py --sizes 100,1000,10000 [--repeat 3]

or, side by side with Aerleon in its own harness (../shared/bench/aerleon/run_bench.py):

    python run_bench.py --sizes 100,1000,10000 --targets k8s --aclgen AERLEON_VENV/bin/aclgen \
      --extra 'netpolc=sh -c "PY bench/aerleon_workload.py --render {workload} {workdir}/npl &&
               PY -m compiler compile {workdir}/npl --out {out}"'

prints, per size, the source size and wall time, CPU time and peak RSS of
`python -m compiler compile` in a fresh child process (best of --repeat runs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GEN = REPO.parent / "shared" / "bench" / "aerleon" / "gen_policy.py"

HEADER = """\
# Rendered from the Aerleon benchmark workload (seed {seed}, {n} apps).
site bench {{
  router cr1-bench loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  row a {{
    switch asw-a-bench
    subnet 192.168.0.0/24 2001:db8:1::/64
    gateway 192.168.0.1 2001:db8:1::1
    rack a1 {{ host node1 192.168.0.11 2001:db8:1::11 roles k8s-worker }}
  }}
}}
role k8s-worker {{}}
cluster bench {{
  site bench  asn 64700  pods 100.64.0.0/16 2001:db8:cabe::/64  services 100.65.0.0/24
  nodes role k8s-worker  peer-with routers
}}
"""


def label(name: str) -> str:
    return name.lower().replace("_", "-")


def render(workload: dict) -> str:
    out = [HEADER.format(seed=workload["seed"], n=workload["n_apps"])]
    for name, svc in workload["services"].items():
        ports = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in svc["ports"])
        out.append(f"service {label(name)} = {svc['proto']} {ports}\n")
    for name, prefixes in workload["clients"].items():
        out.append(f"network {label(name)} = {', '.join(prefixes)}\n")
    for app in workload["apps"]:
        services = ", ".join(f"service {label(s)}" for s in app["services"])
        sources = ", ".join(f"network {label(c)}" for c in app["sources"])
        out.append(f"app {app['app']} {{ cluster bench  listen {services}\n"
                   f"  allow {services} from {sources} description \"term {app['term']}\" }}\n")
    return "".join(out)


def generate(n: int, seed: int, workdir: Path) -> Path:
    subprocess.run([sys.executable, str(GEN), "--apps", str(n), "--seed", str(seed), "--out", str(workdir)],
                   check=True, capture_output=True)
    workload = json.loads((workdir / "workload.json").read_text())
    policy = workdir / "netpolc"
    policy.mkdir(exist_ok=True)
    (policy / "bench.npl").write_text(render(workload))
    return policy


def measure(policy: Path, out: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one compile in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "compiler", "compile", str(policy),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"compile failed:\n{proc.stdout}\n{proc.stderr}")
    rss = int(proc.stderr.strip().splitlines()[-1])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--render", nargs=2, metavar=("WORKLOAD_JSON", "POLICY_DIR"),
                    help="only write the workload as netpolc policy (for run_bench.py --extra), then exit")
    args = ap.parse_args()
    if args.render:
        target = Path(args.render[1])
        target.mkdir(parents=True, exist_ok=True)
        (target / "bench.npl").write_text(render(json.loads(Path(args.render[0]).read_text())))
        return
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time (Debian package `time`) for peak RSS")
    print(f"{'apps':>6} {'source KiB':>10} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}  (best of {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="netpolc-bench-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            policy = generate(n, args.seed, work)
            runs = [measure(policy, work / "out") for _ in range(args.repeat)]
            wall, cpu, rss = min(runs)
            size = (policy / "bench.npl").stat().st_size / 1024
            print(f"{n:>6} {size:>10.0f} {wall:>8.2f} {cpu:>8.2f} {rss / 1024:>9.0f}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""netpolc's benchmark suite (issue 7): the peer workload against Aerleon, the estate workload, the floor.

    python bench/run.py [--quick] [--write] [--only peer,estate] [--aclgen PATH]   (also: make bench)

1. Peer workload: ../shared/bench/aerleon/gen_policy.py's seeded workload at N = 1,000 and
   10,000 terms, rendered by bench/peer_workload.py (an app and a host firewall per term) and
   checked against the workload's summary; `python -m compiler compile` (Calico and ferm) and
   Aerleon's `aclgen` (iptables and k8s targets, run exactly as run_bench.py runs it: its own
   `measure` and `aclgen_cmd`) each in a fresh child, `--repeat` runs (5) interleaved, medians,
   ratio netpolc / aclgen-iptables. Aerleon 1.18.0 is installed into bench/.aerleon-venv/
   (created on first use; never a netpolc dependency) unless --aclgen names one.
2. Estate workload: bench/estate_gen.py at 1,000, 8,000 and 16,000 hosts. One child per size
   times each stage (bench/stages.py: parse, resolve, peering graph, redundancy, host
   firewalls and lock-out, each backend, the write) under GNU time for the peak RSS; then
   `python -m compiler compile` end to end (`--repeat-estate` runs, median).
3. The floor: the same bytes written into a fresh folder as write_tree writes them, no compile.
4. `check` on the unchanged estate against `compile`; after a one-line change to one app, how
   many files of out/ were rewritten (inode or mtime changed) and how many changed content.

Every compile uses graphviz's real `dot`, as users do: bgp_report folds alike nodes of a rack
into one box and bounds the layout effort of a large picture, and render_all draws in child
processes while the other backends run (stages.py times it that way: `dot wait`, `dot CPU`).

Every timed run writes into a folder of its own; the folders of one size are deleted only after
all timing of that size, then `sync` and a pause (--settle, 5 s) before the next timed run:
deleting tens of thousands of files makes ext4 file creation several times slower for the
seconds after (write_tree measured 3.9 s instead of 0.46 s).

--quick: N = 1,000 and 1,000 hosts only, 1 run each (a minute or two). --write: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import estate_gen  # noqa: E402
import peer_workload  # noqa: E402

from compiler.output import read_tree  # noqa: E402

# ../shared beside the repository (or beside the folder of worktrees); BENCH_SHARED overrides
PEER_HARNESS = next((p for p in (Path(os.environ.get("BENCH_SHARED", "/nonexistent")), REPO.parent / "shared",
                                 REPO.parent.parent / "shared") if (p / "bench" / "aerleon").is_dir()),
                    REPO.parent / "shared") / "bench" / "aerleon"
AERLEON_VERSION = "1.18.0"
VENV = BENCH / ".aerleon-venv"


def load_run_bench():
    """The peer harness's own driver, so aclgen is measured exactly as it measures it."""
    path = PEER_HARNESS / "run_bench.py"
    if not path.exists():
        raise SystemExit(f"the Aerleon harness is missing: {path} (../shared must sit beside the repository)")
    spec = importlib.util.spec_from_file_location("run_bench", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def ensure_aclgen(given: str | None) -> str:
    if given:
        return given
    aclgen = VENV / "bin" / "aclgen"
    if not aclgen.exists():
        print(f"installing aerleon=={AERLEON_VERSION} into {VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        f"aerleon=={AERLEON_VERSION}"], check=True)
    return str(aclgen)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in r] for r in [header] + rows]
    out = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(out)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.sections: list[str] = []
        self.targets: list[list[object]] = []

    def discard(self, *paths: Path) -> None:
        """Delete folders, then let the file system settle before anything else is timed."""
        gone = False
        for path in paths:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
                gone = True
        if gone:
            os.sync()
            time.sleep(self.args.settle)

    def emit(self, title: str, text: str) -> None:
        block = f"### {title}\n\n{text}\n"
        print("\n" + block, flush=True)
        self.sections.append(block)

    # ------------------------------------------------------------ netpolc in a child
    def netpolc(self, rb, verb: str, policy: Path, out: Path, log: Path) -> dict:
        cmd = [sys.executable, "-m", "compiler", verb, str(policy), "--out", str(out)]
        os.sync()  # the previous run's dirty pages written back now, not during this run
        return rb.measure(cmd, str(REPO), 600.0, str(log))

    # ------------------------------------------------------------ 1. peer
    def peer(self) -> None:
        rb = load_run_bench()
        aclgen = ensure_aclgen(self.args.aclgen)
        self.aerleon = rb.aclgen_version(aclgen)
        rows, checks = [], []
        for n in self.args.peer_sizes:
            wd = self.work / f"peer-{n}"
            subprocess.run([sys.executable, str(PEER_HARNESS / "gen_policy.py"), "--apps", str(n), "--seed",
                            str(self.args.seed), "--out", str(wd)], check=True, capture_output=True)
            workload = json.loads((wd / "workload.json").read_text())
            policy = peer_workload.write_policy(workload, wd / "netpolc")
            outs: list[Path] = []  # a fresh folder per run, deleted after this size's runs
            runs: dict[str, list[dict]] = {"aclgen iptables": [], "aclgen k8s": [], "netpolc": []}
            for i in range(self.args.repeat):
                for target in ("iptables", "k8s"):
                    out = wd / f"out_{target}-{i}"
                    out.mkdir()
                    outs.append(out)
                    os.sync()
                    r = rb.measure(rb.aclgen_cmd(aclgen, target, str(out), False), str(wd), 600.0,
                                   str(wd / f"aclgen-{target}-{i}.log"))
                    if r["exit"] != 0:
                        raise SystemExit(f"aclgen {target} failed, see {wd}/aclgen-{target}-{i}.log")
                    r.update(rb.analyse_output(str(out), target))
                    runs[f"aclgen {target}"].append(r)
                out = wd / f"out_netpolc-{i}"
                outs.append(out)
                r = self.netpolc(rb, "compile", policy, out, wd / f"netpolc-{i}.log")
                if r["exit"] != 0:
                    raise SystemExit(f"netpolc failed: {(wd / f'netpolc-{i}.log').read_text()[-2000:]}")
                r.update(rb.analyse_output(str(out), None))
                runs["netpolc"].append(r)
                print(f"  peer N={n} run {i + 1}: " + ", ".join(f"{k} {v[-1]['wall_s']:.2f} s"
                                                            for k, v in runs.items()), flush=True)
            got, problems = peer_workload.compare(workload, read_tree(outs[-1]))
            self.discard(*outs)
            s = workload["summary"]
            ipt = runs["aclgen iptables"][-1]
            ipt_expected = s["src_dst_pairs_v4"] + s["src_dst_pairs_v6"] + 2
            checks.append([n, f"{got['src_dst_pairs_v4']} + {got['src_dst_pairs_v6']}",
                           f"{s['src_dst_pairs_v4']} + {s['src_dst_pairs_v6']} "
                           f"({got['merged_pairs_v4']} + {got['merged_pairs_v6']})",
                           f"{got['apps_with_v4_flow']} / {got['apps_with_v6_flow']}",
                           f"{s['apps_with_v4_flow']} / {s['apps_with_v6_flow']}",
                           f"{got['k8s_ipblock_peers']} / {s['k8s_ipblock_peers']} ({got['merged_ipblock_peers']})",
                           f"{got['port_ranges_merged']} / {s['port_ranges_merged']}", got["calico_rules"],
                           f"{ipt.get('rules')} / {ipt_expected}",
                           "same addresses and ports in every term"
                           if not problems and ipt.get("rules") == ipt_expected
                           else f"{len(problems)} term(s) differ, e.g. {problems[:2]}"])
            base = median([r["wall_s"] for r in runs["aclgen iptables"]])
            for tool, rs in runs.items():
                wall = median([r["wall_s"] for r in rs])
                rows.append([n, tool, f"{wall:.2f}", f"{median([r['user_s'] + r['sys_s'] for r in rs]):.2f}",
                             f"{max(r['peak_rss_mb'] for r in rs):.0f}", rs[-1]["files"],
                             f"{rs[-1]['bytes'] / 1e6:.2f}", f"{wall / base:.3f}",
                             "yes" if len({r['sha256'] for r in rs}) == 1 else "no"])
            if n == max(self.args.peer_sizes):
                ratio = median([r["wall_s"] for r in runs["netpolc"]]) / base
                self.targets.append([f"peer N={n}: netpolc (Calico + ferm) <= 1/10 of aclgen iptables",
                                     f"ratio {ratio:.3f}", "met" if ratio <= 0.1 else "not met"])
        self.emit(f"Peer workload: netpolc against Aerleon {self.aerleon} (seed {self.args.seed}, "
                  f"{self.args.repeat} runs each, interleaved; medians)",
                  table(["N terms", "tool", "wall s (median)", "CPU s (median)", "peak RSS MiB", "files", "MB out",
                         "x aclgen iptables", "byte-identical runs"], rows)
                  + "\n\nThe same intent, read back from netpolc's output and compared term by term with "
                  "`workload.json` (the addresses of each term's sources per family and its ports, as sets), "
                  "then counted in `workload[\"summary\"]`'s terms (netpolc / workload). netpolc merges adjacent "
                  "prefixes of a named set (10.0.100.0/24 + 10.0.101.0/24 -> 10.0.100.0/23), so its prefix counts "
                  "are lower; the count the workload gives after the same merge (netaddr) is in brackets. ferm "
                  "pairs and terms with a flow are counted in each host's own families (netpolc also writes a "
                  "term's IPv6 sources into `domain ip6` of a host without an IPv6 address; Aerleon writes no rule "
                  "there). Calico writes one rule per source network (`calico rules`), each with the term's ports. "
                  "aclgen's iptables rules are checked against pairs v4 + v6 + 2 default-deny rules.\n\n"
                  + table(["N", "ferm pairs v4 + v6", "workload (merged)", "terms with v4 / v6 flow (ferm)",
                           "workload", "Calico source prefixes / workload (merged)", "Calico port entries / workload",
                           "Calico rules", "aclgen iptables rules / expected", "verdict"],
                          checks))

    # ------------------------------------------------------------ 2.-4. estate
    def estate(self) -> None:
        rows, stage_rows, incr_rows = [], [], []
        e2e: dict[int, float] = {}
        e2e_cpu: dict[int, float] = {}
        policies: dict[int, Path] = {}
        stage_info: dict[int, dict] = {}
        to_discard: list[Path] = []
        for hosts in self.args.estate_sizes:
            shape = estate_gen.shape_for(hosts)
            # leftovers of a --keep folder: deleted, then the settle pause, before anything is timed
            self.discard(*sorted(self.work.glob(f"estate-{hosts}*")))
            policy = policies[hosts] = estate_gen.write(shape, self.work / f"estate-{hosts}", self.args.seed)
            stage_outs = [self.work / f"estate-{hosts}-stages-{i}" for i in range(self.args.repeat_stages)]
            to_discard += stage_outs + [out.with_name(out.name + "-floor") for out in stage_outs]
            runs = [self.stages(policy, out) for out in stage_outs]
            stages = stage_info[hosts] = runs[-1]
            t = {k: median([r["times"][k] for r in runs]) for k in stages["times"]}  # each stage's median
            stages["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            analysis = t["peering"] + t["redundancy"] + t["hostfw+lockout"]
            backends = sum(t[b] for b in ("bgp_report start", "estate", "bgp", "calico", "ferm", "dot wait"))
            total = t["load"] + t["parse"] + t["resolve"] + analysis + backends + t["write"]
            stage_rows.append([f"{hosts:,}", f"{t['parse']:.2f}", f"{t['resolve']:.2f}", f"{t['peering']:.2f}",
                               f"{t['redundancy']:.2f}", f"{t['hostfw+lockout']:.2f}",
                               f"{t['bgp_report start']:.2f}", f"{t['estate']:.2f}", f"{t['bgp']:.2f}",
                               f"{t['calico']:.2f}", f"{t['ferm']:.2f}", f"{t['dot wait']:.2f}",
                               f"{t['write']:.2f}", f"{total:.2f}", f"{t['floor']:.2f}",
                               f"{total / t['floor']:.0f}x", f"{t['dot CPU']:.2f} ({stages['pictures']})",
                               f"{stages['peak_rss_mb']:.0f}"])
        from_rb = load_run_bench()
        compiles: dict[int, list[dict]] = {h: [] for h in policies}
        checks: dict[int, list[dict]] = {h: [] for h in policies}
        outs = {h: [self.work / f"estate-{h}-out-{i}" for i in range(self.args.repeat_estate)] for h in policies}
        to_discard += [out for h in outs for out in outs[h]]
        # interleaved: run i of every size, a compile then a check, before run i + 1, so a slow spell
        # of the (shared) machine falls on every size and on both commands, not on one of them
        for i in range(self.args.repeat_estate):
            for hosts, policy in policies.items():
                for verb, out, runs_of in (("compile", outs[hosts][i], compiles), ("check", outs[hosts][0], checks)):
                    log = self.work / f"e{hosts}-{verb}-{i}.log"
                    r = self.netpolc(from_rb, verb, policy, out, log)  # each compile into a fresh folder
                    if r["exit"] != 0:
                        raise SystemExit(log.read_text()[-3000:])
                    runs_of[hosts].append(r)
        self.check_ratios = {}
        for hosts, policy in policies.items():
            shape, stages = estate_gen.shape_for(hosts), stage_info[hosts]
            compile_s = median([r["wall_s"] for r in compiles[hosts]])
            compile_cpu = median([r["user_s"] + r["sys_s"] for r in compiles[hosts]])
            check_s = median([r["wall_s"] for r in checks[hosts]])
            check_cpu = median([r["user_s"] + r["sys_s"] for r in checks[hosts]])
            self.check_ratios[hosts] = (check_s / compile_s, check_cpu / compile_cpu)
            e2e[hosts] = compile_s
            e2e_cpu[hosts] = compile_cpu
            rows.append([f"{hosts:,}", shape.describe(), f"{stages['source_bytes'] / 1e3:.0f}",
                         f"{stages['files']:,}", f"{stages['bytes'] / 1e6:.1f}", f"{compile_s:.2f}",
                         f"{compile_cpu:.2f}",
                         f"{max(r['peak_rss_mb'] for r in compiles[hosts]):.0f}", f"{check_s:.2f}",
                         f"{check_cpu:.2f}", f"{max(r['peak_rss_mb'] for r in checks[hosts]):.0f}"])
            incr_rows.append([f"{hosts:,}"] + self.incremental(from_rb, policy, outs[hosts][0], hosts))
        # all timing done: now the big deletions
        self.discard(*to_discard)
        self.emit("Estate workload: end to end (`python -m compiler compile` / `check`, fresh child, "
                  f"median of {self.args.repeat_estate}, each compile into a fresh folder; the runs of all sizes "
                  "and both commands interleaved; real `dot`)",
                  table(["hosts", "shape", "source kB", "files", "MB out", "compile wall s", "compile CPU s",
                         "compile peak MiB", "check (unchanged) wall s", "check CPU s", "check peak MiB"], rows))
        self.emit(f"Estate workload: stages (seconds, each stage's median of {self.args.repeat_stages} children, "
                  "each writing into a fresh folder; real `dot`, run as render_all runs it)",
                  table(["hosts", "parse", "resolve", "peering", "redundancy", "hostfw+lockout",
                         "bgp_report start", "estate.json", "bgp", "calico", "ferm", "dot wait", "write", "total",
                         "floor (bytes only)", "total / floor", "dot CPU (pictures)", "peak RSS MiB"],
                        stage_rows)
                  + "\n\nThe stages run one after another in one process (bench/stages.py), each timed on one "
                  "core; `compile` overlaps some of them on the second core (the redundancy sweep in a forked "
                  "child while the host firewalls are built; estate.json and half the ferm files rendered in "
                  "one), so from 8,000 hosts on `total` exceeds the compile's wall time above. "
                  "The backends otherwise run as `render_all` runs them: `bgp_report start` writes the reports and "
                  "starts `dot` on each site's peering picture in a child process; estate.json, bgp, calico and "
                  "ferm run while it draws; `dot wait` is what is left to wait for the pictures after them. "
                  "`dot CPU` is the CPU time of the `dot` children (about what `dot` alone takes; one per "
                  "site, on the other core). `total` is the sum of the stages up to and including the write "
                  "(wall); `floor` writes the same bytes into a fresh folder the way write_tree does, with no "
                  "compilation; `write` is write_tree into a fresh folder (a first compile).")
        self.emit("Recompiling after a one-line change to one app (`listen` port of app0001)",
                  table(["hosts", "files in out/", "rewritten (inode or mtime changed)", "content changed",
                         "recompile s"], incr_rows))
        if 8000 in e2e:
            rss = [r for r in rows if r[0] == "8,000"][0][7]
            self.targets.append(["estate 8,000 hosts: compile incl. redundancy < 10 s, < 1 GiB",
                                 f"{e2e[8000]:.2f} s wall ({e2e_cpu[8000]:.2f} s CPU), {rss} MiB",
                                 "met" if e2e[8000] < 10 and float(rss) < 1024 else "not met"])
        if 8000 in e2e and 16000 in e2e:
            ratio = e2e[16000] / e2e[8000]
            self.targets.append(["estate 16,000 <= 2.2 x 8,000",
                                 f"{ratio:.2f} x wall, {e2e_cpu[16000] / e2e_cpu[8000]:.2f} x CPU",
                                 "met" if ratio <= 2.2 else "not met"])
        if rows:
            wall = max(w for w, _ in self.check_ratios.values())
            cpu = max(c for _, c in self.check_ratios.values())
            self.targets.append(["`check` on an unchanged estate no slower than `compile`",
                                 f"check / compile: wall up to {wall:.2f}, CPU up to {cpu:.2f} (medians, interleaved)",
                                 "met" if wall <= 1.0 else "not met"])
            rewrites = [(int(r[2]), int(r[3])) for r in incr_rows]
            self.targets.append(["one-line change rewrites only the files that change",
                                 ", ".join(f"{a} rewritten / {b} changed" for a, b in rewrites),
                                 "met" if all(a == b for a, b in rewrites) else "not met"])

    def stages(self, policy: Path, out: Path) -> dict:
        rss_file = self.work / "stages.rss"
        os.sync()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable,
                               str(BENCH / "stages.py"), str(policy), str(out)],
                              cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"stages failed on {policy}:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["peak_rss_mb"] = int(rss_file.read_text().split()[-1]) / 1024
        return result

    def incremental(self, rb, policy: Path, out: Path, hosts: int) -> list[object]:
        """Files of out/ rewritten vs changed after a one-line change to one app."""
        def snapshot() -> dict[str, tuple[int, int]]:
            return {p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
                    for p in out.rglob("*") if p.is_file()}

        before, before_bytes = snapshot(), read_tree(out)
        apps = policy / "apps.npl"
        text = apps.read_text()
        start = text.index("app app0001 {")
        line_start = text.index("  listen tcp ", start)
        line_end = text.index("\n", line_start)
        port = int(text[line_start:line_end].rsplit(" ", 1)[1])
        apps.write_text(text[:line_start] + text[line_start:line_end].rsplit(" ", 1)[0] + f" {port + 1}"
                        + text[line_end:])
        time.sleep(0.02)  # a rewrite within the same mtime tick still shows as a new inode
        r = self.netpolc(rb, "compile", policy, out, self.work / f"e{hosts}-incr.log")
        if r["exit"] != 0:
            raise SystemExit((self.work / f"e{hosts}-incr.log").read_text()[-3000:])
        after, after_bytes = snapshot(), read_tree(out)
        rewritten = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
        changed = sum(1 for k in set(before_bytes) | set(after_bytes) if before_bytes.get(k) != after_bytes.get(k))
        return [len(after), rewritten, changed, f"{r['wall_s']:.2f}"]

    # ------------------------------------------------------------ report
    def machine(self) -> str:
        model = next((line.split(":", 1)[1].strip() for line in
                      subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                      if line.startswith("Model name")), platform.processor())
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "compiler"], cwd=REPO, capture_output=True,
                               text=True).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
        if dirty:
            commit += f" plus uncommitted changes to {', '.join(dirty)}"
        load = os.getloadavg()
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        return "\n".join([
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: `nproc` {nproc}, "
            f"{model}, {mem / 1024 / 1024:.1f} GiB RAM, load average at the end {load[0]:.1f}",
            f"- Python {platform.python_version()} ({sys.executable}); netpolc at commit {commit}",
            f"- command: `python bench/run.py {' '.join(sys.argv[1:])}`"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=1,000 and 1,000 hosts, one run each")
    ap.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    ap.add_argument("--only", default="peer,estate", help="peer, estate or both (default)")
    ap.add_argument("--aclgen", help="an aclgen to use instead of installing Aerleon into bench/.aerleon-venv")
    ap.add_argument("--peer-sizes", default="1000,10000")
    ap.add_argument("--estate-sizes", default="1000,8000,16000")
    ap.add_argument("--repeat", type=int, default=5, help="runs per tool and size, peer workload")
    ap.add_argument("--repeat-estate", type=int, default=3, help="runs of compile and check per estate size")
    ap.add_argument("--repeat-stages", type=int, default=3, help="children timing the stages per estate size")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after `sync` once a big folder is deleted, before the next timed run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", type=Path, default=BENCH / "RESULTS.md", help="where --write writes")
    ap.add_argument("--keep", type=Path, help="keep workloads and outputs in this folder")
    args = ap.parse_args()
    if args.quick:
        args.peer_sizes, args.estate_sizes, args.repeat, args.repeat_estate = "1000", "1000", 1, 1
        args.repeat_stages = 1
    args.peer_sizes = [int(x) for x in args.peer_sizes.split(",")]
    args.estate_sizes = [int(x) for x in args.estate_sizes.split(",")]
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time (Debian package `time`) for peak RSS")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="netpolc-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, work)
        only = set(args.only.split(","))
        if "peer" in only:
            bench.peer()
        if "estate" in only:
            bench.estate()
        bench.emit("Targets of issue 7", table(["target", "measured", "verdict"], bench.targets))
        header = "# Benchmark results\n\n" + bench.machine() + "\n"
        print("\n" + header)
        if args.write:
            args.results.write_text(header + "\n" + "\n".join(bench.sections))
            print(f"wrote {args.results}")


if __name__ == "__main__":
    main()

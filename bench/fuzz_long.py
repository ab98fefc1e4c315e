#!/usr/bin/env python3
"""The long fuzzing run: the strategies of tests/test_fuzz_programs.py and tests/test_fuzz_estate.py
for minutes instead of seconds, with random seeds, collecting findings instead of stopping at one.

    PYTHONPATH=. python bench/fuzz_long.py --minutes 20 [--findings /tmp/netpolc-fuzz-findings] [--only cli,...]

Strategies (time shares): `grammar` programs derived from the grammar (parse, fmt idempotent,
compile), `estates` coherent generated estates (compile), `small` small mutations of policies/
(compile_folder), `large` long lines, deep nesting and huge peer lists (compile_folder), `cli` any
mutation through `netpolc compile` in process. Every input is held to the invariants of
tests/fuzz_checks.py, including < 5 s and < 300 MiB of peak RSS growth per input.

Prints, per strategy: inputs tried, how many compiled, the slowest input and the largest RSS growth,
and the findings (distinct failures, the first input of each saved under --findings). Exit 1 when
anything was found. A finding worth keeping goes to tests/fuzz_corpus/ with a line in its CORPUS.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fuzz_checks import check_cli, check_folder, check_program  # noqa: E402
from fuzz_mutations import LARGE, OPERATORS, SMALL, mutated_estates  # noqa: E402
from fuzz_programs import estates, random_program  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

SHARES = {"grammar": 0.2, "estates": 0.2, "small": 0.3, "large": 0.1, "cli": 0.2}


@dataclass
class Tally:
    tried: int = 0
    compiled: int = 0
    slowest: float = 0.0
    most_rss_mib: float = 0.0
    findings: Counter = field(default_factory=Counter)


def _save(findings: Path, strategy: str, n: int, case) -> Path:
    """The input as files: a program, an estate's files, or a damaged file with its place and mutations."""
    where = findings / f"{strategy}-{n}"
    where.mkdir(parents=True, exist_ok=True)
    if isinstance(case, str):
        (where / "input.npl").write_text(case, encoding="utf-8")
    elif isinstance(case, tuple):
        files, rel, ops = case
        (where / "input.npl").write_bytes(files[rel])
        (where / "where.json").write_text(json.dumps({"replaces": rel, "mutations": ops}) + "\n")
    else:
        for rel, text in case.items():
            (where / rel).write_text(text, encoding="utf-8")
    return where


def run(strategy: str, seconds: float, tally: Tally, findings: Path, tmp: Path, seed: int) -> None:
    deadline = time.monotonic() + seconds

    def one(case) -> None:
        if time.monotonic() > deadline:
            return
        tally.tried += 1
        try:
            if strategy == "grammar":
                measure = check_program(tmp / "g", case)
            elif strategy == "estates":
                measure = check_folder(tmp / "e", case)
            elif strategy == "cli":
                measure = check_cli(tmp / "c", case[0])
            else:
                measure = check_folder(tmp / "m", case[0])
        except Exception as err:  # a finding: keep the first input of each kind, go on
            line = (str(err).splitlines() or [""])[0]
            key = f"{type(err).__name__}: {line[:160]}"
            if "for one input" in line:
                key = "bound: " + re.sub(r"[\d.]+ (s|MiB)", r"> limit \1", line)[:80]
            if key not in tally.findings:
                where = _save(findings, strategy, len(tally.findings), case)
                (where / "finding.txt").write_text(key + "\n\n" + traceback.format_exc())
                print(f"  finding [{strategy}] {key} -> {where}", flush=True)
            tally.findings[key] += 1
            return
        tally.slowest = max(tally.slowest, measure.seconds)
        tally.most_rss_mib = max(tally.most_rss_mib, measure.rss_growth_mib)
        tally.compiled += measure.compiled

    if strategy == "grammar":  # no hypothesis: a seeded walk is uniform and cheap
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            one(random_program(rng.randrange(2**32)))
        return
    source = {"estates": estates(), "small": mutated_estates(tuple(SMALL)),
              "large": mutated_estates(tuple(LARGE)), "cli": mutated_estates(tuple(OPERATORS))}[strategy]
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1

        @settings(max_examples=300, deadline=None, database=None, derandomize=False, print_blob=False,
                  suppress_health_check=list(HealthCheck))
        @given(source)
        def round_(case):
            one(case)

        round_()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="total time (default 20)")
    p.add_argument("--only", default=",".join(SHARES), help="strategies, comma-separated")
    p.add_argument("--findings", default="/tmp/netpolc-fuzz-findings", help="where inputs that broke a rule go")
    p.add_argument("--seed", type=int, default=None, help="seed of the grammar walk (default: random)")
    args = p.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    total = sum(SHARES[s] for s in chosen)
    findings = Path(args.findings)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"fuzz_long: {args.minutes} min over {', '.join(chosen)}; grammar seed {seed}; findings in {findings}/")
    tallies: dict[str, Tally] = {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="netpolc-fuzz-long-") as tmp:
        for strategy in chosen:
            tallies[strategy] = tally = Tally()
            began = time.monotonic()
            run(strategy, args.minutes * 60 * SHARES[strategy] / total, tally, findings, Path(tmp), seed)
            print(f"{strategy:8} {tally.tried:7d} inputs in {time.monotonic() - began:6.0f} s"
                  + f", {tally.compiled} compiled"
                  + f"; slowest {tally.slowest:.2f} s; most RSS growth {tally.most_rss_mib:.0f} MiB;"
                  f" {len(tally.findings)} finding(s)", flush=True)
            for key, count in tally.findings.most_common():
                print(f"           {count:5d} x {key}")
    tried = sum(t.tried for t in tallies.values())
    found = sum(len(t.findings) for t in tallies.values())
    print(f"total    {tried:7d} inputs in {time.monotonic() - start:6.0f} s; {found} finding(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time `compiler.parser.parse_text` on policy files, once each, in this fresh process.

    python bench/parse_speed.py /tmp/parser-wl/npl/bench.npl
    python bench/parse_speed.py --no-gc $(find policies -name '*.npl')
    PYTHONPATH=/path/to/other/checkout python bench/parse_speed.py FILE...   # another version

A large input: `bench/aerleon_workload.py --render` (a 10,000-app estate is 2 MB).
Grammar loading is timed apart ("setup"); `--no-gc` disables the cycle
collector first, as `compiler.project.compile_folder` does. CPU time is the figure to
compare on a shared machine; wall time is printed too.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: it can name another checkout

from compiler.diagnostics import Diagnostics  # noqa: E402
from compiler.parser import parse_text  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--no-gc", action="store_true", help="disable the cycle collector first")
    args = ap.parse_args()
    texts = [(str(p), p.read_text(encoding="utf-8")) for p in args.files]
    if args.no_gc:
        gc.disable()
    cpu = time.process_time()
    parse_text("setup.npl", "", Diagnostics())  # loads the grammar and builds the tables
    setup_cpu = time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    for path, text in texts:
        diags = Diagnostics()
        if parse_text(path, text, diags) is None:
            print(f"{path}: syntax error", file=sys.stderr)
            return 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(len(t) for _, t in texts)
    print(f"{len(texts)} file(s), {size} characters: parse_text {cpu:.3f} s cpu ({wall:.3f} s wall); "
          f"setup {setup_cpu:.3f} s cpu{' (collector off)' if args.no_gc else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

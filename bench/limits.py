#!/usr/bin/env python3
"""Time netpolc on the inputs of `tests/test_limits.py`, at sizes too large for the test suite.

    python bench/limits.py [--addresses 1000000] [--chain 10000]

Each input is written to a temporary policy folder and compiled by `python -m compiler compile`
in a fresh child process; the line printed per input is its source size, exit code, the first
diagnostic code, wall time, CPU time and peak RSS. What is measured is that every input ends,
with a result or a clear error, in time that grows linearly (see docs/security.md, "Limits").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAB = """\
site s {
  row r {
    switch asw1
    subnet 10.0.0.0/24
    rack k { host h1 10.0.0.10 roles web }
  }
}
role web { allow tcp 80 from network n0 }
"""


def _v4(i: int) -> str:
    return f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def inputs(addresses: int, chain: int) -> dict[str, str]:
    return {
        f"network chain of {chain}": "".join(f"network n{i} = network n{i + 1}\n" for i in range(chain))
        + f"network n{chain} = 10.1.0.0/16\n",
        f"network cycle of {chain}": "".join(f"network n{i} = network n{(i + 1) % chain}\n" for i in range(chain)),
        f"network of {addresses} IPv4 addresses": "network n0 = "
        + ", ".join(_v4(2 * i) for i in range(addresses)) + "\n",
        f"internet except {addresses} addresses": "network n0 = internet except "
        + ", ".join(_v4(2 * i) for i in range(addresses)) + "\n",
        f"network of {addresses} IPv6 /64s": "network n0 = "
        + ", ".join(f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64" for i in range(0, 2 * addresses, 2)) + "\n",
    }


def run(name: str, text: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "policy"
        folder.mkdir()
        (folder / "a.npl").write_text(LAB + text, encoding="utf-8")
        start = time.monotonic()
        with open(f"{tmp}/log", "w+") as log:
            child = subprocess.Popen([sys.executable, "-m", "compiler", "compile", str(folder), "--out", f"{tmp}/out"],
                                     stdout=log, stderr=log, cwd=Path(__file__).resolve().parent.parent)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
            child.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - start
            log.seek(0)
            code = re.search(r"(?:error|warning)\[(\w+)\]", log.read())
        size = len(text.encode()) / 2 ** 20
        return (f"{name:40} {size:7.1f} MiB  exit {child.returncode}  {code.group(1) if code else '-':5} "
                f"wall {wall:6.1f} s  cpu {usage.ru_utime + usage.ru_stime:6.1f} s  "
                f"peak RSS {usage.ru_maxrss / 1024:7.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addresses", type=int, default=1_000_000)
    p.add_argument("--chain", type=int, default=10_000)
    args = p.parse_args()
    for name, text in inputs(args.addresses, args.chain).items():
        print(run(name, text), flush=True)


if __name__ == "__main__":
    main()

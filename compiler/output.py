"""Writing `out/` atomically, and comparing it with what a compile would write.

The new tree is built in a temporary folder beside `out/` and swapped in with
one `renameat2(RENAME_EXCHANGE)` where the kernel has it (two renames where it
does not), so readers never see a half-written tree and a failed compile never
touches `out/`. Files no longer produced disappear with the old tree.
"""

from __future__ import annotations

import ctypes
import difflib
import os
import shutil
import tempfile
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def read_tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when the kernel or libc cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def write_tree(out: Path, files: dict[str, bytes]) -> bool:
    """Make `out` hold exactly `files`. Returns False when it already did (nothing written)."""
    if read_tree(out) == files:
        return False
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        tmp.chmod(0o755)
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp)  # tmp now holds the old tree
            return True
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def diff_tree(out: Path, files: dict[str, bytes], label: str = "out") -> list[str]:
    """Unified diff from what is in `out` to what the compile produced; empty when equal."""
    current = read_tree(out)
    lines: list[str] = []
    for rel in sorted(set(current) | set(files)):
        old, new = current.get(rel), files.get(rel)
        if old == new:
            continue
        a = old.decode("utf-8", "replace").splitlines(keepends=True) if old is not None else []
        b = new.decode("utf-8", "replace").splitlines(keepends=True) if new is not None else []
        lines.extend(difflib.unified_diff(a, b, f"a/{label}/{rel}" if old is not None else "/dev/null",
                                          f"b/{label}/{rel}" if new is not None else "/dev/null"))
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    return lines

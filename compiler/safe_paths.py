"""Which relative paths may be written under `out/`: checked once for every backend.

A path from a backend is data that ends up as a file name. It must stay inside `out/` (no
absolute path, no `..`, `.` or empty component, no NUL or backslash), and no two paths may
name one file on a case-insensitive file system (macOS, Windows, some rsync and Puppet
targets), nor may a file stand where another path needs a folder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

MAX_NAME_BYTES = 255  # the longest file name Linux, macOS and Windows file systems all accept


def _fold(path: str) -> str:
    """The key under which a case-insensitive, normalising file system stores a name."""
    return unicodedata.normalize("NFC", path).casefold()


def escape_problem(path: str) -> str | None:
    """Why `path` could leave out/ or is not a plain relative file name; None when it is safe."""
    if not path:
        return "is empty"
    if "\0" in path:
        return "contains a NUL byte"
    if "\\" in path:
        return "contains a backslash (a folder separator on Windows)"
    if path.startswith("/"):
        return "is absolute"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"has a `{part}` component" if part else "has an empty component"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return f"has a component longer than {MAX_NAME_BYTES} bytes"
    return None


def clash_problems(paths: Iterable[str]) -> list[tuple[str, str, str]]:
    """(path, other path, why) for each pair of paths that would be one entry on disk."""
    seen: dict[str, str] = {}
    problems = []
    for path in sorted(paths):
        key = _fold(path)
        if key in seen:
            problems.append((seen[key], path, "are one file on a case-insensitive file system"))
        else:
            seen[key] = path
    folders: dict[str, str] = {}
    for path in sorted(seen.values()):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folders.setdefault(_fold("/".join(parts[:i])), path)
    for key, path in sorted(seen.items()):
        if key in folders:
            problems.append((path, folders[key], "need one name as both a file and a folder"))
    return problems

"""Writing `out/` all or nothing, and comparing it with what a compile would write.

The new tree is built in a temporary folder beside `out/` (`.out.new-*`) and swapped in with
one `renameat2(RENAME_EXCHANGE)`, so readers see the old tree or the new one and never a mix.
Until that swap nothing under `out/` changes: a fault at any step (a full disk, a read-only
file system, a kill) leaves `out/` as it was. Files whose bytes did not change are hard-linked
from the old tree, so they keep their inode and mtime and Puppet or rsync see only real
changes. A temporary folder left by a compile that was killed is removed by the next one.

Symbolic links and special files inside `out/` are never followed or read: they are not part
of the tree, `check` reports them, and the swap removes them with the old tree. `--out`
itself may be a symbolic link to the folder to manage.

Every step that changes the disk first calls `fault_hook(step, path)` when it is set: tests
use it to fail, or kill the process, at each step in turn.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import errno
import fcntl
import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .safe_paths import clash_problems, escape_problem

FILE_MODE = 0o644
DIR_MODE = 0o755
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
_NO_LINK = {errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}

FaultHook = Callable[[str, Path], None]
fault_hook: FaultHook | None = None
"""Called as `fault_hook(step, path)` before each step that changes the disk (`mkdir`, `write`,
`link`, `sync`, `rename`, `remove`); raising OSError there is the step failing. None: no cost."""


class OutputError(Exception):
    """Writing `out/` failed; out/ is as it was. The message names the path and the OS error."""

    code = "E008"


class OutputReplaceError(OutputError):
    """`out` holds something that must survive: the swap would take it away with the old tree."""

    code = "E013"


@dataclass
class Tree:
    """What a folder holds, read without following a symbolic link."""

    files: dict[str, bytes] = field(default_factory=dict)
    reusable: dict[str, tuple[int, int]] = field(default_factory=dict)  # rel -> (dev, inode)
    others: dict[str, str] = field(default_factory=dict)  # rel -> what it is (symlink, FIFO...)


def _step(step: str, path: Path) -> None:
    if fault_hook is not None:
        fault_hook(step, path)


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words (`project.py` says it of policy files too)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _read_regular(name: str, dir_fd: int) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a regular file, opened without following a link or blocking on a FIFO."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP:  # became a symbolic link since it was listed
            return None
        raise
    with open(fd, "rb", closefd=True) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return f.read(), st


def _scan(dir_fd: int, prefix: str, tree: Tree) -> None:
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = prefix + entry.name
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                _scan(sub, rel + "/", tree)
            finally:
                os.close(sub)
            continue
        read = _read_regular(entry.name, dir_fd) if stat.S_ISREG(mode) else None
        if read is None:
            tree.others[rel] = file_kind(mode)
            continue
        data, st = read
        tree.files[rel] = data
        if st.st_nlink == 1 and stat.S_IMODE(st.st_mode) == FILE_MODE:
            tree.reusable[rel] = (st.st_dev, st.st_ino)


def scan_tree(root: Path) -> Tree:
    """The regular files under root by relative path, and what else is there; empty when no folder."""
    tree = Tree()
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return tree
    try:
        _scan(fd, "", tree)
    finally:
        os.close(fd)
    return tree


def read_tree(root: Path) -> dict[str, bytes]:
    """The regular files under root; symbolic links and special files are not read."""
    return scan_tree(root).files


def read_one(root: Path, rel: str) -> bytes | None:
    """One regular file under root, None when missing or reached only through a symbolic link."""
    if escape_problem(rel):
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    fds = [fd]
    try:
        *folders, name = rel.split("/")
        for folder in folders:
            fds.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1]))
        read = _read_regular(name, fds[-1])
        return read[0] if read else None
    except OSError:
        return None
    finally:
        for f in fds:
            os.close(f)


# ------------------------------------------------------------------------------ writing
def _fail(what: str, path: Path | str, err: OSError, label: str) -> OutputError:
    why = err.strerror or str(err)
    code = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else "?"
    return OutputError(f"cannot {what} `{path}`: {why} ({code}); `{label}` was left as it was")


@functools.cache
def _libc(name: str) -> Callable[..., int] | None:
    """A libc function by name (renameat2, syncfs), None where this libc has none."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None


def _exchange(a: Path, b: Path) -> int:
    """Atomically swap two paths: 0, or the errno (ENOSYS when neither libc nor kernel can)."""
    fn = _libc("renameat2")
    if fn is None:
        return errno.ENOSYS
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return 0 if rc == 0 else ctypes.get_errno()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One compile at a time writes beside `out/`: while we hold this, any temporary folder is stale."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove(path: Path) -> None:
    """Remove a file, link or tree without following a symbolic link; errors are left for next time."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)


def debris(out: Path) -> list[Path]:
    """Temporary folders of earlier compiles into `out`, sorted."""
    try:
        names = os.listdir(out.parent)
    except OSError:
        return []
    return sorted(out.parent / n for n in names
                  if n.startswith(f".{out.name}.new-") or n.startswith(f".{out.name}.old-"))


def _clean_debris(out: Path) -> None:
    """Remove what a killed compile left; without renameat2 it may have left out/ moved aside."""
    stale = debris(out)
    olds = [p for p in stale if p.name.startswith(f".{out.name}.old-") and p.is_dir() and not p.is_symlink()]
    if not os.path.lexists(out) and len(olds) == 1:
        with contextlib.suppress(OSError):  # killed between the two renames: put the old tree back
            _step("rename", olds[0])
            os.rename(olds[0], out)
            stale.remove(olds[0])
    for path in stale:
        with contextlib.suppress(OSError):
            _step("remove", path)
            _remove(path)


def _write_file(path: Path, data: bytes) -> None:
    _step("write", path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    with open(fd, "wb", closefd=True) as f:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        f.write(data)


def _link_or_write(old: Path, new: Path, data: bytes, ident: tuple[int, int]) -> None:
    """Keep an unchanged file's inode and mtime; write it when the link is not the file we read."""
    _step("link", new)
    try:
        os.link(old, new, follow_symlinks=False)
    except OSError as err:
        if err.errno not in _NO_LINK:
            raise
        _write_file(new, data)
        return
    st = os.stat(new, follow_symlinks=False)
    if (st.st_dev, st.st_ino) != ident or not stat.S_ISREG(st.st_mode):  # replaced since it was read
        os.unlink(new)
        _write_file(new, data)


def _build(out: Path, tmp: Path, files: dict[str, bytes], old: Tree, label: str) -> None:
    folders = sorted({"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)})
    def where(rel: str) -> str:
        return f"{tmp / rel}` (the new `{label}/{rel}`"
    for rel in folders:
        try:
            _step("mkdir", tmp / rel)
            os.mkdir(tmp / rel, DIR_MODE)
            os.chmod(tmp / rel, DIR_MODE)
        except OSError as err:
            raise _fail("create the folder", where(rel), err, label) from None
    for rel, data in files.items():
        try:
            if old.files.get(rel) == data and rel in old.reusable:
                _link_or_write(out / rel, tmp / rel, data, old.reusable[rel])
            else:
                _write_file(tmp / rel, data)
        except OSError as err:
            raise _fail("write", where(rel), err, label) from None


def _syncfs(fd: int) -> int:
    """Flush the file system holding fd: 0, or the errno (ENOSYS where libc has no syncfs)."""
    fn = _libc("syncfs")
    if fn is None:
        return errno.ENOSYS
    return 0 if fn(fd) == 0 else ctypes.get_errno()


def _sync(tmp: Path, files: dict[str, bytes], label: str) -> None:
    """The new tree on disk before the swap makes it visible: one syncfs (a tenth of the time of
    an fsync per file on ext4), or an fsync per file where there is no syncfs."""
    try:
        _step("sync", tmp)
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            code = _syncfs(fd)
        finally:
            os.close(fd)
        if code == 0:
            return
        if code not in _NO_EXCHANGE:
            raise OSError(code, os.strerror(code))
        for rel in files:
            fd = os.open(tmp / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as err:
        raise _fail("write to disk", tmp, err, label) from None


def _swap(tmp: Path, out: Path, label: str) -> Path | None:
    """Put tmp in out's place; returns where the old tree now is (None when there was none)."""
    try:
        _step("rename", out)
    except OSError as err:
        raise _fail("replace", label, err, label) from None
    if not os.path.lexists(out):
        try:
            os.rename(tmp, out)
        except OSError as err:
            raise _fail("create", label, err, label) from None
        return None
    code = _exchange(tmp, out)
    if code == 0:
        return tmp
    if code not in _NO_EXCHANGE:
        raise _fail("replace", label, OSError(code, os.strerror(code)), label)
    # no renameat2 here: two renames, with a moment in which out/ is missing (restored if killed)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    try:
        os.rename(out, old)
    except OSError as err:
        raise _fail("replace", label, err, label) from None
    try:
        _step("rename", tmp)
        os.rename(tmp, out)
    except BaseException as err:
        os.rename(old, out)
        if isinstance(err, OSError):
            raise _fail("replace", label, err, label) from None
        raise
    return old


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _refuse_to_replace(out: Path, keep: dict[str, Path], label: str) -> None:
    """`out` ends up holding exactly the output: refuse when it is, or holds, a folder to keep."""
    real_out = os.path.realpath(out)
    for what, path in keep.items():
        real = os.path.realpath(path)
        if real == real_out or real.startswith(real_out.rstrip(os.sep) + os.sep):
            raise OutputReplaceError(
                f"refusing to write `{label}`: it {'is' if real == real_out else 'holds'} {what} `{path}`, and "
                f"a compile makes `{label}` hold exactly its output; give the output a folder of its own, "
                "such as `out`")


def write_tree(out: Path, files: dict[str, bytes], label: str | None = None,
               keep: dict[str, Path] | None = None) -> bool:
    """Make `out` hold exactly `files`, all or nothing. False when it already did (nothing written).

    Raises OutputError, naming the path and the OS error, when a step fails; `out` is then
    as it was. `label` is how messages name `out` (default: as given); `keep` names folders
    (what -> path) that `out` must not be or hold, such as the policy folder.
    """
    label = label or str(out)
    _refuse_to_replace(out, keep or {}, label)
    for rel in files:
        problem = escape_problem(rel)
        if problem:
            raise OutputError(f"refusing to write {rel!r} under `{label}`: the path {problem}")
    for a, b, why in clash_problems(files):
        raise OutputError(f"refusing to write `{a}` and `{b}` under `{label}`: they {why}")
    if os.path.islink(out):
        out = Path(os.path.realpath(out))  # --out names the folder to manage; links inside it are not followed
    out = Path(os.path.abspath(out))
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"`{label}` exists and is not a folder; `{label}` was left as it was")
    try:
        if not out.parent.is_dir():
            _step("mkdir", out.parent)
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _fail("create the folder", out.parent, err, label) from None
    try:
        with _locked(out.parent):
            return _write_locked(out, files, label)
    except OSError as err:  # taking the lock, or reading the old tree
        raise _fail("read", err.filename or out, err, label) from None


def _write_locked(out: Path, files: dict[str, bytes], label: str) -> bool:
    _clean_debris(out)
    old = scan_tree(out)
    if old.files == files and not old.others:
        return False
    try:
        _step("mkdir", out.parent / f".{out.name}.new-")
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    except OSError as err:
        raise _fail("create a temporary folder beside", label, err, label) from None
    try:
        try:
            os.chmod(tmp, DIR_MODE)
        except OSError as err:
            raise _fail("create the folder", tmp, err, label) from None
        _build(out, tmp, files, old, label)
        _sync(tmp, files, label)
        previous = _swap(tmp, out, label)
    except BaseException:
        _remove(tmp)
        raise
    _sync_folder(out.parent)
    if previous is not None:  # committed: a failure from here on leaves debris for the next compile
        with contextlib.suppress(OSError):
            _step("remove", previous)
            _remove(previous)
    return True


def diff_tree(out: Path, files: dict[str, bytes], label: str = "out") -> list[str]:
    """Unified diff from what is in `out` to what the compile produced; empty when equal.

    Symbolic links and special files in `out` are not followed: each is reported as a line
    saying a compile would remove it.
    """
    if os.path.islink(out):
        out = Path(os.path.realpath(out))
    tree = scan_tree(out)
    current = tree.files
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
    for rel, kind in sorted(tree.others.items()):
        lines.append(f"{label}/{rel} is {kind}, not followed; a compile removes it\n")
    return lines

"""Faults while writing out/: every step failed in turn, kills, a full disk, read-only folders.

The guarantee under test: until the swap, nothing under out/ changes (bytes, inodes, modes,
mtimes; no temporary folder left beside it); after it, out/ is the whole new tree. Expected
trees are written in the tests, not taken from the compiler.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compiler import cli, output
from compiler.output import OutputError, read_tree, write_tree
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                             reason="needs root (mount); CI runs it as root")

TODAY = dt.date(2026, 11, 25)
ESTATE_EDIT = ("apps/eventing.npl",  # a one-line change of the reference estate: one more port for one app
               lambda t: t.replace("allow tcp 4492 from network", "allow tcp 4492, 4493 from network", 1))
OLD = {"a.txt": b"old a\n", "keep/b.txt": b"same b\n", "keep/c.txt": b"same c\n", "gone.txt": b"removed\n"}
NEW = {"a.txt": b"new a\n", "keep/b.txt": b"same b\n", "keep/c.txt": b"same c\n", "added/deep/d.txt": b"d\n"}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Everything a reader of `folder` could notice: per entry its kind, bytes or link, inode, mode, mtime."""
    if not os.path.lexists(folder):
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                content: object = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = None
            key = os.path.relpath(path, folder)
            out[key] = (stat.S_IFMT(st.st_mode), content, st.st_ino, stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                        st.st_uid, st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0)
    return out


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def steps_of(out: Path, files: dict[str, bytes]) -> list[tuple[str, Path]]:
    """The steps a write of `files` over what `out` holds now takes (done on a copy)."""
    copy = out.parent.parent / (out.parent.name + "-count") / out.name
    if copy.parent.exists():
        shutil.rmtree(copy.parent)
    copy.parent.mkdir()
    if out.exists():
        shutil.copytree(out, copy, symlinks=True)
    seen: list[tuple[str, Path]] = []
    output.fault_hook = lambda step, path: seen.append((step, path))
    try:
        write_tree(copy, files)
    finally:
        output.fault_hook = None
        shutil.rmtree(copy.parent)
    return seen


def fail_at(k: int, exc: BaseException, where: list[Path] | None = None) -> Callable[[str, Path], None]:
    """A hook failing the k-th step with exc; the path of that step is appended to `where`."""
    count = [0]

    def hook(step: str, path: Path) -> None:
        count[0] += 1
        if count[0] == k:
            if where is not None:
                where.append(path)
            raise exc

    return hook


@pytest.fixture(autouse=True)
def no_hook() -> Iterator[None]:
    yield
    output.fault_hook = None


# --------------------------------------------------------------- every step, in process
def _prepare(kind: str, base: Path) -> Path:
    """A fresh parent folder holding out/ as the scenario starts."""
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    out = base / "out"
    if kind != "first":
        write_tree(out, OLD)
        (out / "keep" / "c.txt").chmod(0o600)  # a mode the compiler would not choose: must survive a fault
        os.utime(out / "a.txt", ns=(1_000_000_000, 1_000_000_000))
    if kind == "links":
        outside = base.parent / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "secret").write_bytes(b"secret\n")
        (out / "link.txt").symlink_to(outside / "secret")
        (out / "linkdir").symlink_to(outside)
    return out


SCENARIOS = ("first", "update", "links", "no-renameat2")
FAULTS = {"EIO": OSError(errno.EIO, os.strerror(errno.EIO)),
          "ENOSPC": OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
          "interrupt": KeyboardInterrupt()}


def _fault_every_step(tmp_path: Path, kind: str, new: dict[str, bytes],
                      monkeypatch: pytest.MonkeyPatch) -> int:
    if kind == "no-renameat2":
        monkeypatch.setattr(output, "_exchange", lambda a, b: errno.ENOSYS)
    base = tmp_path / "w"
    out = _prepare(kind, base)
    steps = steps_of(out, new)
    assert steps, "a write that changes out/ takes steps"
    injected = 0
    for k, (step, _) in enumerate(steps, 1):
        for name, exc in FAULTS.items():
            out = _prepare(kind, base)
            before, around = snapshot(out), listing(base)
            where: list[Path] = []
            output.fault_hook = fail_at(k, exc, where)
            injected += 1
            if step == "remove":  # after the swap: the write has happened; the old tree is left for later
                if isinstance(exc, OSError):
                    assert write_tree(out, new) is True
                else:
                    with pytest.raises(KeyboardInterrupt):
                        write_tree(out, new)
                output.fault_hook = None
                assert read_tree(out) == new
                write_tree(out, new)  # the next compile cleans up
                assert listing(base) == ["out"], (k, step, name)
                continue
            if isinstance(exc, OSError):
                with pytest.raises(OutputError) as info:
                    write_tree(out, new)
                message = str(info.value)
                assert exc.strerror in message and errno.errorcode[exc.errno] in message, message
                parts = where[0].relative_to(base).parts
                if parts[0].startswith(".out.new-") and len(parts) > 1:  # a file or folder of the new tree
                    rel = "/".join(parts[1:])
                    assert f"`{where[0]}` (the new `{out}/{rel}`" in message, message
                assert "was left as it was" in message
            else:
                with pytest.raises(KeyboardInterrupt):
                    write_tree(out, new)
            output.fault_hook = None
            assert snapshot(out) == before, (kind, k, step, name)
            assert listing(base) == around, (kind, k, step, name)
    return injected


@pytest.mark.parametrize("kind", SCENARIOS)
def test_a_fault_at_any_step_leaves_out_exactly_as_it_was(tmp_path: Path, kind: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    injected = _fault_every_step(tmp_path, kind, NEW, monkeypatch)
    assert injected >= 3 * 8


@pytest.fixture(scope="module")
def estates(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The reference estate compiled, and again after a one-line change."""
    before = compile_folder(REPO / "policies", TODAY).files
    changed = tmp_path_factory.mktemp("policies") / "policies"
    shutil.copytree(REPO / "policies", changed)
    (changed / ESTATE_EDIT[0]).write_text(ESTATE_EDIT[1]((changed / ESTATE_EDIT[0]).read_text()))
    after = compile_folder(changed, TODAY).files
    assert before and after and before != after
    return before, after


def test_a_fault_at_any_step_of_the_reference_estate(tmp_path: Path, estates: tuple[dict, dict]) -> None:
    before, after = estates
    base = tmp_path / "w"
    base.mkdir()
    out = base / "out"
    write_tree(out, before)
    steps = steps_of(out, after)
    linked = sum(step == "link" for step, _ in steps)
    assert linked > len(after) // 2, "most files are unchanged by a one-line change and are linked"
    reference = snapshot(out)
    for k in range(1, len(steps) + 1):
        step = steps[k - 1][0]
        output.fault_hook = fail_at(k, OSError(errno.ENOSPC, "No space left on device"))
        if step == "remove":
            assert write_tree(out, after) is True
            output.fault_hook = None
            assert read_tree(out) == after
            write_tree(out, before)
            reference = snapshot(out)
            continue
        with pytest.raises(OutputError, match="No space left on device"):
            write_tree(out, after)
        output.fault_hook = None
        assert snapshot(out) == reference, (k, step)
        assert listing(base) == ["out"]


def test_the_command_line_reports_a_failed_write_without_a_traceback(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    before = snapshot(out)
    writes = [0]

    def full_disk(step: str, path: Path) -> None:
        if step == "write":
            writes[0] += 1
            if writes[0] == 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

    output.fault_hook = full_disk
    assert cli.main(["compile", str(REPO / "examples" / "minimal-site"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E008]: cannot write `" in err and "No space left on device (ENOSPC)" in err
    assert f"(the new `{out}/" in err and "Traceback" not in err
    assert snapshot(out) == before and listing(tmp_path) == ["out"]


# ---------------------------------------------------------------- only what changed is rewritten
def test_unchanged_files_keep_their_inode_and_mtime(tmp_path: Path, estates: tuple[dict, dict]) -> None:
    before, after = estates
    out = tmp_path / "out"
    write_tree(out, before)
    old = {rel: os.stat(out / rel) for rel in before}
    time.sleep(0.01)
    assert write_tree(out, after) is True
    for rel, data in after.items():
        st = os.stat(out / rel)
        if before.get(rel) == data:
            assert (st.st_ino, st.st_mtime_ns, st.st_nlink) == (old[rel].st_ino, old[rel].st_mtime_ns, 1), rel
        else:
            assert st.st_ino != old.get(rel, st).st_ino or rel not in old, rel
        assert stat.S_IMODE(st.st_mode) == 0o644 and (out / rel).read_bytes() == data
    changed = sorted(rel for rel in after if before.get(rel) != after[rel])
    assert changed and len(changed) < len(after) // 2  # a one-line change changes a few files
    assert read_tree(out) == after


def test_a_file_with_other_names_or_another_mode_is_written_afresh(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"a": b"1\n", "b": b"2\n", "c": b"3\n"})
    elsewhere = tmp_path / "elsewhere"
    os.link(out / "a", elsewhere)  # a second name: a link would tie out/ to a file outside it
    (out / "b").chmod(0o600)
    write_tree(out, {"a": b"1\n", "b": b"2\n", "c": b"changed\n"})
    assert os.stat(out / "a").st_ino != os.stat(elsewhere).st_ino and os.stat(elsewhere).st_nlink == 1
    assert stat.S_IMODE(os.stat(out / "b").st_mode) == 0o644
    assert read_tree(out) == {"a": b"1\n", "b": b"2\n", "c": b"changed\n"}


# ------------------------------------------------------------------- killed at any point
CHILD = """
import errno, os, signal, sys, runpy
from compiler import output
k = int(sys.argv[1])
if sys.argv[2] == "no-renameat2":
    output._exchange = lambda a, b: errno.ENOSYS
count = [0]
def hook(step, path):
    count[0] += 1
    if count[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
output.fault_hook = hook
sys.argv = ["netpolc", "compile", sys.argv[3], "--out", sys.argv[4], "--today", "2026-11-25"]
runpy.run_module("compiler", run_name="__main__", alter_sys=True)
"""


def _child(k: int, mode: str, policies: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(k), mode, str(policies), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _two_versions(tmp_path: Path, source: Path, edit: Callable[[str], str], name: str) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(source, old)
    shutil.copytree(source, new)
    path = new / name
    changed = edit(path.read_text())
    assert changed != path.read_text()
    path.write_text(changed)
    return old, new


def _kill_everywhere(tmp_path: Path, old_src: Path, new_src: Path, picks: int | None) -> tuple[int, set]:
    """Kill a compile at each step (or at `picks` steps spread over them, and the last three)."""
    old_files = compile_folder(old_src, TODAY).files
    new_files = compile_folder(new_src, TODAY).files
    assert old_files != new_files
    base = tmp_path / "w"
    base.mkdir()
    out = base / "out"
    write_tree(out, old_files)
    outcomes = set()
    kills = 0
    for mode in ("renameat2", "no-renameat2"):
        with pytest.MonkeyPatch.context() as mp:
            if mode == "no-renameat2":
                mp.setattr(output, "_exchange", lambda a, b: errno.ENOSYS)
            total = len(steps_of(out, new_files))
        ks = range(1, total + 2) if picks is None else sorted(
            {1 + i * (total - 1) // (picks - 1) for i in range(picks)} | {total - 2, total - 1, total, total + 1})
        for k in ks:
            r = _child(k, mode, new_src, out)
            _, err = r.communicate(timeout=120)
            assert "Traceback" not in err
            if k <= total:
                assert r.returncode == -signal.SIGKILL, (k, err)
                kills += 1
            else:
                assert r.returncode == 0, err
            now = read_tree(out)
            state = "old" if now == old_files else "new" if now == new_files else None
            if state is None:
                # without renameat2 a kill between the two renames leaves out/ moved aside
                assert mode == "no-renameat2" and not out.exists(), (mode, k)
                state = "moved aside"
            outcomes.add((mode, state))
            write_tree(out, old_files)  # the next compile: restores, cleans up, writes
            assert read_tree(out) == old_files and listing(base) == ["out"], (mode, k)
    return kills, outcomes


def test_killed_at_every_step_out_is_the_old_or_the_new_tree(tmp_path: Path) -> None:
    old, new = _two_versions(tmp_path, REPO / "examples" / "minimal-site", lambda t: t.replace(
        "allow tcp 22", "allow tcp 22, 2222", 1), "roles.npl")
    kills, outcomes = _kill_everywhere(tmp_path, old, new, None)
    # mkdir tmp, mkdir ferm, three files written or linked, sync, swap, remove the old (+ a rename without renameat2)
    assert kills == 8 + 9
    assert {("renameat2", "old"), ("renameat2", "new"), ("no-renameat2", "old"), ("no-renameat2", "new")} <= outcomes
    assert ("renameat2", "moved aside") not in outcomes


def test_killed_while_writing_the_reference_estate(tmp_path: Path) -> None:
    old, new = _two_versions(tmp_path, REPO / "policies", ESTATE_EDIT[1], ESTATE_EDIT[0])
    kills, outcomes = _kill_everywhere(tmp_path, old, new, 6)
    assert kills == 2 * 8 and ("renameat2", "old") in outcomes  # 6 spread + the last 3 (one shared), each way


def test_killed_at_random_moments(tmp_path: Path) -> None:
    old, new = _two_versions(tmp_path, REPO / "policies", ESTATE_EDIT[1], ESTATE_EDIT[0])
    old_files, new_files = compile_folder(old, TODAY).files, compile_folder(new, TODAY).files
    out = tmp_path / "out"
    rng = random.Random(8)
    seen = set()
    for _ in range(8):
        write_tree(out, old_files)
        r = _child(0, "renameat2", new, out)
        time.sleep(rng.uniform(0.2, 1.0))
        r.send_signal(signal.SIGKILL)
        r.communicate(timeout=120)
        now = read_tree(out)
        assert now in (old_files, new_files)
        seen.add(now == new_files)
    write_tree(out, new_files)
    assert output.debris(out) == []


# ------------------------------------------------------------------- stale temporary folders
def test_a_stale_temporary_folder_is_removed_by_the_next_compile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    (tmp_path / ".out.new-dead1234" / "half").mkdir(parents=True)
    (tmp_path / ".out.new-dead1234" / "half" / "x").write_bytes(b"partial")
    (tmp_path / ".out.old-dead5678").mkdir()
    (tmp_path / ".out.new-link").symlink_to(tmp_path / "precious")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "keep").write_bytes(b"keep")
    (tmp_path / ".other.new-x").mkdir()  # another output folder's: not ours
    assert write_tree(out, OLD) is False  # nothing to write, debris removed all the same
    assert listing(tmp_path) == [".other.new-x", "out", "precious"]
    assert (tmp_path / "precious" / "keep").read_bytes() == b"keep"


def test_out_moved_aside_by_a_killed_compile_is_put_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    out.rename(tmp_path / ".out.old-abcd")
    (tmp_path / ".out.new-efgh").mkdir()
    assert write_tree(out, OLD) is False
    assert read_tree(out) == OLD and listing(tmp_path) == ["out"]


# -------------------------------------------------------- full disk, read-only file systems
@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def _compile(policies: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "compiler", "compile", str(policies), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)


@AS_ROOT
def test_a_full_disk_leaves_out_unchanged(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("disk", "64k")
    out = disk / "out"
    write_tree(out, OLD)
    before = snapshot(out)
    r = _compile(REPO / "policies", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error[E008]: cannot write" in r.stderr and "No space left on device (ENOSPC)" in r.stderr
    assert snapshot(out) == before and listing(disk) == ["out"]


@AS_ROOT
def test_a_one_line_change_fits_where_a_second_copy_would_not(tmpfs: Callable[..., Path],
                                                              estates: tuple[dict, dict]) -> None:
    before, after = estates
    used = sum(-(-len(d) // 4096) * 4096 for d in before.values())
    disk = tmpfs("disk", str(used * 3 // 2))
    out = disk / "out"
    write_tree(out, before)
    with pytest.raises(OutputError, match="ENOSPC"):  # the whole tree once more does not fit...
        write_tree(out, {k: v + b"\n" for k, v in before.items()})
    assert read_tree(out) == before
    assert write_tree(out, after) is True  # ...but the unchanged files are linked, not copied
    assert read_tree(out) == after


@AS_ROOT
def test_a_read_only_parent_is_a_clear_error(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("ro", "1m")
    out = disk / "out"
    write_tree(out, OLD)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    before = snapshot(out)
    r = _compile(REPO / "examples" / "minimal-site", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"error[E008]: cannot create a temporary folder beside `{out}`: Read-only file system (EROFS)" in r.stderr
    assert snapshot(out) == before


@AS_ROOT
def test_a_read_only_out_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    before = snapshot(out)
    subprocess.run(["mount", "--bind", str(out), str(out)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], check=True)
        r = _compile(REPO / "examples" / "minimal-site", out)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert f"error[E008]: cannot replace `{out}`: Device or resource busy (EBUSY)" in r.stderr
        assert snapshot(out) == before and listing(tmp_path) == ["out"]
    finally:
        subprocess.run(["umount", str(out)], check=False)


def test_without_syncfs_each_file_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = []
    real = os.fsync
    monkeypatch.setattr(output, "_syncfs", lambda fd: errno.ENOSYS)
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    write_tree(tmp_path / "out", NEW)
    assert sorted(Path(p).name for p in synced if ".out.new-" in p) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    monkeypatch.setattr(output, "_syncfs", lambda fd: errno.EIO)  # a write-back error: the write fails
    with pytest.raises(OutputError, match="cannot write to disk .*Input/output error"):
        write_tree(tmp_path / "out", OLD)
    assert read_tree(tmp_path / "out") == NEW and listing(tmp_path) == ["out"]

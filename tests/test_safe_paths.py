"""Safe names and paths: nothing leaves out/, nothing is read from outside the policy folder.

Output paths are checked centrally (render_all); names that become paths are checked at the
name; symbolic links in out/ are never followed; policy files are read from inside their folder.
Watched folders (inotify) prove that nothing outside is opened, read or written.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE, compile_text, errors
from hypothesis import given
from hypothesis import strategies as st

from compiler import backends, cli
from compiler.backends import calico
from compiler.diagnostics import Diagnostics
from compiler.output import diff_tree, read_one, read_tree, write_tree
from compiler.project import compile_folder, load_sources
from compiler.resolve.values import DNS_LABEL, RESERVED_NAMESPACES
from compiler.safe_paths import clash_problems, escape_problem

REPO = Path(__file__).resolve().parent.parent
MINIMAL = REPO / "examples" / "minimal-site"


# ------------------------------------------------------------------ a watched folder (inotify)
class Watch:
    """Every event inotify reports for some paths: an open, a read, a write, a new or removed name."""

    IN_ALL_EVENTS = 0xFFF

    def __init__(self, *paths: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {}
        for path in paths:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_ALL_EVENTS)
            assert wd >= 0, path
            self.names[wd] = path

    def events(self) -> list[tuple[Path, int, str]]:
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i < len(buf):
                wd, mask, _, size = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + size].rstrip(b"\0").decode()
                out.append((self.names[wd], mask, name))
                i += 16 + size

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[tuple[Path, Watch]]:
    """A folder beside the output and policy folders, with files, watched for any access."""
    where = tmp_path / "outside"
    (where / "sub").mkdir(parents=True)
    (where / "secret").write_bytes(b"secret\n")
    (where / "sub" / "x.npl").write_bytes(b"site x {\n}\n")
    watch = Watch(where, where / "sub", where / "secret", where / "sub" / "x.npl")
    assert (where / "sub" / "x.npl").read_bytes() and os.listdir(where)  # the watch sees a read and a listing...
    seen = {(path.name, mask & 0xFFF) for path, mask, _ in watch.events()}
    assert ("x.npl", 0x1) in seen and ("outside", 0x20) in seen  # IN_ACCESS, IN_OPEN
    yield where, watch  # ...and starts empty
    watch.close()


def _listing(folder: Path) -> dict[str, bytes | str]:
    return {p.relative_to(folder).as_posix(): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file()
                                               else "dir") for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------ output paths, checked once
@pytest.mark.parametrize(("path", "why"), [
    ("", "empty"), ("/etc/ferm/ferm.conf", "absolute"), ("../x", "`..`"), ("ferm/../../x", "`..`"),
    ("./x", "`.`"), ("a//b", "empty component"), ("a/", "empty component"), ("a\0b", "NUL"),
    ("a\\..\\b", "backslash"), ("f/" + "x" * 256, "longer than 255"),
])
def test_a_path_that_could_leave_out_is_refused(path: str, why: str) -> None:
    problem = escape_problem(path)
    assert problem is not None and why in problem


@pytest.mark.parametrize("path", ["estate.json", "calico/wikikube-eqiad/globalnetworksets.yaml", "ferm/a-1.conf",
                                  "x" * 255, ".hidden", "a..b"])
def test_a_plain_relative_path_is_accepted(path: str) -> None:
    assert escape_problem(path) is None


def test_paths_that_are_one_file_on_a_case_insensitive_file_system_clash() -> None:
    assert clash_problems(["ferm/a.conf", "ferm/b.conf", "bgp/x/nodes.yaml"]) == []
    assert [p[:2] for p in clash_problems(["ferm/Web.conf", "ferm/web.conf"])] == [("ferm/Web.conf", "ferm/web.conf")]
    assert [p[:2] for p in clash_problems(["FERM/a.conf", "ferm/A.conf"])] == [("FERM/a.conf", "ferm/A.conf")]
    composed, decomposed = "caf\u00e9.conf", "cafe\u0301.conf"  # one name on macOS (NFD) and in Unicode
    assert len(clash_problems([composed, decomposed])) == 1
    assert len(clash_problems(["stra\u00dfe", "STRASSE"])) == 1  # ß folds to ss
    file_and_folder = clash_problems(["bgp", "bgp/eqiad/nodes.yaml"])
    assert file_and_folder and "as both a file and a folder" in file_and_folder[0][2]
    assert clash_problems(["Bgp", "bgp/eqiad/nodes.yaml"])  # ...also when only the case differs


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(MINIMAL, tmp_path / "policies")
    return tmp_path


@pytest.mark.parametrize(("paths", "code", "said"), [
    ({"../escaped.conf": b"x"}, "E009", "could be written outside out/"),
    ({"/etc/passwd": b"x"}, "E009", "is absolute"),
    ({"ferm/\0.conf": b"x"}, "E009", "NUL"),
    ({"ferm/Web1001.conf": b"x"}, "E010", "case-insensitive"),
    ({"estate.json/x": b"x"}, "E010", "both a file and a folder"),
    ({"estate.json": b"x"}, "E010", "two backends write `estate.json`"),
])
def test_render_all_refuses_an_unsafe_path_with_a_code(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str],
                                                       paths: dict, code: str, said: str) -> None:
    monkeypatch.setattr(backends, "BACKENDS", (*backends.BACKENDS, lambda model: paths))
    result = compile_folder(project / "policies")
    assert [(d.code, d.severity) for d in result.diagnostics if d.severity == "error"] == [(code, "error")]
    assert said in next(d.message for d in result.diagnostics if d.code == code)
    monkeypatch.chdir(project)
    assert cli.main(["compile"]) == 1
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and "Traceback" not in err
    assert not (project / "out").exists() and not (project.parent / "escaped.conf").exists()


def test_write_tree_refuses_an_unsafe_path_too(tmp_path: Path) -> None:
    from compiler.output import OutputError
    for files in ({"../x": b""}, {"a": b"", "A": b""}):
        with pytest.raises(OutputError, match="refusing to write"):
            write_tree(tmp_path / "out", files)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ names that become paths
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=70))
def test_no_name_the_language_accepts_makes_an_unsafe_path(name: str) -> None:
    if not DNS_LABEL.match(name):
        return
    for path in (f"ferm/{name}.conf", f"bgp/{name}/nodes.yaml", f"calico/{name}/{name}.yaml"):
        assert escape_problem(path) is None
    assert name == name.casefold() and name not in (".", "..") and "/" not in name


@given(st.from_regex(r"[A-Za-z0-9./\\-]{1,8}", fullmatch=True))
def test_a_name_with_capitals_dots_or_slashes_is_not_a_name(name: str) -> None:
    if re.search(r"[A-Z./\\]", name):
        assert not DNS_LABEL.match(name)


def _at(text: str, needle: str) -> tuple[int, int]:
    """Line and column (1-based) of the first `needle` in text, found independently of the compiler."""
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)


@pytest.mark.parametrize(("name", "code"), [
    ("Kafka1001", "E101"), ("KAFKA1001", "E101"), ("kafka.1001", "E101"), ("k" * 64, "E101"),
    ("..", "E002"), ("x\0y", "E002"), ("\u00c4b", "E002"),
])
def test_a_host_name_that_would_be_an_unsafe_file_name_is_rejected_at_the_name(name: str, code: str) -> None:
    text = BASE.replace("host kafka1001 ", f"host {name} ")
    _, diags = compile_text(text)
    line, col = _at(text, f"host {name} ")
    col += len("host ")
    if code == "E002":
        col += name.index(next(c for c in name if not c.isalnum() or ord(c) > 127))
    assert (code, line, col) in [(d.code, d.span.line, d.span.column) for d in errors(diags)]


def test_a_name_with_a_slash_is_a_syntax_error_at_the_slash() -> None:
    text = BASE.replace("host kafka1001 ", "host a/b ")
    _, diags = compile_text(text)
    line, col = _at(text, "a/b ")
    assert ("E001", line, col + 1) in [(d.code, d.span.line, d.span.column) for d in errors(diags)]


@pytest.mark.parametrize("namespace", RESERVED_NAMESPACES)
def test_a_namespace_that_would_overwrite_a_cluster_file_is_rejected_at_the_name(namespace: str) -> None:
    text = BASE.replace("  cluster wikikube-eqiad\n  listen tcp 8080",
                        f"  cluster wikikube-eqiad\n  namespace {namespace}\n  listen tcp 8080")
    _, diags = compile_text(text)
    line, col = _at(text, f"namespace {namespace}")
    assert [(d.code, d.span.line, d.span.column) for d in errors(diags)] == [("E110", line, col + len("namespace "))]


def test_an_app_named_like_a_cluster_file_needs_a_namespace() -> None:
    text = BASE.replace("app api", "app globalnetworksets")
    _, diags = compile_text(text)
    line, col = _at(text, "app globalnetworksets {")
    found = [(d.code, d.span.line, d.span.column) for d in errors(diags)]
    assert found == [("E110", line, col + len("app "))]
    assert "add `namespace NAME`" in errors(diags)[0].hint
    fixed = text.replace("app globalnetworksets {\n  clusters", "app globalnetworksets {\n  namespace api\n  clusters")
    assert errors(compile_text(fixed)[1]) == []


def test_the_reserved_namespaces_are_the_calico_backends_own_file_names() -> None:
    assert set(RESERVED_NAMESPACES) == set(calico.RESERVED_FILES)


# ------------------------------------------------------------------ symbolic links in out/
def test_a_link_in_out_is_replaced_never_written_through(tmp_path: Path, outside: tuple[Path, Watch]) -> None:
    where, watch = outside
    before = _listing(where)
    files = compile_folder(MINIMAL).files
    watch.events()  # the listing above: only what follows counts
    out = tmp_path / "out"
    out.mkdir()
    (out / "estate.json").symlink_to(where / "secret")  # a file the compile writes
    (out / "ferm").symlink_to(where / "sub")  # a folder the compile writes into
    (out / "extra").symlink_to(where)
    assert write_tree(out, files) is True
    assert watch.events() == []  # first: listing the folder below is an event too
    assert _listing(where) == before
    assert not any(p.is_symlink() for p in out.rglob("*")) and read_tree(out) == files
    assert sorted(os.listdir(tmp_path)) == ["out", "outside"]


def test_check_and_read_do_not_read_through_links(tmp_path: Path, outside: tuple[Path, Watch]) -> None:
    where, watch = outside
    files = {"estate.json": b"secret\n", "ferm/a.conf": b"x\n"}
    out = tmp_path / "out"
    out.mkdir()
    (out / "estate.json").symlink_to(where / "secret")  # same bytes as the compile's: still not the file
    (out / "ferm").symlink_to(where / "sub")
    assert read_tree(out) == {}
    assert read_one(out, "estate.json") is None and read_one(out, "ferm/x.npl") is None
    diff = diff_tree(out, files)
    assert "+++ b/out/estate.json\n" in diff and "+++ b/out/ferm/a.conf\n" in diff
    assert "out/estate.json is a symbolic link, not followed; a compile removes it\n" in diff
    assert watch.events() == []


def test_check_reports_a_link_where_the_compile_writes_nothing(tmp_path: Path, outside: tuple[Path, Watch]) -> None:
    where, _ = outside
    out = tmp_path / "out"
    write_tree(out, compile_folder(MINIMAL).files)
    r = subprocess.run([sys.executable, "-m", "compiler", "check", str(MINIMAL), "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert r.returncode == 0, r.stderr
    (out / "stray.conf").symlink_to(where / "secret")
    r = subprocess.run([sys.executable, "-m", "compiler", "check", str(MINIMAL), "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert r.returncode == 1 and "out/stray.conf is a symbolic link, not followed" in r.stdout


def test_a_fifo_in_out_does_not_hang_check_or_compile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "estate.json")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "compiler", "check", str(MINIMAL), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "out/estate.json is a FIFO, not followed" in r.stdout
    r = subprocess.run([sys.executable, "-m", "compiler", "compile", str(MINIMAL), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and (out / "estate.json").is_file()


def test_out_given_as_a_link_manages_the_folder_it_names(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (tmp_path / "out").symlink_to(real)
    files = compile_folder(MINIMAL).files
    write_tree(tmp_path / "out", files)
    assert (tmp_path / "out").is_symlink() and read_tree(real) == files
    assert sorted(os.listdir(tmp_path)) == ["out", "real"]


def test_nothing_is_written_outside_out(tmp_path: Path, outside: tuple[Path, Watch]) -> None:
    """Compile twice (new, then changed) beside a watched neighbour folder and links to it."""
    where, watch = outside
    neighbour = tmp_path / "neighbour"
    neighbour.mkdir()
    (neighbour / "keep").write_bytes(b"keep\n")
    near = Watch(neighbour, neighbour / "keep")
    policies = tmp_path / "policies"
    shutil.copytree(MINIMAL, policies)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ferm").symlink_to(where)
    (out / "estate.json").symlink_to(neighbour / "keep")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "compiler", "compile", str(policies), "--out", str(out)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        (policies / "roles.npl").write_text((policies / "roles.npl").read_text().replace("tcp 22", "tcp 22, 2222", 1))
    assert watch.events() == [] and near.events() == []
    near.close()
    assert sorted(os.listdir(tmp_path)) == ["neighbour", "out", "outside", "policies"]
    assert (neighbour / "keep").read_bytes() == b"keep\n" and not (where / "web1001.conf").exists()


# ------------------------------------------------------------------ policy files are data
def _load(root: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    diags = Diagnostics()
    sources = load_sources(root, diags)
    return sources, [(d.code, d.message) for d in diags.sorted()]


def test_a_policy_link_out_of_the_folder_is_an_error_naming_it(tmp_path: Path, outside: tuple[Path, Watch]) -> None:
    where, watch = outside
    root = tmp_path / "policies"
    root.mkdir()
    (root / "a.npl").write_text("site a {\n}\n")
    (root / "shared.npl").symlink_to(where / "sub" / "x.npl")
    (root / "vendor").symlink_to(where / "sub")
    (root / "zero.npl").symlink_to("/dev/zero")
    sources, diags = _load(root)
    assert list(sources) == ["a.npl"]
    assert [code for code, _ in diags] == ["E011"] * 3
    messages = "\n".join(m for _, m in diags)
    for name, target in (("shared.npl", where / "sub" / "x.npl"), ("vendor", where / "sub"), ("zero.npl", "/dev/zero")):
        assert f"{name} is a symbolic link to `{target}`, outside the policy folder" in messages
    assert watch.events() == []  # not opened, not listed
    r = subprocess.run([sys.executable, "-m", "compiler", "compile", str(root), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert r.returncode == 1 and "error[E011]: shared.npl is a symbolic link" in r.stderr
    assert not (tmp_path / "out").exists()


def test_links_inside_the_policy_folder_are_followed_once(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    shutil.copytree(MINIMAL, root)
    (root / "README.md").unlink()
    (root / "parts").mkdir()
    (root / "site.npl").rename(root / "parts" / "site.txt")
    (root / "site.npl").symlink_to(Path("parts") / "site.txt")  # a linked file inside: read under its name
    (root / "again").symlink_to(root / "parts")  # a linked folder inside: its files are read where they are
    (root / "parts" / "loop").symlink_to(root)  # a cycle: no loop
    sources, diags = _load(root)
    assert diags == [] and sorted(sources) == ["roles.npl", "site.npl"]
    assert compile_folder(root).files == compile_folder(MINIMAL).files


def test_a_fifo_named_like_a_policy_file_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    shutil.copytree(MINIMAL, root)
    os.mkfifo(root / "pipe.npl")
    os.mkfifo(tmp_path / "elsewhere")
    (root / "linked.npl").symlink_to(root / "inner.fifo")
    os.mkfifo(root / "inner.fifo")
    r = subprocess.run([sys.executable, "-m", "compiler", "compile", str(root), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error[E012]: pipe.npl is not a regular file (a FIFO)" in r.stderr
    assert "error[E012]: linked.npl is not a regular file (a FIFO)" in r.stderr


def test_an_unreadable_policy_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "policies"
    (root / "locked").mkdir(parents=True)
    (root / "a.npl").write_text("site a {\n}\n")
    real = os.scandir

    def scandir(path: str):  # root reads any folder: refuse this one as a permission would
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _, diags = _load(root)
    assert ("E005", "cannot read the folder locked/: Permission denied") in diags


def test_explain_does_not_read_its_lines_through_a_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = REPO / "policies"
    out = tmp_path / "out"
    write_tree(out, compile_folder(policies).files)
    args = ["explain", "bast1002", "kubernetes1001", "22/tcp", "--policy", str(policies), "--out", str(out)]
    assert cli.main(args) == 0 and "note:" not in capsys.readouterr().out
    conf = out / "ferm" / "kubernetes1001.conf"
    copy = tmp_path / "copy.conf"
    copy.write_bytes(conf.read_bytes())
    conf.unlink()
    conf.symlink_to(copy)  # the same bytes, reached through a link
    assert cli.main(args) == 0
    assert f"note: {out}/ferm/kubernetes1001.conf differ(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("cwd", "out", "said"), [
    ("work", ".", "it holds the policy folder `policies`"), ("work", "..", "it holds the policy folder `policies`"),
    ("work", "policies", "it is the policy folder `policies`"), ("work", "pol-link", "it is the policy folder"),
    ("elsewhere", ".", "it is the current folder"), ("elsewhere/deeper", "..", "it holds the current folder"),
])
def test_out_must_not_be_or_hold_the_policy_or_current_folder(tmp_path: Path, cwd: str, out: str, said: str) -> None:
    work = tmp_path / "work"
    shutil.copytree(MINIMAL, work / "policies")
    (work / "pol-link").symlink_to("policies")
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    (tmp_path / "elsewhere" / "precious").write_bytes(b"keep\n")
    policies = "policies" if cwd == "work" else str(work / "policies")
    before = _listing(tmp_path)
    r = subprocess.run([sys.executable, "-m", "compiler", "compile", policies, "--out", out], cwd=tmp_path / cwd,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"error[E013]: refusing to write `{out}`: {said}" in r.stderr
    assert _listing(tmp_path) == before  # the policy folder and the rest are still there


def test_out_inside_the_policy_folder_is_allowed(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(MINIMAL, policies)
    assert write_tree(policies / "out", compile_folder(MINIMAL).files,
                      keep={"the policy folder": policies}) is True
    assert (policies / "roles.npl").is_file()

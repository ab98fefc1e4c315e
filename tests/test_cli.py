"""The command line as CI and people run it: exit codes, check, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import cli, output
from compiler.output import write_tree

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
site s1 {
  router cr1-s1 loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  row a {
    switch asw-a-s1
    subnet 10.1.0.0/24 2001:db8:1::/64
    gateway 10.1.0.1
    rack a1 {
      host web1 10.1.0.10 2001:db8:1::10 roles web
      host bast1 10.1.0.20 roles bastion
    }
  }
}
role web { allow tcp 443 from any }
role bastion { allow tcp 22 from any exposed "the way in" }
default role base { allow tcp 22 from role bastion description "SSH from bastions" }
"""

BAD = """\
site s1 {
  row a {
    subnet 10.1.0.0/24
    rack a1 { host web1 10.2.0.10 roles web }
  }
}
role web { allow tcp 443 from role wbe }
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "compiler", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "estate.npl").write_text(GOOD)
    return tmp_path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_compile_writes_estate_and_is_byte_identical_twice(project: Path) -> None:
    r = run("compile", "policies", "--out", "out", cwd=project)
    assert r.returncode == 0, r.stderr
    first = tree(project / "out")
    assert list(first) == ["estate.json", "ferm/bast1.conf", "ferm/web1.conf"]  # a host firewall per host
    estate = json.loads(first["estate.json"])
    assert estate["hosts"]["web1"]["addresses"] == {"ipv4": ["10.1.0.10"], "ipv6": ["2001:db8:1::10"]}
    assert estate["hosts"]["web1"]["source"] == "estate.npl:8"
    r2 = run("compile", "policies", "--out", "out", cwd=project)
    assert r2.returncode == 0 and "unchanged" in r2.stdout
    assert tree(project / "out") == first


def test_defaults_are_policies_and_out(project: Path) -> None:
    assert run("compile", cwd=project).returncode == 0
    assert (project / "out" / "estate.json").is_file()
    assert run("check", cwd=project).returncode == 0


def test_output_does_not_depend_on_how_the_folder_is_named(project: Path, tmp_path: Path) -> None:
    assert run("compile", "policies", "--out", "out", cwd=project).returncode == 0
    assert run("compile", str(project / "policies"), "--out", str(tmp_path / "abs"), cwd=REPO).returncode == 0
    assert tree(project / "out") == tree(tmp_path / "abs")


def test_check_passes_when_fresh_and_fails_with_a_diff_when_stale(project: Path) -> None:
    assert run("compile", cwd=project).returncode == 0
    ok = run("check", cwd=project)
    assert ok.returncode == 0 and "up to date" in ok.stdout
    estate = project / "out" / "estate.json"
    estate.write_text(estate.read_text().replace('"10.1.0.10"', '"10.1.0.11"'))
    stale = run("check", cwd=project)
    assert stale.returncode == 1
    assert "--- a/out/estate.json" in stale.stdout and "+++ b/out/estate.json" in stale.stdout
    assert '-          "10.1.0.11"\n+          "10.1.0.10"\n' in stale.stdout
    assert "stale" in stale.stderr


def test_check_reports_extra_and_missing_files(project: Path) -> None:
    assert run("compile", cwd=project).returncode == 0
    (project / "out" / "leftover.yaml").write_text("old: true\n")
    r = run("check", cwd=project)
    assert r.returncode == 1 and "a/out/leftover.yaml" in r.stdout and "+++ /dev/null" in r.stdout
    (project / "out" / "leftover.yaml").unlink()
    (project / "out" / "estate.json").unlink()
    r = run("check", cwd=project)
    assert r.returncode == 1 and "--- /dev/null" in r.stdout and "b/out/estate.json" in r.stdout


def test_compile_removes_files_no_longer_produced(project: Path) -> None:
    (project / "out" / "calico").mkdir(parents=True)
    (project / "out" / "calico" / "old.yaml").write_text("x")
    assert run("compile", cwd=project).returncode == 0
    assert list(tree(project / "out")) == ["estate.json", "ferm/bast1.conf", "ferm/web1.conf"]


def test_failed_compile_leaves_out_untouched(project: Path) -> None:
    assert run("compile", cwd=project).returncode == 0
    before = tree(project / "out")
    mtime = (project / "out" / "estate.json").stat().st_mtime_ns
    (project / "policies" / "estate.npl").write_text(BAD)
    r = run("compile", cwd=project)
    assert r.returncode == 1
    assert "policies/estate.npl:4:25: error[E204]" in r.stderr
    assert "policies/estate.npl:7:36: error[E103]: unknown role `wbe`" in r.stderr
    assert "Traceback" not in r.stderr
    assert tree(project / "out") == before
    assert (project / "out" / "estate.json").stat().st_mtime_ns == mtime


def test_nothing_is_written_outside_out(project: Path) -> None:
    policies_before = tree(project / "policies")
    assert run("compile", "policies", "--out", "build/out", cwd=project).returncode == 0
    assert sorted(p.name for p in (project / "build").iterdir()) == ["out"]
    assert sorted(p.name for p in project.iterdir()) == ["build", "policies"]
    assert tree(project / "policies") == policies_before


def test_json_diagnostics(project: Path) -> None:
    (project / "policies" / "estate.npl").write_text(BAD)
    r = run("compile", "--format", "json", cwd=project)
    assert r.returncode == 1
    diags = json.loads(r.stdout)["diagnostics"]
    unknown = [d for d in diags if d["code"] == "E103"]
    assert unknown == [{"code": "E103", "severity": "error", "message": "unknown role `wbe`",
                        "file": "policies/estate.npl", "line": 7, "column": 36, "end_line": 7, "end_column": 39,
                        "hint": "did you mean `web`?"}]


@pytest.mark.parametrize("args", [("frobnicate",), ("compile", "--format", "xml"), ("compile", "--today", "soon"),
                                  ()])
def test_usage_errors_exit_2(args: tuple[str, ...], project: Path) -> None:
    r = run(*args, cwd=project)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "usage:" in r.stderr


def test_missing_policy_folder_is_a_policy_error(tmp_path: Path) -> None:
    r = run("compile", "nowhere", cwd=tmp_path)
    assert r.returncode == 1 and "error[E006]" in r.stderr
    assert not (tmp_path / "out").exists()


def test_empty_policy_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    r = run("compile", cwd=tmp_path)
    assert r.returncode == 1 and "no `*.npl` files" in r.stderr


def test_internal_error_is_reported_without_traceback(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def boom(model: object) -> dict:
        raise RuntimeError("backend exploded")

    monkeypatch.setattr("compiler.project.render_all", boom)
    monkeypatch.chdir(project)
    assert cli.main(["compile"]) == 3
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: backend exploded" in err and "Traceback" not in err
    assert not (project / "out").exists()


def test_write_tree_failure_midway_leaves_out_and_no_debris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_tree(out, {"a.txt": b"old\n"})
    calls = []

    def flaky(step: str, path: Path) -> None:
        calls.append(step)
        if calls.count("write") == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "fault_hook", flaky)
    with pytest.raises(output.OutputError, match="No space left on device"):
        write_tree(out, {"a.txt": b"new\n", "b.txt": b"new\n"})
    monkeypatch.undo()
    assert tree(out) == {"a.txt": b"old\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_expiry_uses_today_option(project: Path) -> None:
    text = GOOD.replace('description "SSH from bastions"', 'description "SSH from bastions" expires 2026-01-31')
    (project / "policies" / "estate.npl").write_text(text)
    before = run("compile", "--today", "2026-01-31", cwd=project)
    assert before.returncode == 0 and "W001" not in before.stderr
    after = run("compile", "--today", "2026-02-01", cwd=project)
    assert after.returncode == 0 and "warning[W001]: this statement expired on 2026-01-31" in after.stderr

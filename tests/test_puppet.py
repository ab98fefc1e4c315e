"""examples/puppet's module, applied by the real `puppet apply`: it deploys the compiled ferm file.

The module is applied against a temporary root (ferm's folders and the service settings under
tmp_path, package and service turned off), and then in `--noop` mode with everything on, which
changes nothing on the machine. Like the ferm tests, it skips only when not root and CI is unset;
under CI a missing `puppet` fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = REPO / "examples" / "puppet" / "modules"
SBIN = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
TIMEOUT = 300


def _puppet() -> str:
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("needs root and Debian's puppet (CI runs it as root)")
    path = shutil.which("puppet", path=SBIN)
    assert path, "`puppet` is missing: `make system-deps` installs it (Debian package puppet)"
    return path


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`netpolc compile policies` into a fresh folder; its ferm/ subfolder."""
    out = tmp_path_factory.mktemp("out")
    done = subprocess.run([sys.executable, "-m", "compiler", "compile", str(REPO / "policies"), "--out", str(out)],
                          cwd=REPO, capture_output=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return out / "ferm"


def _apply(puppet: str, work: Path, manifest: str, *extra: str) -> subprocess.CompletedProcess:
    state = work / "puppet"
    argv = [puppet, "apply", "--modulepath", str(MODULES), "--detailed-exitcodes", "--color=false",
            *(f"--{d}={state / d}" for d in ("confdir", "vardir", "codedir", "logdir", "rundir")), *extra,
            "-e", manifest]
    return subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False, text=True)


def _manifest(source_dir: Path, host: str, root: Path, managed: bool) -> str:
    flag = "true" if managed else "false"
    return (f"class {{ 'netpolc_ferm': source_dir => '{source_dir}', host => '{host}', "
            f"conf_dir => '{root}/etc/ferm', defaults_file => '{root}/etc/default/ferm', "
            f"manage_package => {flag}, manage_service => {flag} }}")


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc" / "default").mkdir(parents=True)
    return root


@pytest.mark.parametrize("host", ["kubernetes1001", "kafka1001.eqiad.wmnet"])
def test_puppet_apply_deploys_the_compiled_file(compiled: Path, tmp_path: Path, host: str):
    puppet = _puppet()
    root = _root(tmp_path)
    (root / "etc" / "ferm" / "conf.d").mkdir(parents=True)
    (root / "etc" / "ferm" / "conf.d" / "leftover.conf").write_text("domain ip chain INPUT ACCEPT;\n")
    done = _apply(puppet, tmp_path, _manifest(compiled, host, root, managed=False))
    assert done.returncode == 2, done.stdout + done.stderr  # 2: changes made, no failure
    short = host.split(".")[0]  # kafka1001.eqiad.wmnet has no file of its own: the short name's
    deployed = root / "etc" / "ferm" / "conf.d" / "netpolc.conf"
    assert deployed.read_bytes() == (compiled / f"{short}.conf").read_bytes()
    assert deployed.read_bytes() == (REPO / "out" / "ferm" / f"{short}.conf").read_bytes()  # the committed one
    assert sorted(p.name for p in (root / "etc" / "ferm" / "conf.d").iterdir()) == ["netpolc.conf"]
    assert (root / "etc" / "ferm" / "ferm.conf").read_text().splitlines()[-1] == "@include 'conf.d/';"
    assert "FAST=yes" in (root / "etc" / "default" / "ferm").read_text().splitlines()
    # a second run changes nothing
    again = _apply(puppet, tmp_path, _manifest(compiled, host, root, managed=False))
    assert again.returncode == 0, again.stdout + again.stderr


def test_the_fqdn_file_wins_over_the_short_name(compiled: Path, tmp_path: Path):
    puppet = _puppet()
    root = _root(tmp_path)
    source = tmp_path / "src"
    shutil.copytree(compiled, source)
    (source / "kafka1001.eqiad.wmnet.conf").write_bytes((compiled / "kafka1002.conf").read_bytes())
    done = _apply(puppet, tmp_path, _manifest(source, "kafka1001.eqiad.wmnet", root, managed=False))
    assert done.returncode == 2, done.stdout + done.stderr
    deployed = root / "etc" / "ferm" / "conf.d" / "netpolc.conf"
    assert deployed.read_bytes() == (compiled / "kafka1002.conf").read_bytes()


def test_package_and_service_are_managed_in_noop(compiled: Path, tmp_path: Path):
    """With everything on, in --noop: the catalog has the package and the service, and the service
    is subscribed to the ruleset; nothing on the machine changes."""
    puppet = _puppet()
    root = _root(tmp_path)
    graphs = tmp_path / "graphs"
    done = _apply(puppet, tmp_path, _manifest(compiled, "kubernetes1001", root, managed=True),
                  "--noop", "--graph", f"--graphdir={graphs}")
    assert done.returncode in (0, 2), done.stdout + done.stderr
    assert not (root / "etc" / "ferm").exists()  # noop: nothing written
    relationships = (graphs / "relationships.dot").read_text()
    conf = f"File[{root}/etc/ferm/conf.d/netpolc.conf]"
    assert "Package[ferm]" in relationships and "Service[ferm]" in relationships
    edges = [line for line in relationships.splitlines() if "->" in line]
    assert any(conf in e and e.index(conf) < e.index("Service[ferm]") for e in edges if "Service[ferm]" in e), edges
    assert any(e.index("Package[ferm]") < e.index(f"File[{root}/etc/ferm]") for e in edges
               if "Package[ferm]" in e and f"File[{root}/etc/ferm]" in e), edges

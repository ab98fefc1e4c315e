"""Backends: each a pure function from the model to {relative path: bytes}.

`render_all` merges them and checks every path once, centrally: none may leave `out/`
(E009), and no two may be one file, or a file and a folder, on any file system (E010).
On a large estate with a second core, a forked child renders estate.json and half the ferm
files while this process renders the rest (`compiler/forked.py`): the same bytes, sooner.
"""

from __future__ import annotations

from .. import model as m
from ..forked import Forked, cores
from ..safe_paths import clash_problems, escape_problem
from . import bgp, bgp_report, calico, estate, ferm
from .bgp_report import BackendError

# the pictures last: `render_all` starts graphviz first and collects its drawings at the end
BACKENDS = (estate.render, bgp.render, calico.render, ferm.render, bgp_report.render)
FORK_MIN = 1_000
"""Hosts plus apps from which `render_all` forks: below it a fork costs more than it saves."""

__all__ = ["BACKENDS", "BackendError", "OutputPathError", "render_all"]


class OutputPathError(BackendError):
    """A backend produced a path that is unsafe to write: a bug or a name the resolver let through."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_paths(paths: list[str]) -> None:
    """Raise OutputPathError for the first path that escapes out/ or clashes with another."""
    for path in paths:
        problem = escape_problem(path)
        if problem:
            raise OutputPathError("E009", f"output path {path!r} {problem}: it could be written outside out/")
    for a, b, why in clash_problems(paths):
        raise OutputPathError("E010", f"output paths `{a}` and `{b}` {why}")


def _in_child(model: m.Model) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """What the forked child renders: estate.json and half the ferm files."""
    return estate.render(model), ferm.render(model, share=(0, 2))


def render_all(model: m.Model, parallel: bool | None = None) -> dict[str, bytes]:
    """Every backend's files. graphviz draws the pictures in child processes while the other
    backends run (seconds of layout on a large estate, on the other core). `parallel`: a forked
    child renders estate.json and half the ferm files meanwhile (None: when there are two cores
    and FORK_MIN hosts and apps)."""
    if parallel is None:
        parallel = cores() > 1 and len(model.hosts) + len(model.apps) >= FORK_MIN
    out: dict[str, bytes] = {}
    drawing = bgp_report.start(model)
    child = Forked(_in_child, model) if parallel else None
    try:
        if child is not None:
            mine = bgp.render(model), calico.render(model), ferm.render(model, share=(1, 2))
            estate_files, ferm_files = child.result()
            rendered = [estate_files, mine[0], mine[1], {**ferm_files, **mine[2]}]
        else:
            rendered = [backend(model) for backend in BACKENDS if backend is not bgp_report.render]
        rendered.append(drawing.finish())
        for files in rendered:  # BACKENDS' order
            for path, data in files.items():
                if path in out:
                    raise OutputPathError("E010", f"two backends write `{path}`")
                out[path] = data
    finally:
        if child is not None:
            child.cancel()
        drawing.cancel()
    check_paths(list(out))
    return dict(sorted(out.items()))

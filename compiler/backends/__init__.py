"""Backends: each a pure function from the model to {relative path: bytes}.

`render_all` merges them and checks every path once, centrally: none may leave `out/`
(E009), and no two may be one file, or a file and a folder, on any file system (E010).
"""

from __future__ import annotations

from .. import model as m
from ..safe_paths import clash_problems, escape_problem
from . import bgp, bgp_report, calico, estate, ferm
from .bgp_report import BackendError

# the pictures last: `render_all` starts graphviz first and collects its drawings at the end
BACKENDS = (estate.render, bgp.render, calico.render, ferm.render, bgp_report.render)

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


def render_all(model: m.Model) -> dict[str, bytes]:
    """Every backend's files. graphviz draws the pictures in child processes while the other
    backends run (seconds of layout on a large estate, on the other core)."""
    out: dict[str, bytes] = {}
    drawing = bgp_report.start(model)
    try:
        for backend in BACKENDS:
            files = drawing.finish() if backend is bgp_report.render else backend(model)
            for path, data in files.items():
                if path in out:
                    raise OutputPathError("E010", f"two backends write `{path}`")
                out[path] = data
    finally:
        drawing.cancel()
    check_paths(list(out))
    return dict(sorted(out.items()))

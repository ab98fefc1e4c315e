"""Backends: each a pure function from the model to {relative path: bytes}."""

from __future__ import annotations

from .. import model as m
from . import bgp, bgp_report, calico, estate, ferm
from .bgp_report import BackendError

BACKENDS = (estate.render, bgp.render, bgp_report.render, calico.render, ferm.render)

__all__ = ["BACKENDS", "BackendError", "render_all"]


def render_all(model: m.Model) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for backend in BACKENDS:
        for path, data in backend(model).items():
            if path in out:
                raise AssertionError(f"two backends write {path}")
            out[path] = data
    return dict(sorted(out.items()))

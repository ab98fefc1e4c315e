"""Analyses over the model: the BGP peering graph and its redundancy (later reachability and lint).

They read the model only. Each is computed once per model and shared by the
backends and commands that need it, through the accessors below.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .. import model as m
from . import peering as _peering
from . import redundancy as _redundancy

_CACHE: weakref.WeakKeyDictionary[m.Model, dict[str, Any]] = weakref.WeakKeyDictionary()


def _cached(name: str, compute: Callable[[m.Model], Any], model: m.Model) -> Any:
    entry = _CACHE.setdefault(model, {})
    if name not in entry:
        entry[name] = compute(model)
    return entry[name]


def peering_graph(model: m.Model) -> _peering.PeeringGraph:
    """Every BGP session of the estate (see `peering`)."""
    return _cached("peering", _peering.build, model)


def redundancy(model: m.Model) -> _redundancy.Report:
    """Findings and the failure sweep of the BGP design (see `redundancy`)."""
    return _cached("redundancy", lambda mm: _redundancy.analyse(mm, peering_graph(mm)), model)

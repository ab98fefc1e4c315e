"""Analyses over the model: the BGP peering graph and its redundancy, the host firewalls and
the lock-out guard over them (later reachability and lint).

They read the model only. Each is computed once per model and shared by the
backends and commands that need it, through the accessors below.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .. import model as m
from ..forked import Forked, cores
from . import connectivity as _connectivity
from . import hostfw as _hostfw
from . import lockout as _lockout
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


def host_firewalls(model: m.Model) -> dict[str, _hostfw.HostFirewall]:
    """What each host firewall admits, for the hosts that have one (see `hostfw`)."""
    return _cached("host_firewalls", lambda mm: _hostfw.build(mm, peering_graph(mm)), model)


def lockout(model: m.Model) -> list[_lockout.Finding]:
    """Hosts whose firewall would shut out the SSH gateways or a BGP peer (see `lockout`)."""
    return _cached("lockout", lambda mm: _lockout.check(mm, host_firewalls(mm), peering_graph(mm)), model)


def connectivity_facts(model: m.Model) -> _connectivity.Connectivity:
    """Who may reach whom, on which ports, per family: the flows over concrete ends (see `connectivity`)."""
    return _cached("connectivity", _connectivity.build, model)


FORK_MIN = 1_000
"""BGP speakers from which `prepare` runs the redundancy sweep in a forked child."""


def prepare(model: m.Model, parallel: bool | None = None) -> None:
    """Compute what a compile checks before it renders: the redundancy analysis in a forked
    child (`parallel`, None: with two cores and FORK_MIN speakers) while the host firewalls and
    the lock-out guard are computed here. The two need only the peering graph, and the report
    is plain data (names, spans, counts), so it comes back whole."""
    graph = peering_graph(model)
    if parallel is None:
        parallel = cores() > 1 and len(graph.speakers) >= FORK_MIN
    entry = _CACHE.setdefault(model, {})
    job = Forked(redundancy, model) if parallel and "redundancy" not in entry else None
    try:
        lockout(model)
        if job is not None:
            entry.setdefault("redundancy", job.result())
    finally:
        if job is not None:
            job.cancel()
    redundancy(model)

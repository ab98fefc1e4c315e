"""Name resolution and checks: syntax trees in, one immutable model out.

Phases, in order: declare every name (so files may come in any order),
build the topology, the clusters' address ranges, named networks and
services, the clusters, then roles and apps and the flows they state.
Every phase records diagnostics and goes on, so one run reports all errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from netaddr import IPSet

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics
from . import clusters as cl
from . import topology
from .endpoints import Endpoints
from .intent import Intent
from .ports import Services
from .symbols import Symbols

_TABLES = {s.Cluster: "cluster", s.Network: "network", s.Service: "service", s.Role: "role", s.App: "app"}


def resolve(files: list[s.File], diags: Diagnostics, today: dt.date | None = None) -> m.Model | None:
    """The model, or None when any error was recorded."""
    today = today or dt.date.today()
    symbols = Symbols()
    for f in files:
        for decl in f.declarations:
            if isinstance(decl, s.Site):
                topology.declare(decl, symbols, diags)
            else:
                table = _TABLES[type(decl)]
                kind = ("default " if getattr(decl, "default", False) else "") + table
                symbols.declare(table, kind, decl.name.value, decl.name, decl, diags)
    topo = topology.build(symbols, diags)
    pods = {k: cl.pod_ranges(e.node, topo, diags) for k, e in symbols.tables["cluster"].items()}  # type: ignore[arg-type]
    topology.check_overlaps(topo, diags)
    estate = IPSet(n for n, _, _ in topo.subnets) | IPSet(topo.addresses)
    endpoints = Endpoints(symbols, topo, pods, estate, diags)
    services = Services(symbols, diags)
    networks = endpoints.all_networks()
    named_services = services.all()
    clusters: dict[str, m.Cluster] = {}
    for k, e in symbols.tables["cluster"].items():
        c = cl.build(e.node, symbols, topo, endpoints, pods[k], diags)  # type: ignore[arg-type]
        if c is not None:
            clusters[k] = c
    cl.check_asns(clusters, symbols, diags)
    intent = Intent(symbols, topo, endpoints, services, today, diags)
    intent.build(clusters)
    if diags.has_errors:
        return None
    no_fw = {r.name for r in intent.roles.values() if not r.firewall}
    hosts = {k: dataclasses.replace(h, firewall=not (set(h.roles) & no_fw)) for k, h in topo.hosts.items()}
    return m.Model(
        sites=m.frozen_map(topo.sites), rows=m.frozen_map(topo.rows), racks=m.frozen_map(topo.racks),
        routers=m.frozen_map(topo.routers), switches=m.frozen_map(topo.switches), hosts=m.frozen_map(hosts),
        clusters=m.frozen_map(clusters), networks=m.frozen_map(networks), services=m.frozen_map(named_services),
        roles=m.frozen_map(intent.roles), apps=m.frozen_map(intent.apps),
        flows=tuple(sorted(intent.flows, key=lambda f: (f.rule.span, f.rule.owner))),
        files=tuple(sorted(f.path for f in files)),
    )

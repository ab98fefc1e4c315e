"""`estate.json`: the resolved inventory, for people, Puppet and other tools.

Sites, rows, racks, routers, switches, hosts with their addresses and roles,
clusters, and the named networks and services as resolved. Its shape is fixed
by `compiler/schemas/estate.schema.json`, which the tests validate against.
"""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import IPAddress, IPNetwork

from .. import model as m
from . import jsonout

SCHEMA_ID = "https://netpolc.dev/schemas/estate-v1.json"


def by_family(items: Iterable[IPAddress | IPNetwork]) -> dict[str, list[str]]:
    items = list(items)
    return {
        "ipv4": [str(i) for i in items if i.version == 4],
        "ipv6": [str(i) for i in items if i.version == 6],
    }


def _src(node: object) -> str:
    return node.span.location  # type: ignore[attr-defined]


def _opt(d: dict, key: str, value: object) -> dict:
    if value is not None:
        d[key] = value
    return d


def estate(model: m.Model) -> dict:
    return {
        "$schema": SCHEMA_ID,
        "sites": {k: _opt({"routers": list(v.routers), "spines": list(v.spines), "rows": list(v.rows),
                           "source": _src(v)},
                          "description", v.description) for k, v in model.sites.items()},
        "routers": {k: {"site": v.site, "asn": v.asn, "loopbacks": by_family(v.loopbacks), "source": _src(v)}
                    for k, v in model.routers.items()},
        "switches": {k: _opt(_opt(_opt({"kind": v.kind, "site": v.site, "uplinks": list(v.uplinks),
                                        "source": _src(v)}, "row", v.row), "rack", v.rack), "asn", v.asn)
                     for k, v in model.switches.items()},
        "rows": {k: _opt({"site": v.site, "name": v.name, "spines": list(v.spines), "subnets": by_family(v.subnets),
                          "gateways": by_family(v.gateways), "racks": list(v.racks), "source": _src(v)},
                         "switch", v.switch) | _opt({}, "description", v.description) for k, v in model.rows.items()},
        "racks": {k: _opt({"site": v.site, "row": v.row, "name": v.name, "layer": v.layer,
                           "subnets": by_family(v.subnets), "gateways": by_family(v.gateways),
                           "hosts": list(v.hosts), "source": _src(v)}, "switch", v.switch)
                  | _opt({}, "description", v.description) for k, v in model.racks.items()},
        "hosts": {k: _opt({"site": v.site, "row": v.row, "rack": v.rack, "addresses": by_family(v.addresses),
                           "roles": list(v.roles), "firewall": v.firewall, "source": _src(v)},
                          "description", v.description) for k, v in model.hosts.items()},
        "roles": {k: _opt({"default": v.default, "firewall": v.firewall, "hosts": list(v.hosts), "source": _src(v)},
                          "description", v.description) for k, v in model.roles.items()},
        "clusters": {k: _cluster(v) for k, v in model.clusters.items()},
        "networks": {k: _opt({"cidrs": by_family(v.cidrs), "source": _src(v)}, "description", v.description)
                     for k, v in model.networks.items()},
        "services": {k: _opt({"ports": [str(p) for p in v.ports], "source": _src(v)}, "description", v.description)
                     for k, v in model.services.items()},
        "apps": {k: _opt({"default": v.default, "clusters": list(v.clusters), "namespace": v.namespace,
                          "listen": [str(p) for p in v.listen], "source": _src(v)}, "description", v.description)
                 for k, v in model.apps.items()},
    }


def _cluster(c: m.Cluster) -> dict:
    peerings = []
    for p in c.peerings:
        item: dict = {"mode": p.mode, "nodes": list(p.nodes), "scoped": p.scoped, "source": p.span.location}
        if p.mode == "route-reflectors":
            item["reflectors"] = list(p.reflectors)
            item["cluster_id"] = str(p.cluster_id)
        peerings.append(item)
    return _opt({
        "site": c.site, "asn": c.asn, "pods": by_family(c.pod_cidrs), "services": by_family(c.service_cidrs),
        "nodes": list(c.nodes), "control_plane": list(c.control_plane), "etcd": list(c.etcd), "peerings": peerings,
        "survive": list(c.survive), "source": _src(c),
    }, "single_uplink_max_share", c.single_uplink_max_share) | _opt({}, "description", c.description)


def render(model: m.Model) -> dict[str, bytes]:
    text = jsonout.dumps(estate(model), ensure_ascii=False) + "\n"  # json.dumps(indent=2, sort_keys=True)
    return {"estate.json": text.encode("utf-8")}

"""Kubernetes clusters: site, ASN, pod and service ranges, members, peering, redundancy goals."""

from __future__ import annotations

from netaddr import IPNetwork

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics, Span
from .endpoints import Endpoints
from .symbols import Symbols
from .topology import Topology
from .values import check_asn, parse_address, parse_network

SINGLE = ("site", "asn", "pods", "services", "nodes", "control-plane", "etcd", "peer-with", "survive",
          "single-uplink")
REQUIRED = ("site", "asn", "pods", "nodes", "peer-with")
MEMBER_KINDS = ("host", "role", "rack", "row")


def settings_by_keyword(settings: tuple[s.Setting, ...], owner: str, diags: Diagnostics,
                        repeatable: tuple[str, ...] = ()) -> dict[str, s.Setting]:
    """One setting per keyword; a repeated keyword is an error pointing at the first."""
    out: dict[str, s.Setting] = {}
    for st in settings:
        if st.keyword in repeatable:
            out.setdefault(st.keyword, st)
            continue
        if st.keyword in out:
            diags.error("E601", f"`{st.keyword}` is given twice in {owner}", st.span,
                        notes=(("first given here", out[st.keyword].span),))
            continue
        out[st.keyword] = st
    return out


def pod_ranges(cluster: s.Cluster, topo: Topology, diags: Diagnostics) -> tuple[IPNetwork, ...]:
    """First pass: the pod CIDRs, which peers (`cluster x`) need before clusters are resolved."""
    out: list[IPNetwork] = []
    for st in cluster.settings:
        if st.keyword in ("pods", "services"):
            for addr in st.values:
                net = parse_network(addr, f"{st.keyword} range of cluster {cluster.name.value}", diags)
                if net is None:
                    continue
                topo.subnets.append((net, f"the {st.keyword} range of cluster {cluster.name.value}", addr.span))
                if st.keyword == "pods":
                    out.append(net)
    return m.family_sorted(out)


def build(entry_node: s.Cluster, symbols: Symbols, topo: Topology, endpoints: Endpoints,
          pods: tuple[IPNetwork, ...], diags: Diagnostics) -> m.Cluster | None:
    c = entry_node
    name = c.name.value
    owner = f"cluster {name}"
    st = settings_by_keyword(c.settings, owner, diags, repeatable=("peer-with",))
    missing = [k for k in REQUIRED if k not in st]
    for k in missing:
        diags.error("E602", f"{owner} does not say `{k}`", c.name.span, _REQUIRED_HINTS[k])
    site = None
    if "site" in st:
        e = symbols.lookup("site", st["site"].values[0].value, "site", st["site"].values[0].span, diags)
        site = e.key if e else None
    asn = check_asn(st["asn"].values[0], diags) if "asn" in st else None
    services: list[IPNetwork] = []
    for addr in st["services"].values if "services" in st else ():
        net = parse_network(addr, "a service range", Diagnostics())  # pod_ranges reported its errors
        if net is not None:
            services.append(net)
    for rng, label in ((pods, "pod"), (tuple(services), "service")):
        keyword = f"{label}s"  # the setting is `pods`/`services`
        for v in (4, 6):
            if sum(n.version == v for n in rng) > 1 and keyword in st:
                diags.error("E601", f"{owner} has more than one IPv{v} {label} range", st[keyword].span)

    def members(key: str) -> tuple[str, ...]:
        if key not in st:
            return ()
        return _hosts(st[key].values[0], f"as {key} of {owner}", site, owner, endpoints, topo, diags) or ()

    nodes, control, etcd = members("nodes"), members("control-plane"), members("etcd")
    peerings = _peerings(tuple(x for x in c.settings if x.keyword == "peer-with"), nodes, site, owner,
                         endpoints, topo, diags)
    survive = tuple(sorted({n.value for n in st["survive"].values})) if "survive" in st else ()
    share = None
    if "single-uplink" in st:
        pct = st["single-uplink"].values[0]
        if not 1 <= pct.value <= 100:
            diags.error("E602", f"share {pct.value}% is out of range (1 to 100)", pct.span)
        else:
            share = pct.value
    if missing or site is None or asn is None or peerings is None:
        return None
    return m.Cluster(name, site, asn, pods, m.family_sorted(services), nodes, control,
                     etcd, peerings, survive, share, c.description.value if c.description else None, c.span)


_REQUIRED_HINTS = {
    "site": "add `site NAME`: the site whose routers the nodes peer with",
    "asn": "add `asn N`: the private AS number of the cluster's nodes",
    "pods": "add `pods CIDR [CIDR]`: the pod ranges, one per address family",
    "nodes": "add `nodes role NAME` (or hosts, racks, rows)",
    "peer-with": "add `peer-with routers`, `peer-with tor` or `peer-with route-reflectors ...`",
}


def _hosts(peers: tuple[s.Peer, ...], where: str, site: str | None, owner: str, endpoints: Endpoints,
           topo: Topology, diags: Diagnostics) -> tuple[str, ...] | None:
    """Members given as hosts, roles, racks or rows: the hosts they contain, all at the cluster's site.
    None when a member could not be resolved (already reported)."""
    eps = endpoints.resolve(peers, where, MEMBER_KINDS)
    if eps is None:
        return None
    out: set[str] = set()
    for ep, peer in zip(eps, peers, strict=True):
        if ep.kind == "host":
            found = {ep.name}
        elif ep.kind == "role":
            found = set(endpoints.role_hosts.get(ep.name, ()))
        elif ep.kind == "rack":
            found = set(topo.racks[ep.name].hosts)
        else:
            found = {h.name for h in topo.hosts.values() if h.row == ep.name}
        if not found:
            diags.warning("W002", f"{ep.label} selects no host {where}", ep.span)
        for h in sorted(found):
            if site is not None and topo.hosts[h].site != site:
                diags.error("E604", f"host {h} is at site {topo.hosts[h].site}, not at {site} like {owner}",
                            peer.span, notes=((f"host {h} is declared here", topo.hosts[h].span),))
                continue
            out.add(h)
    return tuple(sorted(out))


def _peerings(settings: tuple[s.Setting, ...], nodes: tuple[str, ...], site: str | None, owner: str,
              endpoints: Endpoints, topo: Topology, diags: Diagnostics) -> tuple[m.Peering, ...] | None:
    """Every node gets exactly one peering mode: a `peer-with ... for X` covers the
    cluster's nodes in X, the one `peer-with` without `for` covers the rest."""
    if not settings:
        return None
    default = [st for st in settings if len(st.values) == 1]
    for extra in default[1:]:
        diags.error("E601", f"`peer-with` without `for` is given twice in {owner}", extra.span,
                    "scope the others to part of the cluster: `peer-with tor for row SITE/ROW`",
                    notes=(("first given here", default[0].span),))
    out: list[m.Peering] = []
    claimed: dict[str, s.Setting] = {}
    ok = True
    for st in [x for x in settings if len(x.values) > 1]:
        scope = _hosts(st.values[1], f"after `for` in {owner}", site, owner, endpoints, topo, diags)
        if scope is None:
            ok = False
            continue
        covered = tuple(sorted(set(scope) & set(nodes)))
        if not covered:
            diags.error("E612", f"`peer-with ... for` selects no node of {owner}", st.span,
                        "the scope names hosts, roles, racks or rows holding some of the cluster's `nodes`")
            ok = False
            continue
        for h in covered:
            if h in claimed:
                diags.error("E612", f"node {h} falls in two `peer-with` scopes of {owner}", st.span,
                            notes=(("the other scope", claimed[h].span),))
                ok = False
            claimed[h] = st
        p = _peering(st, covered, True, site, owner, endpoints, topo, diags)
        ok &= p is not None
        if p:
            out.append(p)
    rest = tuple(h for h in nodes if h not in claimed)
    if default and not rest and nodes:
        diags.warning("W005", f"this `peer-with` covers no node of {owner}: the scoped ones cover them all",
                      default[0].span, "remove it, or narrow a scope")
    elif default:
        p = _peering(default[0], rest, False, site, owner, endpoints, topo, diags)
        ok &= p is not None
        if p:
            out.append(p)
    elif rest:
        diags.error("E612", f"nodes of {owner} with no `peer-with`: {', '.join(rest)}", settings[0].span,
                    "add a `peer-with` without `for`, or widen a scope")
        ok = False
    return tuple(sorted(out, key=lambda p: p.span)) if ok else None


def _peering(st: s.Setting, nodes: tuple[str, ...], scoped: bool, site: str | None, owner: str,
             endpoints: Endpoints, topo: Topology, diags: Diagnostics) -> m.Peering | None:
    mode_parts = st.values[0]
    mode = str(mode_parts[0])
    if mode != "route-reflectors":
        return m.Peering(mode, (), None, nodes, scoped, st.span)  # type: ignore[arg-type]
    peers, cluster_id = mode_parts[1], mode_parts[3]
    reflectors = _hosts(peers, f"as route reflectors of {owner}", site, owner, endpoints, topo, diags)
    cid = parse_address(cluster_id, "a route reflector cluster ID", diags, version=4)
    if reflectors is None:
        return None
    if not reflectors:
        diags.error("E612", f"`peer-with route-reflectors` in {owner} selects no host", st.span,
                    "name the reflector hosts: `peer-with route-reflectors host rr1, rr2 cluster-id 244.0.0.1`")
        return None
    if cid is None:
        return None
    return m.Peering("route-reflectors", reflectors, cid, nodes, scoped, st.span)


def check_asns(clusters: dict[str, m.Cluster], symbols: Symbols, diags: Diagnostics) -> None:
    """Cluster ASNs are unique; a repeat is reported at its `asn` value, where the fix goes."""
    seen: dict[int, tuple[str, Span]] = {}
    for c in clusters.values():
        node: s.Cluster = symbols.tables["cluster"][c.name].node  # type: ignore[assignment]
        span = next((st.values[0].span for st in node.settings if st.keyword == "asn"), c.span)
        if c.asn in seen:
            other, where = seen[c.asn]
            diags.error("E302", f"AS number {c.asn} of cluster {c.name} is already used by cluster {other}", span,
                        notes=((f"cluster {other} has it here", where),))
        else:
            seen[c.asn] = (c.name, span)

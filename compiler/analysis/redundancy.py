"""Redundancy of the BGP design: local rules per node, placement, and a sweep over failure domains.

Two layers are checked on their own, as `verification.md` §4.2 advises (a mixed graph
hides session-layer defects behind physical paths):
- the underlay: hosts hang off their row's access switch (L2) or their rack's ToR (L3),
  access switches and spine-less ToRs reach every router of the site, ToRs reach their
  spines, spines their uplink routers, and a site's routers reach each other;
- the sessions: a session survives a failure when both ends survive and the underlay
  still joins them; routes then flow along surviving sessions and fabric links.

The sweep takes away one failure domain at a time (each router, route reflector,
switch, rack and row of a site) and checks that every surviving node keeps a session
per family and that the surviving nodes of a cluster still form one routing component.
Nodes that peer identically from the same rack behave identically, so they are
folded into one class first: a sweep costs the size of the core (routers, switches,
reflectors, classes), not the number of nodes, and 10,000 nodes stay fast.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import model as m
from ..diagnostics import Diagnostic, Span
from .peering import PeeringGraph

UPSTREAM = ("node-router", "node-tor", "client-reflector", "reflector-router")
FAILURE_KIND_GOAL = {"router": "router", "reflector": "route-reflector", "switch": "switch", "rack": "rack",
                     "row": "row"}
PRIVATE_ASNS = ((64512, 65534), (4_200_000_000, 4_294_967_294))


@dataclass(frozen=True, order=True)
class Finding:
    """One thing wrong with (or worth knowing about) the design, with its witness.

    `element` is what is at fault (a node, reflector, router, switch, rack...), `failure`
    the single failure that breaks it ("router cr1-eqiad", "row eqiad/a") when there is one.
    """

    span: Span
    code: str
    severity: str  # error | warning
    cluster: str | None
    element: str | None
    failure: str | None
    message: str
    hint: str | None = None

    def as_diagnostic(self) -> Diagnostic:
        notes = ((f"fails when {self.failure} is lost", None),) if self.failure else ()
        return Diagnostic(self.code, self.severity, self.message, self.span, self.hint, notes)  # type: ignore[arg-type]

    def as_json(self) -> dict:
        out = {"code": self.code, "severity": self.severity, "cluster": self.cluster, "element": self.element,
               "failure": self.failure, "message": self.message, "source": self.span.location}
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass(frozen=True)
class SweepResult:
    """What losing one failure domain does: the nodes lost with it, the survivors cut off or split."""

    site: str
    failure: str  # "router cr1-eqiad", "row eqiad/a", ...
    kind: str  # router | reflector | switch | rack | row
    lost: tuple[str, ...]
    cut_off: dict[int, tuple[str, ...]] = field(default_factory=dict)  # family -> surviving nodes without a session
    split: dict[int, tuple[tuple[str, ...], ...]] = field(default_factory=dict)  # family -> disconnected groups

    @property
    def ok(self) -> bool:
        return not any(self.cut_off.values()) and not any(len(g) > 1 for g in self.split.values())

    def as_json(self) -> dict:
        return {"failure": self.failure, "kind": self.kind, "lost": list(self.lost), "ok": self.ok,
                "cut_off": {f"ipv{f}": list(v) for f, v in sorted(self.cut_off.items()) if v},
                "split": {f"ipv{f}": [list(g) for g in v] for f, v in sorted(self.split.items()) if len(v) > 1}}


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    sweeps: tuple[SweepResult, ...]

    def for_site(self, site: str) -> list[SweepResult]:
        return [s for s in self.sweeps if s.site == site]


def _families(c: m.Cluster) -> tuple[int, ...]:
    return tuple(sorted({n.version for n in c.pod_cidrs}))


def _names(items: Iterable[str], limit: int = 5) -> str:
    items = sorted(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


class _Analysis:
    def __init__(self, model: m.Model, graph: PeeringGraph):
        self.model = model
        self.graph = graph
        self.findings: list[Finding] = []
        self.upstream: dict[tuple[str, int], list[str]] = defaultdict(list)  # (speaker, family) -> peers
        for s in graph.sessions:
            if s.kind in UPSTREAM:
                self.upstream[(s.a, s.family)].append(s.b)
            if s.kind == "client-reflector":
                self.upstream[(s.b, s.family)]  # a reflector exists even before its own uplinks

    def add(self, span: Span, code: str, severity: str, cluster: str | None, element: str | None,
            failure: str | None, message: str, hint: str | None = None) -> None:
        self.findings.append(Finding(span, code, severity, cluster, element, failure, message, hint))

    # ---------------------------------------------------------------- local rules
    def local(self, c: m.Cluster) -> None:
        peering_of = {n: p for p in c.peerings for n in p.nodes}
        reflectors = {r for p in c.peerings for r in p.reflectors}
        single_uplink = c.single_uplink_max_share is not None
        for n in sorted(set(c.nodes) | reflectors):
            host = self.model.hosts[n]
            p = peering_of.get(n)
            span = p.span if p else c.span
            weak: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)  # (domain, peers) -> families
            for f in _families(c):
                if not any(a.version == f for a in host.addresses):
                    self.add(span, "R101", "error", c.name, n, None,
                             f"node {n} has no IPv{f} address, but cluster {c.name} has IPv{f} pods",
                             f"give host {n} an IPv{f} address, or drop the IPv{f} pod range")
                    continue
                peers = self.upstream.get((n, f), [])
                if not peers:
                    if any(pr.node == n for pr in self.graph.problems):
                        continue
                    self.add(span, "R102", "error", c.name, n, None, f"node {n} has no IPv{f} BGP session",
                             "its peers have no address of that family")
                    continue
                domains = {self._domain_of(peer, c) for peer in peers}
                if len(domains) >= 2 or (p is not None and p.mode == "tor" and single_uplink):
                    continue  # a single ToR uplink is accepted by design; the share rule bounds the damage
                weak[(domains.pop(), tuple(sorted(peers)))].append(f)
            for (domain, peers), families in sorted(weak.items()):
                fams = " and ".join(f"IPv{f}" for f in families)
                via = "" if domain.split(" ", 1)[1] in peers and len(peers) == 1 else f" (peers {_names(peers)})"
                goal = FAILURE_KIND_GOAL[domain.split(" ", 1)[0]]
                severity = "error" if goal in c.survive else "warning"  # an error only against a declared goal
                self.add(span, "R103", severity, c.name, n, domain,
                         f"node {n} has its {fams} sessions only to {domain}{via}: losing it cuts the node off",
                         "peer with two routers, reflectors in different rows, or declare "
                         "`single-uplink max-share N%` for ToR racks")
        self.share(c, peering_of)
        self.reflector_rules(c)
        self.asn_plan(c)
        self.placement(c)

    def _domain_of(self, peer: str, c: m.Cluster) -> str:
        """The failure domain a peer belongs to: a device is its own; a reflector fails with its row
        when the cluster must survive a row, else with its rack."""
        sp = self.graph.speakers[peer]
        if sp.kind == "reflector":
            host = self.model.hosts[peer]
            return f"row {host.row}" if "row" in c.survive else f"rack {host.rack}"
        return f"{'router' if sp.kind == 'router' else 'switch'} {peer}"

    def share(self, c: m.Cluster, peering_of: dict[str, m.Peering]) -> None:
        if c.single_uplink_max_share is None or not c.nodes:
            return
        single = [n for n in c.nodes if peering_of.get(n) and peering_of[n].mode == "tor"]
        if not single:
            return
        racks = {self.model.hosts[n].rack for n in c.nodes}
        if len(racks) < 2:
            self.add(c.span, "R104", "error", c.name, c.name, f"rack {next(iter(racks))}",
                     f"cluster {c.name} has single-uplink nodes but all its nodes are in one rack")
        limit = c.single_uplink_max_share
        scopes = [("rack", "rack")] + ([("row", "row")] if "row" in c.survive else [])
        for attr, word in scopes:
            counts: dict[str, int] = defaultdict(int)
            for n in single:  # nodes with two uplinks elsewhere do not count against the single-uplink share
                counts[getattr(self.model.hosts[n], attr)] += 1
            for where, count in sorted(counts.items()):
                pct = 100 * count / len(c.nodes)
                if pct > limit:
                    self.add(c.span, "R104", "error", c.name, where, f"{word} {where}",
                             f"{word} {where} holds {count} single-uplink node(s) of the {len(c.nodes)} nodes of "
                             f"cluster {c.name} ({pct:.0f}%), more than the {limit}% its single-uplink design allows")

    def reflector_rules(self, c: m.Cluster) -> None:
        router_ids = {str(ip) for r in self.model.sites[c.site].routers
                      for ip in self.model.routers[r].loopbacks if ip.version == 4}
        members = set(c.nodes) | {r for p in c.peerings for r in p.reflectors}
        node_ids = {str(self.graph.speakers[n].router_id) for n in members if n in self.graph.speakers}
        by_id: dict[str, tuple[m.Peering, frozenset[str]]] = {}
        for p in c.peerings:
            if p.mode != "route-reflectors":
                continue
            cid = str(p.cluster_id)
            if cid in router_ids or cid in node_ids:
                self.add(p.span, "R108", "error", c.name, cid, None,
                         f"route reflector cluster ID {cid} equals a router ID: routes carrying it are "
                         "dropped as loops", "choose an unused address, e.g. 244.0.0.1")
            clients = frozenset(p.nodes) - set(p.reflectors)
            if cid in by_id and by_id[cid][1] != clients:
                self.add(p.span, "R109", "error", c.name, cid, None,
                         f"reflectors sharing cluster ID {cid} serve different clients: some routes would "
                         "not be reflected", "give each reflector group its own cluster ID")
            by_id.setdefault(cid, (p, clients))
            if len(p.reflectors) < 2:
                severity = "error" if "route-reflector" in c.survive else "warning"
                self.add(p.span, "R103", severity, c.name, p.reflectors[0] if p.reflectors else None,
                         f"reflector {_names(p.reflectors)}",
                         f"cluster {c.name} has one route reflector: losing it cuts every client off",
                         "declare at least two reflectors, in different rows")

    def asn_plan(self, c: m.Cluster) -> None:
        routers = [self.model.routers[r] for r in self.model.sites[c.site].routers]
        if any(r.asn == c.asn for r in routers):
            self.add(c.span, "R110", "warning", c.name, c.name, None,
                     f"cluster {c.name} shares AS {c.asn} with its routers: iBGP needs the routers to reflect "
                     "node routes", "give the cluster a private ASN of its own")
        if not any(lo <= c.asn <= hi for lo, hi in PRIVATE_ASNS):
            self.add(c.span, "R111", "warning", c.name, c.name, None,
                     f"AS {c.asn} of cluster {c.name} is not a private ASN (RFC 6996)")

    def placement(self, c: m.Cluster) -> None:
        """API servers: at least two, in distinct rows; etcd: an odd number, at least three, in
        distinct rows; so one row lost keeps the control plane and the etcd quorum."""
        must = "row" in c.survive
        sev = "error" if must else "warning"
        if not c.control_plane and not c.etcd:
            if must:
                self.add(c.span, "R122", "error", c.name, c.name, None,
                         f"cluster {c.name} must survive a row but declares neither `control-plane` nor `etcd`",
                         "name the API server and etcd hosts so their placement can be checked")
            return
        rows_cp = {self.model.hosts[h].row for h in c.control_plane}
        if len(c.control_plane) < 2 or len(rows_cp) < 2:
            where = _names(c.control_plane) or "none declared"
            self.add(c.span, "R120", sev, c.name, where, f"row {sorted(rows_cp)[0]}" if rows_cp else None,
                     f"cluster {c.name} has {len(c.control_plane)} API server(s) in {len(rows_cp)} row(s) "
                     f"({where}): losing one row loses the control plane",
                     "run at least two API servers in different rows" + ("" if must else
                                                                         ", or accept it for this cluster"))
        rows_etcd = [self.model.hosts[h].row for h in c.etcd]
        quorum_ok = len(c.etcd) >= 3 and len(c.etcd) % 2 == 1
        spread_ok = bool(rows_etcd) and max(rows_etcd.count(r) for r in rows_etcd) <= (len(c.etcd) - 1) // 2
        if not (quorum_ok and spread_ok):
            where = _names(c.etcd) or "none declared"
            worst = max(set(rows_etcd), key=rows_etcd.count) if rows_etcd else None
            self.add(c.span, "R121", sev, c.name, where, f"row {worst}" if worst and quorum_ok else None,
                     f"cluster {c.name} has {len(c.etcd)} etcd member(s) ({where}): "
                     + ("an even or too small member count" if not quorum_ok else
                        f"row {worst} holds a majority, so losing it loses quorum"),
                     "run an odd number of at least three members, in distinct rows")

    # ---------------------------------------------------------------- sweep
    def sweep(self) -> list[SweepResult]:
        results: list[SweepResult] = []
        for site in sorted(self.model.sites):
            clusters = [c for c in self.model.clusters.values() if c.site == site]
            if not clusters:
                continue
            core = _Core(self.model, self.graph, site, clusters)
            for failure, kind, removed in core.domains():
                res = core.evaluate(failure, kind, removed)
                results.append(res)
                self.sweep_findings(res, clusters)
        return results

    def sweep_findings(self, res: SweepResult, clusters: list[m.Cluster]) -> None:
        goal = FAILURE_KIND_GOAL[res.kind]
        for c in clusters:
            if goal not in c.survive:
                continue
            mine = set(c.nodes) | {r for p in c.peerings for r in p.reflectors}
            cut_by_nodes: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for f in sorted(res.cut_off):
                cut = tuple(sorted(set(res.cut_off[f]) & mine))
                if cut:
                    cut_by_nodes[cut].append(f)
            for cut, families in sorted(cut_by_nodes.items()):
                fams = " and ".join(f"IPv{f}" for f in families)
                self.add(c.span, "R130", "error", c.name, cut[0], res.failure,
                         f"losing {res.failure} cuts off {len(cut)} node(s) of cluster {c.name} from {fams} "
                         f"routing: {_names(cut)}", f"cluster {c.name} declares `survive {goal}`")
            split_by_groups: dict[tuple[tuple[str, ...], ...], list[int]] = defaultdict(list)
            for f in sorted(res.split):
                groups = tuple(g for g in (tuple(sorted(set(g) & mine)) for g in res.split[f]) if g)
                if len(groups) > 1:
                    split_by_groups[groups].append(f)
            for groups, families in sorted(split_by_groups.items()):
                fams = " and ".join(f"IPv{f}" for f in families)
                self.add(c.span, "R131", "error", c.name, groups[1][0], res.failure,
                         f"losing {res.failure} splits cluster {c.name} into {len(groups)} {fams} routing "
                         f"islands: {'; '.join(_names(g, 3) for g in groups[:3])}",
                         f"cluster {c.name} declares `survive {goal}`")


class _UnionFind:
    """Disjoint sets with path halving: routing components of one sweep."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


class _Core:
    """One site's underlay and session layers, with nodes folded into classes."""

    def __init__(self, model: m.Model, graph: PeeringGraph, site: str, clusters: list[m.Cluster]):
        self.model = model
        self.site = site
        reflectors = {r for c in clusters for p in c.peerings for r in p.reflectors}
        nodes = sorted({n for c in clusters for n in c.nodes} | reflectors)
        self.routers = list(model.sites[site].routers)
        # sessions by downstream end; classes of identical nodes
        ups: dict[str, set[tuple[int, str, str]]] = defaultdict(set)
        self.mesh: list[tuple[int, str, str]] = []
        for s in graph.sessions:
            if s.cluster is None or model.clusters[s.cluster].site != site:
                continue
            if s.kind == "reflector-mesh":
                self.mesh.append((s.family, s.a, s.b))
            else:
                ups[s.a].add((s.family, s.b, s.kind))
        self.members: dict[str, list[str]] = defaultdict(list)
        self.class_of: dict[str, str] = {}
        self.class_ups: dict[str, set[tuple[int, str, str]]] = {}
        cluster_of: dict[str, str] = {}  # the first cluster that has the host as a node or reflector
        for c in reversed(clusters):
            cluster_of.update((n, c.name) for n in (*c.nodes, *(r for p in c.peerings for r in p.reflectors)))
        for n in nodes:
            host = model.hosts[n]
            cluster = cluster_of[n]
            key = n if n in reflectors else f"{cluster}|{host.rack}|{sorted(ups[n])}"
            self.members[key].append(n)
            self.class_of[n] = key
            self.class_ups[key] = ups[n]
        self.class_host = {k: model.hosts[v[0]] for k, v in self.members.items()}
        # a reflector keeps its clients and its mesh even when its own uplinks are gone
        self.rr_sessions: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for key, key_ups in self.class_ups.items():
            for fam, b, kind in key_ups:
                if kind == "client-reflector":
                    self.rr_sessions[b].append((fam, key))
        for fam, a, b in self.mesh:
            self.rr_sessions[a].append((fam, b))
            self.rr_sessions[b].append((fam, a))
        # underlay edges between devices and classes
        self.under: dict[str, set[str]] = defaultdict(set)
        for r in self.routers:
            for r2 in self.routers:
                if r != r2:
                    self.under[r].add(r2)
        for rk in model.sites[site].rows:
            row = model.rows[rk]
            if row.switch:
                for r in self.routers:
                    self._link(row.switch, r)
            for kk in row.racks:
                rack = model.racks[kk]
                if rack.switch:
                    sw = model.switches[rack.switch]
                    spines = row.spines or model.sites[site].spines
                    for sp in spines:
                        self._link(sw.name, sp)
                    if not spines:
                        for r in self.routers:
                            self._link(sw.name, r)
        for name in list(model.sites[site].spines) + [s for rk in model.sites[site].rows
                                                       for s in model.rows[rk].spines]:
            for up in model.switches[name].uplinks:
                self._link(name, up)
        for key, host in self.class_host.items():
            self._link(key, self._uplink(host))
        self.fabric = [(fl.a, fl.b) for fl in graph.fabric if fl.a in self.under or fl.b in self.under]
        self.single_uplink = {n for c in clusters if c.single_uplink_max_share is not None
                              for p in c.peerings if p.mode == "tor" for n in p.nodes}
        self.cluster_of = {n: c.name for c in clusters for n in set(c.nodes) | {r for p in c.peerings
                                                                                for r in p.reflectors}}

    def _link(self, a: str, b: str) -> None:
        self.under[a].add(b)
        self.under[b].add(a)

    def _uplink(self, host: m.Host) -> str:
        rack = self.model.racks[host.rack]
        if rack.switch:
            return rack.switch
        row = self.model.rows[host.row]
        return row.switch or (self.routers[0] if self.routers else host.name)

    def domains(self) -> list[tuple[str, str, set[str]]]:
        """(label, kind, removed element names): every router, reflector, switch, rack and row."""
        out: list[tuple[str, str, set[str]]] = []
        site = self.model.sites[self.site]
        for r in site.routers:
            out.append((f"router {r}", "router", {r}))
        for key, hosts in sorted(self.members.items()):
            if key == hosts[0] and "|" not in key:
                out.append((f"reflector {key}", "reflector", {key}))
        switches = sorted(n for n, sw in self.model.switches.items() if sw.site == self.site)
        for sw in switches:
            out.append((f"switch {sw}", "switch", {sw}))
        for rk in site.rows:
            row = self.model.rows[rk]
            row_removed: set[str] = set(row.spines) | ({row.switch} if row.switch else set())
            for kk in row.racks:
                rack = self.model.racks[kk]
                removed = {k for k, h in self.class_host.items() if h.rack == kk}
                if rack.switch:
                    removed.add(rack.switch)
                out.append((f"rack {kk}", "rack", removed))
                row_removed |= removed
            out.append((f"row {rk}", "row", row_removed))
        return out

    def evaluate(self, failure: str, kind: str, removed: set[str]) -> SweepResult:
        lost = sorted(n for k in removed if k in self.members for n in self.members[k])
        # underlay components
        comp: dict[str, int] = {}
        for start in self.under:
            if start in removed or start in comp:
                continue
            stack = [start]
            comp[start] = len(comp)
            cid = comp[start]
            while stack:
                x = stack.pop()
                for y in self.under[x]:
                    if y not in removed and y not in comp:
                        comp[y] = cid
                        stack.append(y)
        cut_off: dict[int, tuple[str, ...]] = {}
        split: dict[int, tuple[tuple[str, ...], ...]] = {}
        for family in (4, 6):
            uf = _UnionFind()
            union, find = uf.union, uf.find

            def joined(a: str, b: str) -> bool:
                return a not in removed and b not in removed and a in comp and comp.get(a) == comp.get(b)

            for a, b in self.fabric:
                if joined(a, b):
                    union(a, b)
            for r in self.routers:
                for r2 in self.routers:
                    if joined(r, r2):
                        union(r, r2)
            for fam, a, b in self.mesh:
                if fam == family and joined(self.class_of.get(a, a), self.class_of.get(b, b)):
                    union(a, b)
            cut: list[str] = []
            live_classes = []
            for key, ups in self.class_ups.items():
                if key in removed:
                    continue
                alive = [b for fam, b, _ in ups if fam == family and joined(key, self.class_of.get(b, b))]
                mine = [u for u in ups if u[0] == family]
                if not mine:
                    continue
                if not alive and any(fam == family and joined(key, other) for fam, other in self.rr_sessions[key]):
                    live_classes.append(key)  # an island with its clients or mesh: counted in `split`
                    continue
                if not alive:
                    members = self.members[key]
                    if kind == "switch" and set(members) <= self.single_uplink:
                        lost.extend(members)  # a single-uplink node goes with its ToR, by design
                    else:
                        cut.extend(members)
                    continue
                live_classes.append(key)
                for b in alive:
                    union(key, self.class_of.get(b, b))
            cut_off[family] = tuple(sorted(cut))
            by_cluster: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
            for key in live_classes:  # classes never mix clusters, so one lookup per class
                by_cluster[self.cluster_of[self.members[key][0]]][find(key)].append(key)
            groups: list[tuple[str, ...]] = []
            for comps in by_cluster.values():
                if len(comps) > 1:
                    groups.extend(tuple(sorted(n for k in keys for n in self.members[k])) for keys in comps.values())
            split[family] = tuple(sorted(groups))
        return SweepResult(self.site, failure, kind, tuple(sorted(set(lost))), cut_off, split)


def analyse(model: m.Model, graph: PeeringGraph) -> Report:
    a = _Analysis(model, graph)
    for pr in graph.problems:
        a.add(pr.span, pr.code, "error", pr.cluster, pr.element, None, pr.message, pr.hint)
    for c in model.clusters.values():
        a.local(c)
    sweeps = a.sweep()
    return Report(tuple(sorted(set(a.findings))), tuple(sweeps))

"""Sites, rows, racks, routers, switches and hosts, with their address checks.

Checks made here: each host address lies in its rack's subnets (an L3 rack)
or its row's subnets (an L2 rack); gateways lie in a subnet of their row or
rack; an L3 rack has its own switch and subnets; no address is used twice;
no two subnets overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netaddr import IPAddress, IPNetwork

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics, Span
from .symbols import Symbols
from .values import check_asn, parse_address, parse_network


def declare(site: s.Site, symbols: Symbols, diags: Diagnostics) -> None:
    """Enter the site's names into the tables (first pass, before any lookup)."""
    if symbols.declare("site", "site", site.name.value, site.name, site, diags) is None:
        return
    sn = site.name.value
    for router in site.routers:
        symbols.declare("device", "router", router.name.value, router.name, router, diags, site=sn)
    for sp in site.spines:
        symbols.declare("device", "switch", sp.name.value, sp.name, sp, diags, site=sn)
    for row in site.rows:
        rk = f"{sn}/{row.name.value}"
        symbols.declare("row", "row", rk, row.name, row, diags, site=sn)
        for sw in row.switches:
            symbols.declare("device", "switch", sw.name.value, sw.name, sw, diags, site=sn, row=rk)
        for sp in row.spines:
            symbols.declare("device", "switch", sp.name.value, sp.name, sp, diags, site=sn, row=rk)
        for rack in row.racks:
            kk = f"{sn}/{rack.name.value}"
            symbols.declare("rack", "rack", kk, rack.name, rack, diags, site=sn, row=rk)
            for sw in rack.switches:
                symbols.declare("device", "switch", sw.name.value, sw.name, sw, diags, site=sn, row=rk, rack=kk)
            for host in rack.hosts:
                symbols.declare("device", "host", host.name.value, host.name, host, diags, site=sn, row=rk, rack=kk)


@dataclass
class Topology:
    sites: dict[str, m.Site] = field(default_factory=dict)
    rows: dict[str, m.Row] = field(default_factory=dict)
    racks: dict[str, m.Rack] = field(default_factory=dict)
    routers: dict[str, m.Router] = field(default_factory=dict)
    switches: dict[str, m.Switch] = field(default_factory=dict)
    hosts: dict[str, m.Host] = field(default_factory=dict)
    # every address and subnet with where it was declared, for uniqueness checks
    addresses: dict[IPAddress, tuple[str, Span]] = field(default_factory=dict)
    subnets: list[tuple[IPNetwork, str, Span]] = field(default_factory=list)


def _text(t: s.Text | None) -> str | None:
    return t.value if t else None


def _claim(topo: Topology, ip: IPAddress, owner: str, span: Span, diags: Diagnostics) -> None:
    if ip in topo.addresses:
        other, where = topo.addresses[ip]
        diags.error("E205", f"address {ip} of {owner} is already used by {other}", span,
                    notes=((f"{other} has it here", where),))
    else:
        topo.addresses[ip] = (owner, span)


def _networks(subnets: tuple[s.Subnet, ...], owner: str, topo: Topology, diags: Diagnostics) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for sub in subnets:
        for addr in sub.addresses:
            net = parse_network(addr, f"subnet of {owner}", diags)
            if net is not None:
                out.append(net)
                topo.subnets.append((net, owner, addr.span))
    return m.family_sorted(out)


def _gateways(gateways: tuple[s.Gateway, ...], nets: tuple[IPNetwork, ...], owner: str, topo: Topology,
              diags: Diagnostics) -> tuple[IPAddress, ...]:
    """At most one gateway per subnet (a row's private and public VLANs each have one)."""
    out: list[IPAddress] = []
    by_subnet: dict[IPNetwork, IPAddress] = {}
    for gw in gateways:
        for addr in gw.addresses:
            ip = parse_address(addr, "a gateway", diags)
            if ip is None:
                continue
            subnet = next((n for n in nets if ip in n), None)
            if subnet is None:
                diags.error("E209", f"gateway {ip} is outside the subnets of {owner}", addr.span,
                            f"subnets: {', '.join(map(str, nets)) or 'none declared'}")
                continue
            if subnet in by_subnet:
                diags.error("E601", f"{owner} has two gateways in subnet {subnet}: {by_subnet[subnet]} and {ip}",
                            addr.span)
                continue
            by_subnet[subnet] = ip
            _claim(topo, ip, f"the gateway of {owner}", addr.span, diags)
            out.append(ip)
    return m.family_sorted(out)


def _switch(sw: s.Switch | s.Spine, kind: str, site: str, row: str | None, rack: str | None,
            diags: Diagnostics) -> m.Switch:
    asn = check_asn(sw.asn, diags) if sw.asn is not None else None
    uplinks = tuple(n.value for n in sw.uplinks) if isinstance(sw, s.Spine) else ()
    return m.Switch(sw.name.value, kind, site, row, rack, asn, uplinks, _text(sw.description), sw.span)  # type: ignore[arg-type]


def build(symbols: Symbols, diags: Diagnostics) -> Topology:
    topo = Topology()
    for entry in symbols.tables["site"].values():
        _build_site(entry.node, symbols, topo, diags)  # type: ignore[arg-type]
    return topo


def _build_site(site: s.Site, symbols: Symbols, topo: Topology, diags: Diagnostics) -> None:
    sn = site.name.value
    routers = []
    for r in site.routers:
        if not symbols.owns("device", r.name.value, r):
            continue
        loops = []
        for addr in r.loopbacks:
            ip = parse_address(addr, "a router loopback", diags)
            if ip is not None:
                loops.append(ip)
                _claim(topo, ip, f"router {r.name.value}", addr.span, diags)
        for v in (4, 6):
            if sum(ip.version == v for ip in loops) > 1:
                diags.error("E601", f"router {r.name.value} has more than one IPv{v} loopback", r.span)
        asn = check_asn(r.asn, diags) or 0
        topo.routers[r.name.value] = m.Router(r.name.value, sn, m.family_sorted(loops),
                                              asn, _text(r.description), r.span)
        routers.append(r.name.value)
    spines = _build_spines(site.spines, sn, None, symbols, topo, diags)
    rows = []
    for row in site.rows:
        rk = f"{sn}/{row.name.value}"
        if not symbols.owns("row", rk, row):
            continue
        rows.append(rk)
        _build_row(sn, rk, row, symbols, topo, diags)
    topo.sites[sn] = m.Site(sn, tuple(sorted(routers)), tuple(sorted(spines)), tuple(sorted(rows)),
                            _text(site.description), site.span)


def _build_spines(spines: tuple[s.Spine, ...], sn: str, rk: str | None, symbols: Symbols, topo: Topology,
                  diags: Diagnostics) -> list[str]:
    """Spines of a row, or of the site when they serve several rows; uplinks must be routers."""
    out = []
    for sp in spines:
        if not symbols.owns("device", sp.name.value, sp):
            continue  # a duplicate name: reported, and must not replace the first device
        topo.switches[sp.name.value] = _switch(sp, "spine", sn, rk, None, diags)
        out.append(sp.name.value)
        for up in sp.uplinks:
            symbols.lookup("device", up.value, "router", up.span, diags, kind="router")
    return out


def _build_row(sn: str, rk: str, row: s.Row, symbols: Symbols, topo: Topology, diags: Diagnostics) -> None:
    owner = f"row {rk}"
    if len(row.switches) > 1:
        diags.error("E601", f"{owner} declares more than one access switch", row.switches[1].span,
                    "a row has one access switch; an L3 rack's switch goes inside its rack")
    nets = _networks(row.subnets, owner, topo, diags)
    gws = _gateways(row.gateways, nets, owner, topo, diags)
    switch = None
    for sw in row.switches[:1]:
        if symbols.owns("device", sw.name.value, sw):
            topo.switches[sw.name.value] = _switch(sw, "access", sn, rk, None, diags)
            switch = sw.name.value
    spines = _build_spines(row.spines, sn, rk, symbols, topo, diags)
    racks = []
    for rack in row.racks:
        kk = f"{sn}/{rack.name.value}"
        if not symbols.owns("rack", kk, rack):
            continue
        racks.append(kk)
        _build_rack(sn, rk, kk, rack, nets, symbols, topo, diags)
    topo.rows[rk] = m.Row(rk, row.name.value, sn, switch, tuple(spines), nets, gws, tuple(sorted(racks)),
                          _text(row.description), row.span)


def _build_rack(sn: str, rk: str, kk: str, rack: s.Rack, row_nets: tuple[IPNetwork, ...], symbols: Symbols,
                topo: Topology, diags: Diagnostics) -> None:
    owner = f"rack {kk}"
    nets = _networks(rack.subnets, owner, topo, diags)
    layer = "l3" if rack.switches or rack.subnets else "l2"
    if len(rack.switches) > 1:
        diags.error("E601", f"{owner} declares more than one switch", rack.switches[1].span)
    if layer == "l3" and not rack.switches:
        diags.error("E603", f"{owner} has its own subnet but no switch", rack.span,
                    "an L3 rack declares its top-of-rack switch: `switch NAME asn N`")
    if layer == "l3" and not rack.subnets:
        diags.error("E603", f"{owner} has its own switch but no subnet", rack.span,
                    "an L3 rack declares `subnet` and `gateway`; an L2 rack uses its row's")
    if layer == "l3" and not rack.gateways and rack.subnets:
        diags.error("E603", f"{owner} is an L3 rack without a gateway", rack.span,
                    "declare the ToR's addresses: `gateway 10.64.130.1 2620:0:861:109::1`")
    if rack.gateways and layer == "l2":
        diags.error("E603", f"{owner} declares a gateway but no subnet", rack.gateways[0].span)
    # an L2 rack's gateway was reported above; checking it against no subnet would only repeat that
    gws = _gateways(rack.gateways, nets, owner, topo, diags) if layer == "l3" else ()
    switch = None
    for sw in rack.switches[:1]:
        if symbols.owns("device", sw.name.value, sw):
            topo.switches[sw.name.value] = _switch(sw, "tor", sn, rk, kk, diags)
            switch = sw.name.value
    home = nets if layer == "l3" else row_nets
    home_owner = owner if layer == "l3" else f"row {rk}"
    hosts = []
    for h in rack.hosts:
        if not symbols.owns("device", h.name.value, h):
            continue  # a duplicate of another device: reported, and must not replace it
        hosts.append(h.name.value)
        topo.hosts[h.name.value] = _build_host(sn, rk, kk, h, home, home_owner, topo, diags)
    topo.racks[kk] = m.Rack(kk, rack.name.value, sn, rk, layer, switch, nets, gws, tuple(sorted(hosts)),  # type: ignore[arg-type]
                            _text(rack.description), rack.span)


def _build_host(sn: str, rk: str, kk: str, h: s.Host, home: tuple[IPNetwork, ...], home_owner: str,
                topo: Topology, diags: Diagnostics) -> m.Host:
    addrs = []
    for addr in h.addresses:
        ip = parse_address(addr, "a host address", diags)
        if ip is None:
            continue
        if not any(ip in n for n in home):
            fam = [str(n) for n in home if n.version == ip.version]
            diags.error("E204", f"address {ip} of host {h.name.value} is outside the subnets of {home_owner}",
                        addr.span, f"IPv{ip.version} subnets of {home_owner}: {', '.join(fam) or 'none'}")
            continue
        _claim(topo, ip, f"host {h.name.value}", addr.span, diags)
        addrs.append(ip)
    seen: set[str] = set()
    for r in h.roles:
        if r.value in seen:
            diags.error("E102", f"role `{r.value}` is listed twice for host {h.name.value}", r.span)
        seen.add(r.value)
    return m.Host(h.name.value, sn, rk, kk, m.family_sorted(addrs),
                  tuple(sorted(seen)), True, _text(h.description), h.span)


def check_overlaps(topo: Topology, diags: Diagnostics) -> None:
    """Sorted sweep: a subnet overlaps an earlier one iff it starts before that one ends."""
    items = sorted(topo.subnets, key=lambda t: (t[0].version, t[0].first, -t[0].last))
    for v in (4, 6):
        open_: tuple[IPNetwork, str, Span] | None = None
        for net, owner, span in (t for t in items if t[0].version == v):
            if open_ is not None and net.first <= open_[0].last:
                diags.error("E206", f"subnet {net} of {owner} overlaps {open_[0]} of {open_[1]}", span,
                            notes=((f"{open_[0]} is declared here", open_[2]),))
                if net.last <= open_[0].last:
                    continue
            open_ = (net, owner, span)

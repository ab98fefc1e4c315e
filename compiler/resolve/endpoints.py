"""Peers (`host a`, `role b, c`, `network n`, `10.0.0.0/8`, `internet`...) to endpoints.

Also resolves named networks, with their exclusions and cycle detection.
A name after a comma takes the kind of the item before it; a peer that
names nothing is an error, never an empty or wider match.
"""

from __future__ import annotations

import functools

from netaddr import IPNetwork, IPSet

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics, Span, did_you_mean
from ..ranges import Ranges
from .order import dependency_order
from .symbols import Symbols
from .topology import Topology
from .values import parse_network

SPECIAL_PURPOSE = IPSet([
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
])
ANY = ("0.0.0.0/0", "::/0")
ADDRESS_KINDS = ("host", "router", "switch", "role", "network", "cluster", "rack", "row", "site")


def _hosts_cidrs(addresses: tuple) -> tuple[IPNetwork, ...]:
    return m.cidrs_of(IPSet(addresses))


class Endpoints:
    def __init__(self, symbols: Symbols, topo: Topology, pods: dict[str, tuple[IPNetwork, ...]],
                 estate: IPSet, diags: Diagnostics):
        self.symbols = symbols
        self.topo = topo
        self.pods = pods
        self.diags = diags
        self.estate = estate
        self.networks: dict[str, m.Network | None] = {}
        self.stack: list[str] = []
        self.role_hosts: dict[str, list[str]] = {}
        for h in topo.hosts.values():
            for r in h.roles:
                self.role_hosts.setdefault(r, []).append(h.name)

    # -------------------------------------------------------------- peers
    def resolve(self, peers: tuple[s.Peer, ...], where: str, allowed: tuple[str, ...] | None = None
                ) -> tuple[m.Endpoint, ...] | None:
        """Resolve a peer list; None if any peer is wrong (errors recorded)."""
        out: list[m.Endpoint] = []
        ok = True
        kind: str | None = None
        for peer in peers:
            if isinstance(peer, s.TypedPeer):
                kind = peer.kind
                ref = peer.ref
            elif isinstance(peer, s.BarePeer):
                ref = peer.ref
                if kind is None:
                    self._bare_without_kind(ref)
                    ok = False
                    continue
            else:
                kind = None
                ep = self._literal(peer, where, allowed)
                ok &= ep is not None
                if ep:
                    out.append(ep)
                continue
            if allowed is not None and kind not in allowed:
                self.diags.error("E609", f"`{kind}` cannot be used {where}", peer.span,
                                 f"allowed here: {', '.join(allowed)}")
                ok = False
                continue
            ep = self.named(kind, ref)
            ok &= ep is not None
            if ep:
                out.append(ep)
        return tuple(out) if ok else None

    def _bare_without_kind(self, ref: s.Ref) -> None:
        kinds = [e.kind for t, tab in self.symbols.tables.items() for e in [tab.get(ref.text)] if e is not None]
        hint = f"write `{kinds[0]} {ref.text}`" if kinds else "start with a kind: `host`, `role`, `network`, `app`..."
        self.diags.error("E608", f"`{ref.text}` does not say what it is", ref.span, hint)

    def _literal(self, peer: s.Peer, where: str, allowed: tuple[str, ...] | None) -> m.Endpoint | None:
        kind = {s.AddressPeer: "address", s.AnyPeer: "any", s.InternetPeer: "internet"}[type(peer)]
        if allowed is not None and kind not in allowed:
            self.diags.error("E609", f"`{kind if kind != 'address' else 'an address'}` cannot be used {where}",
                             peer.span, f"allowed here: {', '.join(allowed)}")
            return None
        if isinstance(peer, s.AddressPeer):
            net = parse_network(peer.address, "an address", self.diags, require_prefix=False)
            return m.Endpoint("cidr", str(net.cidr), (net,), (), peer.span) if net is not None else None
        if isinstance(peer, s.AnyPeer):
            return m.Endpoint("any", "any", tuple(IPNetwork(c) for c in ANY), (), peer.span)
        return m.Endpoint("internet", "internet", self.internet, (), peer.span)

    @functools.cached_property
    def internet(self) -> tuple[IPNetwork, ...]:
        """Every address but the special-purpose ranges and the estate's: computed once."""
        return m.cidrs_of(IPSet(ANY) - SPECIAL_PURPOSE - self.estate)

    def named(self, kind: str, ref: s.Ref) -> m.Endpoint | None:
        if len(ref.parts) > 1 and kind not in ("rack", "row"):
            self.diags.error("E609", f"only racks and rows are written `site/name`; `{ref.text}` is not a {kind}",
                             ref.span)
            return None
        name = ref.text
        span = ref.span
        if kind in ("rack", "row"):
            key = self._site_scoped(kind, ref)
            if key is None:
                return None
            if kind == "rack":
                rack = self.topo.racks.get(key)
                if rack is None:
                    return None
                cidrs = rack.subnets if rack.layer == "l3" else self._host_cidrs(rack.hosts)
            else:
                row = self.topo.rows.get(key)
                if row is None:
                    return None
                cidrs = m.cidrs_of(IPSet([*row.subnets, *(n for rk in row.racks for n in self.topo.racks[rk].subnets)]))
            return m.Endpoint(kind, key, cidrs, (), span)
        if kind in ("host", "router", "switch"):
            entry = self.symbols.lookup("device", name, kind, span, self.diags, kind=kind)
            if entry is None:
                return None
            if kind == "host":
                host = self.topo.hosts.get(name)
                return m.Endpoint("host", name, self._host_cidrs((name,)), (), span) if host else None
            if kind == "router":
                router = self.topo.routers.get(name)
                if router is None:
                    return None
                return m.Endpoint("router", name, _hosts_cidrs(router.loopbacks), (), span)
            switch = self.topo.switches.get(name)
            if switch is None:
                return None
            if switch.kind != "tor":
                self.diags.error("E609", f"switch {name} has no address the policy knows", span,
                                 "only a rack's switch has addresses (its gateways)")
                return None
            gws = self.topo.racks[switch.rack].gateways if switch.rack in self.topo.racks else ()
            return m.Endpoint("switch", name, _hosts_cidrs(gws), (), span)
        if kind == "role":
            entry = self.symbols.lookup("role", name, "role", span, self.diags)
            if entry is None:
                return None
            if getattr(entry.node, "default", False):
                # no host lists the default role, so it would select nothing, silently
                self.diags.error("E609", f"`{name}` is the default role, not a role", span,
                                 "the default role applies to every host; name the hosts' own roles")
                return None
            return m.Endpoint("role", name, self._host_cidrs(tuple(self.role_hosts.get(name, ()))), (), span)
        if kind == "network":
            net = self.network(name, span)
            return m.Endpoint("network", name, net.cidrs, (), span) if net else None
        if kind == "cluster":
            if self.symbols.lookup("cluster", name, "cluster", span, self.diags) is None:
                return None
            return m.Endpoint("cluster", name, self.pods.get(name, ()), (), span)
        if kind == "site":
            if self.symbols.lookup("site", name, "site", span, self.diags) is None:
                return None
            site = self.topo.sites.get(name)
            rows = [self.topo.rows[rk] for rk in site.rows] if site else []
            members = [n for row in rows for n in row.subnets]
            members += [n for row in rows for kk in row.racks for n in self.topo.racks[kk].subnets]
            members += [ip for r in (site.routers if site else ()) for ip in self.topo.routers[r].loopbacks]
            return m.Endpoint("site", name, m.cidrs_of(IPSet(members)), (), span)
        # app
        entry = self.symbols.lookup("app", name, "app", span, self.diags)
        if entry is None:
            return None
        if getattr(entry.node, "default", False):
            self.diags.error("E609", f"`{name}` is the default app block, not an app", span)
            return None
        return m.Endpoint("app", name, (), (name,), span)

    def _site_scoped(self, kind: str, ref: s.Ref) -> str | None:
        table = self.symbols.tables[kind]
        if len(ref.parts) == 2:
            entry = self.symbols.lookup(kind, ref.text, kind, ref.span, self.diags)
            return entry.key if entry else None
        matches = sorted(k for k in table if k.split("/", 1)[1] == ref.text)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            self.diags.error("E103", f"{kind} `{ref.text}` exists at several sites: {', '.join(matches)}", ref.span,
                             f"write `{kind} {matches[0]}`")
            return None
        # keys are `site/name`: suggest among the names as written, which the key-wide lookup cannot match
        hint = did_you_mean(ref.text, (k.split("/", 1)[1] for k in table))
        if hint is not None:
            self.diags.error("E103", f"unknown {kind} `{ref.text}`", ref.span, hint)
        else:
            self.symbols.lookup(kind, ref.text, kind, ref.span, self.diags)
        return None

    def _host_cidrs(self, hosts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
        """One IPSet built from all addresses at once: a union per host is quadratic. One host
        with at most one address per family needs no set: its addresses are its CIDRs."""
        if len(hosts) == 1 and (host := self.topo.hosts.get(hosts[0])) is not None:
            families = [a.version for a in host.addresses]
            if len(families) == len(set(families)):
                return m.family_sorted(IPNetwork(a) for a in host.addresses)
        found = (self.topo.hosts.get(h) for h in hosts)
        return m.cidrs_of(IPSet([a for host in found if host for a in host.addresses]))

    # -------------------------------------------------------------- networks
    def network(self, name: str, span: Span) -> m.Network | None:
        entry = self.symbols.lookup("network", name, "network", span, self.diags)
        if entry is None:
            return None
        if name in self.networks:
            return self.networks[name]
        if name in self.stack:
            chain = " -> ".join(self.stack[self.stack.index(name):] + [name])
            self.diags.error("E501", f"network `{name}` is defined in terms of itself: {chain}", span)
            self.networks[name] = None
            return None
        node: s.Network = entry.node  # type: ignore[assignment]
        self.stack.append(name)
        where = "in a network (a network is a set of addresses; apps are selected by label)"
        allowed = ADDRESS_KINDS + ("address", "any", "internet")
        members = self.resolve(node.include, where, allowed)
        excluded = self.resolve(node.exclude, where, allowed) if node.exclude else ()
        self.stack.pop()
        if members is None or excluded is None:
            self.networks.setdefault(name, None)
            return self.networks[name]
        ipset = IPSet([c for ep in members for c in ep.cidrs])
        if excluded:  # one subtraction, and a bisection per item: linear in the items, not quadratic
            held = Ranges(ipset)
            for ep in excluded:
                if not any(held.meets(c) for c in ep.cidrs):
                    self.diags.warning("W003", f"excluding {ep.label} removes nothing from network `{name}`", ep.span)
            ipset -= IPSet([c for ep in excluded for c in ep.cidrs])
        if not ipset:
            self.diags.warning("W004", f"network `{name}` holds no address", node.name.span)
        net = m.Network(name, m.cidrs_of(ipset), members, excluded,
                        node.description.value if node.description else None, node.span)
        self.networks.setdefault(name, net)
        return self.networks[name]

    def all_networks(self) -> dict[str, m.Network]:
        """Every network, each resolved after those it names (see `order`), cycles reported once."""
        table = self.symbols.tables["network"]
        order, cycles = dependency_order(table, self._network_refs)
        for cycle in cycles:
            self.diags.error("E501", f"network `{cycle.names[0]}` is defined in terms of itself: {cycle.chain()}",
                             cycle.span)
            for name in cycle.names:
                self.networks[name] = None
        for name in order:
            self.network(name, table[name].span)
        return {k: v for k, v in self.networks.items() if v is not None}

    def _network_refs(self, name: str) -> list[tuple[str, Span]]:
        """The networks a network's definition names (a bare name takes the kind before it)."""
        entry = self.symbols.tables["network"].get(name)
        if entry is None:
            return []
        node: s.Network = entry.node  # type: ignore[assignment]
        out: list[tuple[str, Span]] = []
        for peers in (node.include, node.exclude):
            kind: str | None = None
            for peer in peers:
                if isinstance(peer, s.TypedPeer):
                    kind = peer.kind
                elif not isinstance(peer, s.BarePeer):
                    kind = None
                    continue
                if kind == "network" and len(peer.ref.parts) == 1 and peer.ref.text in self.symbols.tables["network"]:
                    out.append((peer.ref.text, peer.ref.span))
        return out

"""Services and port lists: `tcp 80, 443, udp 53, icmp echo-request, service dns`.

A bare port takes the protocol of the item before it. The result is
normalised: sorted, duplicates and overlapping ranges merged, and anything
covered by a protocol-wide match (or by `any`) dropped, so equal intent
yields equal output.
"""

from __future__ import annotations

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics, Span
from .order import dependency_order
from .symbols import Symbols
from .values import check_port, icmp_type_of


class Services:
    """Resolves named services on demand, detecting reference cycles."""

    def __init__(self, symbols: Symbols, diags: Diagnostics):
        self.symbols = symbols
        self.diags = diags
        self.done: dict[str, m.Service | None] = {}
        self.stack: list[str] = []
        self.by_names: dict[tuple[str, ...], tuple[m.PortMatch, ...]] = {}  # lists of services only

    def get(self, name: str, span: Span) -> m.Service | None:
        entry = self.symbols.lookup("service", name, "service", span, self.diags)
        if entry is None:
            return None
        if name in self.done:
            return self.done[name]
        if name in self.stack:
            chain = " -> ".join(self.stack[self.stack.index(name):] + [name])
            self.diags.error("E407", f"service `{name}` refers to itself: {chain}", span)
            return None
        node: s.Service = entry.node  # type: ignore[assignment]
        self.stack.append(name)
        ports = self.port_list(node.ports)
        self.stack.pop()
        svc = m.Service(name, ports, node.description.value if node.description else None, node.span) \
            if ports is not None else None
        self.done[name] = svc
        return svc

    def all(self) -> dict[str, m.Service]:
        """Every service, each resolved after those it includes (see `order`), cycles reported once."""
        table = self.symbols.tables["service"]
        order, cycles = dependency_order(table, self._refs)
        for cycle in cycles:
            self.diags.error("E407", f"service `{cycle.names[0]}` refers to itself: {cycle.chain()}", cycle.span)
            for name in cycle.names:
                self.done[name] = None
        for name in order:
            self.get(name, table[name].span)
        return {k: v for k, v in self.done.items() if v is not None}

    def _refs(self, name: str) -> list[tuple[str, Span]]:
        entry = self.symbols.tables["service"].get(name)
        if entry is None:
            return []
        node: s.Service = entry.node  # type: ignore[assignment]
        return [(i.name.value, i.name.span) for i in node.ports
                if isinstance(i, s.ServiceRef) and i.name.value in self.symbols.tables["service"]]

    def port_list(self, items: tuple[s.PortItem, ...]) -> tuple[m.PortMatch, ...] | None:
        """Resolve a port list; None when any item is wrong (the error is recorded). A list of
        services only, as written again and again, is resolved once (a wrong one is never kept,
        so each use of it is reported)."""
        if all(type(i) is s.ServiceRef for i in items):
            key = tuple(i.name.value for i in items)  # type: ignore[union-attr]
            known = self.by_names.get(key)
            if known is None and (known := self._port_list(items)) is not None and not self.stack:
                self.by_names[key] = known
            return known
        return self._port_list(items)

    def _port_list(self, items: tuple[s.PortItem, ...]) -> tuple[m.PortMatch, ...] | None:
        out: list[m.PortMatch] = []
        ok = True
        protocol: str | None = None
        for item in items:
            if isinstance(item, s.ProtoPorts):
                protocol = item.protocol
                if item.first is None:
                    out.append(m.PortMatch(item.protocol))
                    continue
                rng = _range(item.first, item.last, self.diags)
                ok &= rng is not None
                if rng:
                    out.append(m.PortMatch(item.protocol, *rng))
            elif isinstance(item, s.BarePorts):
                if protocol is None:
                    self.diags.error("E403", f"port {item.first.value} has no protocol", item.span,
                                     f"write `tcp {item.first.value}` or `udp {item.first.value}`")
                    ok = False
                    continue
                rng = _range(item.first, item.last, self.diags)
                ok &= rng is not None
                if rng:
                    out.append(m.PortMatch(protocol, *rng))
            elif isinstance(item, s.IcmpPorts):
                protocol = None
                tc = icmp_type_of(item.protocol, item, self.diags)
                if tc is None:
                    ok = False
                    continue
                out.append(m.PortMatch(item.protocol, icmp_type=tc[0], icmp_code=tc[1]))
            elif isinstance(item, s.ServiceRef):
                protocol = None
                svc = self.get(item.name.value, item.name.span)
                if svc is None:
                    ok = False
                    continue
                out.extend(svc.ports)
            else:
                protocol = None
                out.append(m.PortMatch("any"))
        return normalise(out) if ok else None


def _range(first: s.Int, last: s.Int | None, diags: Diagnostics) -> tuple[int, int] | None:
    a = check_port(first, diags)
    b = check_port(last, diags) if last is not None else a
    if a is None or b is None:
        return None
    if b < a:
        diags.error("E402", f"port range {a}-{b} is reversed", first.span, f"write `{b}-{a}`")
        return None
    return a, b


def normalise(ports: list[m.PortMatch]) -> tuple[m.PortMatch, ...]:
    """Sorted, merged, with matches covered by a wider one removed."""
    if any(p.protocol == "any" for p in ports):
        return (m.PortMatch("any"),)
    out: list[m.PortMatch] = []
    for proto in sorted({p.protocol for p in ports}):
        mine = [p for p in ports if p.protocol == proto]
        if proto in ("icmp", "icmpv6"):
            if any(p.icmp_type is None for p in mine):
                out.append(m.PortMatch(proto))
                continue
            types_any_code = {p.icmp_type for p in mine if p.icmp_code is None}
            kept = {p for p in mine if p.icmp_code is None or p.icmp_type not in types_any_code}
            out.extend(sorted(kept, key=lambda p: (p.icmp_type, -1 if p.icmp_code is None else p.icmp_code)))
            continue
        if any(p.first is None for p in mine):
            out.append(m.PortMatch(proto))
            continue
        ranges = sorted((p.first, p.last) for p in mine)
        merged: list[list[int]] = []
        for a, b in ranges:  # type: ignore[misc]
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out.extend(m.PortMatch(proto, a, b) for a, b in merged)
    return tuple(out)

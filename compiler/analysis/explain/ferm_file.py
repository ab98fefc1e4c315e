"""One host's compiled ferm file read back: the `@def` variables and each chain's ACCEPT lines with
the comments above them, so explain can find the line that implements a statement and judge the
file on its own."""

from __future__ import annotations

import re
from dataclasses import dataclass

from netaddr import IPNetwork, IPSet

from ...resolve.values import ICMP_TYPES, ICMPV6_TYPES
from .cover import FULL, cover
from .ends import Party
from .question import PORTED, Query

FERM_PROTOCOL = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp": "icmp", "ipv6-icmp": "icmpv6"}


@dataclass(frozen=True)
class FermLine:
    line: int
    text: str
    comments: tuple[str, ...]
    proto: str | None
    ports: tuple[tuple[int, int], ...] | None  # None: every port
    icmp: tuple[tuple[int, int | None], ...] | None  # None: every type
    saddr: tuple[str, ...] | None  # None: any source


class FermFile:
    """One host's compiled ferm file, read back: the variables and each chain's ACCEPT lines."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.defs: dict[str, tuple[str, ...]] = {}
        self.chains: dict[int, list[FermLine]] = {4: [], 6: []}
        family: int | None = None
        pending: list[str] = []
        buf: str | None = None
        start = 0
        for n, raw in enumerate(text.split("\n"), 1):
            line = raw.strip()
            if buf is not None:
                buf += " " + line
            elif family is None and line.startswith("@def "):
                buf, start = line, n
            elif family is None:
                if line == "domain ip table filter chain INPUT {":
                    family = 4
                elif line == "domain ip6 table filter chain INPUT {":
                    family = 6
                continue
            elif line == "}":
                family, pending = None, []
                continue
            elif not line:
                continue
            elif line.startswith("#"):
                pending.append(line)
                continue
            else:
                buf, start = line, n
            if buf is not None and buf.endswith(";"):
                if family is None:
                    self._define(buf)
                else:
                    parsed = self._parse(start, buf, tuple(pending))
                    if parsed is not None:
                        self.chains[family].append(parsed)
                    pending = []
                buf = None

    def _define(self, text: str) -> None:
        d = re.match(r"^@def \$(\w+) = \((.*)\);$", text)
        if d:
            self.defs[d.group(1)] = tuple(d.group(2).split())

    @staticmethod
    def _parse(line: int, text: str, comments: tuple[str, ...]) -> FermLine | None:
        tokens = re.findall(r"\([^)]*\)|[^\s;]+", text)
        if not tokens or tokens[-1] != "ACCEPT" or tokens[0] not in ("proto", "saddr", "ACCEPT"):
            return None  # policy, mod state, interface lo
        values: dict[str, tuple[str, ...]] = {}
        for key, value in zip(tokens[:-1:2], tokens[1:-1:2], strict=False):
            values[key] = tuple(value.strip("()").split())
        proto = FERM_PROTOCOL.get(values["proto"][0]) if "proto" in values else None
        ports = None
        if "dport" in values:
            ports = tuple((int(a), int(b or a)) for a, _, b in (p.partition(":") for p in values["dport"]))
        icmp = None
        kinds = values.get("icmp-type") or values.get("icmpv6-type")
        if kinds:
            names = ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
            icmp = tuple((names[t] if t in names else int(t.partition("/")[0]),
                          int(t.partition("/")[2]) if t.partition("/")[2] else None) for t in kinds)
        return FermLine(line, text, comments, proto, ports, icmp, values.get("saddr"))

    def port_ok(self, f: FermLine, query: Query, family: int) -> bool:
        if family not in query.families:
            return False
        if f.proto is None:
            return True
        if f.proto != query.protocol:
            return False
        if f.proto in PORTED:
            return f.ports is None or (query.port is not None and any(a <= query.port <= b for a, b in f.ports))
        if f.icmp is None:
            return True
        return any(t == query.icmp_type and (c is None or c == query.icmp_code) for t, c in f.icmp)

    def saddr_nets(self, f: FermLine) -> list[IPNetwork]:
        """The source networks of a line, its `$variables` expanded."""
        out: list[IPNetwork] = []
        for item in f.saddr or ():
            out += (IPNetwork(n) for n in (self.defs.get(item[1:], ()) if item.startswith("$") else (item,)))
        return out

    def cover(self, f: FermLine, far: Party, family: int) -> str:
        if f.saddr is None:
            return FULL
        return cover(far.of(family), IPSet(self.saddr_nets(f)))

"""A reader for the ferm files netpolc writes (the format documented in compiler/backends/ferm.py).

It is independent of the backend: it reads the text, so tests can ask what a written file admits
(`FermFile.admits`) and compare that with what the policy says. It knows only the subset of ferm
the backend writes: `@def $NAME = (...)`, `domain ip|ip6 table filter chain INPUT { ... }` with
lines `[proto P [dport X|icmp-type X|icmpv6-type X]] [saddr X] ACCEPT;`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from netaddr import IPAddress, IPNetwork, IPSet

BASE = ("policy DROP;", "mod state state INVALID DROP;", "mod state state (ESTABLISHED RELATED) ACCEPT;",
        "interface lo ACCEPT;")
ICMPV6_NAMES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
                "echo-request": 128, "echo-reply": 129, "router-solicitation": 133, "router-advertisement": 134,
                "neighbour-solicitation": 135, "neighbour-advertisement": 136, "redirect": 137}


@dataclass(frozen=True)
class Line:
    proto: str | None  # tcp udp sctp icmp ipv6-icmp; None: any protocol
    ports: tuple[tuple[int, int], ...] | None  # dport ranges, or ICMP (type, type); None: all
    sources: IPSet | None  # None: any source
    terms: tuple[str, ...] | None  # the saddr items as written
    comments: tuple[str, ...]

    def admits(self, address: IPAddress, proto: str, port: int | None) -> bool:
        if self.sources is not None and address not in self.sources:
            return False
        if self.proto is not None and self.proto != proto:
            return False
        if self.ports is None:
            return True
        return port is not None and any(a <= port <= b for a, b in self.ports)


@dataclass
class FermFile:
    variables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    chains: dict[int, list[Line]] = field(default_factory=dict)  # family -> accept lines (after the base)
    base: dict[int, list[str]] = field(default_factory=dict)  # family -> the fixed lines, as written
    preserve: str = ""

    def admits(self, address: str | IPAddress, proto: str, port: int | None = None) -> bool:
        """Whether a new connection (packet) from `address` is accepted: the base lines, then the rest."""
        ip = IPAddress(address)
        family = ip.version
        if proto == "icmp" and family == 4:
            return True  # the base accepts all ICMPv4
        if proto == "ipv6-icmp" and family == 6 and port in (1, 2, 3, 4, 128, 133, 134, 135, 136, 137):
            return True
        return any(line.admits(ip, proto, port) for line in self.chains[family])

    def lines(self, family: int, proto: str | None = None, port: int | None = None) -> list[Line]:
        return [x for x in self.chains[family] if (proto is None or x.proto == proto)
                and (port is None or x.ports is None or any(a <= port <= b for a, b in x.ports))]


def _statements(body: str) -> list[tuple[tuple[str, ...], str]]:
    """The statements of a chain body, each with the comment lines just before it."""
    out, comments, current = [], [], []
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        current.append(line)
        if line.endswith(";"):
            out.append((tuple(comments), " ".join(current)))
            comments, current = [], []
    assert not current, f"unterminated statement: {current}"
    return out


def _array(words: list[str], i: int) -> tuple[list[str], int]:
    if words[i] != "(":
        return [words[i]], i + 1
    j = words.index(")", i)
    return words[i + 1:j], j + 1


def _ranges(items: list[str], proto: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in items:
        if proto == "ipv6-icmp" and item in ICMPV6_NAMES:
            t = ICMPV6_NAMES[item]
            out.append((t, t))
            continue
        item = item.split("/")[0]  # an ICMP code: the type is what matters here
        a, _, b = item.partition(":")
        out.append((int(a), int(b or a)))
    return tuple(out)


def parse_line(text: str, comments: tuple[str, ...], variables: dict[str, tuple[str, ...]], family: int) -> Line:
    words = text.replace("(", " ( ").replace(")", " ) ").replace(";", " ;").split()
    assert words[-2:] == ["ACCEPT", ";"], text
    words = words[:-2]
    proto = ports = terms = None
    i = 0
    while i < len(words):
        w = words[i]
        if w == "proto":
            proto = words[i + 1]
            i += 2
        elif w in ("dport", "icmp-type", "icmpv6-type"):
            items, i = _array(words, i + 1)
            ports = _ranges(items, proto or "")
        elif w == "saddr":
            items, i = _array(words, i + 1)
            terms = tuple(items)
        else:
            raise AssertionError(f"unexpected `{w}` in {text!r}")
    sources = None
    if terms is not None:
        nets = []
        for t in terms:
            nets.extend(variables[t[1:]] if t.startswith("$") else (t,))
        sources = IPSet(nets)
        bad = [n for n in nets if IPNetwork(n).version != family]
        assert not bad, f"addresses of the wrong family in domain {'ip' if family == 4 else 'ip6'}: {bad}"
    return Line(proto, ports, sources, terms, comments)


def parse(text: str) -> FermFile:
    out = FermFile()
    for m in re.finditer(r"^@def \$(\w+) = \(([^)]*)\);", text, re.M):
        out.variables[m.group(1)] = tuple(m.group(2).split())
    for m in re.finditer(r"^domain (ip6?) table filter chain INPUT \{\n(.*?)^\}", text, re.M | re.S):
        family = 4 if m.group(1) == "ip" else 6
        statements = _statements(m.group(2))
        fixed = [s for _, s in statements[:5]]
        assert tuple(fixed[:4]) == BASE, fixed
        out.base[family] = fixed
        out.chains[family] = [parse_line(s, c, out.variables, family) for c, s in statements[5:]]
    assert set(out.chains) == {4, 6}, "a file has an IPv4 and an IPv6 INPUT chain"
    out.preserve = text.split("# Chains this file does not own", 1)[1] if "# Chains this file" in text else ""
    return out

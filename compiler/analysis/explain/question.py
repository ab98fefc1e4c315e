"""The question as written: SOURCE DESTINATION PORT/PROTO parsed into two `Spec`s and a `Query`,
and `ExplainError` for a question explain cannot answer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from netaddr import AddrFormatError, IPNetwork

from ... import model as m
from ...resolve.values import ICMP_TYPES, ICMPV6_TYPES

FAMILIES = (4, 6)
KINDS = ("app", "host", "role", "network", "cluster", "router")
PORTED = ("tcp", "udp", "sctp")
PROTOCOLS = PORTED + ("icmp", "icmpv6")
LOOKS_LIKE_ADDRESS = re.compile(r"^[0-9a-fA-F:.]+(/[0-9]+)?$")


class ExplainError(Exception):
    """A question explain cannot answer: `code` 2 for a malformed one, 1 for a name the policy lacks."""

    def __init__(self, code: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def usage_error(message: str, hint: str | None = None) -> ExplainError:
    return ExplainError(2, message, hint)


def unknown_error(message: str, hint: str | None = None) -> ExplainError:
    return ExplainError(1, message, hint)


@dataclass(frozen=True)
class Query:
    """One protocol and port (or ICMP type and code); None: every port or type of the protocol."""

    protocol: str
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    @property
    def families(self) -> tuple[int, ...]:
        return (4,) if self.protocol == "icmp" else (6,) if self.protocol == "icmpv6" else FAMILIES

    @property
    def dsl(self) -> str:
        """As a port list of the language: `tcp 9092`, `icmp 3 code 4`, `udp`."""
        if self.protocol in PORTED:
            return self.protocol if self.port is None else f"{self.protocol} {self.port}"
        if self.icmp_type is None:
            return self.protocol
        code = f" code {self.icmp_code}" if self.icmp_code is not None else ""
        return f"{self.protocol} {self.icmp_type}{code}"

    def __str__(self) -> str:
        if self.protocol in PORTED and self.port is None:
            return f"{self.protocol} (every port)"
        if self.protocol in ("icmp", "icmpv6") and self.icmp_type is None:
            return f"{self.protocol} (every type)"
        return self.dsl

    def matched_by(self, p: m.PortMatch, family: int) -> bool:
        """Whether every packet of this question matches `p` in this family."""
        if p.protocol == "any":
            return True
        if p.protocol != self.protocol or family not in self.families:
            return False
        if p.protocol in ("icmp", "icmpv6"):
            if p.icmp_type is None:
                return True
            if self.icmp_type != p.icmp_type:
                return False
            return p.icmp_code is None or p.icmp_code == self.icmp_code
        if p.first is None:
            return True
        return self.port is not None and p.first <= self.port <= (p.last if p.last is not None else p.first)

    def distance(self, p: m.PortMatch) -> int:
        """How far `p` is from this question, to rank the nearest statements (0: it matches)."""
        if p.protocol == "any" or self.matched_by(p, self.families[0]):
            return 0
        if p.protocol != self.protocol:
            # the same port of another protocol (a UDP-only service asked for over TCP) comes next
            same = p.protocol in PORTED and self.port is not None and p.first is not None \
                and p.first <= self.port <= (p.last if p.last is not None else p.first)
            return 50_000 if same else 100_000
        if self.protocol in PORTED and self.port is not None and p.first is not None:
            last = p.last if p.last is not None else p.first
            return min(abs(self.port - p.first), abs(self.port - last))
        return 1

    def as_json(self) -> dict:
        return {"protocol": self.protocol, "port": self.port, "icmp_type": self.icmp_type,
                "icmp_code": self.icmp_code, "text": self.dsl}


def parse_query(text: str) -> Query:
    """`9092/tcp`, `53/udp`, `tcp` (every port), `icmp`, `8/icmp`, `echo-request/icmp`, `3/4/icmp`."""
    parts = text.lower().split("/")
    proto = parts[-1]
    example = "write PORT/PROTO: 9092/tcp, 53/udp, tcp, icmp, 8/icmp, 3/4/icmp (type 3 code 4), 128/icmpv6"
    if proto not in PROTOCOLS:
        if len(parts) == 1 and text.isdigit():
            raise usage_error(f"`{text}` is a port without its protocol", f"write `{text}/tcp` or `{text}/udp`")
        if len(parts) == 1:
            raise usage_error(f"the last word must be PORT/PROTO, and `{text}` is not", example)
        raise usage_error(f"`{text}` is not PORT/PROTO: unknown protocol `{proto}`", example)
    args = parts[:-1]
    if proto in PORTED:
        if not args:
            return Query(proto)
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= 65535:
            raise usage_error(f"`{text}` is not PORT/PROTO: a port is a number from 1 to 65535", example)
        return Query(proto, port=int(args[0]))
    if not args:
        return Query(proto)
    if len(args) > 2:
        raise usage_error(f"`{text}` is not an ICMP type: write TYPE/{proto} or TYPE/CODE/{proto}", example)
    names = ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
    if args[0] in names:
        icmp_type = names[args[0]]
    elif args[0].isdigit() and int(args[0]) <= 254:
        icmp_type = int(args[0])
    else:
        raise usage_error(f"`{args[0]}` is not an {proto} type (0 to 254, or a name: {', '.join(sorted(names))})")
    code = None
    if len(args) == 2:
        if not args[1].isdigit() or int(args[1]) > 255:
            raise usage_error(f"`{args[1]}` is not an ICMP code (0 to 255)")
        code = int(args[1])
    return Query(proto, icmp_type=icmp_type, icmp_code=code)


@dataclass(frozen=True)
class Spec:
    """One end as written: a kind and name (`app zotero@wikikube-eqiad`), a bare name, or an address."""

    kind: str | None  # None: a bare name, `internet` or `any`; "address" for an IP or CIDR
    name: str
    cluster: str | None = None
    address: IPNetwork | None = None

    @property
    def text(self) -> str:
        base = self.name if self.kind in (None, "address") else f"{self.kind} {self.name}"
        return base + (f"@{self.cluster}" if self.cluster else "")


def _spec(kind: str | None, word: str) -> Spec:
    name, at, cluster = word.partition("@")
    if at and (kind not in (None, "app") or not cluster or not name):
        raise usage_error(f"`{word}`: only an app is qualified by a cluster, as in `app zotero@wikikube-eqiad`")
    if kind is None and not at and LOOKS_LIKE_ADDRESS.match(word) and ("." in word or ":" in word):
        try:
            net = IPNetwork(word)
        except (AddrFormatError, ValueError):
            raise usage_error(f"`{word}` is not an IP address or CIDR") from None
        if net.ip != net.network:
            raise usage_error(f"`{word}` has host bits set", f"did you mean `{net.cidr}`?")
        return Spec("address", word, address=net)
    return Spec(kind, name, cluster or None)


def parse_words(words: Iterable[str]) -> tuple[Spec, Spec, Query]:
    """`app eventgate-main host kafka1001 9092/tcp`, in any split: each end is a KIND NAME pair,
    a bare name or an address; the last word is PORT/PROTO."""
    tokens = [t for w in words for t in w.split()]
    shape = "expected SOURCE DESTINATION PORT/PROTO, e.g. `app eventgate-main host kafka1001 9092/tcp`"
    if len(tokens) < 3:
        raise usage_error(shape)
    query = parse_query(tokens[-1])
    specs: list[Spec] = []
    rest = tokens[:-1]
    i = 0
    while i < len(rest):
        if rest[i] in KINDS:
            if i + 1 >= len(rest):
                raise usage_error(f"`{rest[i]}` needs a name after it", shape)
            if rest[i + 1] in KINDS:
                raise usage_error(f"`{rest[i]} {rest[i + 1]}`: `{rest[i + 1]}` is a kind, not a name", shape)
            specs.append(_spec(rest[i], rest[i + 1]))
            i += 2
        else:
            specs.append(_spec(None, rest[i]))
            i += 1
    if len(specs) != 2:
        said = ", ".join(f"`{s.text}`" for s in specs)
        raise usage_error(f"{shape}; got {len(specs)} end(s): {said}")
    return specs[0], specs[1], query

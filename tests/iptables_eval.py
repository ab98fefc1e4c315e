"""An independent evaluator of iptables rules, for judging what a compiled ferm file admits.

ferm itself expands a file into `iptables-restore` input (`ferm --noexec --lines --domain ip|ip6`);
this module reads that text and answers "does the filter table's INPUT chain accept this packet?".
It shares no code with netpolc: it is written from iptables(8) and iptables-extensions(8).

What is modelled: the filter table; the INPUT chain and every user chain it jumps to (`--jump`,
`--goto`); chain policies; `-p/--protocol` (names or numbers, `all`), `-s/--source`,
`-d/--destination`, `-i/--in-interface` (with the `+` wildcard), each with `!`; the `tcp`, `udp`,
`sctp` matches' `--dport`/`--sport` (a port or `a:b`, with `!`); `multiport --dports/--sports`
(lists of ports and ranges, with `!`); `state --state` and `conntrack --ctstate`; `icmp
--icmp-type` and `icmp6 --icmpv6-type` (names, numbers, `type/code`, with `!`); targets ACCEPT,
DROP, REJECT, RETURN and user chains; `comment` is ignored. Anything else (another match or
option, another target) raises IptablesError rather than being guessed.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IptablesError(ValueError):
    """Input this evaluator does not model, or that iptables-restore would reject."""


PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "udplite": 136}
PORT_PROTOCOLS = {6, 17, 132, 136}
# iptables' ICMP names (iptables -p icmp -h); a name with a code matches that code only
ICMP_NAMES = {
    "any": (None, None), "echo-reply": (0, None), "pong": (0, None), "destination-unreachable": (3, None),
    "network-unreachable": (3, 0), "host-unreachable": (3, 1), "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3), "fragmentation-needed": (3, 4), "source-route-failed": (3, 5),
    "source-quench": (4, None), "redirect": (5, None), "echo-request": (8, None), "ping": (8, None),
    "router-advertisement": (9, None), "router-solicitation": (10, None), "time-exceeded": (11, None),
    "ttl-exceeded": (11, None), "parameter-problem": (12, None), "timestamp-request": (13, None),
    "timestamp-reply": (14, None), "address-mask-request": (17, None), "address-mask-reply": (18, None),
}
ICMPV6_NAMES = {
    "destination-unreachable": (1, None), "no-route": (1, 0), "communication-prohibited": (1, 1),
    "address-unreachable": (1, 3), "port-unreachable": (1, 4), "packet-too-big": (2, None),
    "time-exceeded": (3, None), "ttl-exceeded": (3, None), "parameter-problem": (4, None),
    "echo-request": (128, None), "ping": (128, None), "echo-reply": (129, None), "pong": (129, None),
    "router-solicitation": (133, None), "router-advertisement": (134, None),
    "neighbour-solicitation": (135, None), "neighbor-solicitation": (135, None),
    "neighbour-advertisement": (136, None), "neighbor-advertisement": (136, None), "redirect": (137, None),
}
STATES = {"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"}
BUILTIN_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN"}
_ADDRESS_KINDS = ("source", "destination", "interface", "state")


@dataclass(frozen=True)
class Packet:
    """What a rule can look at. `protocol` by name (tcp udp sctp icmp icmpv6); `port` the destination
    port, or for ICMP `icmp_type`/`icmp_code`; `state` the conntrack state of the packet."""

    source: IPAddress
    protocol: str
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int = 0
    state: str = "NEW"
    interface: str = "eth0"
    destination: IPAddress | None = None
    source_port: int = 43210

    @property
    def number(self) -> int:
        return PROTOCOLS[self.protocol]

    @property
    def family(self) -> int:
        return self.source.version


@dataclass
class Match:
    """One test of a rule; `negated` inverts it."""

    kind: str  # protocol source destination interface dport sport dports sports state icmp
    value: object
    negated: bool = False


@dataclass
class Rule:
    text: str
    matches: list[Match] = field(default_factory=list)
    target: str | None = None  # None: a rule without a target only counts packets
    goto: bool = False


@dataclass
class Chain:
    name: str
    policy: str | None  # built-in chains only
    rules: list[Rule] = field(default_factory=list)


class Table:
    """The filter table of one family, read from iptables-restore text."""

    def __init__(self, text: str, family: int):
        self.family = family
        self.chains: dict[str, Chain] = {}
        self._cache: dict[tuple, list[Rule]] = {}
        self._read(text)
        for chain in self.chains.values():
            for rule in chain.rules:
                if rule.target not in BUILTIN_TARGETS | {None} and rule.target not in self.chains:
                    raise IptablesError(f"{rule.text}: no chain {rule.target}")
        if "INPUT" not in self.chains:
            raise IptablesError("the filter table has no INPUT chain")

    def _read(self, text: str) -> None:
        table = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                continue
            if line == "COMMIT":
                table = None
                continue
            if table != "filter":
                continue
            if line.startswith(":"):
                name, policy = line[1:].split()[:2]
                self.chains[name] = Chain(name, None if policy == "-" else policy)
            elif line.startswith(("-A ", "--append ")):
                words = shlex.split(line)
                chain = words[1]
                if chain not in self.chains:
                    raise IptablesError(f"{line}: chain {chain} is not declared")
                self.chains[chain].rules.append(parse_rule(words[2:], self.family, line))
            else:
                raise IptablesError(f"not modelled: {line}")

    # ------------------------------------------------------------------ evaluation
    def verdict(self, packet: Packet) -> tuple[bool, str]:
        """Whether INPUT accepts the packet, and the rule (or policy) that decided."""
        if packet.family != self.family:
            raise ValueError(f"an IPv{packet.family} packet for the IPv{self.family} table")
        decision = self._run("INPUT", packet, depth=0)
        if decision is not None:
            return decision
        policy = self.chains["INPUT"].policy
        return policy == "ACCEPT", f"policy {policy}"

    def accepts(self, packet: Packet) -> bool:
        return self.verdict(packet)[0]

    def _candidates(self, name: str, packet: Packet) -> list[Rule]:
        """The chain's rules whose address, interface and state tests pass: they depend on none of
        the packet's protocol fields, so many probes from one source share the list."""
        key = (name, packet.source, packet.destination, packet.interface, packet.state)
        if key not in self._cache:
            self._cache[key] = [r for r in self.chains[name].rules
                                if all(_matches(m, packet) for m in r.matches if m.kind in _ADDRESS_KINDS)]
        return self._cache[key]

    def _run(self, name: str, packet: Packet, depth: int) -> tuple[bool, str] | None:
        """The decision of a chain, or None when it falls off its end or RETURNs."""
        if depth > 50:
            raise IptablesError("chains jump too deep (a loop?)")
        for rule in self._candidates(name, packet):
            if not all(_matches(m, packet) for m in rule.matches):
                continue
            if rule.target in ("ACCEPT", "DROP", "REJECT"):
                return rule.target == "ACCEPT", rule.text
            if rule.target == "RETURN":
                return None
            if rule.target is None:
                continue
            decision = self._run(rule.target, packet, depth + 1)
            if decision is not None or rule.goto:
                return decision
        return None


def parse_rule(words: list[str], family: int, text: str) -> Rule:
    rule = Rule(text)
    negate = False
    loaded: set[str] = set()
    i = 0

    def value() -> str:
        nonlocal i
        if i + 1 >= len(words):
            raise IptablesError(f"{text}: {words[i]} needs a value")
        i += 1
        return words[i]

    def add(kind: str, v: object) -> None:
        nonlocal negate
        rule.matches.append(Match(kind, v, negate))
        negate = False

    while i < len(words):
        w = words[i]
        if w == "!":
            negate = True
        elif w in ("-p", "--protocol"):
            add("protocol", _protocol(value(), text))
        elif w in ("-s", "--source", "--src"):
            add("source", _network(value(), family, text))
        elif w in ("-d", "--destination", "--dst"):
            add("destination", _network(value(), family, text))
        elif w in ("-i", "--in-interface"):
            add("interface", value())
        elif w in ("-m", "--match"):
            name = value()
            if name not in ("state", "conntrack", "tcp", "udp", "sctp", "multiport", "icmp", "icmp6", "comment"):
                raise IptablesError(f"{text}: match {name} is not modelled")
            loaded.add(name)
        elif w in ("--dport", "--destination-port", "--sport", "--source-port"):
            kind = "dport" if w in ("--dport", "--destination-port") else "sport"
            add(kind, (_port_range(value(), text),))
        elif w in ("--dports", "--destination-ports", "--sports", "--source-ports"):
            if "multiport" not in loaded:
                raise IptablesError(f"{text}: {w} needs -m multiport")
            kind = "dport" if w in ("--dports", "--destination-ports") else "sport"
            add(kind, tuple(_port_range(p, text) for p in value().split(",")))
        elif w in ("--state", "--ctstate"):
            states = set(value().split(","))
            if not states <= STATES:
                raise IptablesError(f"{text}: states {sorted(states - STATES)}")
            add("state", frozenset(states))
        elif w in ("--icmp-type", "--icmpv6-type"):
            if (w == "--icmp-type") != (family == 4):
                raise IptablesError(f"{text}: {w} in an IPv{family} table")
            add("icmp", _icmp_type(value(), family, text))
        elif w in ("--comment",):
            value()
        elif w in ("-j", "--jump", "-g", "--goto"):
            rule.target = value()
            rule.goto = w in ("-g", "--goto")
        else:
            raise IptablesError(f"{text}: option {w!r} is not modelled")
        i += 1
    if negate:
        raise IptablesError(f"{text}: a trailing '!'")
    _check_ports_have_protocol(rule)
    return rule


def _check_ports_have_protocol(rule: Rule) -> None:
    """iptables refuses --dport without `-p tcp|udp|sctp` (the port match needs the protocol)."""
    needs = any(m.kind in ("dport", "sport") for m in rule.matches)
    protos = [m for m in rule.matches if m.kind == "protocol" and not m.negated]
    if needs and not any(p.value in PORT_PROTOCOLS for p in protos):
        raise IptablesError(f"{rule.text}: ports without -p tcp, udp or sctp")
    if any(m.kind == "icmp" for m in rule.matches) and not any(p.value in (1, 58) for p in protos):
        raise IptablesError(f"{rule.text}: an ICMP type without -p icmp")


def _protocol(text: str, where: str) -> int | None:
    t = text.lower()
    if t == "all" or t == "0":
        return None
    if t in PROTOCOLS:
        return PROTOCOLS[t]
    if t.isdigit() and 0 < int(t) < 256:
        return int(t)
    raise IptablesError(f"{where}: protocol {text!r}")


def _network(text: str, family: int, where: str):
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise IptablesError(f"{where}: {text!r} is not an address") from err
    if net.version != family:
        raise IptablesError(f"{where}: {text} in an IPv{family} table")
    return net


def _port_range(text: str, where: str) -> tuple[int, int]:
    lo, _, hi = text.partition(":")
    try:
        a, b = int(lo or 0), int(hi or 65535) if ":" in text else int(lo)
    except ValueError as err:
        raise IptablesError(f"{where}: port {text!r}") from err
    if not 0 <= a <= b <= 65535:
        raise IptablesError(f"{where}: port range {text!r}")
    return a, b


def _icmp_type(text: str, family: int, where: str) -> tuple[int | None, int | None]:
    names = ICMP_NAMES if family == 4 else ICMPV6_NAMES
    if text in names:
        return names[text]
    t, _, c = text.partition("/")
    if t.isdigit() and (not c or c.isdigit()):
        return int(t), (int(c) if c else None)
    raise IptablesError(f"{where}: ICMP type {text!r}")


def _matches(match: Match, packet: Packet) -> bool:
    return _test(match, packet) != match.negated


def _test(match: Match, p: Packet) -> bool:
    kind, v = match.kind, match.value
    if kind == "protocol":
        return v is None or p.number == v
    if kind == "source":
        return p.source in v
    if kind == "destination":
        return p.destination is not None and p.destination in v
    if kind == "interface":
        name = str(v)
        return p.interface.startswith(name[:-1]) if name.endswith("+") else p.interface == name
    if kind in ("dport", "sport"):
        port = p.port if kind == "dport" else p.source_port
        return p.number in PORT_PROTOCOLS and port is not None and any(lo <= port <= hi for lo, hi in v)
    if kind == "state":
        return p.state in v
    if kind == "icmp":
        icmp_type, icmp_code = v
        if p.protocol not in ("icmp", "icmpv6"):
            return False
        return (icmp_type is None or p.icmp_type == icmp_type) and (icmp_code is None or p.icmp_code == icmp_code)
    raise AssertionError(kind)


def split_by_family(text: str) -> dict[int, str]:
    """ferm's output for both domains, split at its `# Generated by ferm ... (ip6tables-...)` headers."""
    out: dict[int, list[str]] = {}
    family = None
    for line in text.splitlines():
        if line.startswith("# Generated by ferm"):
            family = 6 if "ip6tables" in line else 4
        if family is not None:
            out.setdefault(family, []).append(line)
    return {f: "\n".join(lines) + "\n" for f, lines in out.items()}

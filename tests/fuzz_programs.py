"""Hypothesis strategies that write valid netpolc programs.

Two generators, both derived from the language rather than from one sample policy:

- `grammar_programs()` walks the rules of `grammar/netpolc.lark` as the compiler loads them
  (lark's BNF expansion of the EBNF), so every statement kind, option and list shape is reachable
  and a new rule in the grammar is fuzzed without touching this file. The text always parses; it
  rarely resolves, since names and addresses are drawn independently.
- `estates()` builds a coherent estate statement kind by statement kind (docs/language.md): sites
  with L2 and L3 rows, hosts numbered inside their subnets, roles, services, networks that refer
  only to earlier ones, a cluster, apps and their rules. Names and values are drawn so that most
  programs also resolve and compile, which carries the fuzzing into the resolver, the analyses and
  the backends.
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st
from lark import Lark
from lark.grammar import NonTerminal, Terminal

GRAMMAR = Path(__file__).resolve().parent.parent / "grammar" / "netpolc.lark"


@functools.cache
def grammar() -> Lark:
    """The language's grammar as lark compiles it (read here, not through the compiler's parser,
    whose lexer may change: the fuzzer must not depend on how the compiler reads the text)."""
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual")


def keywords() -> set[str]:
    return {t.pattern.value for t in grammar().terminals if t.pattern.type == "str" and t.pattern.value[:1].isalpha()}

# ------------------------------------------------------------------ (1) from the grammar's rules

# values for the grammar's named terminals: valid for the lexer, odd ones included for the resolver
NAMES = ["eqiad", "codfw", "a", "b2", "e1", "cr1-eqiad", "kafka1001", "k8s-worker", "web", "api", "dns",
         "internal", "echo-request", "x_y", "a.b", "Upper", "n" * 70, "etcd", "tor"]
INTS = ["0", "1", "3", "22", "53", "80", "179", "443", "9092", "65535", "65536", "64601", "4294967296"]
ADDRESSES = ["10.64.0.10", "10.0.0.0/8", "10.64.0.0/22", "208.80.154.196", "0.0.0.0/0", "2620:0:861:101::10",
             "2620:0:861:101::/64", "::/0", "::1", "fe80::1/10", "10.0.0.256", "1.2.3.4/33", "::ffff:10.0.0.1"]
STRINGS = ['"text"', '""', '"with \\" quote"', '"\u00e9t\u00e9 \u2603"']
DATES = ["2027-06-30", "2020-01-01", "2026-02-30"]
# more names that lex as NAME wherever a name may stand (no keyword, not even a contextual one);
# drawn from a fixed pool, as a regex strategy per name would overrun hypothesis's buffer
_POOL = random.Random(8)
MORE_NAMES = sorted({n for n in ("".join(_POOL.choice("abcdefghijklmnopqrstuvwxyz0123456789-")
                                         for _ in range(_POOL.randint(0, 12))) for _ in range(200))
                     if f"z{n}" not in keywords()})
MORE_NAMES = [f"z{n}" for n in MORE_NAMES]


@functools.cache
def _rules() -> dict[str, list[tuple]]:
    """Each non-terminal to its expansions, as lark compiled the grammar."""
    out: dict[str, list[tuple]] = {}
    for rule in grammar().rules:
        out.setdefault(rule.origin.name, []).append(tuple(rule.expansion))
    return out


@functools.cache
def _literals() -> dict[str, str]:
    """Anonymous and keyword terminals to their text (`LBRACE` -> `{`)."""
    return {t.name: t.pattern.value for t in grammar().terminals if t.pattern.type == "str"}


@functools.cache
def _cost() -> dict[str, int]:
    """The fewest tokens each non-terminal can derive: the walk takes that way out when deep."""
    rules = _rules()
    cost = {name: 10**9 for name in rules}
    changed = True
    while changed:
        changed = False
        for name, expansions in rules.items():
            for exp in expansions:
                c = sum(1 if isinstance(sym, Terminal) else cost[sym.name] for sym in exp)
                if c < cost[name]:
                    cost[name], changed = c, True
    return cost


@functools.cache
def _weights() -> dict[str, list[int]]:
    """Per expansion, 1 + the rules it can reach: the walk enters deep statements (rows, racks, hosts)
    as often as shallow ones would otherwise crowd them out."""
    rules = _rules()
    reach = {name: {name} for name in rules}
    changed = True
    while changed:
        changed = False
        for name, expansions in rules.items():
            for exp in expansions:
                for sym in exp:
                    if isinstance(sym, NonTerminal) and not reach[sym.name] <= reach[name]:
                        reach[name] |= reach[sym.name]
                        changed = True
    out = {}
    for name, expansions in rules.items():
        raw = [1 + len(set().union(*(reach[s.name] for s in exp if isinstance(s, NonTerminal))))
               for exp in expansions]
        out[name] = [max(w, max(raw) // 2) for w in raw]  # and the small ones not starved
    return out


INT_VALUES = INTS + [str(n) for n in random.Random(9).sample(range(70000), 40)]
# terminal values per named terminal (keywords and punctuation are their own text)
VALUES = {"NAME": NAMES + MORE_NAMES, "INT": INT_VALUES, "ADDRESS": ADDRESSES, "STRING": STRINGS, "DATE": DATES}
SEPARATORS = [" ", " ", " ", "\n", "\n  ", "\t", " # comment\n"]


def derive(pick: Callable[[int], int], pick_value: Callable[[int], int], max_depth: int = 16,
           max_repeat: int = 3) -> str:
    """Text derived from the grammar's start rule: `pick(n)` chooses among n expansions,
    `pick_value(n)` among n token values or separators (each an index below n).

    Depth counts nesting into other rules; a list (a rule that recurs into itself) may repeat
    `max_repeat` times. Past either bound the walk takes the cheapest expansion, so it ends.
    """
    rules, cost, literals = _rules(), _cost(), _literals()
    out: list[str] = []

    def exp_cost(exp: tuple) -> int:
        return sum(1 if isinstance(s, Terminal) else cost[s.name] for s in exp)

    def expand(sym, depth: int, repeat: int) -> None:
        if isinstance(sym, Terminal):
            if sym.name in literals:
                out.append(literals[sym.name])
            else:
                values = VALUES[sym.name]
                out.append(values[pick_value(len(values))])
            out.append(SEPARATORS[pick_value(len(SEPARATORS))])
            return
        expansions = rules[sym.name]
        if depth >= max_depth or repeat >= max_repeat:
            exp = min(expansions, key=exp_cost)
        else:
            # weighted by what each can reach; or the longest: optional parts present, blocks not empty
            weights = _weights()[sym.name]
            n = pick(sum(weights) + max(weights))
            exp = max(expansions, key=len)
            for candidate, weight in zip(expansions, weights, strict=True):
                if n < weight:
                    exp = candidate
                    break
                n -= weight
        for s in exp:
            if isinstance(s, NonTerminal) and s.name == sym.name:
                expand(s, depth, repeat + 1)
            else:
                expand(s, depth + 1, 0)

    expand(NonTerminal("start"), 0, 0)
    return "".join(out)


def random_program(seed: int) -> str:
    """`derive` with choices from a seeded generator: the same program for the same seed."""
    rng = random.Random(seed)
    return derive(rng.randrange, rng.randrange)


@st.composite
def grammar_programs(draw) -> str:
    """`derive` with hypothesis making the structural choices (so it can shrink them).

    Tokens and layout come from one drawn seed: a draw for each would overrun hypothesis's
    buffer on large programs and bias the examples towards small ones.
    """
    rng = random.Random(draw(st.integers(0, 2**32)))
    return derive(lambda n: draw(st.integers(0, n - 1)), rng.randrange)


# ------------------------------------------------------------------ (2) coherent estates

PORTS = st.integers(1, 65535)
ICMP = ["icmp echo-request", "icmp 3 code 4", "icmp 8", "icmpv6", "icmpv6 echo-request", "icmp"]
_STEMS = ["db", "web", "kafka", "kube", "mw", "cache", "lvs", "ms", "an", "ores"]


def _name(draw, prefix: str, i: int) -> str:
    """A unique DNS label: a drawn stem, the kind's prefix and the index."""
    return f"{draw(st.sampled_from(_STEMS))}-{prefix}{i}"


def _desc(draw) -> str:
    return draw(st.sampled_from(["", "", ' description "why"', ' description "\u00e9t\u00e9"']))


def _port_item(draw, services: list[str]) -> str:
    kind = draw(st.sampled_from(["proto", "proto", "range", "icmp", "service", "any", "proto-only"]))
    if kind == "service" and services:
        return f"service {draw(st.sampled_from(services))}"
    if kind == "icmp":
        return draw(st.sampled_from(ICMP))
    if kind == "any":
        return "any"
    proto = draw(st.sampled_from(["tcp", "udp", "sctp"]))
    if kind == "proto-only":
        return proto
    lo = draw(PORTS)
    if kind == "range":
        return f"{proto} {lo}-{draw(st.integers(lo, 65535))}"
    return f"{proto} {lo}"


def _port_list(draw, services: list[str]) -> str:
    return ", ".join(_port_item(draw, services) for _ in range(draw(st.integers(1, 3))))


@st.composite
def estates(draw) -> dict[str, str]:
    """A policy folder's files: {relative path: text}, mostly resolvable."""
    roles = [f"r{i}" for i in range(draw(st.integers(1, 4)))]
    hosts: list[tuple[str, str, str]] = []  # (name, site, row)
    sites: list[str] = []
    racks: list[str] = []
    rows: list[str] = []
    l3_rows: set[str] = set()  # whose racks have a ToR to peer with
    routed: set[str] = set()  # sites with a router
    blocks: list[str] = []
    asns = iter(range(64600, 64700))
    for si in range(draw(st.integers(1, 2))):
        site = f"s{si}"
        sites.append(site)
        lines = [f"site {site} {{" + _desc(draw).replace(" description", "\n  description")]
        routers = draw(st.integers(0, 2))
        if routers:
            routed.add(site)
        for ri in range(routers):
            v6 = f" 2620:0:{si}:ffff::{ri + 1}" if draw(st.booleans()) else ""
            lines.append(f"  router cr{ri}-{site} loopback 198.51.{si}.{ri + 1}{v6} asn 14907{_desc(draw)}")
        if routers and draw(st.booleans()):
            ups = ", ".join(f"cr{ri}-{site}" for ri in range(routers))
            lines.append(f"  spine ssw-{site} asn {next(asns)} uplink {ups}")
        for wi in range(draw(st.integers(1, 3))):
            row = f"w{wi}"
            rows.append(f"{site}/{row}")
            l3 = draw(st.booleans())
            if l3:
                l3_rows.add(f"{site}/{row}")
            lines.append(f"  row {row} {{")
            net = ipaddress.ip_network(f"10.{si}.{wi * 16}.0/22")
            if not l3:
                lines.append(f"    switch asw-{row}-{site}")
                lines.append(f"    subnet {net} 2620:0:{si}:{wi}::/64{_desc(draw)}")
                lines.append(f"    gateway {net[1]} 2620:0:{si}:{wi}::1")
            for ki in range(draw(st.integers(1, 2))):
                rack = f"k{wi}{ki}"
                racks.append(f"{site}/{rack}")
                lines.append(f"    rack {rack} {{")
                base = net
                if l3:
                    base = ipaddress.ip_network(f"10.{si}.{wi * 16 + 4 + ki}.0/24")
                    lines.append(f"      switch tor-{rack}-{site} asn {next(asns)}")
                    lines.append(f"      subnet {base}")
                    lines.append(f"      gateway {base[1]}")
                for hi in range(draw(st.integers(0, 4))):
                    name = _name(draw, f"{site}{rack}h", hi)
                    addr = base[10 + ki * 20 + hi]
                    own = draw(st.lists(st.sampled_from(roles), unique=True, max_size=2))
                    tail = f" roles {', '.join(own)}" if own else ""
                    lines.append(f"      host {name} {addr}{tail}{_desc(draw)}")
                    hosts.append((name, site, row))
                lines.append("    }")
            lines.append("  }")
        lines.append("}")
        blocks.append("\n".join(lines))
    files = {"sites.npl": "\n\n".join(blocks) + "\n"}

    services = [f"svc{i}" for i in range(draw(st.integers(0, 3)))]
    svc_lines = []
    for i, svc in enumerate(services):
        svc_lines.append(f"service {svc} = {_port_list(draw, services[:i])}{_desc(draw)}")

    networks = [f"net{i}" for i in range(draw(st.integers(0, 3)))]

    # networks holding `any` (egress to them is E703) and those holding any address at all (`any`
    # or `internet`: an `allow` from them to a sensitive port needs `exposed`, E701)
    holds_any: set[str] = set()
    holds_everything: set[str] = set()

    def peer(allow_apps: bool, nets: list[str], egress: bool = False) -> str:
        if egress:  # egress to every address must say `internet` (E703)
            nets = [n for n in nets if n not in holds_any]
        kinds = ["role", "host", "address", "any", "internet", "rack", "row", "site", "network"]
        if allow_apps and apps:
            kinds.append("app")
        kind = draw(st.sampled_from(kinds))
        if kind == "role":
            return f"role {draw(st.sampled_from(roles))}"
        if kind == "host" and hosts:
            return f"host {draw(st.sampled_from(hosts))[0]}"
        if kind == "rack":
            return f"rack {draw(st.sampled_from(racks))}"
        if kind == "row":
            return f"row {draw(st.sampled_from(rows))}"
        if kind == "site":
            return f"site {draw(st.sampled_from(sites))}"
        if kind == "network" and nets:
            return f"network {draw(st.sampled_from(nets))}"
        if kind == "app":
            return f"app {draw(st.sampled_from(apps))}"
        if kind in ("any", "internet"):
            return "internet" if egress else kind
        return draw(st.sampled_from(["192.0.2.0/24", "203.0.113.7", "2001:db8::/48", "172.16.0.0/12"]))

    def peers(allow_apps: bool, nets: list[str], egress: bool = False) -> str:
        return ", ".join(peer(allow_apps, nets, egress) for _ in range(draw(st.integers(1, 3))))

    def statement(verb: str, ports: str, allow_apps: bool, nets: list[str]) -> str:
        """A rule; one from every address says `exposed` (E701 otherwise, W006 where nothing sensitive)."""
        prep = "from" if verb == "allow" else "to"
        text = peers(allow_apps, nets, egress=verb == "connect")
        words = set(text.replace(",", " ").split())
        wide = {"any", "internet"} & words or holds_everything & words
        exposed = ' exposed "fuzzed"' if verb == "allow" and wide else ""
        return f"{verb} {ports}{prep} {text}{exposed}"

    apps: list[str] = []
    net_lines = []
    for i, net in enumerate(networks):
        exc = ""
        if draw(st.booleans()):
            exc = " except " + draw(st.sampled_from(["10.0.0.0/24", "203.0.113.7", "2001:db8::1"]))
        members = peers(False, networks[:i])
        words = set(members.replace(",", " ").split())
        if "any" in words or holds_any & words:
            holds_any.add(net)
        if {"any", "internet"} & words or holds_everything & words:
            holds_everything.add(net)
        net_lines.append(f"network {net} = {members}{exc}{_desc(draw)}")
    files["names.npl"] = "\n".join(svc_lines + net_lines) + "\n"

    # per site, maybe a cluster over one row's hosts, peering with the site's routers or its ToRs
    cluster_lines: list[str] = []
    clusters: list[str] = []
    for si, site in enumerate(sites):
        here = [r for r in rows if r.startswith(site + "/")]
        node_row = draw(st.sampled_from(here))
        # peer with what exists: the site's routers, or the ToRs of an L3 row (else R105, R106)
        modes = (["routers"] if site in routed else []) + (["tor"] if node_row in l3_rows else [])
        if not modes or not any(h[1] == site for h in hosts) or not draw(st.booleans()):
            continue
        name = f"k8s-{site}"
        clusters.append(name)
        lines = [f"cluster {name} {{", f"  site {site}", f"  asn {64512 + si}",
                 f"  pods 10.200.{si * 8}.0/21", f"  services 10.210.{si}.0/24",
                 f"  nodes row {node_row}", "  peer-with " + draw(st.sampled_from(modes))]
        goals = draw(st.lists(st.sampled_from(["control-plane", "etcd", "survive", "single-uplink"]),
                              unique=True, max_size=3)) if not draw(st.integers(0, 2)) else []
        for setting in goals:  # design goals: often not met (R1xx), so only in a third of clusters
            if setting in ("control-plane", "etcd"):
                lines.append(f"  {setting} row {draw(st.sampled_from(here))}")
            elif setting == "survive":
                lines.append("  survive " + ", ".join(draw(st.lists(
                    st.sampled_from(["router", "switch", "rack", "row"]), unique=True, min_size=1, max_size=2))))
            else:
                lines.append(f"  single-uplink max-share {draw(st.integers(1, 100))}%")
        cluster_lines += lines + ["}"]
    files["clusters.npl"] = "\n".join(cluster_lines) + "\n"

    apps = [f"app{i}" for i in range(draw(st.integers(0, 3)))] if clusters else []
    intent = []
    # an ssh-gateway role needs every firewall to admit SSH from it (the lock-out guard, F001)
    gateway = draw(st.booleans())
    # the default role is never given to a host nor named as a peer (E609): it is not in `roles`
    for role in roles + (["base"] if gateway or draw(st.booleans()) else []):
        default = "default " if role == "base" else ""
        body = []
        if role == roles[0] and gateway:
            body.append("  ssh-gateway")
        if role == "base" and gateway:
            body.append(f"  allow tcp 22 from role {roles[0]}")
        if role != "base" and not draw(st.integers(0, 5)):
            body.append("  firewall none")
        for _ in range(draw(st.integers(0, 3))):
            verb = draw(st.sampled_from(["allow", "connect"]))
            body.append(f"  {statement(verb, _port_list(draw, services) + ' ', False, networks)}{_options(draw)}")
        intent.append(f"{default}role {role} {{\n" + "\n".join(body) + "\n}")
    # the default app, like the default role, is no peer (E609): it is not in `apps`
    for app in apps + (["every-app"] if apps and not draw(st.integers(0, 3)) else []):
        default = "default " if app == "every-app" else ""
        mine = draw(st.lists(st.sampled_from(clusters), unique=True, min_size=1)) if not default else []
        body = [f"  clusters {', '.join(mine)}", f"  namespace ns-{app}"] if mine else []
        listen = mine and draw(st.booleans())
        if listen:
            body.append(f"  listen tcp {draw(PORTS)}")
        for _ in range(draw(st.integers(0, 3))):
            verb = draw(st.sampled_from(["allow", "connect"]))
            ports = "" if listen and verb == "allow" and draw(st.booleans()) else _port_list(draw, services) + " "
            scope = f" in cluster {mine[0]}" if mine and not draw(st.integers(0, 3)) else ""
            body.append(f"  {statement(verb, ports, True, networks)}{_options(draw)}{scope}")
        intent.append(f"{default}app {app} {{\n" + "\n".join(body) + "\n}")
    files["intent.npl"] = "\n\n".join(intent) + "\n"
    return files


def _options(draw) -> str:
    return draw(st.sampled_from(["", "", "", ' description "because"', " expires 2027-06-30",
                                 " expires 2020-01-01", ' expires 2027-01-01 description "until"']))

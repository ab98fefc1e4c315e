"""Why one connection is allowed or denied: the analysis behind `netpolc explain`.

A question is (source, destination, protocol and port). Each end is resolved from the model into
*parties*: an app in one cluster (its pods, addressed from the cluster's pod ranges), a host (its
addresses), or a set of addresses (a network, a cluster's pods, a router, a CIDR, an address
outside the estate, `internet`, `any`). A role stands for each of its hosts; an app for each of
its clusters.

For each pair of parties and each address family, both policed ends must allow the connection:
- the source, when it is an app: the Calico egress of its pods in its cluster (the flows whose
  source is the app or every app, in that cluster, and the built-in ICMP of the default deny);
- the destination, when it is an app: the Calico ingress of its pods likewise; when it is a host
  with a firewall: what `analysis.host_firewalls()` says the host admits, and the ICMP lines every
  ferm file starts with. Hosts send unfiltered (ferm owns INPUT only), addresses are not policed.
Calico matches a peer by label only for an app of the local cluster; everything else, an app of
another cluster included, by address. So a far end is matched by a rule when its addresses of the
family all lie in the rule's peer (a `network kubepods` rule matches every pod), or by label.

The decision is made on the model. The compiled files (`{path: bytes}`, as the backends render
them) are then read to find the lines that implement it: the Calico rule of the policy that holds
the statement (by its `netpolc.io/source` annotation and its place in the YAML text) and the ferm
line after the statement's `# file:line` comment. The files are also judged on their own, and a
disagreement with the model is reported as a problem (it would be a bug in a backend).

When an end denies, the statements that come nearest are given: the same peer on other ports, the
same port from or to a peer that does not hold the far end (or holds only part of it), a statement
that holds only in another cluster, or another owner that is allowed it; and a hint of what to
write.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import yaml
from netaddr import AddrFormatError, IPAddress, IPNetwork, IPSet

from .. import model as m
from ..diagnostics import Span
from ..resolve.endpoints import ANY, SPECIAL_PURPOSE
from ..resolve.values import ICMP_TYPES, ICMPV6_TYPES
from . import host_firewalls
from .hostfw import Admit, summary

FAMILIES = (4, 6)
KINDS = ("app", "host", "role", "network", "cluster", "router")
PORTED = ("tcp", "udp", "sctp")
PROTOCOLS = PORTED + ("icmp", "icmpv6")
FULL, PARTIAL, NONE = "full", "partial", "none"
ALLOWED, DENIED, NOT_POLICED, UNKNOWN, NA = "allowed", "denied", "not policed", "unknown", "n/a"

# What the backends add on their own; explain must know them to judge, the files confirm them.
CALICO_BUILTIN = (("icmp", 3, 4, "built in: ICMP fragmentation needed (path MTU discovery)"),
                  ("icmpv6", 2, None, "built in: ICMPv6 packet too big (path MTU discovery)"),
                  ("icmpv6", 133, None, "built in: ICMPv6 router solicitation"),
                  ("icmpv6", 134, None, "built in: ICMPv6 router advertisement"),
                  ("icmpv6", 135, None, "built in: ICMPv6 neighbour solicitation"),
                  ("icmpv6", 136, None, "built in: ICMPv6 neighbour advertisement"))
FERM_ICMPV6 = (1, 2, 3, 4, 128, 133, 134, 135, 136, 137)
SET_SELECTOR = re.compile(r"^netpolc\.io/set == '([^']*)'$")
APP_SELECTOR = re.compile(r"^app == '([^']*)'$")
NAMESPACE_SELECTOR = re.compile(r"^projectcalico\.org/name == '([^']*)'$")
CALICO_PROTOCOL = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "ICMP": "icmp", "ICMPv6": "icmpv6"}
FERM_PROTOCOL = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp": "icmp", "ipv6-icmp": "icmpv6"}
LOOKS_LIKE_ADDRESS = re.compile(r"^[0-9a-fA-F:.]+(/[0-9]+)?$")


class ExplainError(Exception):
    """A question explain cannot answer: `code` 2 for a malformed one, 1 for a name the policy lacks."""

    def __init__(self, code: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def _usage(message: str, hint: str | None = None) -> ExplainError:
    return ExplainError(2, message, hint)


def _unknown(message: str, hint: str | None = None) -> ExplainError:
    return ExplainError(1, message, hint)


# ============================================================================ the question
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
            raise _usage(f"`{text}` is a port without its protocol", f"write `{text}/tcp` or `{text}/udp`")
        if len(parts) == 1:
            raise _usage(f"the last word must be PORT/PROTO, and `{text}` is not", example)
        raise _usage(f"`{text}` is not PORT/PROTO: unknown protocol `{proto}`", example)
    args = parts[:-1]
    if proto in PORTED:
        if not args:
            return Query(proto)
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= 65535:
            raise _usage(f"`{text}` is not PORT/PROTO: a port is a number from 1 to 65535", example)
        return Query(proto, port=int(args[0]))
    if not args:
        return Query(proto)
    if len(args) > 2:
        raise _usage(f"`{text}` is not an ICMP type: write TYPE/{proto} or TYPE/CODE/{proto}", example)
    names = ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
    if args[0] in names:
        icmp_type = names[args[0]]
    elif args[0].isdigit() and int(args[0]) <= 254:
        icmp_type = int(args[0])
    else:
        raise _usage(f"`{args[0]}` is not an {proto} type (0 to 254, or a name: {', '.join(sorted(names))})")
    code = None
    if len(args) == 2:
        if not args[1].isdigit() or int(args[1]) > 255:
            raise _usage(f"`{args[1]}` is not an ICMP code (0 to 255)")
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
        raise _usage(f"`{word}`: only an app is qualified by a cluster, as in `app zotero@wikikube-eqiad`")
    if kind is None and not at and LOOKS_LIKE_ADDRESS.match(word) and ("." in word or ":" in word):
        try:
            net = IPNetwork(word)
        except (AddrFormatError, ValueError):
            raise _usage(f"`{word}` is not an IP address or CIDR") from None
        if net.ip != net.network:
            raise _usage(f"`{word}` has host bits set", f"did you mean `{net.cidr}`?")
        return Spec("address", word, address=net)
    return Spec(kind, name, cluster or None)


def parse_words(words: Iterable[str]) -> tuple[Spec, Spec, Query]:
    """`app eventgate-main host kafka1001 9092/tcp`, in any split: each end is a KIND NAME pair,
    a bare name or an address; the last word is PORT/PROTO."""
    tokens = [t for w in words for t in w.split()]
    shape = "expected SOURCE DESTINATION PORT/PROTO, e.g. `app eventgate-main host kafka1001 9092/tcp`"
    if len(tokens) < 3:
        raise _usage(shape)
    query = parse_query(tokens[-1])
    specs: list[Spec] = []
    rest = tokens[:-1]
    i = 0
    while i < len(rest):
        if rest[i] in KINDS:
            if i + 1 >= len(rest):
                raise _usage(f"`{rest[i]}` needs a name after it", shape)
            if rest[i + 1] in KINDS:
                raise _usage(f"`{rest[i]} {rest[i + 1]}`: `{rest[i + 1]}` is a kind, not a name", shape)
            specs.append(_spec(rest[i], rest[i + 1]))
            i += 2
        else:
            specs.append(_spec(None, rest[i]))
            i += 1
    if len(specs) != 2:
        said = ", ".join(f"`{s.text}`" for s in specs)
        raise _usage(f"{shape}; got {len(specs)} end(s): {said}")
    return specs[0], specs[1], query


# ============================================================================ parties
@dataclass(frozen=True)
class Party:
    """A resolved end. `kind`: app (pods of `name` in `cluster`), host, pods (an address in a pod
    range, app unknown), or an address kind (network, cluster, router, cidr, outside, internet, any)."""

    kind: str
    name: str
    label: str
    cidrs: tuple[IPNetwork, ...]
    peer: str  # the end as a peer of the language, for hints
    cluster: str | None = None
    note: str | None = None

    @functools.cached_property
    def _sets(self) -> dict[int, IPSet]:
        return {f: IPSet(c for c in self.cidrs if c.version == f) for f in FAMILIES}

    def of(self, family: int) -> IPSet:
        return self._sets[family]

    def as_json(self) -> dict:
        out = {"kind": self.kind, "name": self.name, "label": self.label, "addresses": [str(c) for c in self.cidrs]}
        if self.cluster:
            out["cluster"] = self.cluster
        if self.note:
            out["note"] = self.note
        return out


@functools.lru_cache(maxsize=4096)
def _ipset(cidrs: tuple[IPNetwork, ...], family: int) -> IPSet:
    """The addresses of one family, as a set (cached: parties and grants ask again and again)."""
    return IPSet(c for c in cidrs if c.version == family)


def estate_addresses(model: m.Model) -> IPSet:
    """Every address the estate declares: subnets, gateways, pod and service ranges, loopbacks, hosts."""
    nets: list[IPNetwork] = []
    for place in (*model.rows.values(), *model.racks.values()):
        nets += place.subnets
        nets += (IPNetwork(g) for g in place.gateways)
    for c in model.clusters.values():
        nets += c.pod_cidrs + c.service_cidrs
    for r in model.routers.values():
        nets += (IPNetwork(a) for a in r.loopbacks)
    for h in model.hosts.values():
        nets += (IPNetwork(a) for a in h.addresses)
    return IPSet(nets)


def _nets(ipset: IPSet) -> tuple[IPNetwork, ...]:
    return tuple(sorted(ipset.iter_cidrs(), key=lambda n: (n.version, n)))


def _host_party(model: m.Model, name: str, only: IPAddress | None = None) -> Party:
    host = model.hosts[name]
    addresses = (only,) if only is not None else host.addresses
    label = f"host {name}" + (f" ({only})" if only is not None else "")
    return Party("host", name, label, tuple(IPNetwork(a) for a in addresses), f"host {name}",
                 note=f"{only} is host {name}" if only is not None else None)


def _app_parties(model: m.Model, name: str, cluster: str | None) -> list[Party]:
    app = model.apps[name]
    if cluster is not None and cluster not in app.clusters:
        raise _unknown(f"app {name} does not run in cluster {cluster}",
                       f"its clusters: {', '.join(app.clusters) or 'none'}")
    clusters = [cluster] if cluster else list(app.clusters)
    if not clusters:
        raise _unknown(f"app {name} runs in no cluster, so it has no pods")
    return [Party("app", name, f"app {name}@{c}", model.clusters[c].pod_cidrs, f"app {name}", cluster=c)
            for c in clusters]


def _tables(model: m.Model) -> dict[str, Mapping]:
    return {"app": model.apps, "host": model.hosts, "role": model.roles, "network": model.networks,
            "cluster": model.clusters, "router": model.routers}


def _named(model: m.Model, kind: str, name: str, cluster: str | None) -> list[Party]:
    tables = _tables(model)
    if name not in tables[kind]:
        others = [k for k, t in tables.items() if name in t and k != kind]
        if others:
            raise _unknown(f"`{name}` is not a {kind}", f"it is a {others[0]}: write `{others[0]} {name}`")
        close = difflib.get_close_matches(name, list(tables[kind]), n=1, cutoff=0.6)
        hint = f"did you mean `{kind} {close[0]}`?" if close else None
        raise _unknown(f"unknown {kind} `{name}`", hint)
    if kind == "app":
        if model.apps[name].default:
            raise _unknown(f"app {name} is the default app: it is every app", "name one app")
        return _app_parties(model, name, cluster)
    if kind == "host":
        return [_host_party(model, name)]
    if kind == "role":
        role = model.roles[name]
        if role.default:
            raise _unknown(f"role {name} is the default role: it is every host", "name a host or a role")
        if not role.hosts:
            raise _unknown(f"role {name} is given to no host")
        return [_host_party(model, h) for h in role.hosts]
    if kind == "network":
        net = model.networks[name]
        if not net.cidrs:
            raise _unknown(f"network {name} holds no address")
        return [Party("network", name, f"network {name}", net.cidrs, f"network {name}")]
    if kind == "cluster":
        c = model.clusters[name]
        return [Party("cluster", name, f"cluster {name} (its pod ranges; name an app for its policy)", c.pod_cidrs,
                      f"cluster {name}")]
    r = model.routers[name]
    return [Party("router", name, f"router {name}", tuple(IPNetwork(a) for a in r.loopbacks), f"router {name}")]


def _address(model: m.Model, net: IPNetwork, estate: IPSet) -> list[Party]:
    full = 32 if net.version == 4 else 128
    text = str(net.ip) if net.prefixlen == full else str(net.cidr)
    if net.prefixlen == full:
        ip = net.ip
        for h in model.hosts.values():
            if ip in h.addresses:
                return [_host_party(model, h.name, ip)]
        for r in model.routers.values():
            if ip in r.loopbacks:
                return [Party("router", r.name, f"router {r.name} ({ip})", (net,), text,
                              note=f"{ip} is a loopback of router {r.name}")]
        for c in model.clusters.values():
            if any(ip in p for p in c.pod_cidrs):
                return [Party("pods", text, f"{ip} (a pod address of cluster {c.name}, app unknown)", (net,), text,
                              cluster=c.name, note=f"{ip} is in the pod range of cluster {c.name}")]
    if IPSet([net]) <= estate:
        what = "in the estate, no host has it" if net.prefixlen == full else "in the estate"
        return [Party("cidr", text, f"{text} ({what})", (net,), text)]
    if IPSet([net]) & estate:
        return [Party("cidr", text, f"{text} (partly in the estate)", (net,), text)]
    return [Party("outside", text, f"{text} (outside the estate)", (net,), text)]


def resolve(model: m.Model, spec: Spec) -> list[Party]:
    """The parties of one end; ExplainError(1) for a name the policy does not have."""
    if spec.kind == "address":
        assert spec.address is not None
        return _address(model, spec.address, estate_addresses(model))
    if spec.kind is not None:
        return _named(model, spec.kind, spec.name, spec.cluster)
    if spec.name == "any":
        return [Party("any", "any", "any address", tuple(IPNetwork(c) for c in ANY), "any")]
    if spec.name == "internet" or spec.name == "outside" and not any("outside" in t for t in _tables(model).values()):
        internet = IPSet(ANY) - SPECIAL_PURPOSE - estate_addresses(model)
        return [Party("internet", "internet", "internet (every address outside the estate)", _nets(internet),
                      "internet")]
    tables = _tables(model)
    found = [k for k, t in tables.items() if spec.name in t]
    if spec.cluster is not None:
        found = [k for k in found if k == "app"] or found
    if len(found) > 1:
        raise _unknown(f"`{spec.name}` is ambiguous: it names " + ", ".join(f"{k} {spec.name}" for k in found),
                       "write one of them: " + ", ".join(f"`{k} {spec.name}`" for k in found))
    if not found:
        pool = {n: k for k, t in tables.items() for n in t}
        close = difflib.get_close_matches(spec.name, list(pool), n=1, cutoff=0.6)
        hint = f"did you mean `{pool[close[0]]} {close[0]}`?" if close else \
            "write a kind and a name (`app NAME`, `host NAME`, `role NAME`, `network NAME`), an address or `internet`"
        raise _unknown(f"unknown name `{spec.name}`", hint)
    return _named(model, found[0], spec.name, spec.cluster)


def _pairs(sources: list[Party], destinations: list[Party], src: Spec, dst: Spec) -> list[tuple[Party, Party]]:
    """Every pair; two apps not qualified by a cluster meet in the clusters both run in."""
    pairs = [(s, d) for s in sources for d in destinations]
    if src.kind != "address" and dst.kind != "address" and not src.cluster and not dst.cluster \
            and all(p.kind == "app" for p in sources + destinations):
        same = [(s, d) for s, d in pairs if s.cluster == d.cluster]
        return same or pairs
    return pairs


# ============================================================================ statements and grants
@dataclass(frozen=True)
class Statement:
    """A DSL statement (or a built-in of a backend) that decides an end."""

    location: str | None  # file:line; None for the fixed lines of every ferm file
    span: Span | None
    owner: str
    summary: str
    description: str | None = None
    builtin: bool = False

    @property
    def key(self) -> tuple:
        return (self.location or "", self.owner, self.summary)

    def as_json(self, text_of: Callable[[Span], str] | None = None) -> dict:
        out = {"location": self.location, "owner": self.owner, "summary": self.summary,
               "description": self.description, "builtin": self.builtin}
        if text_of is not None and self.span is not None and not self.builtin:
            out["text"] = text_of(self.span)
        return out


def _owner(model: m.Model, rule: m.Rule) -> str:
    table = model.roles if rule.owner_kind == "role" else model.apps
    owner = table.get(rule.owner)
    return f"{'default ' if owner is not None and owner.default else ''}{rule.owner_kind} {rule.owner}"


def rule_statement(model: m.Model, rule: m.Rule) -> Statement:
    return Statement(rule.span.location, rule.span, _owner(model, rule), summary(rule), rule.description)


@dataclass(frozen=True)
class Grant:
    """One peer of one statement at one end: what it lets through, and from or to whom."""

    statement: Statement
    ports: tuple[m.PortMatch, ...]
    peer: str  # the far peer as written
    anyone: bool = False
    label: tuple[str, str] | None = None  # (app, cluster) selected by label
    nets: tuple[IPNetwork, ...] = ()
    inactive: str | None = None  # why it does not hold here (`in cluster`)

    @functools.cached_property
    def _covers(self) -> dict[tuple[str, str, int], str]:
        return {}

    def cover(self, far: Party, family: int) -> str:
        """Whether the peer holds all, part or none of the far party's addresses of the family."""
        key = (far.kind, far.label, family)
        if key not in self._covers:
            self._covers[key] = self._cover(far, family)
        return self._covers[key]

    def _cover(self, far: Party, family: int) -> str:
        if self.anyone:
            return FULL
        if self.label is not None and far.kind == "app" and (far.name, far.cluster) == self.label:
            return FULL
        mine = self.nets_of(family)
        theirs = far.of(family)
        if not theirs or not mine:
            return NONE
        if theirs <= mine:
            return FULL
        return PARTIAL if theirs & mine else NONE

    def port_ok(self, query: Query, family: int) -> bool:
        return any(query.matched_by(p, family) for p in self.ports)

    @functools.cached_property
    def _sets(self) -> dict[int, IPSet]:
        return {f: IPSet(c for c in self.nets if c.version == f) for f in FAMILIES}

    def nets_of(self, family: int) -> IPSet:
        return self._sets[family]


def _applies_in(rule: m.Rule, cluster: str) -> bool:
    return not rule.clusters or cluster in rule.clusters


def _app_peer_grants(model: m.Model, statement: Statement, ports: tuple[m.PortMatch, ...], peer: m.Endpoint,
                     cluster: str, inactive: str | None) -> list[Grant]:
    """A peer at a Calico end of `cluster`: an app of the cluster by label, its pods elsewhere (and
    any other peer) by address, `any` as anyone."""
    if peer.kind == "any":
        return [Grant(statement, ports, "any", anyone=True, inactive=inactive)]
    if peer.kind == "all-apps":
        return [g for name in peer.apps
                for g in _app_peer_grants(model, statement, ports, m.Endpoint("app", name, (), (name,), peer.span),
                                          cluster, inactive)]
    if peer.kind == "app":
        app = model.apps.get(peer.name)
        if app is None:
            return []
        label = (app.name, cluster) if cluster in app.clusters else None
        nets = tuple(n for c in app.clusters if c != cluster for n in model.clusters[c].pod_cidrs)
        return [Grant(statement, ports, peer.label, label=label, nets=nets, inactive=inactive)]
    return [Grant(statement, ports, peer.label, nets=peer.cidrs, inactive=inactive)]


def calico_grants(model: m.Model, app: str, cluster: str, direction: str) -> list[Grant]:
    """What the Calico policies of `app`'s pods in `cluster` allow in one direction, in source order;
    statements restricted to other clusters are kept, marked inactive, for the nearest statements."""
    out: list[Grant] = []
    for flow in model.flows:
        local, far = (flow.sources, flow.destinations) if direction == "egress" else (flow.destinations, flow.sources)
        if not any((e.kind == "app" and e.name == app) or e.kind == "all-apps" for e in local):
            continue
        inactive = None if _applies_in(flow.rule, cluster) else \
            f"holds only in cluster {', '.join(flow.rule.clusters)} (`in cluster`)"
        statement = rule_statement(model, flow.rule)
        for peer in far:
            out += _app_peer_grants(model, statement, flow.ports, peer, cluster, inactive)
    c = model.clusters[cluster]
    for proto, t, code, text in CALICO_BUILTIN:
        st = Statement(c.span.location, c.span, f"cluster {cluster}", text, builtin=True)
        out.append(Grant(st, (m.PortMatch(proto, icmp_type=t, icmp_code=code),), "any", anyone=True))
    return out


def ferm_grants(model: m.Model, host: str) -> list[Grant]:
    """What the host firewall admits: `analysis.host_firewalls()`, then the ICMP every ferm file accepts."""
    fw = host_firewalls(model)[host]
    rules = {f.rule.span: f.rule for f in model.flows}
    out: list[Grant] = []
    for a in fw.admits:
        out.append(_admit_grant(model, a, rules))
    out.append(Grant(Statement(None, None, "every host firewall", "built in: IPv4 ICMP", builtin=True),
                     (m.PortMatch("icmp"),), "any", anyone=True))
    out.append(Grant(Statement(None, None, "every host firewall",
                               "built in: ICMPv6 errors, echo-request and neighbour discovery", builtin=True),
                     tuple(m.PortMatch("icmpv6", icmp_type=t) for t in FERM_ICMPV6), "any", anyone=True))
    return out


def _admit_grant(model: m.Model, a: Admit, rules: dict[Span, m.Rule]) -> Grant:
    rule = rules.get(a.span)
    if rule is not None and not a.bgp:
        statement = rule_statement(model, rule)
    else:
        statement = Statement(a.span.location, a.span, a.origin, a.text)
    if a.sources is None:
        return Grant(statement, a.ports, "any", anyone=True)
    peer = ", ".join(s.name if s.kind in ("cidr", "any", "internet", "all-hosts") else
                     f"pods of cluster {s.name}" if s.kind == "pods" else f"{s.kind} {s.name}" for s in a.sources)
    return Grant(statement, a.ports, peer, nets=tuple(n for s in a.sources for n in s.cidrs))


# ============================================================================ the compiled files
@dataclass(frozen=True)
class Emitted:
    """One line of a compiled file that implements a decision."""

    file: str  # relative to the output folder
    line: int
    text: str
    location: str | None  # the statement it names (annotation or comment)

    def as_json(self, out_dir: str = "") -> dict:
        return {"file": f"{out_dir}/{self.file}" if out_dir else self.file, "line": self.line, "text": self.text,
                "statement": self.location}


@dataclass(frozen=True)
class _CalicoRule:
    file: str
    line: int
    policy: str  # `NetworkPolicy eventgate-main`
    direction: str
    rule: dict

    @property
    def location(self) -> str | None:
        return ((self.rule.get("metadata") or {}).get("annotations") or {}).get("netpolc.io/source")


def _calico_port_ok(rule: dict, query: Query, family: int) -> bool:
    if rule.get("action") != "Allow":
        return False
    if "ipVersion" in rule and rule["ipVersion"] != family:
        return False
    if "protocol" not in rule:
        return family in query.families
    proto = CALICO_PROTOCOL.get(str(rule["protocol"]))
    if proto != query.protocol or family not in query.families:
        return False
    if proto in ("icmp", "icmpv6"):
        icmp = rule.get("icmp")
        if not icmp or "type" not in icmp:
            return True
        if icmp["type"] != query.icmp_type:
            return False
        return "code" not in icmp or icmp["code"] == query.icmp_code
    ports = (rule.get("destination") or {}).get("ports")
    if ports is None:
        return True
    if query.port is None:
        return False
    for p in ports:
        first, _, last = str(p).partition(":")
        if int(first) <= query.port <= int(last or first):
            return True
    return False


class CalicoFiles:
    """A cluster's compiled Calico policy, read back with the line of every rule."""

    def __init__(self, files: Mapping[str, bytes], cluster: str):
        base = f"calico/{cluster}/"
        self.cluster = cluster
        self.sets: dict[str, IPSet] = {}
        self._family_sets: dict[tuple[str, int], IPSet] = {}
        self.policies: list[tuple[str, int, dict, dict[str, list[_CalicoRule]]]] = []  # file, line, doc, rules
        for path in sorted(p for p in files if p.startswith(base) and p.endswith(".yaml")):
            for node, doc in _documents(files[path].decode()):
                if not isinstance(doc, dict):
                    continue
                if doc.get("kind") == "GlobalNetworkSet":
                    self.sets[doc["metadata"]["name"]] = IPSet(doc["spec"].get("nets") or ())
                elif doc.get("kind") in ("NetworkPolicy", "GlobalNetworkPolicy"):
                    self.policies.append((path, node.start_mark.line + 1, doc, self._rules(path, doc, node)))

    @staticmethod
    def _rules(path: str, doc: dict, node: yaml.Node) -> dict[str, list[_CalicoRule]]:
        spec_node = next((v for k, v in node.value if k.value == "spec"), None)
        out: dict[str, list[_CalicoRule]] = {"ingress": [], "egress": []}
        if spec_node is None:
            return out
        policy = f"{doc['kind']} {doc['metadata']['name']}"
        for k, v in spec_node.value:
            if k.value in out:
                for item, rule in zip(v.value, doc["spec"][k.value], strict=True):
                    out[k.value].append(_CalicoRule(path, item.start_mark.line + 1, policy, k.value, rule))
        return out

    def rules_for(self, app: str, namespace: str, direction: str) -> list[_CalicoRule]:
        """The rules of every policy that selects the app's pods, in file order."""
        out: list[_CalicoRule] = []
        for _, _, doc, rules in self.policies:
            spec = doc.get("spec") or {}
            if doc["kind"] == "NetworkPolicy":
                if doc["metadata"].get("namespace") != namespace or spec.get("selector") != f"app == '{app}'":
                    continue
            elif not (_selects(str(spec.get("selector", "all()")), "app", app)
                      and _selects(str(spec.get("namespaceSelector", "all()")), "projectcalico.org/name", namespace)):
                continue
            if direction.capitalize() not in (spec.get("types") or ["Ingress"]):
                continue
            out += rules[direction]
        return out

    def cover(self, r: _CalicoRule, far: Party, family: int) -> str:
        """How the rule's far side (destination of egress, source of ingress) covers the far party."""
        side = (r.rule.get("destination") if r.direction == "egress" else r.rule.get("source")) or {}
        selector = side.get("selector")
        if selector is None and not side.get("nets"):
            return FULL
        theirs = far.of(family)
        if selector is None:
            mine = IPSet(c for c in IPSet(side["nets"]).iter_cidrs() if c.version == family)
        elif (s := SET_SELECTOR.match(selector)) is not None:
            mine = self.set_of(s.group(1), family)
        elif (a := APP_SELECTOR.match(selector)) is not None:
            ns = NAMESPACE_SELECTOR.match(str(side.get("namespaceSelector", "")))
            return FULL if far.kind == "app" and far.name == a.group(1) and far.cluster == self.cluster and ns else NONE
        else:
            return NONE  # kube-dns and the like: nothing a party of explain can be
        if theirs and theirs <= mine:
            return FULL
        return PARTIAL if theirs & mine else NONE

    def set_of(self, name: str, family: int) -> IPSet:
        """A GlobalNetworkSet's addresses of one family (cached)."""
        key = (name, family)
        if key not in self._family_sets:
            found = self.sets.get(name, IPSet())
            self._family_sets[key] = IPSet(c for c in found.iter_cidrs() if c.version == family)
        return self._family_sets[key]

    @staticmethod
    def describe(r: _CalicoRule) -> str:
        rule = r.rule
        proto = str(rule.get("protocol", "any protocol"))
        if "icmp" in rule:
            proto += f" type {rule['icmp'].get('type')}" + (f" code {rule['icmp']['code']}"
                                                             if "code" in rule["icmp"] else "")
        ports = (rule.get("destination") or {}).get("ports")
        if ports:
            proto += " " + ",".join(str(p) for p in ports)
        side = (rule.get("destination") if r.direction == "egress" else rule.get("source")) or {}
        sel = side.get("selector")
        s = SET_SELECTOR.match(sel) if sel else None
        peer = f"set {s.group(1)}" if s else str(sel) if sel else "anywhere"
        return f"{r.direction} rule of {r.policy}: {proto} {'to' if r.direction == 'egress' else 'from'} {peer}"


def _documents(text: str) -> Iterable[tuple[yaml.Node, object]]:
    """Each YAML document as its node (which knows its line) and its value."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def _selects(selector: str, label: str, value: str) -> bool:
    """The few selector forms the backend writes: `all()`, `L == 'v'`, `L in {'a', 'b'}`."""
    selector = selector.strip()
    if selector == "all()":
        return True
    eq = re.match(rf"^{re.escape(label)} == '([^']*)'$", selector)
    if eq:
        return eq.group(1) == value
    within = re.match(rf"^{re.escape(label)} in \{{(.*)\}}$", selector)
    if within:
        return value in re.findall(r"'([^']*)'", within.group(1))
    return False


@dataclass(frozen=True)
class _FermLine:
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
        self.chains: dict[int, list[_FermLine]] = {4: [], 6: []}
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
    def _parse(line: int, text: str, comments: tuple[str, ...]) -> _FermLine | None:
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
        return _FermLine(line, text, comments, proto, ports, icmp, values.get("saddr"))

    def port_ok(self, f: _FermLine, query: Query, family: int) -> bool:
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

    def cover(self, f: _FermLine, far: Party, family: int) -> str:
        if f.saddr is None:
            return FULL
        nets: list[str] = []
        for item in f.saddr:
            nets += self.defs.get(item[1:], ()) if item.startswith("$") else (item,)
        mine = IPSet(IPNetwork(n) for n in nets)
        theirs = far.of(family)
        if theirs and theirs <= mine:
            return FULL
        return PARTIAL if theirs & mine else NONE


class Compiled:
    """The compiled files, parsed on demand."""

    def __init__(self, files: Mapping[str, bytes]):
        self.files = files
        self._calico: dict[str, CalicoFiles] = {}
        self._ferm: dict[str, FermFile | None] = {}

    def calico(self, cluster: str) -> CalicoFiles:
        if cluster not in self._calico:
            self._calico[cluster] = CalicoFiles(self.files, cluster)
        return self._calico[cluster]

    def ferm(self, host: str) -> FermFile | None:
        if host not in self._ferm:
            path = f"ferm/{host}.conf"
            self._ferm[host] = FermFile(path, self.files[path].decode()) if path in self.files else None
        return self._ferm[host]


# ============================================================================ answers
@dataclass(frozen=True)
class Nearest:
    statement: Statement
    why: str

    def as_json(self, text_of: Callable[[Span], str] | None = None) -> dict:
        return {"statement": self.statement.as_json(text_of), "why": self.why}


@dataclass
class EndResult:
    """One policed (or unpoliced) end of a pair, in one family."""

    end: str  # source | destination
    enforcer: str  # calico | ferm | none
    subject: str
    verdict: str
    reason: str
    statements: list[Statement] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)
    nearest: list[Nearest] = field(default_factory=list)
    hint: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"end": self.end, "enforcer": self.enforcer, "subject": self.subject, "verdict": self.verdict,
                "reason": self.reason, "statements": [s.as_json(text_of) for s in self.statements],
                "emitted": [e.as_json(out_dir) for e in self.emitted],
                "nearest": [n.as_json(text_of) for n in self.nearest], "hint": self.hint, "problems": self.problems}


@dataclass
class FamilyResult:
    family: int
    verdict: str
    reason: str | None
    ends: list[EndResult]

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"verdict": self.verdict, "reason": self.reason,
                "ends": [e.as_json(text_of, out_dir) for e in self.ends]}


def _combine(verdicts: list[str]) -> str:
    real = [v for v in verdicts if v != NA]
    if not real:
        return NA
    if all(v == ALLOWED for v in real):
        return ALLOWED
    if all(v == DENIED for v in real):
        return DENIED
    if all(v in (ALLOWED, UNKNOWN) for v in real):
        return UNKNOWN
    return "mixed"


@dataclass
class PairResult:
    source: Party
    destination: Party
    families: list[FamilyResult]

    @property
    def verdict(self) -> str:
        return _combine([f.verdict for f in self.families])

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"source": self.source.as_json(), "destination": self.destination.as_json(), "verdict": self.verdict,
                "families": {f"ipv{f.family}": f.as_json(text_of, out_dir) for f in self.families}}


@dataclass
class Report:
    source: Spec
    destination: Spec
    query: Query
    pairs: list[PairResult]

    @property
    def verdict(self) -> str:
        return _combine([p.verdict for p in self.pairs])

    @property
    def problems(self) -> list[str]:
        return sorted({x for p in self.pairs for f in p.families for e in f.ends for x in e.problems})

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"source": self.source.text, "destination": self.destination.text, "query": self.query.as_json(),
                "verdict": self.verdict, "pairs": [p.as_json(text_of, out_dir) for p in self.pairs],
                "problems": self.problems}


# ============================================================================ deciding
def _dedupe(statements: Iterable[Statement]) -> list[Statement]:
    seen: dict[tuple, Statement] = {}
    for s in statements:
        seen.setdefault(s.key, s)
    return list(seen.values())


def _decide(grants: list[Grant], far: Party, family: int, query: Query) -> tuple[bool, list[Statement], list[Grant]]:
    """(allowed, the statements that allow it, the matching grants that hold only part of the far end)."""
    active = [g for g in grants if g.inactive is None and g.port_ok(query, family)]
    full = [g for g in active if g.cover(far, family) == FULL]
    if full:
        return True, _dedupe(g.statement for g in full), []
    partial = [g for g in active if g.cover(far, family) == PARTIAL]
    union = IPSet()
    for g in partial:
        union |= g.nets_of(family)
    theirs = far.of(family)
    if partial and theirs and theirs <= union:
        return True, _dedupe(g.statement for g in partial), []
    return False, [], partial


def _ports_text(ports: Iterable[m.PortMatch]) -> str:
    return ", ".join(str(p) for p in ports)


def _similarity(grant: Grant, far: Party) -> float:
    kind = far.peer.split(" ")[0]
    bonus = 0.5 if grant.peer.startswith(kind + " ") else 0.0
    return bonus + difflib.SequenceMatcher(None, grant.peer, far.peer).ratio()


def _nearest(grants: list[Grant], far: Party, family: int, query: Query, partial: list[Grant], word: str,
             elsewhere: list[Nearest]) -> list[Nearest]:
    """Up to three statements that come nearest to allowing it, nearest first; `word` is `from` for
    an ingress end, `to` for an egress end. One place is kept for another owner's statement."""
    ranked: list[tuple[tuple, Nearest]] = []
    part = {id(g) for g in partial}
    for g in grants:
        cover = g.cover(far, family)
        port_ok = g.port_ok(query, family)
        if g.inactive is not None and port_ok and cover != NONE:
            ranked.append(((0, 0, 0.0), Nearest(g.statement, f"would allow it, but {g.inactive}")))
        elif g.inactive is not None or g.statement.builtin:
            continue
        elif cover != NONE and not port_ok:
            distance = min(query.distance(p) for p in g.ports)
            # the same protocol (or port number) on other ports; part of the far end only; another protocol
            rank = 5 if distance >= 100_000 else 1 if cover == FULL else 3
            who = g.peer if g.peer == far.peer else \
                f"{g.peer} (which holds {'' if cover == FULL else 'part of '}{far.label})"
            ranked.append(((rank, distance, 0.0), Nearest(
                g.statement, f"allows {who} on {_ports_text(g.ports)}, not {query.dsl}")))
        elif port_ok and id(g) in part:
            ranked.append(((2, 0, 0.0), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer}, which holds only part of {far.label}")))
        elif port_ok and (other := [f for f in FAMILIES if f != family and g.port_ok(query, f)
                                    and g.cover(far, f) == FULL]):
            ranked.append(((1, 0, 0.0), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer} over IPv{other[0]}, but over IPv{family} "
                             f"{g.peer} does not hold {far.label}")))
        elif port_ok:
            ranked.append(((4, 0, -_similarity(g, far)), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer}, which does not hold {far.label}")))
    ranked.sort(key=lambda t: t[0])
    if any(r[0] < 5 for r, _ in ranked) or elsewhere:
        ranked = [(r, n) for r, n in ranked if r[0] < 5]  # another protocol only when nothing is nearer
    out: list[Nearest] = []
    for _, n in ranked:
        if all(n.statement.key != o.statement.key for o in out):
            out.append(n)
    out = out[:3 - min(1, len(elsewhere))]
    for n in elsewhere:
        if all(n.statement.key != o.statement.key for o in out):
            out.append(n)
    return out[:3]


class Explainer:
    """Answers for one model and its compiled files; the grants of each end and the parsed files are kept."""

    def __init__(self, model: m.Model, files: Mapping[str, bytes]):
        self.model = model
        self.compiled = Compiled(files)
        self._grants: dict[tuple, list[Grant]] = {}

    # ------------------------------------------------------------ ends
    def grants(self, kind: str, *key: str) -> list[Grant]:
        if (kind, *key) not in self._grants:
            if kind == "calico":
                self._grants[(kind, *key)] = calico_grants(self.model, *key)
            else:
                self._grants[(kind, *key)] = ferm_grants(self.model, *key)
        return self._grants[(kind, *key)]

    def source_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        if src.kind == "app":
            return self._calico_end("source", src, dst, family, query)
        if src.kind == "pods":
            return EndResult("source", "calico", f"Calico egress of the pod at {src.name}", UNKNOWN,
                             f"which app's pod has {src.name} is not known, so its egress is not judged; "
                             f"name the app (`app NAME@{src.cluster}`)")
        if src.kind == "host":
            return EndResult("source", "none", src.label, NOT_POLICED,
                             "a host's outgoing traffic is not filtered (its ferm file polices INPUT only)")
        if src.kind in ("outside", "internet", "any"):
            return EndResult("source", "none", src.label, NOT_POLICED, "netpolc polices no sender outside the estate")
        return EndResult("source", "none", src.label, NOT_POLICED,
                         "an address set: netpolc polices only the pods of apps and the INPUT of hosts")

    def destination_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        if dst.kind == "app":
            return self._calico_end("destination", dst, src, family, query)
        if dst.kind == "pods":
            return EndResult("destination", "calico", f"Calico ingress of the pod at {dst.name}", UNKNOWN,
                             f"which app's pod has {dst.name} is not known, so its ingress is not judged; "
                             f"name the app (`app NAME@{dst.cluster}`)")
        if dst.kind == "host":
            host = self.model.hosts[dst.name]
            if not host.firewall:
                off = [r for r in host.roles if not self.model.roles[r].firewall]
                return EndResult("destination", "none", f"host {dst.name}", NOT_POLICED,
                                 f"host {dst.name} has no host firewall (role {', '.join(off)}: `firewall none`)")
            return self._ferm_end(src, dst, family, query)
        inside = [h.name for h in self.model.hosts.values() if h.firewall
                  and any(IPNetwork(a) in c for a in h.addresses for c in dst.cidrs)][:5] \
            if dst.kind in ("network", "cidr") else []
        reason = "an address set is not policed by netpolc"
        if inside:
            reason += f"; it holds hosts with a firewall, name one to see it ({', '.join(inside)})"
        return EndResult("destination", "none", dst.label, NOT_POLICED, reason)

    def _calico_end(self, end: str, local: Party, far: Party, family: int, query: Query) -> EndResult:
        assert local.cluster is not None
        direction = "egress" if end == "source" else "ingress"
        subject = f"Calico {direction} of app {local.name} in cluster {local.cluster}"
        grants = self.grants("calico", local.name, local.cluster, direction)
        allowed, statements, partial = _decide(grants, far, family, query)
        result = EndResult(end, "calico", subject, ALLOWED if allowed else DENIED, "", statements)
        files = self.compiled.calico(local.cluster)
        app = self.model.apps[local.name]
        rules = files.rules_for(app.name, app.namespace or app.name, direction)
        matching = [(r, files.cover(r, far, family)) for r in rules if _calico_port_ok(r.rule, query, family)]
        file_allowed = any(c == FULL for _, c in matching) or bool(
            far.of(family) and far.of(family) <= IPSet(
                n for r, c in matching if c == PARTIAL for n in self._rule_nets(files, r, family)))
        if allowed:
            where = {s.location for s in statements}
            result.emitted = [Emitted(r.file, r.line, files.describe(r), r.location)
                              for r, c in matching if c != NONE and r.location in where]
            result.reason = f"{'egress to' if end == 'source' else 'ingress from'} {far.label} on {query} is allowed"
            if not result.emitted:
                result.problems.append(f"{subject}: the model allows {query.dsl} but no rule in calico/"
                                       f"{local.cluster}/ implements it (a bug in netpolc?)")
        else:
            result.reason = self._denied_reason(direction, far, query, partial)
            result.nearest = _nearest(grants, far, family, query, partial, "to" if end == "source" else "from",
                                      self._elsewhere(end, local, far, family, query))
            result.hint = self._calico_hint(end, local, far, query)
        if file_allowed != allowed:
            result.problems.append(f"{subject}: the model says {result.verdict} for {far.label} on {query.dsl} "
                                   f"over IPv{family}, the compiled calico/{local.cluster}/ files say "
                                   f"{ALLOWED if file_allowed else DENIED}")
        return result

    @staticmethod
    def _rule_nets(files: CalicoFiles, r: _CalicoRule, family: int) -> Iterable[IPNetwork]:
        side = (r.rule.get("destination") if r.direction == "egress" else r.rule.get("source")) or {}
        s = SET_SELECTOR.match(str(side.get("selector", "")))
        nets = files.sets.get(s.group(1), IPSet()) if s else IPSet(side.get("nets") or ())
        return (c for c in nets.iter_cidrs() if c.version == family)

    def _ferm_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        subject = f"host firewall (ferm) of host {dst.name}"
        grants = self.grants("ferm", dst.name)
        allowed, statements, partial = _decide(grants, src, family, query)
        result = EndResult("destination", "ferm", subject, ALLOWED if allowed else DENIED, "", statements)
        ferm = self.compiled.ferm(dst.name)
        if ferm is None:
            result.problems.append(f"{subject}: no ferm/{dst.name}.conf among the compiled files")
            return result
        lines = [(f, ferm.cover(f, src, family)) for f in ferm.chains[family] if ferm.port_ok(f, query, family)]
        union = IPSet()
        for f, c in lines:
            if c == PARTIAL:
                union |= IPSet(n for n in self._ferm_nets(ferm, f) if n.version == family)
        file_allowed = any(c == FULL for _, c in lines) or bool(src.of(family) and src.of(family) <= union)
        if allowed:
            for s in statements:
                for f, c in lines:
                    if c == NONE:
                        continue
                    if s.location is None and not f.comments or \
                            s.location is not None and any(x.startswith(f"# {s.location} ") for x in f.comments):
                        result.emitted.append(Emitted(ferm.path, f.line, f.text, s.location))
            result.emitted = sorted(set(result.emitted), key=lambda e: e.line)
            result.reason = f"{dst.name} admits {query} from {src.label}"
            if not result.emitted:
                result.problems.append(f"{subject}: the model allows {query.dsl} but no line of {ferm.path} "
                                       "implements it (a bug in netpolc?)")
        else:
            result.reason = self._denied_reason("ingress", src, query, partial)
            result.nearest = _nearest(grants, src, family, query, partial, "from",
                                      self._elsewhere("destination", dst, src, family, query))
            result.hint = self._ferm_hint(src, dst, query)
        if file_allowed != allowed:
            result.problems.append(f"{subject}: the model says {result.verdict} for {src.label} on {query.dsl} over "
                                   f"IPv{family}, {ferm.path} says {ALLOWED if file_allowed else DENIED}")
        return result

    @staticmethod
    def _ferm_nets(ferm: FermFile, f: _FermLine) -> list[IPNetwork]:
        out: list[IPNetwork] = []
        for item in f.saddr or ():
            out += (IPNetwork(n) for n in (ferm.defs.get(item[1:], ()) if item.startswith("$") else (item,)))
        return out

    @staticmethod
    def _denied_reason(direction: str, far: Party, query: Query, partial: list[Grant]) -> str:
        what = f"{'egress to' if direction == 'egress' else 'ingress from'} {far.label} on {query}"
        if partial:
            return f"no statement allows {what}; some allow it for part of its addresses only"
        return f"no statement allows {what}"

    # ------------------------------------------------------------ hints and the nearest elsewhere
    def _elsewhere(self, end: str, local: Party, far: Party, family: int, query: Query) -> list[Nearest]:
        """A statement of another owner that is allowed the same thing: the pattern to copy."""
        for flow in self.model.flows:
            if not any(query.matched_by(p, family) for p in flow.ports):
                continue
            mine, theirs = (flow.sources, flow.destinations) if end == "source" else (flow.destinations, flow.sources)
            if any(self._names(e, local) for e in mine):
                continue
            like = ("app",) if local.kind == "app" else ("host", "role")  # an end policed the same way
            if not any(e.kind in like for e in mine):
                continue
            if any(self._endpoint_cover(e, far, family) == FULL for e in theirs):
                who = ", ".join(e.label for e in mine)
                verb = "reach" if end == "source" else "be reached from"
                return [Nearest(rule_statement(self.model, flow.rule),
                                f"lets {who} {verb} {far.label} on {query.dsl}: the same for {local.label} "
                                "would allow it")]
        return []

    def _names(self, e: m.Endpoint, party: Party) -> bool:
        """Whether an endpoint of a flow stands for the party itself."""
        if party.kind == "app":
            return (e.kind == "app" and e.name == party.name) or e.kind == "all-apps"
        if party.kind == "host":
            host = self.model.hosts[party.name]
            return (e.kind == "host" and e.name == host.name) or (e.kind == "role" and e.name in host.roles) \
                or e.kind == "all-hosts"
        return False

    def _endpoint_cover(self, e: m.Endpoint, far: Party, family: int) -> str:
        if e.kind == "any":
            return FULL
        if e.kind in ("app", "all-apps"):
            return FULL if far.kind == "app" and far.name in e.apps else NONE
        mine = _ipset(e.cidrs, family)
        theirs = far.of(family)
        return FULL if theirs and mine and theirs <= mine else NONE

    def _calico_hint(self, end: str, local: Party, far: Party, query: Query) -> str:
        app = self.model.apps[local.name]
        where = f"app {app.name} ({app.span.location})"
        if end == "source":
            extra = "; naming the host also opens its firewall" if far.kind == "host" else ""
            return f"in {where}: `connect {query.dsl} to {far.peer}`{extra}"
        return f"in {where}: `allow {query.dsl} from {far.peer}`"

    def _ferm_hint(self, src: Party, dst: Party, query: Query) -> str:
        host = self.model.hosts[dst.name]
        roles = [r for r in host.roles if not self.model.roles[r].default]
        own = " or ".join(f"role {r} ({self.model.roles[r].span.location})" for r in roles) or \
            f"a role of host {dst.name} (it has none but the default)"
        hint = f"in {own}: `allow {query.dsl} from {src.peer}`"
        if src.kind == "app":
            app = self.model.apps[src.name]
            hint = f"in app {app.name} ({app.span.location}): `connect {query.dsl} to host {dst.name}` " \
                   f"(opens its egress and this firewall); or {hint}"
        return hint

    # ------------------------------------------------------------ a pair
    def pair(self, src: Party, dst: Party, query: Query) -> PairResult:
        families = []
        for family in FAMILIES:
            reason = None
            if family not in query.families:
                reason = f"{query.protocol} is IPv{query.families[0]} only"
            elif not src.of(family):
                reason = f"{src.label} has no IPv{family} address"
            elif not dst.of(family):
                reason = f"{dst.label} has no IPv{family} address"
            if reason:
                families.append(FamilyResult(family, NA, reason, []))
                continue
            ends = [self.source_end(src, dst, family, query), self.destination_end(src, dst, family, query)]
            verdicts = [e.verdict for e in ends]
            verdict = DENIED if DENIED in verdicts else UNKNOWN if UNKNOWN in verdicts else ALLOWED
            families.append(FamilyResult(family, verdict, None, ends))
        return PairResult(src, dst, families)


def explain(model: m.Model, files: Mapping[str, bytes], source: Spec, destination: Spec, query: Query) -> Report:
    """Answer one question; ExplainError(1) when an end names nothing in the policy."""
    sources = resolve(model, source)
    destinations = resolve(model, destination)
    ex = Explainer(model, files)
    return Report(source, destination, query,
                  [ex.pair(s, d, query) for s, d in _pairs(sources, destinations, source, destination)])


def statement_text(sources: Mapping[str, str], span: Span) -> str:
    """A statement as written, on one line: comments dropped, whitespace collapsed."""
    text = sources.get(span.file)
    if text is None:
        return ""
    lines = text.split("\n")[span.line - 1:span.end_line]
    if not lines:
        return ""
    if len(lines) == 1:
        lines[0] = lines[0][span.column - 1:span.end_column - 1]
    else:
        lines[0] = lines[0][span.column - 1:]
        lines[-1] = lines[-1][:span.end_column - 1]
    out = []
    for line in lines:
        kept, quoted, escaped = [], False, False
        for ch in line:
            if escaped:
                escaped = False
            elif ch == "\\" and quoted:
                escaped = True
            elif ch == '"':
                quoted = not quoted
            elif ch == "#" and not quoted:
                break
            kept.append(ch)
        out.append("".join(kept).strip())
    return " ".join(x for x in out if x)

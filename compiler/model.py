"""The resolved model: one immutable description of the estate and its intent.

Every name is resolved, every address parsed, every intent turned into
concrete endpoints and port matches, and every element keeps the span it
came from. Backends and analyses read this and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar

from netaddr import IPAddress, IPNetwork, IPSet

from .diagnostics import Span

T = TypeVar("T", IPAddress, IPNetwork)

Protocol = Literal["tcp", "udp", "sctp", "icmp", "icmpv6", "any"]


@dataclass(frozen=True, order=True)
class PortMatch:
    """One protocol with a port range, or an ICMP type/code, or any protocol."""

    protocol: str
    first: int | None = None
    last: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def __str__(self) -> str:
        if self.protocol == "any":
            return "any"
        if self.protocol in ("icmp", "icmpv6"):
            if self.icmp_type is None:
                return self.protocol
            code = f" code {self.icmp_code}" if self.icmp_code is not None else ""
            return f"{self.protocol} {self.icmp_type}{code}"
        if self.first is None:
            return self.protocol
        if self.first == self.last:
            return f"{self.protocol} {self.first}"
        return f"{self.protocol} {self.first}-{self.last}"


@dataclass(frozen=True)
class Service:
    name: str
    ports: tuple[PortMatch, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Router:
    name: str
    site: str
    loopbacks: tuple[IPAddress, ...]
    asn: int
    description: str | None
    span: Span


@dataclass(frozen=True)
class Switch:
    """A row's access switch, a rack's ToR (L3 rack) or a row's spine."""

    name: str
    kind: Literal["access", "tor", "spine"]
    site: str
    row: str | None
    rack: str | None
    asn: int | None
    uplinks: tuple[str, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Rack:
    """`site/name`. An L3 rack has its own ToR, subnets and gateways."""

    key: str
    name: str
    site: str
    row: str
    layer: Literal["l2", "l3"]
    switch: str | None
    subnets: tuple[IPNetwork, ...]
    gateways: tuple[IPAddress, ...]
    hosts: tuple[str, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Row:
    key: str
    name: str
    site: str
    switch: str | None
    spines: tuple[str, ...]
    subnets: tuple[IPNetwork, ...]
    gateways: tuple[IPAddress, ...]
    racks: tuple[str, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Site:
    name: str
    routers: tuple[str, ...]
    spines: tuple[str, ...]
    rows: tuple[str, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Host:
    name: str
    site: str
    row: str
    rack: str
    addresses: tuple[IPAddress, ...]
    roles: tuple[str, ...]
    firewall: bool
    description: str | None
    span: Span


@dataclass(frozen=True)
class Peering:
    """How some of a cluster's nodes peer: `nodes` are those it covers (scoped by `for`, or the rest)."""

    mode: Literal["routers", "tor", "route-reflectors"]
    reflectors: tuple[str, ...]
    cluster_id: IPAddress | None
    nodes: tuple[str, ...]
    scoped: bool
    span: Span


@dataclass(frozen=True)
class Cluster:
    name: str
    site: str
    asn: int
    pod_cidrs: tuple[IPNetwork, ...]
    service_cidrs: tuple[IPNetwork, ...]
    nodes: tuple[str, ...]
    control_plane: tuple[str, ...]
    etcd: tuple[str, ...]
    peerings: tuple[Peering, ...]
    survive: tuple[str, ...]
    single_uplink_max_share: int | None
    description: str | None
    span: Span


@dataclass(frozen=True)
class Endpoint:
    """One resolved peer of a rule.

    `kind` and `name` say what was written (so backends can reference a named
    set rather than copying addresses); `cidrs` are its addresses; `apps` are
    the apps it selects by label (pods have no fixed address).
    """

    kind: str
    name: str
    cidrs: tuple[IPNetwork, ...]
    apps: tuple[str, ...]
    span: Span

    @property
    def label(self) -> str:
        if self.kind in ("cidr", "any", "internet", "all-hosts", "all-apps"):
            return self.name
        return f"{self.kind} {self.name}"

    def ipset(self) -> IPSet:
        return IPSet(self.cidrs)


@dataclass(frozen=True)
class Network:
    name: str
    cidrs: tuple[IPNetwork, ...]
    members: tuple[Endpoint, ...]
    excluded: tuple[Endpoint, ...]
    description: str | None
    span: Span


RESERVED_NAMESPACES = ("globalnetworksets", "globalnetworkpolicies")
"""The Calico backend writes `calico/<cluster>/<namespace>.yaml` beside `<these>.yaml` of its own:
the resolver refuses a namespace of these names (E110), the backend checks it again."""


@dataclass(frozen=True)
class Rule:
    """A statement as written in a role or app, with resolved parts."""

    owner_kind: Literal["role", "app"]
    owner: str
    direction: Literal["ingress", "egress"]
    peers: tuple[Endpoint, ...]
    # None: no ports written, each app's own `listen` ports apply (see the flows)
    ports: tuple[PortMatch, ...] | None
    description: str | None
    expires: dt.date | None
    # `in cluster ...`: the app's clusters this rule applies in; empty means all of them
    clusters: tuple[str, ...]
    span: Span
    # `exposed "why"`: the reason a sensitive port is open to any address on purpose
    exposed: str | None = None

    def applies_in(self, cluster: str) -> bool:
        """Does the owner's end hold in `cluster`? (`in cluster` limits the statement's owner.)"""
        return not self.clusters or cluster in self.clusters


@dataclass(frozen=True)
class Role:
    name: str
    default: bool
    firewall: bool
    rules: tuple[Rule, ...]
    hosts: tuple[str, ...]
    description: str | None
    span: Span
    # `ssh-gateway`: the role's hosts are the SSH bastions; every host firewall must admit
    # TCP 22 from them (the lock-out guard, `compiler.analysis.lockout`). The span is the statement's.
    ssh_gateway: bool = False
    ssh_gateway_span: Span | None = None


@dataclass(frozen=True)
class App:
    name: str
    default: bool
    clusters: tuple[str, ...]
    namespace: str | None
    listen: tuple[PortMatch, ...]
    rules: tuple[Rule, ...]
    description: str | None
    span: Span


@dataclass(frozen=True)
class Flow:
    """One statement of intent, direction-neutral: sources may reach destinations on ports.

    Each backend compiles its own end of it: egress at the source, ingress at
    the destination, host firewall lines where the destination is a host.
    """

    sources: tuple[Endpoint, ...]
    destinations: tuple[Endpoint, ...]
    ports: tuple[PortMatch, ...]
    rule: Rule


@dataclass(frozen=True, eq=False)
class Model:
    """Compared by identity, so analyses can be cached per model (see `compiler.analysis`)."""

    sites: Mapping[str, Site]
    rows: Mapping[str, Row]
    racks: Mapping[str, Rack]
    routers: Mapping[str, Router]
    switches: Mapping[str, Switch]
    hosts: Mapping[str, Host]
    clusters: Mapping[str, Cluster]
    networks: Mapping[str, Network]
    services: Mapping[str, Service]
    roles: Mapping[str, Role]
    apps: Mapping[str, App]
    flows: tuple[Flow, ...]
    files: tuple[str, ...]


def family_sorted(items: Iterable[T]) -> tuple[T, ...]:
    """Addresses or networks IPv4 first, then by value: the one order every output uses."""
    return tuple(sorted(items, key=lambda n: (n.version, n)))


def cidrs_of(ipset: IPSet) -> tuple[IPNetwork, ...]:
    """The fewest CIDRs covering a set, in output order."""
    return family_sorted(ipset.iter_cidrs())


def frozen_map(items: dict) -> Mapping:
    """A read-only mapping, sorted by key so iteration order is deterministic."""
    return MappingProxyType(dict(sorted(items.items())))

"""The syntax tree: what the source says, with a span on every piece.

Nothing here is checked beyond the grammar; `compiler.resolve` gives it meaning.
Keeping this layer separate lets `fmt` and `lint` work on what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

from .diagnostics import Span


@dataclass(frozen=True)
class Name:
    value: str
    span: Span


@dataclass(frozen=True)
class Int:
    value: int
    span: Span


@dataclass(frozen=True)
class Address:
    text: str
    span: Span


@dataclass(frozen=True)
class Text:
    """A quoted string, unescaped."""

    value: str
    span: Span


# ----------------------------------------------------------------- ports

@dataclass(frozen=True)
class ProtoPorts:
    """`tcp`, `tcp 80` or `tcp 8000-8080`."""

    protocol: str
    first: Int | None
    last: Int | None
    span: Span


@dataclass(frozen=True)
class BarePorts:
    """`443` after `tcp 80,`: the protocol is the previous item's."""

    first: Int
    last: Int | None
    span: Span


@dataclass(frozen=True)
class IcmpPorts:
    protocol: str  # icmp | icmpv6
    type_name: Name | None
    type_number: Int | None
    code: Int | None
    span: Span


@dataclass(frozen=True)
class ServiceRef:
    name: Name
    span: Span


@dataclass(frozen=True)
class AnyProtocol:
    span: Span


PortItem = ProtoPorts | BarePorts | IcmpPorts | ServiceRef | AnyProtocol


# ----------------------------------------------------------------- peers

@dataclass(frozen=True)
class Ref:
    """`name` or `site/name` (rows and racks are named within their site)."""

    parts: tuple[Name, ...]
    span: Span

    @property
    def text(self) -> str:
        return "/".join(p.value for p in self.parts)


@dataclass(frozen=True)
class TypedPeer:
    kind: str
    ref: Ref
    span: Span


@dataclass(frozen=True)
class BarePeer:
    """A name after `role a,`: its kind is the previous item's."""

    ref: Ref
    span: Span


@dataclass(frozen=True)
class AddressPeer:
    address: Address
    span: Span


@dataclass(frozen=True)
class AnyPeer:
    span: Span


@dataclass(frozen=True)
class InternetPeer:
    span: Span


Peer = TypedPeer | BarePeer | AddressPeer | AnyPeer | InternetPeer


# ----------------------------------------------------------------- topology

@dataclass(frozen=True)
class Router:
    name: Name
    loopbacks: tuple[Address, ...]
    asn: Int
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Switch:
    name: Name
    asn: Int | None
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Spine:
    name: Name
    asn: Int
    uplinks: tuple[Name, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Subnet:
    addresses: tuple[Address, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Gateway:
    addresses: tuple[Address, ...]
    span: Span


@dataclass(frozen=True)
class Host:
    name: Name
    addresses: tuple[Address, ...]
    roles: tuple[Name, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Rack:
    name: Name
    description: Text | None
    switches: tuple[Switch, ...]
    subnets: tuple[Subnet, ...]
    gateways: tuple[Gateway, ...]
    hosts: tuple[Host, ...]
    span: Span


@dataclass(frozen=True)
class Row:
    name: Name
    description: Text | None
    switches: tuple[Switch, ...]
    spines: tuple[Spine, ...]
    subnets: tuple[Subnet, ...]
    gateways: tuple[Gateway, ...]
    racks: tuple[Rack, ...]
    span: Span


@dataclass(frozen=True)
class Site:
    name: Name
    description: Text | None
    routers: tuple[Router, ...]
    spines: tuple[Spine, ...]
    rows: tuple[Row, ...]
    span: Span


# ----------------------------------------------------------------- clusters, names, intent

@dataclass(frozen=True)
class Setting:
    """One `keyword value...` line of a cluster or app block."""

    keyword: str
    values: tuple
    span: Span


@dataclass(frozen=True)
class Cluster:
    name: Name
    description: Text | None
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class Network:
    name: Name
    include: tuple[Peer, ...]
    exclude: tuple[Peer, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Service:
    name: Name
    ports: tuple[PortItem, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Expires:
    date: str
    span: Span


@dataclass(frozen=True)
class Exposed:
    """`exposed "why"`: the statement opens a sensitive port to any address on purpose."""

    reason: Text
    span: Span


@dataclass(frozen=True)
class OnlyIn:
    """`in cluster a, b`: the statement applies in those of the app's clusters only."""

    clusters: tuple[Name, ...]
    span: Span


@dataclass(frozen=True)
class Rule:
    """`allow [ports] from peers` (ingress) or `connect [ports] to peers` (egress)."""

    verb: str  # allow | connect
    ports: tuple[PortItem, ...] | None
    peers: tuple[Peer, ...]
    descriptions: tuple[Text, ...]
    expires: tuple[Expires, ...]
    only_in: tuple[OnlyIn, ...]
    span: Span
    exposed: tuple[Exposed, ...] = ()


@dataclass(frozen=True)
class Role:
    name: Name
    default: bool
    description: Text | None
    rules: tuple[Rule, ...]
    no_firewall: tuple[Span, ...]
    span: Span
    ssh_gateway: tuple[Span, ...] = ()  # `ssh-gateway`: the role's hosts are the SSH bastions


@dataclass(frozen=True)
class App:
    name: Name
    default: bool
    description: Text | None
    settings: tuple[Setting, ...]
    rules: tuple[Rule, ...]
    span: Span


Declaration = Site | Cluster | Network | Service | Role | App


@dataclass(frozen=True)
class File:
    path: str
    declarations: tuple[Declaration, ...]

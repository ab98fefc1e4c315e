"""Calico rules for one end of a flow: the peer as a selector, the ports per protocol.

One rule per (flow, peer, protocol[, ICMP type and code]), `action: Allow` only:
- a peer app of the cluster: its `app` label in its namespace (pods have no fixed address);
- any other peer with addresses, an app of another cluster included (by its clusters' pod
  ranges): a GlobalNetworkSet, selected by its `netpolc.io/set` label with `namespaceSelector:
  global()` (a namespaced rule selector would look in the policy's own namespace only);
- `any`: no selector and no nets, so every address of both families.
Ports are always the destination's, in ingress rules too. A rule's nets would have to be of one
family; rules here never carry nets (sets may hold both), and ICMP rules say their `ipVersion`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeVar

from netaddr import IPNetwork

from .. import model as m
from .bgp_report import BackendError
from .yamlout import Quoted

T = TypeVar("T")
CALICO = "projectcalico.org/v3"
SET_LABEL = "netpolc.io/set"
NAMESPACE_LABEL = "projectcalico.org/name"
SOURCE, DESCRIPTION = "netpolc.io/source", "netpolc.io/description"
PORTED = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
ICMP = {"icmp": "ICMP", "icmpv6": "ICMPv6"}
IP_VERSION = {"ICMP": 4, "ICMPv6": 6}  # Calico rejects an ICMP rule of the other family
PROTOCOL_ORDER = ("tcp", "udp", "sctp", "icmp", "icmpv6", "any")
UNPREFIXED_SETS = ("internet", "all-hosts")  # one of a kind: the kind is the name
MAX_LABEL = 63  # a label value, and a DNS label


@dataclass
class Rules:
    """A policy's rules, per direction, in the order they were stated."""

    ingress: list[dict] = field(default_factory=list)
    egress: list[dict] = field(default_factory=list)

    def add(self, direction: str, rules: Iterable[dict]) -> None:
        getattr(self, direction).extend(rules)


def dns_label(text: str) -> str:
    """`text` as a DNS label: other characters become `-`; a label too long keeps its start and
    gets a hash of the whole, so two long names cannot end up the same."""
    label = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    if len(label) <= MAX_LABEL:
        return label
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{label[:MAX_LABEL - 9].rstrip('-')}-{digest}"


def set_name(kind: str, name: str) -> str:
    """`role-kafka-broker`, `cidr-10-64-21-14-32`, `internet`."""
    return dns_label(kind if kind in UNPREFIXED_SETS else f"{kind}-{name}")


def quoted_list(values: Iterable[str]) -> str:
    """A selector's set literal: `{'a', 'b'}`."""
    return "{" + ", ".join(f"'{v}'" for v in values) + "}"


def _nets(cidrs: Iterable[IPNetwork]) -> list[str]:
    return [str(n) for n in m.family_sorted(set(cidrs))]


class Peers:
    """One cluster's peers as rule selectors; the GlobalNetworkSets the selectors name are kept."""

    def __init__(self, model: m.Model, cluster: str, apps: dict[str, m.App]):
        self.model = model
        self.cluster = cluster
        self.apps = apps  # the cluster's own apps
        self.sets: dict[str, tuple[tuple[str, str], list[str]]] = {}  # name -> ((kind, name), nets)
        # (kind, name) -> (the cidrs they were made from, selections): a peer is named by many
        # rules, and sorting and formatting its addresses each time made this backend slow
        self._specs: dict[tuple[str, str], tuple[object, list[dict]]] = {}

    def specs(self, peer: m.Endpoint, only: tuple[str, ...] = ()) -> list[dict]:
        """The source or destination selections of one peer; `all-apps` stands for each app. `only`:
        an app's pods in these clusters only (the statement's `in cluster`, when the peer is its owner).
        The list and its selections are shared between calls: copy before changing them."""
        if peer.kind == "any":
            return [{}]
        if peer.kind == "all-apps":
            return [s for name in peer.apps
                    for s in self.specs(m.Endpoint("app", name, (), (name,), peer.span), only)]
        key = (peer.kind, peer.name, only if peer.kind == "app" else ())
        made_from = None if peer.kind == "app" else peer.cidrs  # an app's selections depend on its name only
        known = self._specs.get(key)
        if known is not None and known[0] is made_from:
            return known[1]
        if peer.kind == "app":
            specs = self._app_specs(peer, only)
        else:
            name = self._set(peer.kind, peer.name, _nets(peer.cidrs))
            specs = [{"selector": Quoted(f"{SET_LABEL} == '{name}'"), "namespaceSelector": Quoted("global()")}]
        self._specs[key] = (made_from, specs)
        return specs

    def _app_specs(self, peer: m.Endpoint, only: tuple[str, ...] = ()) -> list[dict]:
        """An app's pods here by label; its pods in other clusters (routed, unlabelled from here) by
        those clusters' pod ranges in set `app-<name>`. Each end polices its own pods by label, so
        a connection between clusters is exact although each end alone admits the whole range.
        With `only`, the pods in those clusters alone: set `pods-<name>-<clusters>` when that is
        fewer clusters than the app runs in elsewhere."""
        out: list[dict] = []
        if peer.name in self.apps and (not only or self.cluster in only):
            app = self.apps[peer.name]
            out.append({"selector": Quoted(f"app == '{app.name}'"),
                        "namespaceSelector": Quoted(f"{NAMESPACE_LABEL} == '{app.namespace or app.name}'")})
        everywhere = [c for c in self.model.apps[peer.name].clusters if c != self.cluster]
        elsewhere = [c for c in everywhere if not only or c in only]
        if elsewhere:
            cidrs = _nets(n for c in elsewhere for n in self.model.clusters[c].pod_cidrs)
            if elsewhere == everywhere:
                name = self._set("app", peer.name, cidrs)
            else:
                name = self._set("pods", f"{peer.name}-{'-'.join(elsewhere)}", cidrs)
            out.append({"selector": Quoted(f"{SET_LABEL} == '{name}'"), "namespaceSelector": Quoted("global()")})
        return out

    def _set(self, kind: str, name: str, nets: list[str]) -> str:
        label = set_name(kind, name)
        known = self.sets.setdefault(label, ((kind, name), nets))
        if known != ((kind, name), nets):
            raise BackendError(f"{kind} {name} and {known[0][0]} {known[0][1]} would both be GlobalNetworkSet "
                               f"{label}; rename one of them")
        return label

    def network_sets(self) -> list[dict]:
        return [{"apiVersion": CALICO, "kind": "GlobalNetworkSet",
                 "metadata": {"name": name, "labels": {SET_LABEL: name}}, "spec": {"nets": nets}}
                for name, (_, nets) in sorted(self.sets.items())]


def annotate(location: str, description: str | None) -> dict[str, str]:
    """Where a rule or policy was stated (`file:line`) and what for: Calico keeps them with the rule."""
    return {SOURCE: location} | ({DESCRIPTION: description} if description else {})


def _port(p: m.PortMatch) -> int | str:
    return p.first if p.first == p.last else Quoted(f"{p.first}:{p.last}")  # type: ignore[return-value]


def icmp_rule(protocol: str, icmp_type: int | None, code: int | None, metadata: dict) -> dict:
    rule: dict = {"action": "Allow", "protocol": protocol, "ipVersion": IP_VERSION[protocol], "metadata": metadata}
    if icmp_type is not None:
        rule["icmp"] = {"type": icmp_type} | ({"code": code} if code is not None else {})
    return rule


_FIELDS = attrgetter("protocol", "first", "last", "icmp_type", "icmp_code")  # PortMatch's order, compared in C


def _protocols(ports: Iterable[m.PortMatch]) -> list[tuple[dict, list[int | str] | None]]:
    """(protocol fields, destination ports or None) per Calico rule, in PROTOCOL_ORDER."""
    by_protocol: dict[str, list[m.PortMatch]] = {}
    for p in ports:
        by_protocol.setdefault(p.protocol, []).append(p)
    out: list[tuple[dict, list[int | str] | None]] = []
    for proto in PROTOCOL_ORDER:
        matches = set(by_protocol.get(proto, ()))
        if not matches:
            continue
        if proto in PORTED:
            if any(p.first is None for p in matches):  # the protocol with every port
                out.append(({"protocol": PORTED[proto]}, None))
            else:
                out.append(({"protocol": PORTED[proto]}, [_port(p) for p in sorted(matches, key=_FIELDS)]))
        elif proto in ICMP:
            # every type (None) first; None never meets an int in the comparison
            for p in sorted(matches, key=lambda p: (p.icmp_type is not None, p.icmp_type or 0,
                                                    p.icmp_code is not None, p.icmp_code or 0)):
                out.append((icmp_rule(ICMP[proto], p.icmp_type, p.icmp_code, {}), None))
        else:
            out.append(({}, None))  # any protocol
    return out


class FlowParts:
    """What every rule of a flow shares, whatever its peer and direction: the protocols with their
    ports, and the annotations; made once per ports tuple and statement (the flows of a statement
    share them) instead of once per rule. The lists and dicts returned are shared: never change them."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, int], tuple[object, object]] = {}  # (what, id(of)) -> (of, made)

    def _once(self, what: str, of: object, make: Callable[[], T]) -> T:
        known = self._made.get((what, id(of)))
        if known is None or known[0] is not of:  # `of` is kept alive, so its id stays its own
            known = self._made[(what, id(of))] = (of, make())
        return known[1]  # type: ignore[return-value]

    def protocols(self, ports: tuple[m.PortMatch, ...]) -> list[tuple[dict, list[int | str] | None]]:
        return self._once("protocols", ports, lambda: _protocols(ports))

    def metadata(self, rule: m.Rule) -> dict:
        return self._once("metadata", rule, lambda: {"annotations": annotate(rule.span.location, rule.description)})


def allow_rules(direction: str, peer: dict, protocols: list[tuple[dict, list[int | str] | None]],
                metadata: dict) -> list[dict]:
    """The rules of one (flow, peer): the peer on the far side, the ports on the destination;
    `protocols` and `metadata` from `FlowParts`."""
    far = "source" if direction == "ingress" else "destination"
    out = []
    for fields, dst_ports in protocols:
        r = {**fields, "action": "Allow", "metadata": metadata}
        if peer:
            r[far] = dict(peer)
        if dst_ports is not None:
            r.setdefault("destination", {})["ports"] = dst_ports
        out.append(r)
    return out

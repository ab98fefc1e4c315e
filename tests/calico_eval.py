"""An independent evaluator of Calico network policy (projectcalico.org/v3), for judging emitted YAML.

Written from Calico's documented semantics (shared/reference/notes/calico.md 2.1-2.3), sharing no
code with netpolc's backend. Given the resources of one cluster (GlobalNetworkSet, NetworkSet,
GlobalNetworkPolicy, NetworkPolicy, Tier) and the pods that exist, it answers "does Calico allow
this packet?" for one end (a pod's ingress or egress) or for a connection (egress at a source pod
AND ingress at a destination pod; an address that is not a pod is not policed).

What is modelled:
- selectors: the full grammar (`==`, `!=`, `in {}`, `not in {}`/`notin`, `has()`, `!`, `&&`, `||`,
  parentheses, `all()`, `global()`, `contains`, `starts with`/`startswith`, `ends with`/`endswith`);
  `!=` and `not in` also match resources without the label; `global()` only in a namespaceSelector;
- a rule selector is turned into an IP set, as felix does: the addresses of the pods it selects and
  the nets of the network sets it selects; a packet matches when its address is in that set (so a
  pod whose address lies in a selected GlobalNetworkSet matches too). Scoping follows libcalico-go's
  rule conversion: in a NetworkPolicy, a selector, notSelector or namespaceSelector makes the rule
  select endpoints of the policy's namespace only, unless namespaceSelector is given;
  namespaceSelector is evaluated on the namespace's labels, `all()` there means "any namespaced
  endpoint" and `global()` "any non-namespaced resource" (network sets); notSelector is never
  scoped. A GlobalNetworkPolicy's rule selector without namespaceSelector selects every pod and set;
- rules: action Allow/Deny/Pass/Log, protocol/notProtocol (names or numbers), icmp/notICMP,
  ipVersion, source/destination nets/notNets/selector/notSelector/namespaceSelector/ports/notPorts
  (ints and "a:b" ranges); every criterion ANDed, list entries ORed;
- policies: selector (NetworkPolicy: pods of its namespace; GlobalNetworkPolicy: every pod, with
  its optional namespaceSelector), types (explicit, or the default from which rule lists are
  non-empty: neither gives [Ingress]), order (unset is last; ties by name, namespace, kind);
- tiers: tier `default` (order 1,000,000, defaultAction Deny) and any Tier resource given; per
  direction, a tier applies when one of its policies selects the pod and governs that direction;
  policies in order, the first Allow or Deny decides, Pass skips to the next tier, Log goes on; no
  decision in an applying tier is the tier's defaultAction; a pod to which no tier applies (or that
  passed them all) gets its namespace profile: allow.

What is refused with CalicoError, rather than guessed: resources Calico rejects that the emitted
YAML could plausibly contain (ports without a port protocol, a port out of range such as an
unquoted `7000:59` that YAML reads as a base-60 number, ICMP with the wrong ipVersion or
protocol, an ICMP code without a type, a malformed selector, unknown kinds or fields), and features
outside this model (named ports, service accounts, services, HTTP match, HostEndpoints, domains).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml

INGRESS, EGRESS = "Ingress", "Egress"
API_VERSION = "projectcalico.org/v3"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CalicoError(ValueError):
    """A resource Calico would reject, or one using a feature this evaluator does not model."""


class SelectorError(CalicoError):
    pass


# =============================================================================== selectors
# AST nodes are tuples: ("all",) ("global",) ("has", k) ("==", k, v) ("!=", k, v) ("in", k, values)
# ("not in", k, values) ("contains", k, v) ("starts with", k, v) ("ends with", k, v) ("not", x)
# ("and", x, y, ...) ("or", x, y, ...).
_LABEL = re.compile(r"[a-zA-Z0-9_./-]+")
_STRING = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_SPACE = re.compile(r"[ \t]*")
# after a label: longest spellings first; `\b`-like guards so `index` is not `in` + `dex`
_OPERATORS = [
    ("==", re.compile(r"==")),
    ("!=", re.compile(r"!=")),
    ("not in", re.compile(r"not[ \t]*in(?![a-zA-Z0-9_./-])")),
    ("in", re.compile(r"in(?![a-zA-Z0-9_./-])")),
    ("contains", re.compile(r"contains(?![a-zA-Z0-9_./-])")),
    ("starts with", re.compile(r"starts[ \t]*with(?![a-zA-Z0-9_./-])")),
    ("ends with", re.compile(r"ends[ \t]*with(?![a-zA-Z0-9_./-])")),
]
MAX_LABEL = 512


class _SelectorParser:
    """Recursive descent over the text: expr := and ('||' and)*; and := unary ('&&' unary)*;
    unary := '!'* primary; primary := '(' expr ')' | all() | global() | has(label) | label op value."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> SelectorError:
        return SelectorError(f"selector {self.text!r}: {what} at column {self.pos + 1}")

    def skip(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()

    def eat(self, pattern: str | re.Pattern) -> re.Match | None:
        self.skip()
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        m = rx.match(self.text, self.pos)
        if m:
            self.pos = m.end()
        return m

    def parse(self) -> tuple:
        self.skip()
        if self.pos == len(self.text):
            return ("all",)  # the empty selector is all()
        node = self.expr()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("unexpected text")
        return node

    def expr(self) -> tuple:
        terms = [self.conjunction()]
        while self.eat("||"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else ("or", *terms)

    def conjunction(self) -> tuple:
        terms = [self.unary()]
        while self.eat("&&"):
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else ("and", *terms)

    def unary(self) -> tuple:
        negations = 0
        while self.eat(re.compile(r"!(?!=)")):
            negations += 1
        node = self.primary()
        for _ in range(negations):
            node = ("not", node)
        return node

    def label(self) -> str:
        m = self.eat(_LABEL)
        if not m:
            raise self.fail("expected a label")
        if len(m.group()) > MAX_LABEL:
            raise self.fail("label longer than 512 characters")
        return m.group()

    def string(self) -> str:
        m = self.eat(_STRING)
        if not m:
            raise self.fail("expected a quoted string")
        return m.group(1) if m.group(1) is not None else m.group(2)

    def primary(self) -> tuple:
        if self.eat("("):
            node = self.expr()
            if not self.eat(")"):
                raise self.fail("expected ')'")
            return node
        if self.eat(re.compile(r"all\([ \t]*\)")):
            return ("all",)
        if self.eat(re.compile(r"global\([ \t]*\)")):
            return ("global",)
        if self.eat(re.compile(r"has\(")):
            name = self.label()
            if not self.eat(")"):
                raise self.fail("expected ')' after has(label")
            return ("has", name)
        name = self.label()
        op = next((op for op, rx in _OPERATORS if self.eat(rx)), None)
        if op is None:
            raise self.fail(f"expected an operator after label {name!r}")
        if op in ("in", "not in"):
            return (op, name, self.string_set())
        return (op, name, self.string())

    def string_set(self) -> frozenset[str]:
        if not self.eat("{"):
            raise self.fail("expected '{'")
        values: list[str] = []
        while not self.eat("}"):
            values.append(self.string())
            if not self.eat(","):
                if not self.eat("}"):
                    raise self.fail("expected ',' or '}'")
                break
        return frozenset(values)


@dataclass(frozen=True)
class Selector:
    """A parsed selector. `matches(labels)` for an ordinary selector; `matches_namespace(labels)` for a
    rule's or policy's namespaceSelector, where labels is the namespace's labels or None for a
    resource that is in no namespace (a GlobalNetworkSet)."""

    text: str
    ast: tuple
    uses_global: bool

    @classmethod
    def parse(cls, text: str) -> Selector:
        if not isinstance(text, str):
            raise SelectorError(f"selector {text!r} is not a string")
        ast = _SelectorParser(text).parse()

        def walk(node: tuple) -> bool:
            return node[0] == "global" or (node[0] in ("not", "and", "or") and any(walk(n) for n in node[1:]))

        return cls(text, ast, walk(ast))

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.uses_global:
            raise CalicoError(f"global() is only valid in a namespaceSelector: {self.text!r}")
        return _evaluate(self.ast, labels, namespaced=True)

    def matches_namespace(self, namespace_labels: Mapping[str, str] | None) -> bool:
        return _evaluate(self.ast, namespace_labels or {}, namespaced=namespace_labels is not None)


def _evaluate(node: tuple, labels: Mapping[str, str], namespaced: bool) -> bool:
    op = node[0]
    if op == "all":
        return namespaced  # in an ordinary selector every resource is "namespaced" (see matches())
    if op == "global":
        return not namespaced
    if op == "not":
        return not _evaluate(node[1], labels, namespaced)
    if op == "and":
        return all(_evaluate(n, labels, namespaced) for n in node[1:])
    if op == "or":
        return any(_evaluate(n, labels, namespaced) for n in node[1:])
    key = node[1]
    if op == "has":
        return key in labels
    value = labels.get(key)
    arg = node[2]
    if op == "!=":
        return value != arg  # true when the label is absent
    if op == "not in":
        return value not in arg  # likewise
    if value is None:
        return False
    if op == "==":
        return value == arg
    if op == "in":
        return value in arg
    if op == "contains":
        return arg in value
    if op == "starts with":
        return value.startswith(arg)
    if op == "ends with":
        return value.endswith(arg)
    raise AssertionError(op)


# =============================================================================== addresses
class AddressSet:
    """A set of addresses of both families, as merged integer intervals (fast membership)."""

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]):
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for net in networks:
            spans[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in spans.items():
            merged: list[list[int]] = []
            for lo, hi in sorted(items):
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self._starts[version] = [lo for lo, _ in merged]
            self._ends[version] = [hi for _, hi in merged]

    def __contains__(self, address: IPAddress) -> bool:
        starts = self._starts[address.version]
        value = int(address)
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[address.version][i]

    def __bool__(self) -> bool:
        return any(self._starts.values())


def as_address(value: str | IPAddress) -> IPAddress:
    return value if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(
        str(value))


def _network(value: object, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)  # felix masks host bits (NormalizeIPNets)
    except ValueError as err:
        raise CalicoError(f"{where}: {value!r} is not a CIDR") from err


# =============================================================================== packets and pods
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}
_CALICO_PROTOCOLS = {"TCP": 6, "tcp": 6, "UDP": 17, "udp": 17, "ICMP": 1, "icmp": 1, "ICMPv6": 58, "icmpv6": 58,
                     "SCTP": 132, "sctp": 132, "UDPLite": 136, "udplite": 136}
_PORT_PROTOCOLS = {6, 17, 132, 136}
EPHEMERAL_PORT = 43210  # the source port of every probe


@dataclass(frozen=True, order=True)
class Packet:
    """The first packet of a connection: protocol tcp|udp|sctp with a destination port, or
    icmp|icmpv6 with a type and code. The family comes from the addresses."""

    protocol: str
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    source_port: int = EPHEMERAL_PORT

    @property
    def number(self) -> int:
        return PROTOCOL_NUMBERS[self.protocol]

    @property
    def family(self) -> int | None:
        return {"icmp": 4, "icmpv6": 6}.get(self.protocol)

    def __str__(self) -> str:
        if self.protocol in ("icmp", "icmpv6"):
            return f"{self.protocol} {self.icmp_type}/{self.icmp_code}"
        return f"{self.protocol} {self.port}"


@dataclass(frozen=True, eq=False)
class Pod:
    """A workload endpoint; compared by identity. `addresses`: at most one per family."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    addresses: tuple[IPAddress, ...]

    def address(self, family: int) -> IPAddress:
        for a in self.addresses:
            if a.version == family:
                return a
        raise KeyError(f"pod {self.namespace}/{self.name} has no IPv{family} address")

    def __repr__(self) -> str:
        return f"Pod({self.namespace}/{self.name})"


def make_pod(name: str, namespace: str, labels: Mapping[str, str], addresses: Iterable[str | IPAddress]) -> Pod:
    return Pod(name, namespace, dict(labels), tuple(as_address(a) for a in addresses))


# =============================================================================== rules
@dataclass(frozen=True)
class _Member:
    """Something a rule selector can select: a pod or a network set, with the labels felix sees."""

    labels: Mapping[str, str]
    namespace: str | None
    namespace_labels: Mapping[str, str] | None
    networks: tuple


@dataclass(frozen=True, eq=False)
class _Entity:
    """A rule's source or destination, with its selectors already turned into address sets."""

    nets: AddressSet | None
    not_nets: AddressSet | None
    selected: AddressSet | None  # selector (scoped); None: no selector criterion
    not_selected: AddressSet | None
    ports: tuple[tuple[int, int], ...] | None
    not_ports: tuple[tuple[int, int], ...] | None

    def matches_address(self, address: IPAddress) -> bool:
        if self.nets is not None and address not in self.nets:
            return False
        if self.not_nets is not None and address in self.not_nets:
            return False
        if self.selected is not None and address not in self.selected:
            return False
        return not (self.not_selected is not None and address in self.not_selected)

    def matches_port(self, port: int | None) -> bool:
        if self.ports is not None and (port is None or not _in_ranges(port, self.ports)):
            return False
        return not (self.not_ports is not None and port is not None and _in_ranges(port, self.not_ports))


def _in_ranges(port: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


@dataclass(frozen=True, eq=False)
class Rule:
    where: str  # "NetworkPolicy ns/name ingress rule 2", for explanations
    action: str
    ip_version: int | None
    protocol: int | None
    not_protocol: int | None
    icmp: tuple[int | None, int | None] | None
    not_icmp: tuple[int | None, int | None] | None
    source: _Entity
    destination: _Entity

    def matches_addresses(self, source: IPAddress, destination: IPAddress) -> bool:
        if self.ip_version is not None and source.version != self.ip_version:
            return False
        return self.source.matches_address(source) and self.destination.matches_address(destination)

    def matches_packet(self, packet: Packet) -> bool:
        if self.protocol is not None and packet.number != self.protocol:
            return False
        if self.not_protocol is not None and packet.number == self.not_protocol:
            return False
        if self.icmp is not None and not _icmp_matches(self.icmp, packet):
            return False
        if self.not_icmp is not None and _icmp_matches(self.not_icmp, packet):
            return False
        port_protocol = packet.number in _PORT_PROTOCOLS
        dport = packet.port if port_protocol else None
        sport = packet.source_port if port_protocol else None
        return self.destination.matches_port(dport) and self.source.matches_port(sport)


def _icmp_matches(spec: tuple[int | None, int | None], packet: Packet) -> bool:
    icmp_type, icmp_code = spec
    if packet.protocol not in ("icmp", "icmpv6"):
        return False
    if icmp_type is not None and packet.icmp_type != icmp_type:
        return False
    return icmp_code is None or packet.icmp_code == icmp_code


@dataclass(frozen=True)
class Tier:
    name: str
    order: float
    default_action: str  # Deny | Pass


@dataclass(eq=False)
class Policy:
    kind: str  # NetworkPolicy | GlobalNetworkPolicy
    name: str
    namespace: str | None
    tier: str
    order: float
    selector: Selector
    namespace_selector: Selector | None  # GlobalNetworkPolicy only
    types: frozenset[str]
    applies_to_pods: bool  # false for doNotTrack / preDNAT policies (host endpoints only)
    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def sort_key(self) -> tuple:
        return (self.order, self.name, self.namespace or "", self.kind)

    def selects(self, pod: Pod, pod_labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> bool:
        if not self.applies_to_pods:
            return False
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        if self.namespace_selector is not None and not self.namespace_selector.matches_namespace(namespace_labels):
            return False
        return self.selector.matches(pod_labels)


# =============================================================================== the cluster
_RULE_KEYS = {"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source", "destination",
              "metadata"}
_ENTITY_KEYS = {"nets", "notNets", "selector", "notSelector", "namespaceSelector", "ports", "notPorts"}
_POLICY_KEYS = {"order", "tier", "selector", "types", "ingress", "egress", "namespaceSelector", "doNotTrack",
                "preDNAT", "applyOnForward", "performanceHints"}
DEFAULT_TIER = Tier("default", 1_000_000.0, "Deny")


class Cluster:
    """Calico's view of one cluster: its resources and its pods (namespaces come from the pods)."""

    def __init__(self, documents: Iterable[Mapping], pods: Iterable[Pod],
                 namespace_labels: Mapping[str, Mapping[str, str]] | None = None):
        self.pods = list(pods)
        extra = namespace_labels or {}
        names = {p.namespace for p in self.pods} | set(extra)
        # kube-controllers gives every namespace profile these labels, besides the namespace's own
        self.namespace_labels = {
            ns: {"projectcalico.org/name": ns, "kubernetes.io/metadata.name": ns, **extra.get(ns, {})}
            for ns in sorted(names)}
        self.tiers: dict[str, Tier] = {"default": DEFAULT_TIER}
        self.members: list[_Member] = [self._pod_member(p) for p in self.pods]
        policies: list[tuple[Mapping, Mapping]] = []
        for doc in documents:
            if doc is None:
                continue
            self._load(doc, policies)
        self.policies = [self._policy(doc, spec) for doc, spec in policies]
        for p in self.policies:
            if p.tier not in self.tiers:
                raise CalicoError(f"{p.ref}: tier {p.tier!r} does not exist")
        self.policies.sort(key=lambda p: (self.tiers[p.tier].order, p.tier, *p.sort_key()))
        self._applicable: dict[tuple[int, str], tuple[tuple[Tier, tuple[Policy, ...]], ...]] = {}
        self._results: dict[tuple, frozenset[Packet]] = {}
        self._packet_tuples: dict[int, tuple[Packet, ...]] = {}  # keeps the tuples keyed by id() alive

    @classmethod
    def from_yaml(cls, texts: Iterable[str | bytes], pods: Iterable[Pod],
                  namespace_labels: Mapping[str, Mapping[str, str]] | None = None) -> Cluster:
        documents = [doc for text in texts for doc in yaml.safe_load_all(text)]
        return cls(documents, pods, namespace_labels)

    # --------------------------------------------------------------- loading
    def _pod_member(self, pod: Pod) -> _Member:
        return _Member(self.pod_labels(pod), pod.namespace, self.namespace_labels[pod.namespace],
                       tuple(ipaddress.ip_network(a) for a in pod.addresses))

    def pod_labels(self, pod: Pod) -> dict[str, str]:
        """The labels felix matches a pod with: its own, its namespace's (prefixed pcns.), Calico's."""
        labels = {f"pcns.{k}": v for k, v in self.namespace_labels[pod.namespace].items()}
        labels.update(pod.labels)
        labels["projectcalico.org/namespace"] = pod.namespace
        labels["projectcalico.org/orchestrator"] = "k8s"
        return labels

    def _load(self, doc: Mapping, policies: list) -> None:
        if not isinstance(doc, Mapping):
            raise CalicoError(f"a YAML document is not a mapping: {doc!r}")
        if doc.get("apiVersion") != API_VERSION:
            raise CalicoError(f"apiVersion {doc.get('apiVersion')!r} is not {API_VERSION}")
        kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
        name = meta.get("name")
        if not name:
            raise CalicoError(f"a {kind} without a name")
        if kind in ("GlobalNetworkSet", "NetworkSet"):
            unknown = set(spec) - {"nets"}
            if unknown:
                raise CalicoError(f"{kind} {name}: not modelled: {sorted(unknown)}")
            namespace = meta.get("namespace") if kind == "NetworkSet" else None
            if kind == "NetworkSet" and not namespace:
                raise CalicoError(f"NetworkSet {name} has no namespace")
            labels = dict(meta.get("labels") or {})
            ns_labels = None
            if namespace:
                ns_labels = self.namespace_labels.setdefault(
                    namespace, {"projectcalico.org/name": namespace, "kubernetes.io/metadata.name": namespace})
                labels = {**{f"pcns.{k}": v for k, v in ns_labels.items()}, **labels,
                          "projectcalico.org/namespace": namespace}
            nets = tuple(_network(n, f"{kind} {name}") for n in spec.get("nets") or ())
            self.members.append(_Member(labels, namespace, ns_labels, nets))
        elif kind in ("GlobalNetworkPolicy", "NetworkPolicy"):
            unknown = set(spec) - _POLICY_KEYS
            if unknown:
                raise CalicoError(f"{kind} {name}: not modelled: {sorted(unknown)}")
            policies.append((doc, spec))
        elif kind == "Tier":
            action = spec.get("defaultAction", "Deny")
            if action not in ("Deny", "Pass"):
                raise CalicoError(f"Tier {name}: defaultAction {action!r}")
            order = spec.get("order")
            self.tiers[name] = Tier(name, math.inf if order is None else float(order), action)
        else:
            raise CalicoError(f"kind {kind!r} is not modelled")

    def _policy(self, doc: Mapping, spec: Mapping) -> Policy:
        kind, meta = doc["kind"], doc["metadata"]
        namespace = meta.get("namespace") if kind == "NetworkPolicy" else None
        if kind == "NetworkPolicy":
            if not namespace:
                raise CalicoError(f"NetworkPolicy {meta['name']} has no namespace")
            if "namespaceSelector" in spec:
                raise CalicoError(f"NetworkPolicy {meta['name']}: namespaceSelector is a GlobalNetworkPolicy field")
        ingress, egress = spec.get("ingress") or [], spec.get("egress") or []
        if "types" in spec:
            types = spec["types"] or []
            if not set(types) <= {INGRESS, EGRESS} or len(set(types)) != len(types):
                raise CalicoError(f"{kind} {meta['name']}: bad types {types!r}")
        else:  # Calico's default: from the rule lists; neither gives [Ingress]
            types = [t for t, rules in ((INGRESS, ingress), (EGRESS, egress)) if rules] or [INGRESS]
        order = spec.get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, (int, float))):
            raise CalicoError(f"{kind} {meta['name']}: order {order!r} is not a number")
        selector = Selector.parse(spec.get("selector", "") or "")
        if selector.uses_global:
            raise CalicoError(f"{kind} {meta['name']}: global() in a policy selector")
        ns_selector = Selector.parse(spec["namespaceSelector"]) if spec.get("namespaceSelector") else None
        policy = Policy(kind, meta["name"], namespace, spec.get("tier", "default"),
                        math.inf if order is None else float(order), selector, ns_selector, frozenset(types),
                        not (spec.get("doNotTrack") or spec.get("preDNAT")))
        policy.ingress = [self._rule(r, policy, "ingress", i) for i, r in enumerate(ingress)]
        policy.egress = [self._rule(r, policy, "egress", i) for i, r in enumerate(egress)]
        return policy

    def _rule(self, raw: Mapping, policy: Policy, direction: str, index: int) -> Rule:
        where = f"{policy.ref} {direction} rule {index}"
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise CalicoError(f"{where}: not modelled: {sorted(unknown)}")
        action = raw.get("action")
        if action not in ("Allow", "Deny", "Pass", "Log"):
            raise CalicoError(f"{where}: action {action!r}")
        ip_version = raw.get("ipVersion")
        if ip_version not in (None, 4, 6):
            raise CalicoError(f"{where}: ipVersion {ip_version!r}")
        protocol, not_protocol = _protocol(raw.get("protocol"), where), _protocol(raw.get("notProtocol"), where)
        icmp, not_icmp = _icmp(raw.get("icmp"), where), _icmp(raw.get("notICMP"), where)
        if icmp is not None or not_icmp is not None:
            if protocol not in (1, 58):
                raise CalicoError(f"{where}: icmp/notICMP needs protocol ICMP or ICMPv6")
            if ip_version is not None and ip_version != {1: 4, 58: 6}[protocol]:
                raise CalicoError(f"{where}: protocol {raw.get('protocol')} with ipVersion {ip_version}")
        source = self._entity(raw.get("source") or {}, policy, where + " source", protocol, ip_version)
        destination = self._entity(raw.get("destination") or {}, policy, where + " destination", protocol,
                                   ip_version)
        return Rule(where, action, ip_version, protocol, not_protocol, icmp, not_icmp, source, destination)

    def _entity(self, raw: Mapping, policy: Policy, where: str, protocol: int | None,
                ip_version: int | None) -> _Entity:
        unknown = set(raw) - _ENTITY_KEYS
        if unknown:
            raise CalicoError(f"{where}: not modelled: {sorted(unknown)}")
        ports, not_ports = _ports(raw.get("ports"), where), _ports(raw.get("notPorts"), where)
        if (ports is not None or not_ports is not None) and protocol not in _PORT_PROTOCOLS:
            raise CalicoError(f"{where}: ports need protocol TCP, UDP, SCTP or UDPLite")
        nets = [_network(n, where) for n in raw.get("nets") or ()]
        not_nets = [_network(n, where) for n in raw.get("notNets") or ()]
        if ip_version is not None and any(n.version != ip_version for n in nets + not_nets):
            raise CalicoError(f"{where}: a net of the other family than ipVersion {ip_version}")
        selector = Selector.parse(raw["selector"]) if raw.get("selector") else None
        not_selector = Selector.parse(raw["notSelector"]) if raw.get("notSelector") else None
        ns_selector = Selector.parse(raw["namespaceSelector"]) if raw.get("namespaceSelector") else None
        for s in (selector, not_selector):
            if s is not None and s.uses_global:
                raise CalicoError(f"{where}: global() outside a namespaceSelector")
        # libcalico-go's conversion: scope the selector to namespaces when a namespaceSelector is given,
        # or in a NetworkPolicy when any of selector/notSelector/namespaceSelector is
        scoped = ns_selector is not None or (
            policy.namespace is not None and (selector or not_selector or ns_selector) is not None)

        def in_scope(m: _Member) -> bool:
            if ns_selector is not None:
                return ns_selector.matches_namespace(m.namespace_labels)
            return m.namespace == policy.namespace

        selected = None
        if selector is not None or scoped:
            selected = self._address_set(
                m for m in self.members
                if (not scoped or in_scope(m)) and (selector is None or selector.matches(m.labels)))
        not_selected = None
        if not_selector is not None:  # never scoped
            not_selected = self._address_set(m for m in self.members if not_selector.matches(m.labels))
        return _Entity(AddressSet(nets) if nets else None, AddressSet(not_nets) if not_nets else None,
                       selected, not_selected, ports, not_ports)

    @staticmethod
    def _address_set(members: Iterable[_Member]) -> AddressSet:
        return AddressSet(n for m in members for n in m.networks)

    # --------------------------------------------------------------- evaluation
    def applicable(self, pod: Pod, direction: str) -> tuple[tuple[Tier, tuple[Policy, ...]], ...]:
        """The tiers that apply to the pod in that direction, each with its selecting policies in order."""
        key = (id(pod), direction)
        if key not in self._applicable:
            labels, ns_labels = self.pod_labels(pod), self.namespace_labels[pod.namespace]
            tiers: dict[str, list[Policy]] = {}
            for p in self.policies:
                if direction in p.types and p.selects(pod, labels, ns_labels):
                    tiers.setdefault(p.tier, []).append(p)
            self._applicable[key] = tuple((self.tiers[t], tuple(ps)) for t, ps in tiers.items())
        return self._applicable[key]

    def _plan(self, pod: Pod, direction: str, source: IPAddress, destination: IPAddress) -> tuple:
        """Per applying tier: its default action and the rules (in order) whose address criteria match."""
        plan = []
        for tier, policies in self.applicable(pod, direction):
            rules = tuple(r for p in policies for r in (p.ingress if direction == INGRESS else p.egress)
                          if r.matches_addresses(source, destination))
            plan.append((tier, rules))
        return tuple(plan)

    @staticmethod
    def _run(plan: tuple, packet: Packet) -> tuple[bool, str]:
        if not plan:
            return True, "no policy selects the pod in this direction: its profile allows"
        for tier, rules in plan:
            passed = False
            for rule in rules:
                if not rule.matches_packet(packet):
                    continue
                if rule.action == "Allow":
                    return True, rule.where
                if rule.action == "Deny":
                    return False, rule.where
                if rule.action == "Pass":
                    passed = True
                    break
                # Log: go on
            if not passed and tier.default_action == "Deny":
                return False, f"end of tier {tier.name}"
        return True, "passed every tier: the profile allows"

    @staticmethod
    def _addresses(pod: Pod, direction: str, peer: IPAddress) -> tuple[IPAddress, IPAddress]:
        local = pod.address(peer.version)
        return (local, peer) if direction == EGRESS else (peer, local)

    def end_decision(self, pod: Pod, direction: str, peer: str | IPAddress, packet: Packet) -> tuple[bool, str]:
        """Whether the pod's own policy allows the packet (direction Ingress or Egress), and why."""
        peer = as_address(peer)
        _check_family(packet, peer.version)
        return self._run(self._plan(pod, direction, *self._addresses(pod, direction, peer)), packet)

    def end_allows(self, pod: Pod, direction: str, peer: str | IPAddress, packet: Packet) -> bool:
        return self.end_decision(pod, direction, peer, packet)[0]

    def end_allowed_packets(self, pod: Pod, direction: str, peer: str | IPAddress,
                            packets: tuple[Packet, ...]) -> frozenset[Packet]:
        """The packets (all of the peer's family) the pod's end allows; cached per distinct plan and
        packet tuple (by identity: pass the same tuple again to hit the cache)."""
        peer = as_address(peer)
        plan = self._plan(pod, direction, *self._addresses(pod, direction, peer))
        self._packet_tuples.setdefault(id(packets), packets)
        key = (plan, id(packets))
        if key not in self._results:
            for p in packets:
                _check_family(p, peer.version)
            self._results[key] = frozenset(p for p in packets if self._run(plan, p)[0])
        return self._results[key]

    def connection(self, source: Pod | str | IPAddress, destination: Pod | str | IPAddress, packet: Packet,
                   family: int | None = None) -> tuple[bool, list[str]]:
        """Egress at the source pod AND ingress at the destination pod; an address is not policed.
        `family` picks the pods' addresses when both ends are pods (default: the packet's, else 4)."""
        ends = [e if isinstance(e, Pod) else as_address(e) for e in (source, destination)]
        if family is None:
            family = next((e.version for e in ends if not isinstance(e, Pod)), packet.family or 4)
        src, dst = (e.address(family) if isinstance(e, Pod) else e for e in ends)
        if src.version != dst.version:
            raise ValueError(f"{src} and {dst} are of different families")
        allowed, reasons = True, []
        if isinstance(ends[0], Pod):
            ok, why = self.end_decision(ends[0], EGRESS, dst, packet)
            allowed, reasons = allowed and ok, [*reasons, f"egress {'allowed' if ok else 'denied'} by {why}"]
        if isinstance(ends[1], Pod):
            ok, why = self.end_decision(ends[1], INGRESS, src, packet)
            allowed, reasons = allowed and ok, [*reasons, f"ingress {'allowed' if ok else 'denied'} by {why}"]
        return allowed, reasons

    def allows(self, source: Pod | str | IPAddress, destination: Pod | str | IPAddress, packet: Packet,
               family: int | None = None) -> bool:
        return self.connection(source, destination, packet, family)[0]


def _check_family(packet: Packet, family: int) -> None:
    if packet.family not in (None, family):
        raise ValueError(f"{packet} cannot travel over IPv{family}")


def _protocol(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255:
        return value
    if isinstance(value, str) and value in _CALICO_PROTOCOLS:
        return _CALICO_PROTOCOLS[value]
    raise CalicoError(f"{where}: protocol {value!r}")


def _icmp(value: object, where: str) -> tuple[int | None, int | None] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"type", "code"}:
        raise CalicoError(f"{where}: icmp {value!r}")
    icmp_type, icmp_code = value.get("type"), value.get("code")
    if icmp_code is not None and icmp_type is None:
        raise CalicoError(f"{where}: an ICMP code needs a type")
    for v, hi in ((icmp_type, 254), (icmp_code, 255)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi):
            raise CalicoError(f"{where}: icmp {value!r} out of range")
    return icmp_type, icmp_code


_PORT_RANGE = re.compile(r"(\d+)(?::(\d+))?")


def _ports(value: object, where: str) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise CalicoError(f"{where}: ports {value!r} is not a list")
    out = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            lo = hi = item
        elif isinstance(item, str) and (m := _PORT_RANGE.fullmatch(item)):
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        elif isinstance(item, str):
            raise CalicoError(f"{where}: named port {item!r} is not modelled")
        else:
            raise CalicoError(f"{where}: port {item!r}")
        if not 0 <= lo <= hi <= 65535:
            raise CalicoError(f"{where}: port {item!r} out of range (YAML reads an unquoted a:b, b < 60, in base 60)")
        out.append((lo, hi))
    return tuple(out)

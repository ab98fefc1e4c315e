"""A cluster's compiled Calico policy read back: the address sets, and each policy's rules with the
line they stand on, so explain can find the rule that implements a statement and judge the files
on their own."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml
from netaddr import IPNetwork, IPSet

from .cover import FULL, NONE, cover, of_family
from .ends import Party
from .question import Query

SET_SELECTOR = re.compile(r"^netpolc\.io/set == '([^']*)'$")
APP_SELECTOR = re.compile(r"^app == '([^']*)'$")
NAMESPACE_SELECTOR = re.compile(r"^projectcalico\.org/name == '([^']*)'$")
CALICO_PROTOCOL = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "ICMP": "icmp", "ICMPv6": "icmpv6"}


@dataclass(frozen=True)
class CalicoRule:
    file: str
    line: int
    policy: str  # `NetworkPolicy eventgate-main`
    direction: str
    rule: dict

    @property
    def location(self) -> str | None:
        return ((self.rule.get("metadata") or {}).get("annotations") or {}).get("netpolc.io/source")

    @property
    def far_side(self) -> dict:
        """The destination of an egress rule, the source of an ingress rule."""
        return (self.rule.get("destination") if self.direction == "egress" else self.rule.get("source")) or {}


def calico_port_ok(rule: dict, query: Query, family: int) -> bool:
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
        self.policies: list[tuple[str, int, dict, dict[str, list[CalicoRule]]]] = []  # file, line, doc, rules
        for path in sorted(p for p in files if p.startswith(base) and p.endswith(".yaml")):
            for node, doc in _documents(files[path].decode()):
                if not isinstance(doc, dict):
                    continue
                if doc.get("kind") == "GlobalNetworkSet":
                    self.sets[doc["metadata"]["name"]] = IPSet(doc["spec"].get("nets") or ())
                elif doc.get("kind") in ("NetworkPolicy", "GlobalNetworkPolicy"):
                    self.policies.append((path, node.start_mark.line + 1, doc, self._rules(path, doc, node)))

    @staticmethod
    def _rules(path: str, doc: dict, node: yaml.Node) -> dict[str, list[CalicoRule]]:
        spec_node = next((v for k, v in node.value if k.value == "spec"), None)
        out: dict[str, list[CalicoRule]] = {"ingress": [], "egress": []}
        if spec_node is None:
            return out
        policy = f"{doc['kind']} {doc['metadata']['name']}"
        for k, v in spec_node.value:
            if k.value in out:
                for item, rule in zip(v.value, doc["spec"][k.value], strict=True):
                    out[k.value].append(CalicoRule(path, item.start_mark.line + 1, policy, k.value, rule))
        return out

    def rules_for(self, app: str, namespace: str, direction: str) -> list[CalicoRule]:
        """The rules of every policy that selects the app's pods, in file order."""
        out: list[CalicoRule] = []
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

    def cover(self, r: CalicoRule, far: Party, family: int) -> str:
        """How the rule's far side (destination of egress, source of ingress) covers the far party."""
        side = r.far_side
        selector = side.get("selector")
        if selector is None and not side.get("nets"):
            return FULL
        theirs = far.of(family)
        if selector is None:
            mine = of_family(IPSet(side["nets"]).iter_cidrs(), family)
        elif (s := SET_SELECTOR.match(selector)) is not None:
            mine = self.set_of(s.group(1), family)
        elif (a := APP_SELECTOR.match(selector)) is not None:
            ns = NAMESPACE_SELECTOR.match(str(side.get("namespaceSelector", "")))
            return FULL if far.kind == "app" and far.name == a.group(1) and far.cluster == self.cluster and ns else NONE
        else:
            return NONE  # kube-dns and the like: nothing a party of explain can be
        return cover(theirs, mine)

    def set_of(self, name: str, family: int) -> IPSet:
        """A GlobalNetworkSet's addresses of one family (cached)."""
        key = (name, family)
        if key not in self._family_sets:
            found = self.sets.get(name, IPSet())
            self._family_sets[key] = of_family(found.iter_cidrs(), family)
        return self._family_sets[key]

    @staticmethod
    def describe(r: CalicoRule) -> str:
        rule = r.rule
        proto = str(rule.get("protocol", "any protocol"))
        if "icmp" in rule:
            proto += f" type {rule['icmp'].get('type')}" + (f" code {rule['icmp']['code']}"
                                                             if "code" in rule["icmp"] else "")
        ports = (rule.get("destination") or {}).get("ports")
        if ports:
            proto += " " + ",".join(str(p) for p in ports)
        sel = r.far_side.get("selector")
        s = SET_SELECTOR.match(sel) if sel else None
        peer = f"set {s.group(1)}" if s else str(sel) if sel else "anywhere"
        return f"{r.direction} rule of {r.policy}: {proto} {'to' if r.direction == 'egress' else 'from'} {peer}"

    def rule_nets(self, r: CalicoRule, family: int) -> Iterable[IPNetwork]:
        """The networks of one family the rule's far side names, by address or by network set."""
        side = r.far_side
        s = SET_SELECTOR.match(str(side.get("selector", "")))
        nets = self.sets.get(s.group(1), IPSet()) if s else IPSet(side.get("nets") or ())
        return (c for c in nets.iter_cidrs() if c.version == family)


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

"""The project's own checks of Calico policy output: what Calico's validator rejects (libcalico-go
`validator/v3`, calico.md 1.4) and no CRD schema can say, plus the contract's stricter ICMP rule.

- names: NetworkPolicy `label(.label)?`, GlobalNetworkPolicy `(label.)?label`, labels at most 63
  characters (the CRD check already wants every name a DNS-1123 subdomain); a namespace a DNS label;
- selectors parse (calico_rules' parser): the policy's `selector` and `namespaceSelector`, each rule's
  `selector`, `notSelector` and `namespaceSelector`; `global()` only as the whole of a rule's
  `namespaceSelector`;
- `types` without duplicates, and including each direction that has rules (Calico rejects the rest);
- protocol: TCP, UDP, SCTP, UDPLite, ICMP, ICMPv6 (any case) or 1..255;
- ports only with TCP, UDP or SCTP; each an integer or `"a:b"`, in 1..65535, a <= b;
- `icmp` only with ICMP or ICMPv6, a code only with a type; ICMP with `ipVersion: 4` and ICMPv6 with
  6 (Calico only rejects a mismatch; the netpolc contract states the version on every ICMP rule);
- nets: CIDRs, and the nets of one rule of one family, matching its `ipVersion`;
- GlobalNetworkSet: nets strictly masked CIDRs, labels Kubernetes accepts.
"""

from __future__ import annotations

import re

import calico_rules
from netaddr import AddrFormatError, IPNetwork

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
POLICY_NAME = {"NetworkPolicy": re.compile(rf"^{_LABEL}(\.{_LABEL})?$"),
               "GlobalNetworkPolicy": re.compile(rf"^({_LABEL}\.)?{_LABEL}$")}
DNS_LABEL = re.compile(rf"^{_LABEL}$")
PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132, "UDPLITE": 136, "ICMP": 1, "ICMPV6": 58}
PORTED = {6, 17, 132}
ICMP_VERSION = {1: 4, 58: 6}
_RANGE = re.compile(r"^(\d+):(\d+)$")


def _uses_global(sel: calico_rules.Sel) -> bool:
    return sel.op == "global" or any(_uses_global(a) for a in sel.args if isinstance(a, calico_rules.Sel))


def _selector_errors(where: str, text: object, global_alone: bool = False) -> list[str]:
    try:
        sel = calico_rules.parse_selector(str(text))
    except calico_rules.SelectorError as err:
        return [f"{where}: bad selector: {err}"]
    if _uses_global(sel) and not (global_alone and sel.op == "global"):
        return [f"{where}: global() is only allowed alone, as a rule's namespaceSelector"]
    return []


def _protocol(where: str, value: object) -> tuple[int | None, list[str]]:
    """The protocol number, or None when the rule names none."""
    if value is None:
        return None, []
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, []) if 1 <= value <= 255 else (None, [f"{where}: protocol {value} is not in 1..255"])
    if isinstance(value, str) and value.upper() in PROTOCOLS:
        return PROTOCOLS[value.upper()], []
    return None, [f"{where}: unknown protocol {value!r}"]


def _port_errors(where: str, port: object) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool):
        low = high = port
    elif isinstance(port, str) and _RANGE.match(port):
        low, high = map(int, _RANGE.match(port).groups())  # type: ignore[union-attr]
    else:
        return [f"{where}: {port!r} is not a port or an `a:b` range (netpolc writes no named ports)"]
    if not 1 <= low <= high <= 65535:
        return [f"{where}: {port!r} is not in 1..65535 with a <= b"]
    return []


def _nets(where: str, values: object) -> tuple[list[IPNetwork], list[str]]:
    nets, out = [], []
    for i, text in enumerate(values or []):  # type: ignore[union-attr]
        try:
            if "/" not in str(text):
                raise ValueError
            nets.append(IPNetwork(str(text)))
        except (AddrFormatError, ValueError):
            out.append(f"{where}.{i}: {text!r} is not a CIDR")
    return nets, out


def rule_errors(where: str, rule: dict) -> list[str]:
    proto, out = _protocol(f"{where}.protocol", rule.get("protocol"))
    version = rule.get("ipVersion")
    families: set[int] = set()
    for side in ("source", "destination"):
        entity = rule.get(side) or {}
        for key in ("selector", "notSelector", "namespaceSelector"):
            if key in entity:
                out += _selector_errors(f"{where}.{side}.{key}", entity[key], global_alone=key == "namespaceSelector")
        for key in ("ports", "notPorts"):
            if entity.get(key) and proto not in PORTED:
                out.append(f"{where}.{side}.{key}: ports need protocol TCP, UDP or SCTP, not {rule.get('protocol')!r}")
            for i, port in enumerate(entity.get(key) or []):
                out += _port_errors(f"{where}.{side}.{key}.{i}", port)
        for key in ("nets", "notNets"):
            nets, errs = _nets(f"{where}.{side}.{key}", entity.get(key))
            out += errs
            families |= {n.version for n in nets}
    if len(families) > 1:
        out.append(f"{where}: the rule mixes IPv4 and IPv6 nets")
    elif families and version is not None and families != {version}:
        out.append(f"{where}: IPv{families.pop()} nets in an ipVersion {version} rule")
    for key in ("icmp", "notICMP"):
        icmp = rule.get(key)
        if icmp is None:
            continue
        if proto not in ICMP_VERSION:
            out.append(f"{where}.{key}: ICMP fields need protocol ICMP or ICMPv6, not {rule.get('protocol')!r}")
        if "code" in icmp and "type" not in icmp:
            out.append(f"{where}.{key}: an ICMP code needs a type")
    if proto in ICMP_VERSION and version != ICMP_VERSION[proto]:
        out.append(f"{where}: protocol {rule.get('protocol')} needs ipVersion {ICMP_VERSION[proto]}, not {version!r}")
    return out


def check_policy(doc: dict) -> list[str]:
    meta, spec, kind = doc["metadata"], doc.get("spec") or {}, doc["kind"]
    out = []
    if not POLICY_NAME[kind].match(str(meta.get("name"))):
        out.append(f"metadata.name: {meta.get('name')!r} is not a valid {kind} name")
    if kind == "NetworkPolicy" and not DNS_LABEL.match(str(meta.get("namespace"))):
        out.append(f"metadata.namespace: {meta.get('namespace')!r} is not a DNS label")
    for key in ("selector", "namespaceSelector", "serviceAccountSelector"):
        if key in spec:
            out += _selector_errors(f"spec.{key}", spec[key])
    types = spec.get("types") or []
    if len(set(types)) != len(types):
        out.append(f"spec.types: {types} has a duplicate")
    for direction, type_ in (("ingress", "Ingress"), ("egress", "Egress")):
        rules = spec.get(direction) or []
        if rules and type_ not in types:
            out.append(f"spec.{direction}: rules present but types {types} leave out {type_}")
        for i, rule in enumerate(rules):
            out += rule_errors(f"spec.{direction}.{i}", rule)
    return out


def check_network_set(doc: dict) -> list[str]:
    meta, spec = doc["metadata"], doc.get("spec") or {}
    out = calico_rules.label_errors(meta.get("labels") or {})
    nets, errs = _nets("spec.nets", spec.get("nets"))
    out += errs
    out += [f"spec.nets: {n} is not strictly masked" for n in nets if n.ip != n.network]
    return out


CHECKS = {"NetworkPolicy": check_policy, "GlobalNetworkPolicy": check_policy, "GlobalNetworkSet": check_network_set}


def errors(doc: dict) -> list[str]:
    kind = doc.get("kind")
    if kind not in CHECKS:
        raise LookupError(f"no project check for kind {kind!r}")
    return CHECKS[kind](doc)

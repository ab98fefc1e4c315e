"""The project's own checks of BGP output: what Calico (or we) reject that no CRD schema can say.

- Calico selectors, for the subset netpolc emits: `==`, `!=`, `in {...}`, `not in {...}`, `has()`,
  `!`, `&&`, `||`, `all()`, `global()`, parentheses and quoted strings (grammar after calico.md 2.1;
  no escapes in strings), parsed into a small tree that can also be evaluated against labels;
- BGPPeer: `node` xor `nodeSelector`, `peerIP` xor `peerSelector`, an AS number with a peer IP and
  none with a peer selector (the CEL rules the schema check skips), AS numbers in range, and the
  family a name states (`-ipv4`/`-ipv6`) matching the peer IP: Calico runs the families apart;
- IPPool: strictly masked, block size in the family's range and no larger than the pool, no IPIP
  on IPv6, the family of the name;
- BGPConfiguration: AS number in range, service ranges strictly masked;
- Node: label keys and values Kubernetes accepts, and Calico's annotations in the right family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netaddr import AddrFormatError, IPAddress, IPNetwork

ASN_RANGE = (1, 2**32 - 1)
BLOCK_RANGE = {4: (20, 32), 6: (116, 128)}
_TOKEN = re.compile(r"""\s*(?:(?P<op>==|!=|&&|\|\||[!(){},])|(?P<str>'[^']*'|"[^"]*")|(?P<word>[a-zA-Z0-9_./-]+))""")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SelectorError(ValueError):
    pass


# ------------------------------------------------------------------ selectors
@dataclass(frozen=True)
class Sel:
    """A parsed selector: op is all | global | has | == | != | in | notin | not | and | or."""

    op: str
    args: tuple

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "all":
            return True
        if self.op == "global":
            raise ValueError("global() selects non-namespaced resources, not labels")
        if self.op == "has":
            return self.args[0] in labels
        if self.op == "==":
            return labels.get(self.args[0]) == self.args[1]
        if self.op == "!=":  # Calico: also true when the label is absent
            return labels.get(self.args[0]) != self.args[1]
        if self.op == "in":
            return labels.get(self.args[0]) in self.args[1]
        if self.op == "notin":  # like !=: also true when the label is absent
            return labels.get(self.args[0]) not in self.args[1]
        if self.op == "not":
            return not self.args[0].matches(labels)
        if self.op == "and":
            return all(a.matches(labels) for a in self.args)
        return any(a.matches(labels) for a in self.args)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"unexpected {text[pos:].strip()[:10]!r} at {pos} in {text!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = value or kind
            raise SelectorError(f"expected {want!r}, found {tok[1] if tok else 'the end'!r} in {self.text!r}")
        self.i += 1
        return tok[1]

    def parse(self) -> Sel:
        if not self.toks:
            return Sel("all", ())
        sel = self.expr()
        if self.peek() is not None:
            raise SelectorError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return sel

    def expr(self) -> Sel:
        parts = [self.conj()]
        while self.peek() == ("op", "||"):
            self.take("||")
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else Sel("or", tuple(parts))

    def conj(self) -> Sel:
        parts = [self.unary()]
        while self.peek() == ("op", "&&"):
            self.take("&&")
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else Sel("and", tuple(parts))

    def unary(self) -> Sel:
        if self.peek() == ("op", "!"):
            self.take("!")
            return Sel("not", (self.unary(),))
        return self.primary()

    def primary(self) -> Sel:
        tok = self.peek()
        if tok == ("op", "("):
            self.take("(")
            sel = self.expr()
            self.take(")")
            return sel
        word = self.take(kind="word")
        if word in ("all", "global", "has") and self.peek() == ("op", "("):
            self.take("(")
            if word in ("all", "global"):
                self.take(")")
                return Sel(word, ())
            label = self.take(kind="word")
            self.take(")")
            return Sel("has", (label,))
        if self.peek() in (("word", "in"), ("word", "not")):
            negated = self.take(kind="word") == "not"
            if negated:
                self.take("in")
            return Sel("notin" if negated else "in", (word, self.string_set()))
        op = self.take(kind="op")
        if op not in ("==", "!="):
            raise SelectorError(f"expected == or != after {word!r} in {self.text!r}")
        value = self.take(kind="str")
        return Sel(op, (word, value[1:-1]))

    def string_set(self) -> frozenset[str]:
        """`{'a', 'b'}`; empty and a trailing comma are allowed."""
        self.take("{")
        values = []
        while self.peek() != ("op", "}"):
            values.append(self.take(kind="str")[1:-1])
            if self.peek() != ("op", "}"):
                self.take(",")
        self.take("}")
        return frozenset(values)


def parse_selector(text: str) -> Sel:
    return _Parser(text).parse()


# ------------------------------------------------------------------ resources
def _asn_errors(where: str, value: object) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool) or not ASN_RANGE[0] <= value <= ASN_RANGE[1]:
        return [f"{where}: AS number {value!r} is not in {ASN_RANGE[0]}..{ASN_RANGE[1]}"]
    return []


def _selector_errors(where: str, text: object) -> list[str]:
    try:
        parse_selector(str(text))
    except SelectorError as err:
        return [f"{where}: bad selector: {err}"]
    return []


def _name_family(name: str) -> int | None:
    m = re.search(r"-ipv([46])(-\d+)?$", name)
    return int(m.group(1)) if m else None


def _strict_network(where: str, text: object) -> tuple[IPNetwork | None, list[str]]:
    try:
        net = IPNetwork(str(text))
    except (AddrFormatError, ValueError):
        return None, [f"{where}: {text!r} is not a CIDR"]
    if "/" not in str(text):
        return None, [f"{where}: {text!r} has no prefix length"]
    if net.ip != net.network:
        return net, [f"{where}: {text} is not strictly masked"]
    return net, []


def check_bgp_peer(doc: dict) -> list[str]:
    spec, name = doc.get("spec") or {}, doc["metadata"]["name"]
    out = []
    if spec.get("node") and spec.get("nodeSelector"):
        out.append("spec: node and nodeSelector are mutually exclusive")
    if spec.get("peerIP") and spec.get("peerSelector"):
        out.append("spec: peerIP and peerSelector are mutually exclusive")
    if not spec.get("peerIP") and not spec.get("peerSelector"):
        out.append("spec: a peer needs peerIP or peerSelector")
    for key in ("nodeSelector", "peerSelector"):
        if key in spec:
            out += _selector_errors(f"spec.{key}", spec[key])
    if spec.get("peerSelector"):
        if spec.get("asNumber"):
            out.append("spec.asNumber: must be empty with peerSelector (the peers' own AS numbers apply)")
        return out
    out += _asn_errors("spec.asNumber", spec.get("asNumber"))
    if "numAllowedLocalASNumbers" in spec and spec["numAllowedLocalASNumbers"] not in range(0, 11):
        out.append(f"spec.numAllowedLocalASNumbers: {spec['numAllowedLocalASNumbers']!r} is not in 0..10")
    try:
        ip = IPAddress(str(spec.get("peerIP")))
    except (AddrFormatError, ValueError):
        return [*out, f"spec.peerIP: {spec.get('peerIP')!r} is not an address"]
    family = _name_family(name)
    if family is None:
        out.append(f"metadata.name: {name!r} does not say the family of its peer IP (-ipv4 or -ipv6)")
    elif family != ip.version:
        out.append(f"spec.peerIP: IPv{ip.version} address {ip} in IPv{family} peer {name} (families mixed)")
    return out


def check_ip_pool(doc: dict) -> list[str]:
    spec, name = doc.get("spec") or {}, doc["metadata"]["name"]
    net, out = _strict_network("spec.cidr", spec.get("cidr"))
    if net is None:
        return out
    low, high = BLOCK_RANGE[net.version]
    block = spec.get("blockSize", 26 if net.version == 4 else 122)
    if not low <= block <= high:
        out.append(f"spec.blockSize: {block} is not in {low}..{high} for IPv{net.version}")
    if net.prefixlen > block:
        out.append(f"spec.blockSize: pool {net} is smaller than a /{block} block")
    if net.version == 6 and spec.get("ipipMode", "Never") != "Never":
        out.append("spec.ipipMode: IPIP is not supported on IPv6 pools")
    if spec.get("ipipMode", "Never") != "Never" and spec.get("vxlanMode", "Never") != "Never":
        out.append("spec: ipipMode and vxlanMode cannot both be enabled")
    if _name_family(name) not in (None, net.version):
        out.append(f"spec.cidr: IPv{net.version} pool {net} named {name} (families mixed)")
    if "nodeSelector" in spec:
        out += _selector_errors("spec.nodeSelector", spec["nodeSelector"])
    return out


def check_bgp_configuration(doc: dict) -> list[str]:
    spec = doc.get("spec") or {}
    out = _asn_errors("spec.asNumber", spec["asNumber"]) if "asNumber" in spec else []
    for i, item in enumerate(spec.get("serviceClusterIPs", [])):
        out += _strict_network(f"spec.serviceClusterIPs.{i}.cidr", item.get("cidr"))[1]
    return out


def _label_key_errors(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return [f"label key {key!r}: bad name"]
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return [f"label key {key!r}: bad prefix"]
    return []


def label_errors(labels: dict) -> list[str]:
    """Label keys and values as Kubernetes accepts them (a value: at most 63 characters)."""
    out = []
    for key, value in labels.items():
        out += _label_key_errors(key)
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            out.append(f"label {key}: bad value {value!r}")
    return out


def check_node(doc: dict) -> list[str]:
    meta = doc["metadata"]
    out = label_errors(meta.get("labels") or {})
    ann = meta.get("annotations") or {}
    if "projectcalico.org/ASNumber" in ann:
        text = ann["projectcalico.org/ASNumber"]
        out += _asn_errors("projectcalico.org/ASNumber", int(text) if str(text).isdigit() else text)
    for version in (4, 6):
        key = f"projectcalico.org/IPv{version}Address"
        if key in ann:
            try:
                iface = IPNetwork(ann[key])
            except (AddrFormatError, ValueError):
                out.append(f"{key}: {ann[key]!r} is not address/length")
                continue
            if "/" not in ann[key] or iface.version != version:
                out.append(f"{key}: {ann[key]!r} is not an IPv{version} address/length (families mixed)")
    if "projectcalico.org/RouteReflectorClusterID" in ann:
        try:
            if IPAddress(ann["projectcalico.org/RouteReflectorClusterID"]).version != 4:
                raise ValueError
        except (AddrFormatError, ValueError):
            out.append("projectcalico.org/RouteReflectorClusterID: not an IPv4 address")
    return out


CHECKS = {"BGPPeer": check_bgp_peer, "IPPool": check_ip_pool, "BGPConfiguration": check_bgp_configuration,
          "Node": check_node}


def errors(doc: dict) -> list[str]:
    kind = doc.get("kind")
    if kind not in CHECKS:
        raise LookupError(f"no project check for kind {kind!r}")
    return CHECKS[kind](doc)


# ------------------------------------------------------------------ what Calico would do
def node_addresses(node: dict) -> dict[int, str]:
    ann = node["metadata"].get("annotations") or {}
    return {v: ann[f"projectcalico.org/IPv{v}Address"].split("/")[0] for v in (4, 6)
            if f"projectcalico.org/IPv{v}Address" in ann}


def expressed_sessions(peers: list[dict], nodes: list[dict]) -> set[tuple]:
    """The sessions Calico would run from these BGPPeers on these labelled nodes:
    (node, family, peer IP, AS) towards an address, frozenset({node, node}) with a family between nodes
    (a peerSelector, or a peerIP that is another node's address)."""
    labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
    addresses = {n["metadata"]["name"]: node_addresses(n) for n in nodes}
    out: set[tuple] = set()
    for peer in peers:
        spec = peer["spec"]
        scope = parse_selector(spec.get("nodeSelector", "all()"))
        selected = [n for n in labels if scope.matches(labels[n])]
        if spec.get("peerIP"):
            family = IPAddress(spec["peerIP"]).version
            owner = [t for t in addresses if addresses[t].get(family) == spec["peerIP"]]
            if owner:  # a Calico node's address: a session between two nodes (Calico adds the reverse side)
                out |= {(frozenset((n, owner[0])), family) for n in selected if family in addresses[n]}
                continue
            out |= {(n, family, spec["peerIP"], spec["asNumber"]) for n in selected if family in addresses[n]}
            continue
        targets = parse_selector(spec["peerSelector"])
        for n in selected:
            for t in labels:
                if t != n and targets.matches(labels[t]):
                    out |= {(frozenset((n, t)), v) for v in (4, 6) if v in addresses[n] and v in addresses[t]}
    return out

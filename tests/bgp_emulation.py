"""Real BIRD 2 sessions for netpolc's compiled BGP output, in Linux network namespaces.

What it reads is what `netpolc compile` writes:
`bgp/<cluster>/{bgpconfiguration,bgppeers,nodes,ippools}.yaml` (Calico resources and v1 Nodes)
and `bgp/<site>/neighbours.yaml` (each router's and ToR's neighbours). The site's physical
layout (rows, racks, switches, routers, the fabric links) comes from the compiler's model
and peering graph, because the policy does not number the fabric links.

The emulated site, one network namespace per element (names `npc<pid><tag>-<element>`):
- each Kubernetes node and route reflector runs BIRD with a config rendered from the Calico
  resources the way calico-node's confd does (`CalicoConfd`, `render_node_bird`; see
  shared/reference/notes/calico.md 3.4-3.5): one protocol per peer and address family,
  named Global_<ip> / Node_<ip>, `multihop` and `gateway recursive` on explicit peers,
  `local as`, `allow local as N` from numAllowedLocalASNumbers (read for peerIP peers
  only, as confd's client.go does), `rr client` and `rr cluster id` on reflectors,
  Calico's passive rule, an export filter that lets out the node's own blocks (one /26
  and one /122 of the pool, static blackholes), the service ranges and the pool (what a
  reflector reflects; eBGP loop checks stop the rest), an import filter that takes all;
  like Kubernetes nodes they forward packets, and a UDP echo on a `cali*` interface
  stands for their pods (`Lab.ping_pods`);
- each router and ToR runs BIRD with the neighbours of neighbours.yaml, importing only its
  import_prefixes (orlonger) and passing BGP routes between all its neighbours; the routers
  of a site are linked and speak iBGP (next hop self) with each other; ToRs and spines
  peer with their fabric neighbours on point-to-point links;
- each L2 row is a Linux bridge in the namespace of its access switch, joining the row's
  nodes and every router (the routers get free addresses of the row's subnets); an L3
  rack's nodes hang off a bridge in their ToR's namespace, which holds the rack gateways;
- the underlay is routed by the harness like an IGP would (`Lab.route_underlay`): static
  routes over the shortest surviving path through routers, ToRs and spines (never through
  a node), recomputed after each failure and restore; a ToR or spine that speaks no BGP
  in the design gets a default route up to the core.

Failures (`Lab.fail`): a device's BIRD is killed (the kernel closes its TCP sessions, as
in a crash) and all its links go down; an access switch just loses its links (its row's
sessions then die by hold timer). `Lab.restore` undoes it and restarts the BIRDs.

Timers are shortened for the test, on both sides: hold 6 s, keepalive 2 s, connect retry
2 s, error wait 1-4 s and a graceful-restart time of 4 s (Calico leaves BIRD's 120 s).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPIface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

FAMILIES = (4, 6)
HOLD, KEEPALIVE, CONNECT_RETRY, GR_TIME = 6, 2, 2, 4
BLOCK_DEFAULT = {4: 26, 6: 122}
CALICO_DEFAULT_AS = 64512


# The data-plane probe: a UDP echo on each node's pod addresses, and a client that sends
# from its own pod address (no `ping` needed; this machine may not have one).
ECHO_PORT = 7
ECHO_SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
port = int(sys.argv[1])
for a in sys.argv[2:]:
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a, port))
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(512)
        key.fileobj.sendto(data, peer)
"""
ECHO_CLIENT = """
import socket, sys, time
port, wait, src4, src6, targets = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
socks = {}
for t in targets:
    src = src6 if ":" in t else src4
    s = socket.socket(socket.AF_INET6 if ":" in t else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(0.5)
    socks[t] = s
ok = set()
deadline = time.monotonic() + wait
while len(ok) < len(targets) and time.monotonic() < deadline:
    for t, s in socks.items():
        if t in ok:
            continue
        try:
            s.sendto(t.encode(), (t, port))
            if s.recvfrom(512)[0] == t.encode():
                ok.add(t)
        except OSError:
            pass
print(" ".join(t for t in targets if t not in ok))
"""


class EmulationError(RuntimeError):
    """The emulation could not be built or run (not a verdict on the compiled output)."""


def fam(version: int) -> str:
    return f"ipv{version}"


def run(cmd: list[str], check: bool = True, input_: str | None = None, timeout: float = 30) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input_, timeout=timeout)
    if check and proc.returncode != 0:
        raise EmulationError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def tools_missing() -> list[str]:
    return [t for t in ("ip", "bird", "birdc") if shutil.which(t) is None]


# ====================================================================== Calico selectors
class Selector:
    """Calico's label selector language (libcalico-go/lib/selector), the subset netpolc and
    Calico's docs use: all(), global(), has(k), !has(k), k == 'v', k != 'v', k in {..},
    k not in {..}, k contains / starts with / ends with 'v', !, &&, ||, parentheses."""

    TOKEN = re.compile(r"\s*(?:(&&|\|\||==|!=|[!(){},])|('[^']*'|\"[^\"]*\")|([A-Za-z0-9_./-]+))")

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = self.TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"bad selector {self.text!r} at {pos}")
            pos = m.end()
            if m.group(1):
                self.tokens.append(("op", m.group(1)))
            elif m.group(2):
                self.tokens.append(("str", m.group(2)[1:-1]))
            elif m.group(3):
                self.tokens.append(("word", m.group(3)))
        self.i = 0
        self.tree = self._or() if self.tokens else ("all",)
        if self.i != len(self.tokens):
            raise ValueError(f"trailing tokens in selector {self.text!r}")

    # parser
    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ValueError(f"selector {self.text!r}: expected {value or 'a token'}, got {tok}")
        self.i += 1
        return tok

    def _or(self) -> tuple:
        node = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> tuple:
        node = self._unary()
        while self._peek() == ("op", "&&"):
            self._take()
            node = ("and", node, self._unary())
        return node

    def _unary(self) -> tuple:
        if self._peek() == ("op", "!"):
            self._take()
            return ("not", self._unary())
        if self._peek() == ("op", "("):
            self._take()
            node = self._or()
            self._take(")")
            return node
        kind, word = self._take()
        if kind != "word":
            raise ValueError(f"selector {self.text!r}: unexpected {word}")
        if word in ("all", "global") and self._peek() == ("op", "("):
            self._take("(")
            self._take(")")
            return ("all",)
        if word == "has" and self._peek() == ("op", "("):
            self._take("(")
            label = self._take()[1]
            self._take(")")
            return ("has", label)
        tok = self._take()
        if tok[1] in ("==", "!="):
            return ("eq" if tok[1] == "==" else "ne", word, self._take()[1])
        if tok[1] == "in":
            return ("in", word, self._set())
        if tok[1] == "not":
            self._take("in")
            return ("not", ("in", word, self._set()))
        if tok[1] == "contains":
            return ("contains", word, self._take()[1])
        if tok[1] in ("starts", "ends"):
            self._take("with")
            return (tok[1], word, self._take()[1])
        raise ValueError(f"selector {self.text!r}: unknown operator {tok[1]}")

    def _set(self) -> frozenset[str]:
        self._take("{")
        values = set()
        while self._peek() != ("op", "}"):
            values.add(self._take()[1])
            if self._peek() == ("op", ","):
                self._take()
        self._take("}")
        return frozenset(values)

    def matches(self, labels: dict[str, str]) -> bool:
        return self._eval(self.tree, labels)

    def _eval(self, n: tuple, labels: dict[str, str]) -> bool:
        op = n[0]
        if op == "all":
            return True
        if op == "has":
            return n[1] in labels
        if op == "not":
            return not self._eval(n[1], labels)
        if op == "and":
            return self._eval(n[1], labels) and self._eval(n[2], labels)
        if op == "or":
            return self._eval(n[1], labels) or self._eval(n[2], labels)
        value = labels.get(n[1])
        if op == "eq":
            return value == n[2]
        if op == "ne":
            return value != n[2]  # Calico: true when the label is absent
        if value is None:
            return False
        if op == "in":
            return value in n[2]
        if op == "contains":
            return n[2] in value
        if op == "starts":
            return value.startswith(n[2])
        return value.endswith(n[2])


# ====================================================================== compiled output
@dataclass
class ClusterFiles:
    name: str
    configuration: list[dict]
    peers: list[dict]
    nodes: list[dict]
    pools: list[dict]


@dataclass
class Compiled:
    """The compiled BGP files of one output folder."""

    root: Path
    clusters: dict[str, ClusterFiles]
    neighbours: dict[str, dict[str, dict]]  # site -> device -> entry


def _docs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def read_compiled(out_dir: Path) -> Compiled:
    bgp = out_dir / "bgp"
    clusters: dict[str, ClusterFiles] = {}
    neighbours: dict[str, dict[str, dict]] = {}
    for d in sorted(p for p in bgp.iterdir() if p.is_dir()) if bgp.is_dir() else []:
        if (d / "bgppeers.yaml").exists() or (d / "nodes.yaml").exists():
            clusters[d.name] = ClusterFiles(d.name, _docs(d / "bgpconfiguration.yaml"), _docs(d / "bgppeers.yaml"),
                                            _docs(d / "nodes.yaml"), _docs(d / "ippools.yaml"))
        if (d / "neighbours.yaml").exists():
            merged: dict[str, dict] = {}
            for doc in _docs(d / "neighbours.yaml"):
                merged.update(doc)
            neighbours[d.name] = merged
    return Compiled(out_dir, clusters, neighbours)


# ====================================================================== calico-node (confd)
@dataclass
class CalicoNode:
    name: str
    labels: dict[str, str]
    asn: int
    addresses: dict[int, IPIface]  # family -> node address with prefix length
    rr_cluster_id: str | None


@dataclass
class BirdPeer:
    """One `protocol bgp` of a node, as confd's buildPeerFromData renders it."""

    name: str
    family: int
    ip: IPAddr
    asn: int
    local_as: int | None
    source: IPAddr | None
    multihop: bool
    passive: bool
    internal: bool  # calico_export_to_bgp_peers(true)
    allow_local_as: int | None
    rr_cluster_id: str | None  # set: `rr client; rr cluster id X;`
    next_hop: str | None  # self | keep
    keepalive: int | None
    restart_time: int | None
    ttl_security: int | None


@dataclass
class NodeBird:
    node: CalicoNode
    cluster: str
    asn: int
    blocks: dict[int, IPNet]
    pools: dict[int, list[IPNet]]
    static_routes: dict[int, list[IPNet]]  # service ranges announced by every node
    peers: list[BirdPeer]


@dataclass
class _PeerData:
    ip: IPAddr
    port: int
    asn: int
    calico_node: bool
    rr_cluster_id: str | None
    spec: dict


def _ip_port(text: str) -> tuple[IPAddr, int]:
    text = str(text)
    m = re.fullmatch(r"\[(.+)\]:(\d+)", text)
    if m:
        return ipaddress.ip_address(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"([0-9.]+):(\d+)", text)
    if m:
        return ipaddress.ip_address(m.group(1)), int(m.group(2))
    return ipaddress.ip_address(text), 0


def _seconds(value: Any) -> int | None:
    """A Kubernetes duration ("90s", "2m", "1m30s") in whole seconds."""
    if value is None:
        return None
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", str(value)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return round(total)


class CalicoConfd:
    """What calico-node's confd renders for each node of one cluster, from its resources.

    Follows confd/pkg/backends/calico/client.go `updatePeersV1` (global peers first; a
    node-specific peering to an IP with a global peering is dropped; reverse peerings for
    peerSelector peers and for peerIPs that are Calico nodes) and bgp_processor.go
    `buildPeerFromData` (names, passive rule, rr client, export filter flavour).
    """

    def __init__(self, files: ClusterFiles):
        self.files = files
        config = next((d for d in files.configuration if d.get("metadata", {}).get("name") == "default"), None)
        self.config = (config or {}).get("spec", {}) or {}
        self.global_as = int(self.config.get("asNumber") or CALICO_DEFAULT_AS)
        self.mesh = self.config.get("nodeToNodeMeshEnabled", True) is not False
        self.nodes: dict[str, CalicoNode] = {}
        for doc in files.nodes:
            node = self._node(doc)
            self.nodes[node.name] = node
        self.node_ips = {str(a.ip): n.name for n in self.nodes.values() for a in n.addresses.values()}

    def _node(self, doc: dict) -> CalicoNode:
        meta = doc.get("metadata", {})
        ann = meta.get("annotations", {}) or {}
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        if doc.get("kind") == "Node" and doc.get("apiVersion", "").startswith("projectcalico"):
            bgp = (doc.get("spec") or {}).get("bgp") or {}
            asn, v4, v6, rr = (bgp.get("asNumber"), bgp.get("ipv4Address"), bgp.get("ipv6Address"),
                               bgp.get("routeReflectorClusterID"))
        else:
            asn, v4, v6, rr = (ann.get("projectcalico.org/ASNumber"), ann.get("projectcalico.org/IPv4Address"),
                               ann.get("projectcalico.org/IPv6Address"),
                               ann.get("projectcalico.org/RouteReflectorClusterID"))
        addresses: dict[int, IPIface] = {}
        for text in (v4, v6):
            if text:
                iface = ipaddress.ip_interface(str(text))
                addresses[iface.version] = iface
        return CalicoNode(meta["name"], labels, int(asn) if asn else self.global_as, addresses,
                          str(rr) if rr else None)

    def matching(self, selector: str) -> list[str]:
        sel = Selector(selector)
        return sorted(n for n, node in self.nodes.items() if sel.matches(node.labels))

    def _node_as_peers(self, name: str, families: Iterable[int], spec: dict) -> list[_PeerData]:
        """client.go `nodeAsBGPPeers`: a selected node as a peer. numAllowedLocalASNumbers is
        only read for peerIP peers there, so it is dropped here."""
        node = self.nodes[name]
        spec = {k: v for k, v in spec.items() if k != "numAllowedLocalASNumbers"}
        return [_PeerData(node.addresses[f].ip, 0, node.asn, True, node.rr_cluster_id, spec)
                for f in families if f in node.addresses]

    def peerings(self) -> tuple[dict[IPAddr, _PeerData], dict[tuple[str, IPAddr], _PeerData]]:
        glob: dict[IPAddr, _PeerData] = {}
        per_node: dict[tuple[str, IPAddr], _PeerData] = {}

        def emit(node: str | None, peer: _PeerData) -> None:
            if node is None:
                glob.setdefault(peer.ip, peer)
            elif (node, peer.ip) not in per_node and peer.ip not in glob:
                per_node[(node, peer.ip)] = peer

        resources = [d for d in self.files.peers if d.get("kind") == "BGPPeer"]
        for global_pass in (True, False):
            for res in resources:
                spec = res.get("spec", {}) or {}
                is_global = not spec.get("nodeSelector") and not spec.get("node")
                if global_pass != is_global:
                    continue
                if spec.get("nodeSelector"):
                    local = self.matching(spec["nodeSelector"])
                elif spec.get("node"):
                    local = [spec["node"]]
                else:
                    local = []
                if spec.get("peerSelector"):
                    peers = [p for n in self.matching(spec["peerSelector"])
                             for p in self._node_as_peers(n, FAMILIES, spec)]
                elif spec.get("peerIP"):
                    ip, port = _ip_port(spec["peerIP"])
                    peers = [_PeerData(ip, port, int(spec.get("asNumber") or self.global_as),
                                       str(ip) in self.node_ips, None, spec)]
                else:
                    continue
                for p in peers:
                    if global_pass:
                        emit(None, p)
                    else:
                        for n in local:
                            emit(n, p)
        for res in resources:  # reverse peerings
            spec = res.get("spec", {}) or {}
            if spec.get("reversePeering") == "Manual":
                continue
            if spec.get("peerSelector"):
                local, families = self.matching(spec["peerSelector"]), FAMILIES
            elif spec.get("peerIP"):
                ip, _ = _ip_port(spec["peerIP"])
                want_as = int(spec.get("asNumber") or self.global_as)
                local = sorted(n for n, node in self.nodes.items()
                               if any(a.ip == ip for a in node.addresses.values()) and node.asn == want_as)
                families = (ip.version,)
            else:
                continue
            if not local:
                continue
            if spec.get("nodeSelector"):
                remote = self.matching(spec["nodeSelector"])
            elif spec.get("node"):
                remote = [spec["node"]]
            else:
                remote = sorted(self.nodes)
            for r in remote:
                for p in self._node_as_peers(r, families, spec):
                    for n in local:
                        emit(n, p)
        return glob, per_node

    def render(self) -> dict[str, NodeBird]:
        glob, per_node = self.peerings()
        pools = self._pools()
        blocks = self._blocks(pools)
        statics: dict[int, list[IPNet]] = defaultdict(list)
        for key in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs"):
            for item in self.config.get(key) or []:
                if item and item.get("cidr"):
                    net = ipaddress.ip_network(item["cidr"])
                    statics[net.version].append(net)
        out = {}
        for name, node in sorted(self.nodes.items()):
            peers: list[BirdPeer] = []
            for f in FAMILIES:
                if f not in node.addresses:
                    continue  # confd renders no peer of a family the node has no address of
                own = node.addresses[f].ip
                if self.mesh and node.rr_cluster_id is None:
                    for other in sorted(self.nodes.values(), key=lambda n: n.name):
                        ip = other.addresses.get(f)
                        if other.name == name or ip is None or other.rr_cluster_id:
                            continue
                        peers.append(self._peer(node, "Mesh", _PeerData(ip.ip, 0, other.asn, True, None, {}),
                                                f, mesh=True))
                for ip, data in sorted(glob.items(), key=lambda kv: str(kv[0])):
                    if ip.version == f and ip != own:
                        peers.append(self._peer(node, "Global", data, f))
                for (n, ip), data in sorted(per_node.items(), key=lambda kv: str(kv[0][1])):
                    if n == name and ip.version == f and ip != own:
                        peers.append(self._peer(node, "Node", data, f))
            out[name] = NodeBird(node, self.files.name, node.asn, blocks.get(name, {}),
                                 {f: [p for p, _ in pools[f]] for f in pools}, dict(statics), peers)
        return out

    def _peer(self, node: CalicoNode, prefix: str, data: _PeerData, f: int, mesh: bool = False) -> BirdPeer:
        spec = data.spec
        own = node.addresses[f].ip
        name = f"{prefix}_{str(data.ip).replace('.', '_').replace(':', '_')}"
        if data.port:
            name += f"_port_{data.port}"
        local_as = int(spec["localASNumber"]) if spec.get("localASNumber") else None
        effective = local_as or node.asn
        source = None if spec.get("sourceAddress") == "None" else own
        passive = bool(spec.get("passiveMode")) if not mesh else False
        if (mesh or prefix == "Global") and not passive and data.calico_node and str(data.ip) > str(own):
            passive = True
        rr = None
        if data.asn == effective and node.rr_cluster_id and data.rr_cluster_id != node.rr_cluster_id:
            rr = node.rr_cluster_id
        next_hop = {"Self": "self", "Keep": "keep"}.get(spec.get("nextHopMode", ""))
        if spec.get("keepOriginalNextHop") and data.asn != effective:
            next_hop = "keep"
        allow = spec.get("numAllowedLocalASNumbers")
        return BirdPeer(name, f, data.ip, data.asn, local_as, source, not mesh, passive, data.asn == effective,
                        int(allow) if allow else None, rr, next_hop, _seconds(spec.get("keepaliveTime")),
                        _seconds(spec.get("maxRestartTime")),
                        int(spec["ttlSecurity"]) if spec.get("ttlSecurity") else None)

    def _pools(self) -> dict[int, list[tuple[IPNet, int]]]:
        out: dict[int, list[tuple[IPNet, int]]] = defaultdict(list)
        for doc in self.files.pools:
            spec = doc.get("spec", {}) or {}
            if spec.get("disabled") or not spec.get("cidr"):
                continue
            net = ipaddress.ip_network(spec["cidr"])
            out[net.version].append((net, int(spec.get("blockSize") or BLOCK_DEFAULT[net.version])))
        return out

    def _blocks(self, pools: dict[int, list[tuple[IPNet, int]]]) -> dict[str, dict[int, IPNet]]:
        """Calico's IPAM gives each node blocks on demand; the emulation gives each node the
        i-th block of the first pool of each family (nodes in name order)."""
        sel = {(doc.get("spec") or {}).get("cidr"): (doc.get("spec") or {}).get("nodeSelector") or "all()"
               for doc in self.files.pools}
        out: dict[str, dict[int, IPNet]] = defaultdict(dict)
        for f, items in pools.items():
            net, size = items[0]
            names = self.matching(sel.get(str(net), "all()"))
            blocks = net.subnets(new_prefix=size)
            for name in names:
                out[name][f] = next(blocks)
        return out


# ====================================================================== BIRD configs
def _sym(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _prefix_set(nets: Iterable[IPNet]) -> str:
    return ", ".join(f"{n}+" for n in nets)


def render_node_bird(nb: NodeBird, log_file: Path) -> str:
    """BIRD 2 translation of calico-node's bird.cfg + bird6.cfg (+ _ipam, _aggr) for one node."""
    node = nb.node
    router_id = node.addresses[4].ip if 4 in node.addresses else ipaddress.ip_address("10.255.255.254")
    out = [f"# calico-node (confd) for {node.name} of cluster {nb.cluster}, rendered by tests/bgp_emulation.py",
           f'log "{log_file}" all;', "timeformat protocol iso long;", f"router id {router_id};", "",
           "function apply_communities() {", "}", "",
           "function reject_tunnel_routes() {",
           "  if (defined(ifname)) then {",
           '    if ((ifname ~ "*.cali") || (ifname ~ "*.calico")) then { reject; }', "  }", "}", "",
           "function reject_local_routes() {",
           '  if (defined(ifname)) then { if (ifname ~ "bpf*.cali") then { reject; } }', "}", ""]
    for f in FAMILIES:
        v = fam(f)
        blocks = [nb.blocks[f]] if f in nb.blocks else []
        statics = nb.static_routes.get(f, [])
        out.append(f"function calico_aggr_{v}() {{")
        for b in blocks:
            out += [f"  if ( net = {b} ) then {{ accept; }}",
                    f"  if ( net ~ {b} && krt_metric < 1024 ) then {{ accept; }}",
                    f"  if ( net ~ {b} ) then {{ reject; }}"]
        out += ["}", "", f"function calico_export_to_bgp_peers_{v}(bool internal_peer) {{",
                "  if (internal_peer) then { reject_tunnel_routes(); }",
                "  reject_local_routes();", "  apply_communities();", f"  calico_aggr_{v}();"]
        out += [f"  if ( net ~ {s} ) then {{ accept; }}" for s in statics]
        out += [f"  if (net ~ {p}) then {{ accept; }}" for p in nb.pools.get(f, [])]
        out += ["}", "", f"filter calico_kernel_programming_{v} {{"]
        out += [f"  if ( net ~ {s} ) then {{ reject; }}" for s in statics]
        out += ["  if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {",
                "    krt_metric = 1024;",
                "    if (defined(bgp_local_pref)) then { krt_metric = 2147483647 - bgp_local_pref; }",
                "    if (krt_metric < 1024) then { preference = 200; }", "  }", "  accept;", "}", "",
                f"protocol kernel kernel_{v} {{", "  learn;", "  persist;", "  scan time 2;",
                "  graceful restart;", "  merge paths on;",
                f"  {v} {{ import all; export filter calico_kernel_programming_{v}; }};", "}", "",
                f"protocol static static_{v} {{", f"  {v};"]
        out += [f"  route {r} blackhole;" for r in [*blocks, *statics]]
        out += ["}", ""]
    out += ["protocol device { debug { states }; scan time 2; }", "",
            "protocol direct {", "  debug { states };", "  ipv4;", "  ipv6;",
            '  interface -"cali*", -"kube-ipvs*", "*";', "}", "",
            "template bgp bgp_template {", "  debug { states };", '  description "Connection to BGP peer";',
            f"  local as {nb.asn};", "  graceful restart;", f"  graceful restart time {GR_TIME};",
            "  connect delay time 2;", f"  connect retry time {CONNECT_RETRY};", "  error wait time 1,4;",
            f"  hold time {HOLD};", f"  keepalive time {KEEPALIVE};", "}", ""]
    for p in nb.peers:
        v = fam(p.family)
        out.append(f"protocol bgp {p.name} from bgp_template {{")
        if p.multihop:
            out.append(f"  ttl security on;\n  multihop {p.ttl_security};" if p.ttl_security else
                       "  ttl security off;\n  multihop;")
        if p.local_as:
            out.append(f"  local as {p.local_as};")
        out.append(f"  neighbor {p.ip} as {p.asn};")
        if p.source is not None:
            out.append(f"  source address {p.source};")
        if p.keepalive:
            out.append(f"  keepalive time {min(p.keepalive, KEEPALIVE)};")
        if p.restart_time is not None:
            out.append(f"  graceful restart time {min(p.restart_time, GR_TIME)};")
        out += [f"  {v} {{", "    gateway recursive;", "    add paths on;",
                "    import filter {",
                "      if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then preference = 200;",
                "      accept;", "    };",
                "    export filter {",
                "      if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {",
                "        krt_metric = 2147483647 - bgp_local_pref;",
                "      } else {",
                "        if (!defined(krt_metric)) then { krt_metric = 1024; }",
                "        bgp_local_pref = 2147483647 - krt_metric;", "      }",
                f"      calico_export_to_bgp_peers_{v}({'true' if p.internal else 'false'});",
                "      reject;", "    };"]
        if p.next_hop:
            out.append(f"    next hop {p.next_hop};")
        out.append("  };")
        if p.passive:
            out.append("  passive on;")
        if p.rr_cluster_id:
            out += ["  rr client;", f"  rr cluster id {p.rr_cluster_id};"]
        if p.allow_local_as:
            out.append(f"  allow local as {p.allow_local_as};")
        out += ["}", ""]
    return "\n".join(out) + "\n"


@dataclass
class DevicePeer:
    """One BGP session of a router, ToR or spine."""

    proto: str
    family: int
    ip: IPAddr
    asn: int
    source: IPAddr | None
    multihop: bool
    rr_client: bool
    next_hop_self: bool
    peer: str  # the speaker at the other end
    compiled: bool  # from neighbours.yaml (else: fabric or core, made by the harness)


def render_device_bird(name: str, asn: int, router_id: IPAddr, peers: list[DevicePeer],
                       imports: dict[int, list[IPNet]] | None, log_file: Path) -> str:
    out = [f"# {name}: neighbours from neighbours.yaml plus fabric/core links, rendered by tests/bgp_emulation.py",
           f'log "{log_file}" all;', "timeformat protocol iso long;", f"router id {router_id};", "",
           "protocol device { scan time 2; }",
           "protocol direct { ipv4; ipv6; }"]
    for f in FAMILIES:
        v = fam(f)
        out.append(f"protocol kernel kernel_{v} {{ scan time 2; learn; merge paths on; "
                   f"{v} {{ import all; export where source = RTS_BGP; }}; }}")
        if imports is None:
            out.append(f"filter import_{v} {{ accept; }}")
        elif imports.get(f):
            out.append(f"filter import_{v} {{ if net ~ [ {_prefix_set(imports[f])} ] then accept; reject; }}")
        else:
            out.append(f"filter import_{v} {{ reject; }}")
    out += ["", "template bgp peer {", f"  local as {asn};", "  connect delay time 1;",
            f"  connect retry time {CONNECT_RETRY};", "  error wait time 1,4;", f"  hold time {HOLD};",
            f"  keepalive time {KEEPALIVE};", "  graceful restart aware;", "}", ""]
    for p in peers:
        v = fam(p.family)
        out += [f"protocol bgp {p.proto} from peer {{", f'  description "{p.peer}";',
                f"  neighbor {p.ip} as {p.asn};", "  multihop;" if p.multihop else "  direct;"]
        if p.source is not None:
            out.append(f"  source address {p.source};")
        out.append(f"  {v} {{ import filter import_{v}; export where source = RTS_BGP;"
                   + (" next hop self;" if p.next_hop_self else "") + " };")
        if p.rr_client:
            out.append("  rr client;")
        out += ["}", ""]
    return "\n".join(out) + "\n"


# ====================================================================== the lab
@dataclass
class Iface:
    device: str
    name: str
    segment: str
    addrs: list[IPIface] = field(default_factory=list)
    port: bool = False  # a bridge port (addresses live on the bridge)


@dataclass
class Segment:
    name: str
    kind: str  # row | rack | p2p
    holder: str | None  # the device that carries the segment (switch or ToR bridge)
    subnets: list[IPNet]
    members: list[Iface] = field(default_factory=list)
    bgp: bool = True  # a p2p link of the fabric or core: BGP runs on it


@dataclass
class Device:
    name: str
    kind: str  # node | reflector | router | tor | spine | switch
    ns: str
    asn: int | None = None
    ifaces: list[Iface] = field(default_factory=list)
    loopbacks: list[IPIface] = field(default_factory=list)
    bridge_addrs: list[IPIface] = field(default_factory=list)
    has_bridge: bool = False
    bird_conf: str | None = None
    peers: list[Any] = field(default_factory=list)  # BirdPeer (nodes) or DevicePeer
    proc: subprocess.Popen | None = None
    echo: subprocess.Popen | None = None
    failed: bool = False
    cluster: str | None = None

    @property
    def forwards(self) -> bool:
        return self.kind in ("router", "tor", "spine")

    @property
    def speaks(self) -> bool:
        return self.kind != "switch"

    def next_ifname(self, prefix: str = "e") -> str:
        used = {i.name for i in self.ifaces}
        k = 0
        while f"{prefix}{k}" in used:
            k += 1
        return f"{prefix}{k}"


@dataclass
class Snapshot:
    """What the running lab shows: sessions per speaker and the pod blocks in each node's kernel."""

    protocols: dict[str, dict[str, str]]  # device -> protocol -> state/info
    routes: dict[str, dict[int, set[IPNet]]]  # node -> family -> prefixes with a usable next hop

    def established(self, lab: Lab, compiled_only: bool = True) -> set[tuple[str, str, int]]:
        out = set()
        for dev_name, protos in self.protocols.items():
            dev = lab.devices[dev_name]
            for p in dev.peers:
                if compiled_only and isinstance(p, DevicePeer) and not p.compiled:
                    continue
                proto = p.name if isinstance(p, BirdPeer) else p.proto
                if protos.get(proto) == "Established":
                    out.add((dev_name, lab.peer_name(p), p.family))
        return out


class Lab:
    """One emulated site: namespaces, links, BIRDs; failures and restores."""

    def __init__(self, model: Any, graph: Any, compiled: Compiled, site: str, tag: str,
                 workdir: Path | None = None):
        self.model, self.graph, self.compiled, self.site = model, graph, compiled, site
        self.prefix = f"npc{os.getpid()}{tag}-"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"npc{os.getpid()}{tag}-"))
        self.devices: dict[str, Device] = {}
        self.segments: dict[str, Segment] = {}
        self.node_birds: dict[str, NodeBird] = {}
        self.address_owner: dict[IPAddr, str] = {}
        self.created_ns: list[str] = []
        self._p2p = 0
        self.log: list[str] = []
        self._build()

    # ------------------------------------------------------------------ layout
    def _device(self, name: str, kind: str, asn: int | None = None) -> Device:
        if name not in self.devices:
            self.devices[name] = Device(name, kind, self.prefix + name, asn)
        return self.devices[name]

    def _build(self) -> None:
        model, graph, site = self.model, self.graph, self.site
        speakers = {n: s for n, s in graph.speakers.items() if s.site == site}
        for r in model.sites[site].routers:
            rt = model.routers[r]
            dev = self._device(r, "router", rt.asn)
            dev.loopbacks = [ipaddress.ip_interface(f"{a}/{32 if a.version == 4 else 128}") for a in rt.loopbacks]
        hosts = {n: s for n, s in speakers.items() if s.kind in ("node", "reflector")}
        for rk in model.sites[site].rows:
            row = model.rows[rk]
            l2 = [h for h in sorted(hosts) if model.racks[model.hosts[h].rack].layer == "l2"
                  and model.hosts[h].row == rk]
            if l2:
                sw = self._device(row.switch or f"sw-{row.name}", "switch")
                sw.has_bridge = True
                seg = self._segment(f"row:{rk}", "row", sw.name, [ipaddress.ip_network(str(n)) for n in row.subnets])
                used = {ipaddress.ip_address(str(a)) for h in model.hosts.values() if h.row == rk
                        for a in h.addresses} | {ipaddress.ip_address(str(g)) for g in row.gateways}
                for r in model.sites[site].routers:
                    addrs = []
                    for net in seg.subnets:
                        ip = self._free(net, used)
                        used.add(ip)
                        addrs.append(ipaddress.ip_interface(f"{ip}/{net.prefixlen}"))
                    self._attach(r, seg, addrs)
                for h in l2:
                    self._attach(h, seg, self._host_addrs(h, seg.subnets), kind=hosts[h].kind)
            for kk in row.racks:
                rack = model.racks[kk]
                mine = [h for h in sorted(hosts) if model.hosts[h].rack == kk]
                if rack.layer != "l3" or not rack.switch or not mine:
                    continue
                sw = model.switches[rack.switch]
                tor = self._device(sw.name, "tor", sw.asn)
                tor.has_bridge = True
                nets = [ipaddress.ip_network(str(n)) for n in rack.subnets]
                seg = self._segment(f"rack:{kk}", "rack", tor.name, nets)
                for g in rack.gateways:
                    net = next(n for n in nets if ipaddress.ip_address(str(g)) in n)
                    tor.bridge_addrs.append(ipaddress.ip_interface(f"{g}/{net.prefixlen}"))
                for h in mine:
                    self._attach(h, seg, self._host_addrs(h, nets), kind=hosts[h].kind)
        # fabric (ToR - spine - router) and the routers' own links
        for fl in graph.fabric:
            if fl.a in speakers or fl.b in speakers:
                for end in (fl.a, fl.b):
                    if end not in self.devices:
                        sw = model.switches[end]
                        self._device(end, "spine" if sw.kind == "spine" else "tor", sw.asn)
                self._p2p_link(fl.a, fl.b)
        # ToRs that speak no BGP of the graph still carry their rack: uplink them as the
        # fabric would (spines of the row or site, else the routers), links without BGP
        linked = {m.device for seg in self.segments.values() if seg.kind == "p2p" for m in seg.members}
        for dev in [d for d in list(self.devices.values()) if d.kind == "tor" and d.name not in linked]:
            sw = model.switches[dev.name]
            row = model.rows[sw.row] if sw.row else None
            spines = (row.spines if row and row.spines else ()) or model.sites[site].spines
            for sp in spines:
                spine = model.switches[sp]
                if sp not in self.devices:
                    self._device(sp, "spine", spine.asn)
                    for up in spine.uplinks:
                        self._p2p_link(sp, up, bgp=False)
                self._p2p_link(dev.name, sp, bgp=False)
            if not spines:
                for r in model.sites[site].routers:
                    self._p2p_link(dev.name, r, bgp=False)
        routers = list(model.sites[site].routers)
        for i, a in enumerate(routers):
            for b in routers[i + 1:]:
                self._p2p_link(a, b)
        for dev in self.devices.values():
            for a in [*dev.loopbacks, *dev.bridge_addrs, *(x for i in dev.ifaces for x in i.addrs)]:
                self.address_owner[a.ip] = dev.name
        self._check_p2p_overlap()

    def _host_addrs(self, host: str, nets: list[IPNet]) -> list[IPIface]:
        out = []
        for a in self.model.hosts[host].addresses:
            ip = ipaddress.ip_address(str(a))
            net = next((n for n in nets if ip in n), None)
            out.append(ipaddress.ip_interface(f"{ip}/{net.prefixlen if net else ip.max_prefixlen}"))
        return out

    @staticmethod
    def _free(net: IPNet, used: set[IPAddr]) -> IPAddr:
        top = int(net.broadcast_address) - (1 if net.version == 4 else 0)
        for k in range(top, int(net.network_address), -1):
            ip = ipaddress.ip_address(k)
            if ip not in used:
                return ip
        raise EmulationError(f"no free address in {net} for a router")

    def _segment(self, name: str, kind: str, holder: str | None, subnets: list[IPNet]) -> Segment:
        seg = Segment(name, kind, holder, subnets)
        self.segments[name] = seg
        return seg

    def _attach(self, device: str, seg: Segment, addrs: list[IPIface], kind: str = "router") -> None:
        dev = self._device(device, kind)
        iface = Iface(device, "eth0" if dev.kind in ("node", "reflector") and not dev.ifaces else dev.next_ifname(),
                      seg.name, addrs)
        dev.ifaces.append(iface)
        seg.members.append(iface)

    def _p2p_link(self, a: str, b: str, bgp: bool = True) -> None:
        k = self._p2p
        self._p2p += 1
        v4 = ipaddress.ip_network(f"100.127.{k // 64}.{(k % 64) * 4}/30")
        v6 = ipaddress.ip_network(f"fdff:ffff:{k:x}::/64")
        seg = self._segment(f"p2p:{a}:{b}", "p2p", None, [v4, v6])
        seg.bgp = bgp
        for end, n in ((a, 1), (b, 2)):
            dev = self.devices[end]
            iface = Iface(end, dev.next_ifname(), seg.name,
                          [ipaddress.ip_interface(f"{v4[n]}/30"), ipaddress.ip_interface(f"{v6[n]}/64")])
            dev.ifaces.append(iface)
            seg.members.append(iface)

    def _check_p2p_overlap(self) -> None:
        declared = [s for seg in self.segments.values() if seg.kind != "p2p" for s in seg.subnets]
        declared += [lo.network for d in self.devices.values() for lo in d.loopbacks]
        for seg in self.segments.values():
            if seg.kind == "p2p":
                for n in seg.subnets:
                    for d in declared:
                        if n.version == d.version and n.overlaps(d):
                            raise EmulationError(f"the harness' link net {n} overlaps {d} of the policy")

    # ------------------------------------------------------------------ configs
    def peer_name(self, p: BirdPeer | DevicePeer) -> str:
        if isinstance(p, DevicePeer):
            return p.peer
        return self.address_owner.get(p.ip, f"?{p.ip}")

    def render_configs(self) -> None:
        for files in self.compiled.clusters.values():
            for name, nb in CalicoConfd(files).render().items():
                if name in self.devices:
                    self.node_birds[name] = nb
        for dev in self.devices.values():
            log = self.workdir / f"{dev.name}.log"
            if dev.kind in ("node", "reflector"):
                nb = self.node_birds.get(dev.name)
                if nb is None:
                    raise EmulationError(f"{dev.name} is a BGP speaker of the graph but no compiled nodes.yaml "
                                         "lists it")
                dev.peers, dev.cluster = nb.peers, nb.cluster
                dev.bird_conf = render_node_bird(nb, log)
            elif dev.speaks:
                dev.peers, imports = self._device_peers(dev)
                if not dev.peers:
                    continue  # a ToR or spine with no BGP in this design: it only forwards
                rid = next((a.ip for a in [*dev.loopbacks, *dev.bridge_addrs,
                                           *(x for i in dev.ifaces for x in i.addrs)] if a.version == 4), None)
                if dev.asn is None or rid is None:
                    raise EmulationError(f"{dev.name} has no ASN or IPv4 address to run BGP with")
                dev.bird_conf = render_device_bird(dev.name, dev.asn, rid, dev.peers, imports, log)
            if dev.bird_conf:
                path = self.workdir / f"{dev.name}.conf"
                path.write_text(dev.bird_conf)
                proc = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise EmulationError(f"BIRD rejects the config of {dev.name} ({path}): "
                                         f"{(proc.stderr or proc.stdout).strip()}")

    def _own_address(self, dev: Device, family: int, towards: IPAddr, multihop: bool) -> IPAddr | None:
        if multihop:
            for a in dev.loopbacks:
                if a.version == family:
                    return a.ip
        for a in [*dev.bridge_addrs, *(x for i in dev.ifaces for x in i.addrs)]:
            if a.version == family and towards in a.network:
                return a.ip
        return None

    def _device_peers(self, dev: Device) -> tuple[list[DevicePeer], dict[int, list[IPNet]] | None]:
        entry = self.compiled.neighbours.get(self.site, {}).get(dev.name)
        peers: list[DevicePeer] = []
        imports = None
        if entry is not None:
            if int(entry.get("asn", dev.asn)) != dev.asn:
                raise EmulationError(f"neighbours.yaml gives {dev.name} AS {entry['asn']}, the model AS {dev.asn}")
            imports = {f: [ipaddress.ip_network(n) for n in (entry.get("import_prefixes") or {}).get(fam(f), [])]
                       for f in FAMILIES}
            for nb in entry.get("neighbours") or []:
                ip = ipaddress.ip_address(nb["address"])
                f = int(str(nb.get("family", fam(ip.version)))[-1])
                multihop = bool(nb.get("multihop"))
                peers.append(DevicePeer(f"N_{_sym(nb.get('peer') or str(ip))}_{fam(f)}", f, ip,
                                        int(nb["remote_as"]), self._own_address(dev, f, ip, multihop), multihop,
                                        bool(nb.get("rr_client")), False,
                                        self.address_owner.get(ip, f"?{ip}"), True))
        for iface in dev.ifaces:
            seg = self.segments[iface.segment]
            if seg.kind != "p2p" or not seg.bgp:
                continue
            other = next(m for m in seg.members if m.device != dev.name)
            odev = self.devices[other.device]
            for a in other.addrs:
                mine = next(x for x in iface.addrs if x.version == a.version)
                core = dev.kind == "router" and odev.kind == "router"
                peers.append(DevicePeer(f"{'C' if core else 'F'}_{_sym(odev.name)}_{fam(a.version)}", a.version,
                                        a.ip, odev.asn or 0, mine.ip, False, False, core and odev.asn == dev.asn,
                                        odev.name, False))
        return peers, imports

    # ------------------------------------------------------------------ lifecycle
    def up(self) -> None:
        reap_stale()
        self.render_configs()
        for dev in self.devices.values():
            self._ns_add(dev.ns)
            sysctls = ["net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1",
                       "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                       "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
                       "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
            if dev.kind != "switch":  # Kubernetes nodes forward too (their pods' traffic)
                sysctls += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
            run(["ip", "netns", "exec", dev.ns, "sysctl", "-qw", *sysctls])
            batch = ["link set lo up"]
            batch += [f"addr add {a} dev lo" for a in dev.loopbacks]
            if dev.has_bridge:
                batch += ["link add br0 type bridge", "link set br0 up"]
                batch += [f"addr add {a} dev br0" + (" nodad" if a.version == 6 else "") for a in dev.bridge_addrs]
            if dev.kind in ("node", "reflector") and dev.name in self.node_birds:
                # one workload address per block, on a cali* interface as Felix would program it
                # (a veth pair: this kernel may have no dummy driver)
                batch += ["link add cali-pod type veth peer name cali-peer", "link set cali-pod up",
                          "link set cali-peer up"]
                for b in self.node_birds[dev.name].blocks.values():
                    batch.append(f"addr add {b[1]}/{b.max_prefixlen} dev cali-pod" + (" nodad" if b.version == 6
                                                                                    else ""))
            self._batch(dev.ns, batch)
        for seg in self.segments.values():
            for iface in seg.members:
                holder = self.devices[seg.holder] if seg.holder else None
                if holder is not None and holder.name != iface.device:
                    port = holder.next_ifname("p")
                    holder.ifaces.append(Iface(holder.name, port, seg.name, [], port=True))
                    self._veth(self.devices[iface.device], iface.name, holder, port)
                    self._batch(holder.ns, [f"link set {port} master br0", f"link set {port} up"])
            if seg.kind == "p2p":
                a, b = seg.members
                self._veth(self.devices[a.device], a.name, self.devices[b.device], b.name)
        for dev in self.devices.values():
            batch = []
            for iface in dev.ifaces:
                if iface.port:
                    continue
                batch += [f"addr add {a}" + f" dev {iface.name}" + (" nodad" if a.version == 6 else "")
                          for a in iface.addrs]
                batch.append(f"link set {iface.name} up")
            if batch:
                self._batch(dev.ns, batch)
        self.route_underlay()
        for dev in self.devices.values():
            if dev.bird_conf:
                self.start_bird(dev)
        for name, nb in self.node_birds.items():
            dev = self.devices[name]
            addrs = [str(b[1]) for b in nb.blocks.values()]
            if addrs:
                dev.echo = subprocess.Popen(["ip", "netns", "exec", dev.ns, sys.executable, "-c", ECHO_SERVER,
                                             str(ECHO_PORT), *addrs],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True)
                if dev.echo.stdout is None or dev.echo.stdout.readline().strip() != "ready":
                    raise EmulationError(f"the UDP echo of {name} did not start")

    def _ns_add(self, ns: str) -> None:
        run(["ip", "netns", "add", ns])
        self.created_ns.append(ns)

    def _batch(self, ns: str, lines: list[str]) -> None:
        if lines:
            run(["ip", "-n", ns, "-batch", "-"], input_="\n".join(lines) + "\n")

    @staticmethod
    def _veth(a: Device, a_if: str, b: Device, b_if: str) -> None:
        run(["ip", "link", "add", a_if, "netns", a.ns, "type", "veth", "peer", "name", b_if, "netns", b.ns])

    def start_bird(self, dev: Device) -> None:
        conf, sock, pid = (self.workdir / f"{dev.name}.{x}" for x in ("conf", "ctl", "pid"))
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        err = open(self.workdir / f"{dev.name}.stderr", "ab")  # noqa: SIM115 - closed in stop_bird
        dev.proc = subprocess.Popen(["ip", "netns", "exec", dev.ns, "bird", "-f", "-c", str(conf), "-s", str(sock),
                                     "-P", str(pid)], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        deadline = time.monotonic() + 10
        while not sock.exists():
            if dev.proc.poll() is not None:
                raise EmulationError(f"BIRD of {dev.name} exited ({dev.proc.returncode}); see "
                                     f"{self.workdir / (dev.name + '.stderr')}")
            if time.monotonic() > deadline:
                raise EmulationError(f"BIRD of {dev.name} did not open its control socket")
            time.sleep(0.05)

    def stop_bird(self, dev: Device, sig: int = signal.SIGKILL) -> None:
        if dev.proc is not None:
            if dev.proc.poll() is None:
                dev.proc.send_signal(sig)
                try:
                    dev.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    dev.proc.kill()
                    dev.proc.wait(timeout=10)
            dev.proc = None

    def down(self) -> None:
        """Kill every BIRD this lab started and delete its namespaces; never raises."""
        errors = []
        for dev in self.devices.values():
            try:
                self.stop_bird(dev)
                if dev.echo is not None:
                    dev.echo.kill()
                    dev.echo.wait(timeout=10)
                    dev.echo = None
            except Exception as err:  # noqa: BLE001 - cleanup must go on
                errors.append(f"{dev.name}: {err}")
        for ns in reversed(self.created_ns):
            for pid in run(["ip", "netns", "pids", ns], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run(["ip", "netns", "del", ns], check=False)
        self.created_ns.clear()
        if not os.environ.get("NPC_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.log += errors

    # ------------------------------------------------------------------ underlay routing
    def _alive_segment(self, seg: Segment) -> bool:
        return seg.holder is None or not self.devices[seg.holder].failed

    def route_underlay(self) -> None:
        """Static routes along the shortest surviving path, as an IGP would give them."""
        for dev in self.devices.values():
            if dev.kind == "switch" or dev.failed:
                continue
            for f in FAMILIES:
                want = self.routes_for(dev, f)
                have = self._static_routes(dev, f)
                lines = [f"route replace {dst} via {nh} dev {ifn} proto static"
                         for dst, (nh, ifn) in sorted(want.items(), key=lambda kv: str(kv[0]))
                         if have.get(dst) != (nh, ifn)]
                lines += [f"route del {dst} proto static" for dst in have if dst not in want]
                self._batch(dev.ns, lines)

    def _static_routes(self, dev: Device, f: int) -> dict[IPNet, tuple[IPAddr, str]]:
        out = {}
        for r in json.loads(run(["ip", f"-{f}", "-n", dev.ns, "-j", "route", "show", "proto", "static"]) or "[]"):
            dst = r["dst"]
            if dst == "default":
                dst = "0.0.0.0/0" if f == 4 else "::/0"
            if "/" not in dst:
                dst += "/32" if f == 4 else "/128"
            if "gateway" in r:
                out[ipaddress.ip_network(dst)] = (ipaddress.ip_address(r["gateway"]), r.get("dev", ""))
        return out

    def _neighbours(self, dev: Device, f: int) -> list[tuple[Device, IPAddr, str]]:
        """(device, its address, my interface) over every surviving segment."""
        out = []
        for iface in dev.ifaces:
            seg = self.segments[iface.segment]
            if iface.port or not self._alive_segment(seg):
                continue
            my_if = iface.name
            holder = self.devices[seg.holder] if seg.holder else None
            if holder is not None and holder.name != dev.name and not holder.failed:
                addr = next((a.ip for a in holder.bridge_addrs if a.version == f), None)
                if addr is not None and any(a.version == f for a in iface.addrs):
                    out.append((holder, addr, my_if))
            for m in seg.members:
                other = self.devices[m.device]
                if other.name == dev.name or other.failed:
                    continue
                addr = next((a.ip for a in m.addrs if a.version == f), None)
                if addr is not None and any(a.version == f for a in iface.addrs):
                    out.append((other, addr, my_if))
        if dev.has_bridge:  # the holder's own bridge: its members are reached through br0
            for seg in self.segments.values():
                if seg.holder == dev.name and self._alive_segment(seg):
                    for m in seg.members:
                        other = self.devices[m.device]
                        addr = next((a.ip for a in m.addrs if a.version == f), None)
                        if other.name != dev.name and not other.failed and addr is not None and dev.bridge_addrs:
                            out.append((other, addr, "br0"))
        return out

    def connected(self, dev: Device, f: int) -> set[IPNet]:
        return {a.network for a in [*dev.bridge_addrs, *(x for i in dev.ifaces for x in i.addrs)]
                if a.version == f}

    def routes_for(self, dev: Device, f: int) -> dict[IPNet, tuple[IPAddr, str]]:
        dests: dict[IPNet, set[str]] = defaultdict(set)  # prefix -> devices that hold it
        for d in self.devices.values():
            if d.failed:
                continue
            for a in [*d.bridge_addrs, *(x for i in d.ifaces for x in i.addrs)]:
                if a.version == f:
                    dests[a.network].add(d.name)
            for lo in d.loopbacks:
                if lo.version == f:
                    dests[lo.network].add(d.name)
        # BFS: first hop towards every device; only forwarding devices carry traffic on
        first: dict[str, tuple[IPAddr, str]] = {}
        dist: dict[str, int] = {dev.name: 0}
        frontier: list[tuple[Device, tuple[IPAddr, str] | None]] = [(dev, None)]
        while frontier:
            nxt = []
            for d, hop in frontier:
                if d is not dev and not d.forwards:
                    continue  # hosts do not forward
                for other, addr, ifn in sorted(self._neighbours(d, f), key=lambda t: (t[0].name, str(t[1]))):
                    if other.name in dist:
                        continue
                    dist[other.name] = dist[d.name] + 1
                    first[other.name] = hop or (addr, ifn)
                    nxt.append((other, first[other.name]))
            frontier = nxt
        connected = self.connected(dev, f)
        out = {}
        for dst, holders in dests.items():
            if dst in connected or dev.name in holders:
                continue
            reach = sorted((dist[h], h) for h in holders if h in first)
            if reach:
                out[dst] = first[reach[0][1]]
        if dev.kind in ("tor", "spine") and not dev.bird_conf:
            # a switch that speaks no BGP in this design still routes: a default up to the core
            routers = sorted((dist[d], d) for d in first if self.devices[d].kind == "router")
            if routers:
                out[ipaddress.ip_network("0.0.0.0/0" if f == 4 else "::/0")] = first[routers[0][1]]
        return out

    # ------------------------------------------------------------------ failures
    def fail(self, names: Iterable[str]) -> None:
        """Take devices down: kill their BIRD (a crash: the kernel closes the TCP sessions),
        set all their links down, and let the underlay route around them."""
        for name in sorted(set(names)):
            dev = self.devices[name]
            self.stop_bird(dev)
            dev.failed = True
            links = [i.name for i in dev.ifaces] + (["br0"] if dev.has_bridge else [])
            self._batch(dev.ns, [f"link set {n} down" for n in links])
        self.route_underlay()

    def restore(self) -> None:
        failed = [d for d in self.devices.values() if d.failed]
        for dev in failed:
            links = (["br0"] if dev.has_bridge else []) + [i.name for i in dev.ifaces]
            self._batch(dev.ns, [f"link set {n} up" for n in links])
            dev.failed = False
        self.route_underlay()
        for dev in failed:
            if dev.bird_conf:
                self.start_bird(dev)

    def devices_of(self, failure: str) -> set[str]:
        """The lab devices a failure domain of the redundancy sweep takes down."""
        kind, _, name = failure.partition(" ")
        model = self.model
        if kind in ("router", "reflector", "switch"):
            return {name} if name in self.devices else set()
        racks = [name] if kind == "rack" else list(model.rows[name].racks) if kind == "row" else []
        out = {d for d in self.devices if d in model.hosts and model.hosts[d].rack in racks}
        for kk in racks:
            if model.racks[kk].switch in self.devices:
                out.add(model.racks[kk].switch)
        if kind == "row":
            row = model.rows[name]
            for sw in [row.switch, *row.spines, f"sw-{row.name}"]:
                if sw in self.devices:
                    out.add(sw)
        return out

    # ------------------------------------------------------------------ observation
    def birdc(self, dev: Device, *cmd: str) -> str:
        return run(["birdc", "-s", str(self.workdir / f"{dev.name}.ctl"), *cmd], timeout=10)

    def protocols(self, dev: Device) -> dict[str, str]:
        out = {}
        for line in self.birdc(dev, "show", "protocols").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "BGP":
                state = parts[3]
                info = parts[-1] if len(parts) > 6 else ""
                out[parts[0]] = "Established" if state == "up" and info == "Established" else \
                    f"{state}/{info}"
        return out

    def kernel_routes(self, dev: Device) -> dict[int, set[IPNet]]:
        out: dict[int, set[IPNet]] = {}
        for f in FAMILIES:
            routes = json.loads(run(["ip", f"-{f}", "-n", dev.ns, "-j", "route", "show", "proto", "bird"]) or "[]")
            nets = set()
            for r in routes:
                if r.get("type", "unicast") != "unicast" or not (r.get("gateway") or r.get("nexthops")
                                                                  or r.get("dev")):
                    continue
                dst = r["dst"]
                if "/" not in dst:
                    dst += "/32" if f == 4 else "/128"
                nets.add(ipaddress.ip_network(dst))
            out[f] = nets
        return out

    def pod_next_hops(self, dev: Device) -> dict[IPNet, set[str]]:
        """Each node's pod block in a device's kernel -> the devices its next hops belong to."""
        blocks = {b: n for n, nb in self.node_birds.items() for b in nb.blocks.values()}
        out: dict[IPNet, set[str]] = {}
        for f in FAMILIES:
            for r in json.loads(run(["ip", f"-{f}", "-n", dev.ns, "-j", "route", "show", "proto", "bird"]) or "[]"):
                dst = ipaddress.ip_network(r["dst"] if "/" in r["dst"] else r["dst"] + ("/32" if f == 4 else "/128"))
                if dst not in blocks:
                    continue
                hops = [h.get("gateway") for h in r.get("nexthops", [])] or [r.get("gateway")]
                out[dst] = {self.address_owner.get(ipaddress.ip_address(h), h) if h else "direct" for h in hops}
        return out

    def snapshot(self) -> Snapshot:
        protocols, routes = {}, {}
        for dev in self.devices.values():
            if dev.failed or not dev.bird_conf:
                continue
            protocols[dev.name] = self.protocols(dev)
            if dev.kind in ("node", "reflector"):
                routes[dev.name] = self.kernel_routes(dev)
        return Snapshot(protocols, routes)

    # ------------------------------------------------------------------ expectations
    def nodes(self) -> list[str]:
        return sorted(n for n, d in self.devices.items() if d.kind in ("node", "reflector"))

    def blocks(self, node: str) -> dict[int, IPNet]:
        return self.node_birds[node].blocks

    def learned(self, snap: Snapshot, node: str, f: int) -> set[str]:
        """The other nodes whose pod block `node` has a route to (pod blocks only)."""
        mine = {n: self.blocks(n).get(f) for n in self.nodes()}
        have = snap.routes.get(node, {}).get(f, set())
        return {n for n, b in mine.items() if n != node and b is not None and b in have}

    def configured_sessions(self, compiled_only: bool = True) -> set[tuple[str, str, int]]:
        out = set()
        for dev in self.devices.values():
            if not dev.bird_conf:
                continue
            for p in dev.peers:
                if compiled_only and isinstance(p, DevicePeer) and not p.compiled:
                    continue
                out.add((dev.name, self.peer_name(p), p.family))
        return out

    def converge(self, check: Callable[[Snapshot], list[str]], timeout: float = 30.0,
                 settle: float = 0.0) -> tuple[Snapshot, list[str], float]:
        """Poll until `check` returns no problem (and still none after `settle` s) or `timeout` passes."""
        start = time.monotonic()
        ok_since = None
        while True:
            snap = self.snapshot()
            problems = check(snap)
            now = time.monotonic()
            if not problems:
                ok_since = ok_since or now
                if now - ok_since >= settle:
                    return snap, [], now - start
            else:
                ok_since = None
            if now - start > timeout:
                return snap, problems, now - start
            time.sleep(0.4)

    def ping_pods(self, pairs: Iterable[tuple[str, str]], families: Iterable[int] = FAMILIES) -> list[str]:
        """UDP echo from each source's pod address to each target's: the data plane, there and back."""
        targets: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
        for a, b in pairs:
            for f in families:
                src, dst = self.blocks(a).get(f), self.blocks(b).get(f)
                if src is not None and dst is not None:
                    targets[a][str(dst[1])] = (b, f)
        procs = []
        for a, dsts in sorted(targets.items()):
            src4, src6 = (str(self.blocks(a)[f][1]) if f in self.blocks(a) else "" for f in FAMILIES)
            procs.append((a, dsts, subprocess.Popen(["ip", "netns", "exec", self.devices[a].ns, sys.executable, "-c",
                                                     ECHO_CLIENT, str(ECHO_PORT), "3", src4, src6, *dsts],
                                                    stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True)))
        failed = []
        for a, dsts, p in procs:
            out, err = p.communicate(timeout=30)
            if p.returncode != 0:
                failed.append(f"{a}: probe error {err.strip()[-200:]}")
                continue
            for t in out.split():
                b, f = dsts[t]
                failed.append(f"{a} -> {b} (IPv{f})")
        return sorted(failed)


def _dead_run(name: str) -> bool:
    """`name` (a namespace or work folder) belongs to an earlier run of this harness that is gone."""
    m = re.match(r"npc(\d+)[a-z]+-", name)
    if not m or int(m.group(1)) == os.getpid():
        return False
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False  # that run is alive


def reap_stale() -> None:
    """Delete what killed runs of this harness left: their BIRDs, namespaces and work folders."""
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        ns = line.split()[0] if line.split() else ""
        if not _dead_run(ns):
            continue
        for pid in run(["ip", "netns", "pids", ns], check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", ns], check=False)
    for folder in Path(tempfile.gettempdir()).glob("npc*-*"):
        if folder.is_dir() and _dead_run(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def expected_from_sweep(sweep: Any, nodes: list[str]) -> dict[int, dict[str, set[str]]]:
    """family -> surviving node -> the nodes whose blocks it must (exactly) have, per the analysis:
    cut-off nodes reach nobody; split groups reach their own group; the rest reach each other."""
    out: dict[int, dict[str, set[str]]] = {}
    lost = set(sweep.lost)
    alive = [n for n in nodes if n not in lost]
    for f in FAMILIES:
        cut = set(sweep.cut_off.get(f, ()))
        groups = [set(g) for g in sweep.split.get(f, ()) if len(sweep.split.get(f, ())) > 1]
        if not groups:
            groups = [{n for n in alive if n not in cut}]
        exp: dict[str, set[str]] = {}
        for n in alive:
            if n in cut:
                exp[n] = set()
                continue
            g = next((g for g in groups if n in g), {n})
            exp[n] = (g - {n}) - cut - lost
        out[f] = exp
    return out

"""What "from anywhere" and "to the internet" mean, and which ports are sensitive.

One definition, shared by the compiler's safe defaults (`compiler.resolve.safety`: E701, E703)
and by lint (L031), so the two never disagree about what counts:

- a peer stands for *anywhere* when it is `any`, `internet`, or an address set holding at least
  half of the IPv4 or of the IPv6 space (`0.0.0.0/0`, two `/1`s, a network of them);
- a port is *sensitive* when a service that must not face the world usually listens there (SSH,
  etcd, the kubelet, databases...): from anywhere that is an error unless the statement says
  `exposed "why"`; a few ports are exposed *with care* (the Kubernetes API server, SNMP), which
  lint reports as a warning;
- a destination reaches *the internet wide open* when it holds more public addresses (those of
  `internet`: not special-purpose, not the estate's) than a /8 of IPv4 or a /16 of IPv6 holds,
  more than any one organisation is given: egress there must name `internet`.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import model as m
from .ranges import Ranges

# (protocol, first port, last port, what it is, severity when open to any address)
SENSITIVE: tuple[tuple[str, int, int, str, str], ...] = (
    ("tcp", 22, 22, "SSH", "error"),
    ("tcp", 23, 23, "telnet", "error"),
    ("tcp", 179, 179, "BGP", "error"),
    ("tcp", 2181, 2181, "ZooKeeper", "error"),
    ("tcp", 2375, 2376, "the Docker API", "error"),
    ("tcp", 2379, 2380, "etcd", "error"),
    ("tcp", 3306, 3306, "MySQL/MariaDB", "error"),
    ("tcp", 5432, 5432, "PostgreSQL", "error"),
    ("tcp", 6379, 6379, "Redis", "error"),
    ("tcp", 7000, 7001, "Cassandra internode", "error"),
    ("tcp", 9042, 9042, "Cassandra", "error"),
    ("tcp", 9092, 9092, "Kafka", "error"),
    ("tcp", 10250, 10250, "the kubelet API", "error"),
    ("tcp", 10255, 10255, "the read-only kubelet", "error"),
    ("tcp", 11211, 11211, "memcached", "error"),
    ("udp", 11211, 11211, "memcached", "error"),
    ("tcp", 27017, 27017, "MongoDB", "error"),
    ("tcp", 6443, 6443, "the Kubernetes API server", "warning"),
    ("tcp", 10257, 10257, "kube-controller-manager", "warning"),
    ("tcp", 10259, 10259, "kube-scheduler", "warning"),
    ("udp", 161, 161, "SNMP", "warning"),
)
WORLD_V4 = 2 ** 31  # an address set holding half an address family counts as "anywhere"
WORLD_V6 = 2 ** 127
WIDE_V4 = 2 ** 24  # more public addresses than a /8: "the internet", not one organisation
WIDE_V6 = 2 ** 112  # more than a /16 (the largest allocations to one organisation are /19s)


def _sizes(cidrs: Iterable) -> tuple[int, int]:
    v4 = v6 = 0
    for c in cidrs:
        if c.version == 4:
            v4 += c.size
        else:
            v6 += c.size
    return v4, v6


def anywhere(ep: m.Endpoint) -> bool:
    """Does this peer stand for any address (see the module docstring)?"""
    if ep.kind in ("any", "internet"):
        return True
    v4, v6 = _sizes(ep.cidrs)
    return v4 >= WORLD_V4 or v6 >= WORLD_V6


def every_port(p: m.PortMatch) -> bool:
    """`any`, or a protocol with no port: every service of the host."""
    return p.protocol == "any" or (p.protocol in ("tcp", "udp", "sctp") and p.first is None)


def overlap(a: m.PortMatch, b: m.PortMatch) -> bool:
    """Do two port matches share a packet?"""
    if "any" in (a.protocol, b.protocol):
        return True
    if a.protocol != b.protocol:
        return False
    if a.protocol in ("icmp", "icmpv6"):
        return a.icmp_type is None or b.icmp_type is None or (
            a.icmp_type == b.icmp_type and (a.icmp_code is None or b.icmp_code is None or a.icmp_code == b.icmp_code))
    (a1, a2), (b1, b2) = _range(a), _range(b)
    return a1 <= b2 and b1 <= a2


def _range(p: m.PortMatch) -> tuple[int, int]:
    return (1, 65535) if p.first is None else (p.first, p.last if p.last is not None else p.first)


def sensitive_hits(ports: Iterable[m.PortMatch]) -> dict[str, list[tuple[str, str]]]:
    """Severity -> the sensitive services (what, `proto port`) these ports reach, in table order."""
    ports = list(ports)
    hits: dict[str, list[tuple[str, str]]] = {"error": [], "warning": []}
    for proto, a, b, what, sev in SENSITIVE:
        if any(overlap(p, m.PortMatch(proto, a, b)) for p in ports):
            hit = (what, f"{proto} {a}" + ("" if a == b else f"-{b}"))
            if hit not in hits[sev]:
                hits[sev].append(hit)
    return hits


def internet_wide(ep: m.Endpoint, private: Ranges) -> bool:
    """Does egress to this peer reach the internet wide open (see the module docstring)? A peer
    smaller than the thresholds cannot be, and is not measured."""
    if ep.kind == "internet":
        return False
    v4, v6 = _sizes(ep.cidrs)
    if v4 <= WIDE_V4 and v6 <= WIDE_V6:
        return False
    for c in ep.cidrs:  # the peer's CIDRs are disjoint: take away what of each is not public
        if c.version == 4:
            v4 -= private.shared(c)
        else:
            v6 -= private.shared(c)
    return v4 > WIDE_V4 or v6 > WIDE_V6

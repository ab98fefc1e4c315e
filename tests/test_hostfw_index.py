"""`Admit.admits` answers membership through merged, bisected ranges (compiler.ranges), not IPSet.

The oracle is netaddr's IPSet over the same networks, an independent implementation: for
random networks of both families (single addresses, small and wide prefixes, overlapping and
adjacent ones) and random probes near their edges, both must agree.
"""

from __future__ import annotations

import random

from netaddr import IPAddress, IPNetwork, IPSet

from compiler import model as m
from compiler.analysis.hostfw import AddressSet, Admit
from compiler.diagnostics import Span

SPAN = Span("t.npl", 1, 1, 1, 2)
TCP22 = (m.PortMatch("tcp", 22, 22),)


def _random_nets(rng: random.Random, family: int, count: int) -> list[IPNetwork]:
    bits = 32 if family == 4 else 128
    base = 0x0A000000 if family == 4 else 0xFD00 << 112
    nets = []
    for _ in range(count):
        plen = rng.choice((bits, bits, bits - 1, bits - 4, bits - 8, bits - 12))
        value = base + rng.randrange(1 << 14)
        nets.append(IPNetwork((value >> (bits - plen) << (bits - plen), plen), version=family))
    return nets


def _probes(rng: random.Random, nets: list[IPNetwork], family: int) -> list[IPAddress]:
    out = []
    for n in nets:
        out += [IPAddress(v, family) for v in (n.first, n.last, n.first - 1, n.last + 1) if v >= 0]
    base = 0x0A000000 if family == 4 else 0xFD00 << 112
    out += [IPAddress(base + rng.randrange(1 << 15), family) for _ in range(200)]
    return out


def test_admits_agrees_with_ipset_on_random_networks():
    rng = random.Random(7)
    for _ in range(30):
        v4, v6 = _random_nets(rng, 4, rng.randrange(1, 40)), _random_nets(rng, 6, rng.randrange(1, 40))
        admit = Admit((AddressSet("network", "a", tuple(v4[: len(v4) // 2]) + tuple(v6)),
                       AddressSet("cidr", "b", tuple(v4[len(v4) // 2:]))), TCP22, SPAN, "role r", "t")
        oracle = IPSet(v4 + v6)
        for family, nets in ((4, v4), (6, v6)):
            for address in _probes(rng, nets, family):
                assert admit.admits(address, "tcp", 22) == (address in oracle), address


def test_admits_still_checks_the_port_and_the_family():
    admit = Admit((AddressSet("cidr", "x", (IPNetwork("10.0.0.0/24"),)),), TCP22, SPAN, "role r", "t")
    assert admit.admits(IPAddress("10.0.0.7"), "tcp", 22)
    assert not admit.admits(IPAddress("10.0.0.7"), "tcp", 23)
    assert not admit.admits(IPAddress("10.0.0.7"), "udp", 22)
    assert not admit.admits(IPAddress("10.0.1.0"), "tcp", 22)
    assert not admit.admits(IPAddress("::a00:7"), "tcp", 22)  # the same integer, the other family
    assert Admit(None, TCP22, SPAN, "role r", "t").admits(IPAddress("2001:db8::1"), "tcp", 22)

"""An address set as merged, sorted (version, first, last) integer ranges.

netaddr's `IPSet` answers one question at a time in time that grows with the set; a question
asked once per CIDR of a large peer (does it meet the set? how much of it is in it?) would be
quadratic. Here each is a bisection, so a network of a million CIDRs is checked in seconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from netaddr import IPNetwork, IPSet

_ABOVE_ALL = 1 << 129  # above every IPv6 address: (v, value, _ABOVE_ALL) sorts after every range starting at value


class Ranges:
    def __init__(self, cidrs: IPSet | Iterable[IPNetwork]):
        items = cidrs.iter_cidrs() if isinstance(cidrs, IPSet) else cidrs
        merged: list[tuple[int, int, int]] = []
        for c in sorted(items, key=lambda c: (c.version, c.first)):
            if merged and merged[-1][0] == c.version and c.first <= merged[-1][2] + 1:
                merged[-1] = (c.version, merged[-1][1], max(merged[-1][2], c.last))
            else:
                merged.append((c.version, c.first, c.last))
        self.ranges = merged

    def holds(self, version: int, value: int) -> bool:
        """Is the address (its IP version and integer value) in the set? One bisection."""
        i = bisect.bisect_right(self.ranges, (version, value, _ABOVE_ALL)) - 1
        return i >= 0 and self.ranges[i][0] == version and self.ranges[i][2] >= value

    def shared(self, c: IPNetwork) -> int:
        """How many addresses of the CIDR are in the set."""
        n = 0
        i = max(bisect.bisect_left(self.ranges, (c.version, c.first, -1)) - 1, 0)
        while i < len(self.ranges):
            v, a, b = self.ranges[i]
            if (v, a) > (c.version, c.last):
                break
            if v == c.version and b >= c.first:
                n += min(b, c.last) - max(a, c.first) + 1
            i += 1
        return n

    def meets(self, c: IPNetwork) -> bool:
        """Does the CIDR share an address with the set?"""
        i = max(bisect.bisect_left(self.ranges, (c.version, c.first, -1)) - 1, 0)
        while i < len(self.ranges):
            v, a, b = self.ranges[i]
            if (v, a) > (c.version, c.last):
                return False
            if v == c.version and b >= c.first:
                return True
            i += 1
        return False

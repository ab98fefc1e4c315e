"""An address set as merged, sorted (version, first, last) integer ranges.

netaddr's `IPSet` answers one question at a time in time that grows with the set; a question
asked once per CIDR of a large peer (does it meet the set? how much of it is in it?) would be
quadratic. Here each is a bisection, so a network of a million CIDRs is checked in seconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

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

    def _overlaps(self, c: IPNetwork) -> Iterator[tuple[int, int]]:
        """The (first, last) of each range that shares addresses with the CIDR, in order."""
        ranges = self.ranges
        for i in range(max(bisect.bisect_left(ranges, (c.version, c.first, -1)) - 1, 0), len(ranges)):
            v, a, b = ranges[i]
            if (v, a) > (c.version, c.last):
                return
            if v == c.version and b >= c.first:
                yield a, b

    def shared(self, c: IPNetwork) -> int:
        """How many addresses of the CIDR are in the set."""
        return sum(min(b, c.last) - max(a, c.first) + 1 for a, b in self._overlaps(c))

    def meets(self, c: IPNetwork) -> bool:
        """Does the CIDR share an address with the set?"""
        return next(self._overlaps(c), None) is not None

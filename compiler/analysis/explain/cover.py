"""How much of a far end a peer holds: all, part or none of its addresses of one family."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from netaddr import IPNetwork, IPSet

FULL, PARTIAL, NONE = "full", "partial", "none"


@functools.lru_cache(maxsize=4096)
def ipset(cidrs: tuple[IPNetwork, ...], family: int) -> IPSet:
    """The addresses of one family, as a set (cached: parties and grants ask again and again)."""
    return IPSet(c for c in cidrs if c.version == family)


def of_family(nets: Iterable[IPNetwork], family: int) -> IPSet:
    """The networks of one family, as a set."""
    return IPSet(c for c in nets if c.version == family)


def cover(theirs: IPSet, mine: IPSet) -> str:
    """FULL when the far end's addresses `theirs` all lie in the peer's `mine`, PARTIAL when some do."""
    if theirs and theirs <= mine:
        return FULL
    return PARTIAL if theirs & mine else NONE


def held_by_union(theirs: IPSet, union: IPSet) -> bool:
    """Whether the far end's addresses, each peer holding part of them, are held by the peers together."""
    return bool(theirs and theirs <= union)

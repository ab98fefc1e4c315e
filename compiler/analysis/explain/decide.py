"""The decision of one end on the model: whether its grants let the far end through on the question."""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import IPSet

from .cover import FULL, PARTIAL, held_by_union
from .ends import Party
from .grants import Grant, Statement
from .question import Query


def _dedupe(statements: Iterable[Statement]) -> list[Statement]:
    seen: dict[tuple, Statement] = {}
    for s in statements:
        seen.setdefault(s.key, s)
    return list(seen.values())


def decide(grants: list[Grant], far: Party, family: int, query: Query) -> tuple[bool, list[Statement], list[Grant]]:
    """(allowed, the statements that allow it, the matching grants that hold only part of the far end)."""
    active = [g for g in grants if g.inactive is None and g.port_ok(query, family)]
    full = [g for g in active if g.cover(far, family) == FULL]
    if full:
        return True, _dedupe(g.statement for g in full), []
    partial = [g for g in active if g.cover(far, family) == PARTIAL]
    union = IPSet()
    for g in partial:
        union |= g.nets_of(family)
    if partial and held_by_union(far.of(family), union):
        return True, _dedupe(g.statement for g in partial), []
    return False, [], partial


def denied_reason(direction: str, far: Party, query: Query, partial: list[Grant]) -> str:
    what = f"{'egress to' if direction == 'egress' else 'ingress from'} {far.label} on {query}"
    if partial:
        return f"no statement allows {what}; some allow it for part of its addresses only"
    return f"no statement allows {what}"

"""When an end denies: the statements that come nearest to allowing it (the same peer on other
ports, the same port from or to a peer that does not hold the far end or holds only part of it, a
statement that holds only in another cluster), and another owner that is allowed the same thing."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ... import model as m
from .cover import FULL, NONE, ipset
from .ends import Party
from .grants import Grant, rule_statement
from .question import FAMILIES, Query
from .report import Nearest


def _ports_text(ports: Iterable[m.PortMatch]) -> str:
    return ", ".join(str(p) for p in ports)


def _similarity(grant: Grant, far: Party) -> float:
    kind = far.peer.split(" ")[0]
    bonus = 0.5 if grant.peer.startswith(kind + " ") else 0.0
    return bonus + difflib.SequenceMatcher(None, grant.peer, far.peer).ratio()


def nearest(grants: list[Grant], far: Party, family: int, query: Query, partial: list[Grant], word: str,
             elsewhere: list[Nearest]) -> list[Nearest]:
    """Up to three statements that come nearest to allowing it, nearest first; `word` is `from` for
    an ingress end, `to` for an egress end. One place is kept for another owner's statement."""
    ranked: list[tuple[tuple, Nearest]] = []
    part = {id(g) for g in partial}
    for g in grants:
        cover = g.cover(far, family)
        port_ok = g.port_ok(query, family)
        if g.inactive is not None and port_ok and cover != NONE:
            ranked.append(((0, 0, 0.0), Nearest(g.statement, f"would allow it, but {g.inactive}")))
        elif g.inactive is not None or g.statement.builtin:
            continue
        elif cover != NONE and not port_ok:
            distance = min(query.distance(p) for p in g.ports)
            # the same protocol (or port number) on other ports; part of the far end only; another protocol
            rank = 5 if distance >= 100_000 else 1 if cover == FULL else 3
            who = g.peer if g.peer == far.peer else \
                f"{g.peer} (which holds {'' if cover == FULL else 'part of '}{far.label})"
            ranked.append(((rank, distance, 0.0), Nearest(
                g.statement, f"allows {who} on {_ports_text(g.ports)}, not {query.dsl}")))
        elif port_ok and id(g) in part:
            ranked.append(((2, 0, 0.0), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer}, which holds only part of {far.label}")))
        elif port_ok and (other := [f for f in FAMILIES if f != family and g.port_ok(query, f)
                                    and g.cover(far, f) == FULL]):
            ranked.append(((1, 0, 0.0), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer} over IPv{other[0]}, but over IPv{family} "
                             f"{g.peer} does not hold {far.label}")))
        elif port_ok:
            ranked.append(((4, 0, -_similarity(g, far)), Nearest(
                g.statement, f"allows {query.dsl} {word} {g.peer}, which does not hold {far.label}")))
    ranked.sort(key=lambda t: t[0])
    if any(r[0] < 5 for r, _ in ranked) or elsewhere:
        ranked = [(r, n) for r, n in ranked if r[0] < 5]  # another protocol only when nothing is nearer
    out: list[Nearest] = []
    for _, n in ranked:
        if all(n.statement.key != o.statement.key for o in out):
            out.append(n)
    out = out[:3 - min(1, len(elsewhere))]
    for n in elsewhere:
        if all(n.statement.key != o.statement.key for o in out):
            out.append(n)
    return out[:3]


def elsewhere(model: m.Model, end: str, local: Party, far: Party, family: int, query: Query) -> list[Nearest]:
    """A statement of another owner that is allowed the same thing: the pattern to copy."""
    for flow in model.flows:
        if not any(query.matched_by(p, family) for p in flow.ports):
            continue
        mine, theirs = (flow.sources, flow.destinations) if end == "source" else (flow.destinations, flow.sources)
        if any(_names(model, e, local) for e in mine):
            continue
        like = ("app",) if local.kind == "app" else ("host", "role")  # an end policed the same way
        if not any(e.kind in like for e in mine):
            continue
        if any(_endpoint_cover(e, far, family) == FULL for e in theirs):
            who = ", ".join(e.label for e in mine)
            verb = "reach" if end == "source" else "be reached from"
            return [Nearest(rule_statement(model, flow.rule),
                            f"lets {who} {verb} {far.label} on {query.dsl}: the same for {local.label} "
                            "would allow it")]
    return []


def _names(model: m.Model, e: m.Endpoint, party: Party) -> bool:
    """Whether an endpoint of a flow stands for the party itself."""
    if party.kind == "app":
        return (e.kind == "app" and e.name == party.name) or e.kind == "all-apps"
    if party.kind == "host":
        host = model.hosts[party.name]
        return (e.kind == "host" and e.name == host.name) or (e.kind == "role" and e.name in host.roles) \
            or e.kind == "all-hosts"
    return False


def _endpoint_cover(e: m.Endpoint, far: Party, family: int) -> str:
    if e.kind == "any":
        return FULL
    if e.kind in ("app", "all-apps"):
        return FULL if far.kind == "app" and far.name in e.apps else NONE
    mine = ipset(e.cidrs, family)
    theirs = far.of(family)
    return FULL if theirs and mine and theirs <= mine else NONE

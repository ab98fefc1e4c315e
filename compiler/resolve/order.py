"""Definitions that name other definitions (networks including networks, services including
services), put in an order where each comes after what it names.

Resolving in that order keeps the resolver's recursion one level deep however long a chain
is (a 10,000-long chain of networks resolves; Python's stack would not), and finds the cycles
without recursing around them. The walk is iterative, so no input can exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..diagnostics import Span

CHAIN_SHOWN = 6  # names of a long cycle shown at each end of its chain


@dataclass(frozen=True)
class Cycle:
    names: tuple[str, ...]  # the cycle, from the name it closes on back to the name before it
    span: Span  # the reference that closes it

    def chain(self) -> str:
        """`a -> b -> a`; a long one with its middle elided."""
        names = [*self.names, self.names[0]]
        if len(names) > 2 * CHAIN_SHOWN:
            hidden = len(names) - 2 * CHAIN_SHOWN
            names = [*names[:CHAIN_SHOWN], f"... ({hidden} more) ...", *names[-CHAIN_SHOWN:]]
        return " -> ".join(names)


def dependency_order(names: Iterable[str], refs: Callable[[str], list[tuple[str, Span]]]
                     ) -> tuple[list[str], list[Cycle]]:
    """Every name reachable from `names`, each after the names it refers to (those in no
    cycle), and the cycles found: depth first, in the order given, like a recursive resolver."""
    order: list[str] = []
    cycles: list[Cycle] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in names:
        if root in state:
            continue
        path: list[str] = [root]
        at: dict[str, int] = {root: 0}
        todo: list[list[tuple[str, Span]]] = [list(reversed(refs(root)))]
        state[root] = 1
        while todo:
            if not todo[-1]:
                done = path.pop()
                del at[done]
                todo.pop()
                state[done] = 2
                order.append(done)
                continue
            name, span = todo[-1].pop()
            seen = state.get(name)
            if seen == 1:
                cycles.append(Cycle(tuple(path[at[name]:]), span))
            elif seen is None:
                state[name] = 1
                at[name] = len(path)
                path.append(name)
                todo.append(list(reversed(refs(name))))
    return order, cycles

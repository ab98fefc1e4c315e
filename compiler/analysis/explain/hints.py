"""When an end denies: what to write, and where, to allow it."""

from __future__ import annotations

from ... import model as m
from .ends import Party
from .question import Query


def calico_hint(model: m.Model, end: str, local: Party, far: Party, query: Query) -> str:
    app = model.apps[local.name]
    where = f"app {app.name} ({app.span.location})"
    if end == "source":
        extra = "; naming the host also opens its firewall" if far.kind == "host" else ""
        return f"in {where}: `connect {query.dsl} to {far.peer}`{extra}"
    return f"in {where}: `allow {query.dsl} from {far.peer}`"


def ferm_hint(model: m.Model, src: Party, dst: Party, query: Query) -> str:
    host = model.hosts[dst.name]
    roles = [r for r in host.roles if not model.roles[r].default]
    own = " or ".join(f"role {r} ({model.roles[r].span.location})" for r in roles) or \
        f"a role of host {dst.name} (it has none but the default)"
    hint = f"in {own}: `allow {query.dsl} from {src.peer}`"
    if src.kind == "app":
        app = model.apps[src.name]
        hint = f"in app {app.name} ({app.span.location}): `connect {query.dsl} to host {dst.name}` " \
               f"(opens its egress and this firewall); or {hint}"
    return hint

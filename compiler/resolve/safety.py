"""Safe defaults: what a statement must say out loud to open the world.

- E701: a sensitive port (or every port) open to any address (`compiler.exposure` says which
  ports and what "any address" is) needs `exposed "why"` on the statement; the bastions too, so
  a reviewer sees every way in from outside.
- E702: `exposed` with an empty reason.
- E703: egress whose destination holds the internet wide open (`any`, `0.0.0.0/0`, `::/0`, a
  large public range, a network of them) must name `internet`, so "everything" is never written
  by accident where "our networks" was meant, and the wide-open egress is plain to see.
- W006: `exposed` on a statement that opens nothing sensitive to any address: stale, or a typo.

Checked per statement, on what the statement says (its peers and the ports of its flows), not
on which hosts have a firewall: the intent is what is reviewed.
"""

from __future__ import annotations

from .. import exposure as x
from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics
from ..ranges import Ranges
from .endpoints import SPECIAL_PURPOSE, Endpoints

Ends = tuple[m.Endpoint, m.Endpoint, tuple[m.PortMatch, ...]]


class Safety:
    def __init__(self, endpoints: Endpoints, diags: Diagnostics):
        self.endpoints = endpoints
        self.diags = diags
        self.private = Ranges(SPECIAL_PURPOSE | endpoints.estate)  # what is not `internet`
        self._names_internet: dict[str, bool] = {}
        self._anywhere: dict[tuple[str, str], bool] = {}  # an end's addresses follow from its kind and name

    def reason(self, rule: s.Rule) -> str | None:
        """The statement's `exposed` reason (E702 when empty, E611 when given twice)."""
        if len(rule.exposed) > 1:
            self.diags.error("E611", "a statement says `exposed` once", rule.exposed[1].span)
        if not rule.exposed:
            return None
        given = rule.exposed[0]
        if not given.reason.value.strip():
            self.diags.error("E702", "`exposed` needs a reason", given.reason.span,
                             'say why it must be open to any address: `exposed "the vendor connects from anywhere"`')
        return given.reason.value

    def check(self, rule: s.Rule, mr: m.Rule, ends: list[Ends], owner: str, gateway: bool = False) -> None:
        """`gateway`: the owner is a role that says `ssh-gateway` (the hint then speaks of bastions)."""
        if mr.direction == "ingress":
            used = self._ingress(rule, mr, ends, owner, gateway)
            if rule.exposed and not used:
                self.diags.warning("W006", "`exposed` but this statement opens no sensitive port to any address",
                                   rule.exposed[0].span, "remove `exposed`: only a sensitive port open to any "
                                   "address (`docs/language.md`, \"Safe defaults\") needs it")
            return
        if rule.exposed:
            self.diags.warning("W006", "`exposed` applies to `allow` from any address; this is a `connect`",
                               rule.exposed[0].span, "remove it")
        for peer in mr.peers:
            if x.internet_wide(peer, self.private) and not self.names_internet(peer):
                self.diags.error(
                    "E703", f"`{peer.label}` holds the internet: egress there must say `internet`", peer.span,
                    f"write `internet` for the world, plus the internal networks if they were meant too "
                    f"(`connect ... to internet, network internal`); `{peer.label}` may also reach addresses "
                    "nobody meant")

    def _ingress(self, rule: s.Rule, mr: m.Rule, ends: list[Ends], owner: str, gateway: bool) -> bool:
        """E701 for each peer standing for any address that reaches a sensitive port; whether
        any peer did (so `exposed` was needed)."""
        used = False
        for peer in mr.peers:
            key = (peer.kind, peer.name)
            wide = self._anywhere.get(key)
            if wide is None:
                wide = self._anywhere[key] = x.anywhere(peer)
            if not wide:
                continue
            ports = sorted({p for q, _, pp in ends if q is peer for p in pp})
            hits = x.sensitive_hits(ports)
            every = any(x.every_port(p) for p in ports)
            if hits["warning"]:
                used = True
            if not (every or hits["error"]):
                continue
            used = True
            if rule.exposed:
                continue
            if every:
                what = f"every port ({', '.join(str(p) for p in ports)}), sensitive ones included"
            else:
                what = ", ".join(f"{w} ({p})" for w, p in hits["error"]) + ", a sensitive port"
            written = "" if mr.ports is None else " " + ", ".join(str(p) for p in mr.ports)
            who = f"`{peer.label}`" + ("" if peer.kind in ("any", "internet") else " (half an address family or more)")
            explicit = f"`{rule.verb}{written} from {peer.label} exposed \"why anyone may connect\"`"
            if gateway and not every and [w for w, _ in hits["error"]] == ["SSH"]:
                hint = (f"an SSH gateway is the way in from outside, which a reviewer should see stated: {explicit}; "
                        "or narrow the sources to where the operators connect from")
            else:
                hint = f"narrow the sources; if it is meant, say so and why: {explicit}"
            self.diags.error("E701", f"{who} may reach {owner} on {what}", peer.span, hint)
        return used

    def names_internet(self, peer: m.Endpoint) -> bool:
        """Is `internet` written in the peer, or in the definition of the network it names
        (directly or through the networks it includes)?"""
        if peer.kind == "internet":
            return True
        if peer.kind != "network":
            return False
        if peer.name not in self._names_internet:
            seen: set[str] = set()
            todo = [peer.name]
            found = False
            while todo and not found:
                net = self.endpoints.networks.get(todo.pop())
                if net is None or net.name in seen:
                    continue
                seen.add(net.name)
                for member in net.members:
                    if member.kind == "internet":
                        found = True
                    elif member.kind == "network":
                        todo.append(member.name)
            self._names_internet[peer.name] = found
        return self._names_internet[peer.name]

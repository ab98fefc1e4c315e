"""The lock-out guard: no host firewall may shut out the bastions or a BGP peer.

It checks the host firewalls as `hostfw` builds them (what the ferm backend renders):
- F001: a host with a firewall must admit TCP 22 from every address of every host of an
  `ssh-gateway` role, in each address family both of them have (its own addresses excepted:
  those arrive over `lo`, which every firewall accepts);
- F002: a Kubernetes node or route reflector must admit TCP 179 from each of its BGP peers,
  at the address the session uses.
Either is an error: a compile that would lock the operators or the routers out fails, naming
the host and the statement that makes the promise.

Every host with a firewall is checked, against every `ssh-gateway` host of the estate, whatever
its site: a host in a site without a bastion must admit the bastions of the others. A host that
shares no address family with any of them (an IPv6-only host, IPv4-only bastions) has nothing
the guard could check, and no bastion could reach it: that is a warning (W007), not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from netaddr import IPAddress

from .. import model as m
from ..diagnostics import Diagnostic, Span
from .hostfw import BGP_PORT, HostFirewall, sessions_by_speaker
from .peering import PeeringGraph, Session

SSH_PORT = 22


@dataclass(frozen=True, order=True)
class Finding:
    span: Span
    code: str
    host: str
    message: str
    hint: str | None = None
    notes: tuple[tuple[str, Span | None], ...] = ()
    severity: str = "error"

    def as_diagnostic(self) -> Diagnostic:
        return Diagnostic(self.code, self.severity, self.message, self.span, self.hint, self.notes)  # type: ignore[arg-type]


def _gateways(model: m.Model) -> list[tuple[m.Role, m.Host]]:
    return [(r, model.hosts[h]) for r in model.roles.values() if r.ssh_gateway for h in r.hosts if h in model.hosts]


def _listing(missing: dict[str, list[IPAddress]]) -> str:
    return ", ".join(f"{name} ({' '.join(str(a) for a in addrs)})" for name, addrs in sorted(missing.items()))


def check(model: m.Model, firewalls: dict[str, HostFirewall], graph: PeeringGraph) -> list[Finding]:
    findings: list[Finding] = []
    gateways = _gateways(model)
    ssh_cache: dict[tuple[int, ...], dict[str, list[IPAddress]]] = {}
    sessions = sessions_by_speaker(graph)
    for name, fw in firewalls.items():
        host = model.hosts[name]
        families = {a.version for a in host.addresses}
        own = set(host.addresses)
        # hosts with the same rules give the same answer: cache by the rule objects they share
        key = tuple(id(a) for a in fw.policy) + tuple(sorted(families))
        if key not in ssh_cache:
            missing: dict[str, list[IPAddress]] = {}
            for _, g in gateways:
                lost = [a for a in g.addresses if a.version in families
                        and not any(x.admits(a, "tcp", SSH_PORT) for x in fw.policy)]
                if lost:
                    missing[g.name] = lost
            ssh_cache[key] = missing
        reachable = {a.version for _, g in gateways if g.name != name for a in g.addresses}
        if reachable and not families & reachable:
            findings.append(Finding(
                host.span, "W007", name,
                f"host {name} has no address in a family of the ssh-gateway hosts "
                f"(IPv{' and IPv'.join(str(v) for v in sorted(reachable))}): no bastion can reach it, and the "
                "lock-out guard has nothing to check", "give it an address the bastions can reach, or give a "
                "bastion an address of its family", severity="warning"))
        missing = {g: [a for a in addrs if a not in own] for g, addrs in ssh_cache[key].items()}
        missing = {g: addrs for g, addrs in missing.items() if addrs}
        if missing:
            roles = sorted({r.name for r, g in gateways if g.name in missing})
            notes = tuple((f"role {r.name} says `ssh-gateway` here", r.ssh_gateway_span)
                          for r in sorted({r.name: r for r, _ in gateways}.values(), key=lambda r: r.name)
                          if r.name in roles)
            findings.append(Finding(
                host.span, "F001", name,
                f"host {name} would not admit SSH (tcp 22) from the ssh-gateway host(s) {_listing(missing)}: "
                "the operators would be locked out",
                f"allow it in the default role or in one of the host's roles ({', '.join(fw.roles)}), "
                f"e.g. `allow tcp 22 from role {roles[0]}`", notes))
        findings.extend(_bgp(model, fw, sessions.get(name, [])))
    return sorted(findings)


def _bgp(model: m.Model, fw: HostFirewall, sessions: list[Session]) -> list[Finding]:
    missing: dict[Span, dict[str, list[IPAddress]]] = {}
    # the same question as fw.admits_packet, asked of the BGP admits first: they are the ones
    # expected to answer, and a node has thousands of policy admits in a large estate
    ordered = tuple(a for a in fw.admits if a.bgp) + fw.policy
    for s in sessions:
        peer, ip = (s.b, s.b_ip) if s.a == fw.host else (s.a, s.a_ip)
        if not any(a.admits(ip, "tcp", BGP_PORT) for a in ordered):
            missing.setdefault(s.span, {}).setdefault(peer, []).append(ip)
    host = model.hosts[fw.host]
    return [Finding(host.span, "F002", fw.host,
                    f"host {fw.host} would not admit BGP (tcp 179) from its peer(s) {_listing(peers)}: "
                    "the sessions could not be established",
                    "the host firewall admits BGP from exactly the peers `peer-with` gives; this is a bug "
                    "in how the firewall was derived", (("the sessions come from this `peer-with`", span),))
            for span, peers in sorted(missing.items())]

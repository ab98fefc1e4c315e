"""Roles and apps: their statements resolved into rules, and rules into flows.

`allow P from S` in role R is the flow S -> hosts of R on P; `connect P to D`
in app A is the flow A -> D on P. Ports may be left out where the listening
ports are known (an app's `listen`); anywhere else that is an error, never
"all ports".
"""

from __future__ import annotations

import datetime as dt

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics
from .clusters import settings_by_keyword
from .endpoints import Endpoints
from .ports import Services
from .safety import Safety
from .symbols import Symbols
from .topology import Topology
from .values import check_name, check_namespace_file


def _options(rule: s.Rule, today: dt.date, diags: Diagnostics) -> tuple[str | None, dt.date | None]:
    if len(rule.descriptions) > 1:
        diags.error("E611", "a statement has one description", rule.descriptions[1].span)
    if len(rule.expires) > 1:
        diags.error("E611", "a statement has one expiry date", rule.expires[1].span)
    expires = None
    if rule.expires:
        e = rule.expires[0]
        try:
            expires = dt.date.fromisoformat(e.date)
        except ValueError:
            diags.error("E610", f"`{e.date}` is not a valid date", e.span, "write YYYY-MM-DD")
        else:
            if expires < today:
                diags.warning("W001", f"this statement expired on {expires}", rule.span,
                              "remove it, or move its expiry date")
    return (rule.descriptions[0].value if rule.descriptions else None), expires


Ends = tuple[m.Endpoint, m.Endpoint, tuple[m.PortMatch, ...]]  # (peer, local end, ports) of one flow


class Intent:
    def __init__(self, symbols: Symbols, topo: Topology, endpoints: Endpoints, services: Services,
                 today: dt.date, diags: Diagnostics):
        self.symbols = symbols
        self.topo = topo
        self.endpoints = endpoints
        self.services = services
        self.today = today
        self.diags = diags
        self.safety = Safety(endpoints, diags)
        self.apps: dict[str, m.App] = {}
        self.roles: dict[str, m.Role] = {}
        self.flows: list[m.Flow] = []
        self.gateway_roles: set[str] = set()  # roles that say `ssh-gateway`
        # the clusters each app names, valid or not, so a broken cluster does not also read as "not its cluster"
        self.declared_clusters: dict[str, set[str]] = {}

    def build(self, clusters: dict[str, m.Cluster]) -> None:
        self._check_host_roles()
        app_nodes = {k: e.node for k, e in self.symbols.tables["app"].items()}
        role_nodes = {k: e.node for k, e in self.symbols.tables["role"].items()}
        self.gateway_roles = {k for k, n in role_nodes.items() if n.ssh_gateway}  # type: ignore[attr-defined]
        self._single_default("role", role_nodes)
        self._single_default("app", app_nodes)
        for node in app_nodes.values():
            self._app_header(node, clusters)  # type: ignore[arg-type]
        for node in role_nodes.values():
            self._role(node)  # type: ignore[arg-type]
        for name, node in app_nodes.items():
            if name in self.apps:
                self._app_rules(node)  # type: ignore[arg-type]

    def _single_default(self, kind: str, nodes: dict) -> None:
        defaults = [n for n in nodes.values() if n.default]
        for extra in defaults[1:]:
            self.diags.error("E605", f"there is already a default {kind}: `{defaults[0].name.value}`",
                             extra.name.span, notes=(("the first default is here", defaults[0].span),))

    def _check_host_roles(self) -> None:
        for host in self.topo.hosts.values():
            node: s.Host = self.symbols.tables["device"][host.name].node  # type: ignore[assignment]
            for r in node.roles:
                self.symbols.lookup("role", r.value, "role", r.span, self.diags)

    # ----------------------------------------------------------- roles
    def _role(self, node: s.Role) -> None:
        name = node.name.value
        hosts = tuple(sorted(self.topo.hosts)) if node.default else \
            tuple(sorted(self.endpoints.role_hosts.get(name, ())))  # not a scan of every host per role
        target = self._hosts_endpoint(node, hosts)
        rules: list[m.Rule] = []
        for rule in node.rules:
            r = self._rule("role", name, rule, target)
            if r is not None:
                rules.append(r)
        if node.default and node.no_firewall:
            self.diags.error("E606", "the default role cannot turn the firewall off for every host",
                             node.no_firewall[0])
        if node.default and node.ssh_gateway:
            self.diags.error("E606", "the default role cannot make every host an SSH gateway",
                             node.ssh_gateway[0], "say `ssh-gateway` in the role of the bastions")
        for extra in node.ssh_gateway[1:]:
            self.diags.error("E601", f"role `{name}` says `ssh-gateway` more than once", extra)
        if not hosts and not node.default:
            self.diags.warning("W002", f"role `{name}` is given to no host", node.name.span)
        gateway = node.ssh_gateway[0] if node.ssh_gateway and not node.default else None
        self.roles[name] = m.Role(name, node.default, not node.no_firewall, tuple(rules), hosts,
                                  node.description.value if node.description else None, node.span,
                                  gateway is not None, gateway)

    def _hosts_endpoint(self, node: s.Role, hosts: tuple[str, ...]) -> m.Endpoint:
        cidrs = self.endpoints._host_cidrs(hosts)
        if node.default:
            return m.Endpoint("all-hosts", "all hosts", cidrs, (), node.name.span)
        return m.Endpoint("role", node.name.value, cidrs, (), node.name.span)

    # ----------------------------------------------------------- apps
    def _app_header(self, node: s.App, clusters: dict[str, m.Cluster]) -> None:
        name = node.name.value
        owner = f"{'default ' if node.default else ''}app {name}"
        st = settings_by_keyword(node.settings, owner, self.diags)
        if node.default:
            for k, v in st.items():
                self.diags.error("E606", f"the default app applies to every app and cannot set `{k}`", v.span)
            self.apps[name] = m.App(name, True, (), None, (), (), node.description.value if node.description else None,
                                    node.span)
            return
        cl: list[str] = []
        if "clusters" not in st:
            self.diags.error("E602", f"{owner} does not say where it runs", node.name.span,
                             "add `cluster NAME` (or `clusters A, B`)")
        else:
            self.declared_clusters[name] = {n.value for n in st["clusters"].values[0]}
            for n in st["clusters"].values[0]:
                e = self.symbols.lookup("cluster", n.value, "cluster", n.span, self.diags)
                if e is not None and n.value in clusters:
                    cl.append(n.value)
        namespace = name
        if "namespace" in st:
            ns = st["namespace"].values[0]
            if check_name(ns, "namespace", self.diags) and check_namespace_file(ns, True, self.diags):
                namespace = ns.value
        else:
            check_namespace_file(node.name, False, self.diags)
        listen: tuple[m.PortMatch, ...] = ()
        if "listen" in st:
            listen = self.services.port_list(st["listen"].values[0]) or ()
        self.apps[name] = m.App(name, False, tuple(sorted(set(cl))), namespace, listen, (),
                                node.description.value if node.description else None, node.span)

    def _app_rules(self, node: s.App) -> None:
        app = self.apps[node.name.value]
        if app.default:
            members = tuple(sorted(k for k, a in self.apps.items() if not a.default))
            target = m.Endpoint("all-apps", "all apps", (), members, node.name.span)
        else:
            target = m.Endpoint("app", app.name, (), (app.name,), node.name.span)
        rules = [r for rule in node.rules if (r := self._rule("app", app.name, rule, target, app))]
        self.apps[app.name] = m.App(app.name, app.default, app.clusters, app.namespace, app.listen, tuple(rules),
                                    app.description, app.span)

    # ----------------------------------------------------------- statements
    def _rule(self, owner_kind: str, owner: str, rule: s.Rule, target: m.Endpoint,
              app: m.App | None = None) -> m.Rule | None:
        description, expires = _options(rule, self.today, self.diags)
        exposed = self.safety.reason(rule)
        clusters = self._only_in(rule, app)
        word = "from" if rule.verb == "allow" else "to"
        peers = self.endpoints.resolve(rule.peers, f"after `{word}`")
        ports = self.services.port_list(rule.ports) if rule.ports is not None else None
        if peers is None or clusters is None or (rule.ports is not None and ports is None):
            return None
        direction = "ingress" if rule.verb == "allow" else "egress"
        if ports is not None:
            ends = [(p, target, ports) for p in peers]
        else:
            ends = self._default_ports(rule, peers, target, app, clusters)
            if ends is None:
                return None
        mr = m.Rule(owner_kind, owner, direction, peers, ports, description, expires, clusters, rule.span,  # type: ignore[arg-type]
                    exposed)
        default = app.default if app is not None else target.kind == "all-hosts"
        gateway = owner_kind == "role" and owner in self.gateway_roles
        self.safety.check(rule, mr, ends, f"{'default ' if default else ''}{owner_kind} {owner}", gateway)
        for peer, local, pp in ends:
            if direction == "ingress":
                self.flows.append(m.Flow((peer,), (local,), pp, mr))
            else:
                self.flows.append(m.Flow((local,), (peer,), pp, mr))
        return mr

    def _only_in(self, rule: s.Rule, app: m.App | None) -> tuple[str, ...] | None:
        """`in cluster X`: one of the app's clusters (any cluster for the default app)."""
        if len(rule.only_in) > 1:
            self.diags.error("E611", "a statement has one `in cluster` list", rule.only_in[1].span)
        if not rule.only_in:
            return ()
        where = rule.only_in[0]
        if app is None:
            self.diags.error("E606", "`in cluster` applies to apps; a role's rules apply to its hosts", where.span)
            return None
        out: list[str] = []
        ok = True
        for n in where.clusters:
            if self.symbols.lookup("cluster", n.value, "cluster", n.span, self.diags) is None:
                ok = False
            elif not app.default and n.value not in self.declared_clusters.get(app.name, ()):
                self.diags.error("E609", f"app {app.name} does not run in cluster {n.value}", n.span,
                                 f"its clusters: {', '.join(app.clusters) or 'none'}")
                ok = False
            else:
                out.append(n.value)
        return tuple(sorted(set(out))) if ok else None

    def _default_ports(self, rule: s.Rule, peers: tuple[m.Endpoint, ...], target: m.Endpoint, app: m.App | None,
                       clusters: tuple[str, ...]) -> list[Ends] | None:
        """No ports written: `allow from X` means the listening ports of the app (of each app,
        in the default app); `connect to app B` means B's. Anything else is an error."""
        if rule.verb == "allow":
            if app is not None and app.default:
                serving = [a for _, a in sorted(self.apps.items())
                           if not a.default and a.listen
                           and (not clusters or set(a.clusters) & set(clusters))]
                if not serving:
                    self.diags.warning("W005", "no app listens on anything here, so this statement opens nothing",
                                       rule.span, "give it ports, or give apps `listen`")
                return [(p, m.Endpoint("app", a.name, (), (a.name,), target.span), a.listen)
                        for p in peers for a in serving]
            if app is not None and app.listen:
                return [(p, target, app.listen) for p in peers]
            self.diags.error("E607", "which ports? this statement names none and there is no `listen` to default to",
                             rule.span, "write the ports: `allow tcp 8080 from ...`")
            return None
        not_apps = [p for p in peers if p.kind != "app"]
        if not_apps:
            self.diags.error("E607", f"which ports? connecting to {not_apps[0].label} needs ports", not_apps[0].span,
                             "write them: `connect tcp 443 to ...`; only apps have listening ports to default to")
            return None
        silent = [p for p in peers if not self.apps.get(p.name) or not self.apps[p.name].listen]
        if silent:
            self.diags.error("E607", f"which ports? app {silent[0].name} has no `listen` to default to",
                             silent[0].span, f"write the ports, or add `listen` to app {silent[0].name}")
            return None
        return [(p, target, self.apps[p.name].listen) for p in peers]

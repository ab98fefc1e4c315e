"""The ends of a question resolved into parties: an app in one cluster (its pods), a host (its
addresses), or a set of addresses (a network, a cluster's pods, a router, a CIDR, an address outside
the estate, `internet`, `any`). A role stands for each of its hosts; an app for each of its clusters."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork, IPSet

from ... import model as m
from ...resolve.endpoints import ANY, SPECIAL_PURPOSE
from .cover import ipset
from .question import Spec, unknown_error


@dataclass(frozen=True)
class Party:
    """A resolved end. `kind`: app (pods of `name` in `cluster`), host, pods (an address in a pod
    range, app unknown), or an address kind (network, cluster, router, cidr, outside, internet, any)."""

    kind: str
    name: str
    label: str
    cidrs: tuple[IPNetwork, ...]
    peer: str  # the end as a peer of the language, for hints
    cluster: str | None = None
    note: str | None = None

    def of(self, family: int) -> IPSet:
        return ipset(self.cidrs, family)

    def as_json(self) -> dict:
        out = {"kind": self.kind, "name": self.name, "label": self.label, "addresses": [str(c) for c in self.cidrs]}
        if self.cluster:
            out["cluster"] = self.cluster
        if self.note:
            out["note"] = self.note
        return out


def estate_addresses(model: m.Model) -> IPSet:
    """Every address the estate declares: subnets, gateways, pod and service ranges, loopbacks, hosts."""
    nets: list[IPNetwork] = []
    for place in (*model.rows.values(), *model.racks.values()):
        nets += place.subnets
        nets += (IPNetwork(g) for g in place.gateways)
    for c in model.clusters.values():
        nets += c.pod_cidrs + c.service_cidrs
    for r in model.routers.values():
        nets += (IPNetwork(a) for a in r.loopbacks)
    for h in model.hosts.values():
        nets += (IPNetwork(a) for a in h.addresses)
    return IPSet(nets)


def _host_party(model: m.Model, name: str, only: IPAddress | None = None) -> Party:
    host = model.hosts[name]
    addresses = (only,) if only is not None else host.addresses
    label = f"host {name}" + (f" ({only})" if only is not None else "")
    return Party("host", name, label, tuple(IPNetwork(a) for a in addresses), f"host {name}",
                 note=f"{only} is host {name}" if only is not None else None)


def _app_parties(model: m.Model, name: str, cluster: str | None) -> list[Party]:
    app = model.apps[name]
    if cluster is not None and cluster not in app.clusters:
        raise unknown_error(f"app {name} does not run in cluster {cluster}",
                       f"its clusters: {', '.join(app.clusters) or 'none'}")
    clusters = [cluster] if cluster else list(app.clusters)
    if not clusters:
        raise unknown_error(f"app {name} runs in no cluster, so it has no pods")
    return [Party("app", name, f"app {name}@{c}", model.clusters[c].pod_cidrs, f"app {name}", cluster=c)
            for c in clusters]


def _tables(model: m.Model) -> dict[str, Mapping]:
    return {"app": model.apps, "host": model.hosts, "role": model.roles, "network": model.networks,
            "cluster": model.clusters, "router": model.routers}


def _named(model: m.Model, kind: str, name: str, cluster: str | None) -> list[Party]:
    tables = _tables(model)
    if name not in tables[kind]:
        others = [k for k, t in tables.items() if name in t and k != kind]
        if others:
            raise unknown_error(f"`{name}` is not a {kind}", f"it is a {others[0]}: write `{others[0]} {name}`")
        close = difflib.get_close_matches(name, list(tables[kind]), n=1, cutoff=0.6)
        hint = f"did you mean `{kind} {close[0]}`?" if close else None
        raise unknown_error(f"unknown {kind} `{name}`", hint)
    if kind == "app":
        if model.apps[name].default:
            raise unknown_error(f"app {name} is the default app: it is every app", "name one app")
        return _app_parties(model, name, cluster)
    if kind == "host":
        return [_host_party(model, name)]
    if kind == "role":
        role = model.roles[name]
        if role.default:
            raise unknown_error(f"role {name} is the default role: it is every host", "name a host or a role")
        if not role.hosts:
            raise unknown_error(f"role {name} is given to no host")
        return [_host_party(model, h) for h in role.hosts]
    if kind == "network":
        net = model.networks[name]
        if not net.cidrs:
            raise unknown_error(f"network {name} holds no address")
        return [Party("network", name, f"network {name}", net.cidrs, f"network {name}")]
    if kind == "cluster":
        c = model.clusters[name]
        return [Party("cluster", name, f"cluster {name} (its pod ranges; name an app for its policy)", c.pod_cidrs,
                      f"cluster {name}")]
    r = model.routers[name]
    return [Party("router", name, f"router {name}", tuple(IPNetwork(a) for a in r.loopbacks), f"router {name}")]


def _address(model: m.Model, net: IPNetwork, estate: IPSet) -> list[Party]:
    full = 32 if net.version == 4 else 128
    text = str(net.ip) if net.prefixlen == full else str(net.cidr)
    if net.prefixlen == full:
        ip = net.ip
        for h in model.hosts.values():
            if ip in h.addresses:
                return [_host_party(model, h.name, ip)]
        for r in model.routers.values():
            if ip in r.loopbacks:
                return [Party("router", r.name, f"router {r.name} ({ip})", (net,), text,
                              note=f"{ip} is a loopback of router {r.name}")]
        for c in model.clusters.values():
            if any(ip in p for p in c.pod_cidrs):
                return [Party("pods", text, f"{ip} (a pod address of cluster {c.name}, app unknown)", (net,), text,
                              cluster=c.name, note=f"{ip} is in the pod range of cluster {c.name}")]
    if IPSet([net]) <= estate:
        what = "in the estate, no host has it" if net.prefixlen == full else "in the estate"
        return [Party("cidr", text, f"{text} ({what})", (net,), text)]
    if IPSet([net]) & estate:
        return [Party("cidr", text, f"{text} (partly in the estate)", (net,), text)]
    return [Party("outside", text, f"{text} (outside the estate)", (net,), text)]


def resolve(model: m.Model, spec: Spec) -> list[Party]:
    """The parties of one end; ExplainError(1) for a name the policy does not have."""
    if spec.kind == "address":
        assert spec.address is not None
        return _address(model, spec.address, estate_addresses(model))
    if spec.kind is not None:
        return _named(model, spec.kind, spec.name, spec.cluster)
    if spec.name == "any":
        return [Party("any", "any", "any address", tuple(IPNetwork(c) for c in ANY), "any")]
    if spec.name == "internet" or spec.name == "outside" and not any("outside" in t for t in _tables(model).values()):
        internet = IPSet(ANY) - SPECIAL_PURPOSE - estate_addresses(model)
        return [Party("internet", "internet", "internet (every address outside the estate)", m.cidrs_of(internet),
                      "internet")]
    tables = _tables(model)
    found = [k for k, t in tables.items() if spec.name in t]
    if spec.cluster is not None:
        found = [k for k in found if k == "app"] or found
    if len(found) > 1:
        raise unknown_error(f"`{spec.name}` is ambiguous: it names " + ", ".join(f"{k} {spec.name}" for k in found),
                       "write one of them: " + ", ".join(f"`{k} {spec.name}`" for k in found))
    if not found:
        pool = {n: k for k, t in tables.items() for n in t}
        close = difflib.get_close_matches(spec.name, list(pool), n=1, cutoff=0.6)
        hint = f"did you mean `{pool[close[0]]} {close[0]}`?" if close else \
            "write a kind and a name (`app NAME`, `host NAME`, `role NAME`, `network NAME`), an address or `internet`"
        raise unknown_error(f"unknown name `{spec.name}`", hint)
    return _named(model, found[0], spec.name, spec.cluster)


def pairs(sources: list[Party], destinations: list[Party], src: Spec, dst: Spec) -> list[tuple[Party, Party]]:
    """Every pair; two apps not qualified by a cluster meet in the clusters both run in."""
    pairs = [(s, d) for s in sources for d in destinations]
    if src.kind != "address" and dst.kind != "address" and not src.cluster and not dst.cluster \
            and all(p.kind == "app" for p in sources + destinations):
        same = [(s, d) for s, d in pairs if s.cluster == d.cluster]
        return same or pairs
    return pairs

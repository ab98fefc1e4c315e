#!/usr/bin/env python3
"""A seeded generator of synthetic estates: sites x rows x racks x hosts, clusters, reflectors, apps, flows.

    python bench/estate_gen.py --hosts 8000 --out /tmp/estate8k     # writes /tmp/estate8k/*.npl

Every size is a grid: `sites` sites, each of `rows` rows of `racks` racks of `per_rack` hosts.
Per site: two core routers and two site spines; even rows are L3 (a ToR per rack), odd rows L2
(one access switch, one row subnet); one Kubernetes cluster whose nodes are the site's workers,
peering with `reflectors` route reflectors spread over the rows, declaring
`survive router, row, route-reflector`, its API servers in two rows and etcd in three. A few
hosts per site hold service roles (bastion, prometheus, database shards) instead of being nodes.
Apps (`per_app` hosts per app) run in their site's cluster, listen on a port, accept two or three
other apps of their cluster and Prometheus, connect to a database shard (which opens those hosts'
firewalls) and to a named external network. Everything random comes from one
`random.Random(f"netpolc-estate:{seed}:{hosts}")`, so a size and seed give byte-identical files.

The generated estate must compile without an error: the redundancy goals hold by construction
(tests/test_bench_smoke.py compiles a small one).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

DB_SHARDS = 4


@dataclass(frozen=True)
class Shape:
    """The grid of one estate size."""

    sites: int
    rows: int
    racks: int
    per_rack: int
    reflectors: int = 6
    per_app: int = 40  # hosts per app: 8,000 hosts give 200 apps

    @property
    def hosts(self) -> int:
        return self.sites * self.rows * self.racks * self.per_rack

    @property
    def apps(self) -> int:
        return max(4, self.hosts // self.per_app)

    def describe(self) -> str:
        return (f"{self.sites} site(s) x {self.rows} rows x {self.racks} racks x {self.per_rack} hosts, "
                f"{self.reflectors} reflectors/site, {self.apps} apps")


# The sizes the benchmark runs (issue 7 names 1,000, 8,000 = 10 x 20 x 40 with 6 reflectors and
# 200 apps, and 16,000), plus tiny ones of one and two sites for the smoke test.
SHAPES = {
    40: Shape(1, 4, 2, 5, reflectors=3, per_app=8),
    80: Shape(2, 4, 2, 5, reflectors=3, per_app=8),
    1000: Shape(1, 5, 5, 40),
    8000: Shape(1, 10, 20, 40),
    16000: Shape(2, 10, 20, 40),
}


def shape_for(hosts: int) -> Shape:
    if hosts in SHAPES:
        return SHAPES[hosts]
    racks = max(1, -(-hosts // (10 * 40)))
    return Shape(1, 10, min(racks, 200), 40) if racks <= 200 else Shape(-(-racks // 200), 10, 20, 40)


def _v4_net(site: int, row: int) -> str:
    return f"10.{site * 32 + row}"


def _v6_net(site: int, row: int) -> str:
    return f"2001:db8:{site:x}{row:02x}"


@dataclass
class _Site:
    name: str
    index: int
    workers: list[str]
    reflectors: list[str]
    control_plane: list[str]
    etcd: list[str]


def _special_roles(shape: Shape, site: int) -> dict[tuple[int, int, int], str]:
    """(row, rack, host) -> role for the hosts that are not plain workers."""
    rows = shape.rows
    roles: dict[tuple[int, int, int], str] = {
        (0, 0, 0): "bastion", (rows // 2, 0, 0): "bastion",
        (0, 0, 1): "prometheus", (1 % rows, 0, 1): "prometheus",
        (0, 0, 2): f"cp-s{site}", (1 % rows, 0, 2): f"cp-s{site}",
    }
    for i in range(3):
        roles[(i % rows, min(1, shape.racks - 1), 0)] = f"etcd-s{site}"
    for shard in range(DB_SHARDS):
        for replica in range(2):
            roles[((shard + replica) % rows, shape.racks - 1, 1 + replica)] = f"db{shard}"
    for i in range(shape.reflectors):
        roles.setdefault((i % rows, (i // rows + 1) % shape.racks, 3), f"rr-s{site}")
    return roles


def _topology(shape: Shape, site: int, out: list[str]) -> _Site:
    name = f"s{site}"
    info = _Site(name, site, [], [], [], [])
    special = _special_roles(shape, site)
    out += [f"site {name} {{",
            f"  router cr1-{name} loopback 192.0.2.{1 + 2 * site} 2001:db8:ffff::{1 + 2 * site:x} asn 65000",
            f"  router cr2-{name} loopback 192.0.2.{2 + 2 * site} 2001:db8:ffff::{2 + 2 * site:x} asn 65000",
            f"  spine sp1-{name} asn 64900 uplink cr1-{name}, cr2-{name}",
            f"  spine sp2-{name} asn 64900 uplink cr1-{name}, cr2-{name}"]
    for r in range(shape.rows):
        v4, v6 = _v4_net(site, r), _v6_net(site, r)
        l3 = r % 2 == 0
        out.append(f"  row r{r} {{")
        if not l3:
            out += [f"    switch asw-{name}r{r}", f"    subnet {v4}.0.0/16 {v6}::/48",
                    f"    gateway {v4}.0.1 {v6}::1"]
        for k in range(shape.racks):
            out.append(f"    rack r{r}k{k} {{")
            if l3:
                out += [f"      switch tor-{name}r{r}k{k} asn {64800 + k}",
                        f"      subnet {v4}.{k}.0/24 {v6}:{k:x}::/64", f"      gateway {v4}.{k}.1 {v6}:{k:x}::1"]
            for n in range(shape.per_rack):
                host = f"h{name}r{r}k{k}n{n}"
                role = special.get((r, k, n), f"worker-{name}")
                a6 = f"{v6}:{k:x}::{10 + n:x}" if l3 else f"{v6}::{k:x}:{10 + n:x}"
                out.append(f"      host {host} {v4}.{k}.{10 + n} {a6} roles {role}")
                {f"worker-{name}": info.workers, f"rr-s{site}": info.reflectors, f"cp-s{site}": info.control_plane,
                 f"etcd-s{site}": info.etcd}.get(role, []).append(host)
            out.append("    }")
        out.append("  }")
    out.append("}")
    return info


def _cluster(shape: Shape, site: _Site) -> str:
    i = site.index
    return "\n".join([
        f"cluster k{site.name} {{",
        f"  site {site.name}",
        f"  asn {64601 + i}",
        f"  pods 100.{64 + 4 * i}.0.0/14 2001:db8:ca{i:02x}::/56",
        f"  services 100.{96 + i}.0.0/16",
        f"  nodes role worker-{site.name}, rr-{site.name}",
        f"  control-plane role cp-{site.name}",
        f"  etcd role etcd-{site.name}",
        f"  peer-with route-reflectors role rr-{site.name} cluster-id 244.0.0.{1 + i}",
        "  survive router, row, route-reflector",
        "}", ""])


ROLES = """\
default role base {
  description "every host"
  allow tcp 22 from role bastion description "ssh through the bastions"
  allow tcp 9100 from role prometheus description "node exporter"
  allow service ping from network estate
}
role bastion {
  ssh-gateway
  allow tcp 22 from network office
}
role prometheus {}
"""


def _roles(sites: list[_Site]) -> str:
    out = [ROLES]
    for s in sites:
        out.append(f"role worker-{s.name} {{ allow tcp 10250 from role cp-{s.name} description \"kubelet\" }}")
        out += [f"role rr-{s.name} {{ description \"route reflectors of site {s.name}\" }}",
                f"role cp-{s.name} {{ allow tcp 6443 from site {s.name}, cluster k{s.name} }}",
                f"role etcd-{s.name} {{ allow tcp 2379-2380 from role cp-{s.name}, etcd-{s.name} }}"]
    for shard in range(DB_SHARDS):
        out.append(f"role db{shard} {{ allow tcp 5432 from role prometheus description \"exporter\" }}")
    return "\n".join(out) + "\n"


def _networks(sites: list[_Site]) -> str:
    return "\n".join([
        "service ping = icmp echo-request, icmpv6 echo-request",
        "service dns = udp 53, tcp 53",
        "network office = 198.51.100.0/24, 2001:db8:f0::/48",
        "network estate = " + ", ".join(f"site {s.name}" for s in sites),
        "network resolvers = 192.0.2.53, 2001:db8:53::53",
        "network partners = 203.0.113.0/24, 2001:db8:fe::/48",
        ""])


def _apps(shape: Shape, sites: list[_Site], rng: random.Random) -> str:
    by_site: dict[int, list[str]] = {s.index: [] for s in sites}
    names = []
    for a in range(shape.apps):
        site = a % len(sites)
        name = f"app{a:04d}"
        names.append((name, site))
        by_site[site].append(name)
    out = ["default app baseline {",
           "  connect service dns to network resolvers",
           "  allow from role prometheus description \"metrics on each app's listen ports\"",
           "}"]
    for name, site in names:
        peers = [p for p in by_site[site] if p != name]
        sources = sorted(rng.sample(peers, min(len(peers), rng.choice((2, 3)))))
        shard = rng.randrange(DB_SHARDS)
        port = 8000 + rng.randrange(1000)
        out.append(f"app {name} {{\n  cluster k{sites[site].name}\n  listen tcp {port}, {port + 1000}")
        if sources:
            out.append(f"  allow from {', '.join(f'app {p}' for p in sources)} description \"callers\"")
        out.append(f"  connect tcp 5432 to role db{shard} description \"its database shard\"")
        if rng.random() < 0.3:
            out.append("  connect tcp 443 to network partners description \"a partner API\"")
        if rng.random() < 0.2:
            out.append(f"  allow tcp {port} from network office description \"operators\"")
        out.append("}")
    return "\n".join(out) + "\n"


def generate(shape: Shape, seed: int = 1) -> dict[str, str]:
    """The estate as {file name: text}."""
    rng = random.Random(f"netpolc-estate:{seed}:{shape.hosts}")
    files: dict[str, str] = {}
    sites = []
    for i in range(shape.sites):
        out: list[str] = [f"# Generated by bench/estate_gen.py: {shape.describe()}, seed {seed}."]
        sites.append(_topology(shape, i, out))
        files[f"sites/s{i}.npl"] = "\n".join(out) + "\n"
    files["clusters.npl"] = "\n".join(_cluster(shape, s) for s in sites)
    files["roles.npl"] = _roles(sites)
    files["networks.npl"] = _networks(sites)
    files["apps.npl"] = _apps(shape, sites, rng)
    return files


def write(shape: Shape, folder: Path, seed: int = 1) -> Path:
    for rel, text in generate(shape, seed).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    shape = shape_for(args.hosts)
    write(shape, args.out, args.seed)
    print(f"{args.out}: {shape.describe()} = {shape.hosts} hosts")


if __name__ == "__main__":
    main()

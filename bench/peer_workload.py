#!/usr/bin/env python3
"""The Aerleon benchmark's `workload.json`, written in netpolc's language, and checked against its summary.

The workload (../shared/bench/aerleon/gen_policy.py) has N terms: term i lets 1-3 client networks
reach the server prefixes of app i on 1-3 TCP services. Aerleon compiles it to an iptables INPUT
ruleset (with destinations) and to Kubernetes NetworkPolicies (without). Here each term becomes

- an `app` in cluster `bench` whose `allow` names the same services and client networks
  (Calico: the k8s counterpart), and
- a host `srv-<term>` at the first address of each of the term's server prefixes (IPv4, and IPv6
  when the term has one) in rack `s1` of row `srv`, whose subnets hold 172.16.0.0/12 and
  fd00:5::/32, with a role `term-<term>` whose `allow` names the same services and clients
  (ferm: the iptables counterpart, one host firewall per server).

A server prefix wider than one address (/28-/31, /124-/127) is represented by its first address:
netpolc's hosts have single addresses. Apart from that both tools read the same intent, which
`check_summary` verifies on the compiled files against `workload["summary"]`.

    python bench/peer_workload.py --render WORKLOAD_JSON POLICY_DIR   (for run_bench.py --extra)
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from pathlib import Path

import yaml

HEADER = """\
# Rendered from the Aerleon benchmark workload (seed {seed}, {n} terms) by bench/peer_workload.py.
site bench {{
  router cr1-bench loopback 192.0.2.1 2001:db8:ffff::1 asn 65000
  row a {{
    switch asw-a-bench
    subnet 192.168.0.0/24 2001:db8:1::/64
    gateway 192.168.0.1 2001:db8:1::1
    rack a1 {{ host node1 192.168.0.11 2001:db8:1::11 roles k8s-worker }}
  }}
  row srv {{
    switch asw-srv-bench
    subnet 172.16.0.0/12 fd00:5::/32 description "the workload's server prefixes"
    rack s1 {{
"""
FOOTER = """\
    }
  }
}
role k8s-worker {}
cluster bench {
  site bench  asn 64700  pods 100.64.0.0/16 2001:db8:cabe::/64  services 100.65.0.0/24
  nodes role k8s-worker  peer-with routers
}
"""


def label(name: str) -> str:
    return name.lower().replace("_", "-")


def first_address(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix).network_address)


def render(workload: dict) -> str:
    """The whole workload as one `.npl` text."""
    out = [HEADER.format(seed=workload["seed"], n=workload["n_apps"])]
    for app in workload["apps"]:
        addresses = " ".join(first_address(p) for p in app["servers"])
        out.append(f"      host srv-{app['term']} {addresses} roles term-{app['term']}\n")
    out.append(FOOTER)
    for name, svc in workload["services"].items():
        ports = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in svc["ports"])
        out.append(f"service {label(name)} = {svc['proto']} {ports}\n")
    for name, prefixes in workload["clients"].items():
        out.append(f"network {label(name)} = {', '.join(prefixes)}\n")
    for app in workload["apps"]:
        services = ", ".join(f"service {label(s)}" for s in app["services"])
        sources = ", ".join(f"network {label(c)}" for c in app["sources"])
        statement = f"allow {services} from {sources} description \"term {app['term']}\""
        out.append(f"app {app['app']} {{ cluster bench  listen {services}\n  {statement} }}\n")
        out.append(f"role term-{app['term']} {{ {statement} }}\n")
    return "".join(out)


def write_policy(workload: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.npl").write_text(render(workload))
    return folder


# ---------------------------------------------------------------- reading the output back

_DEF = re.compile(r"^@def \$(\S+) = \((.*)\);$")
_SADDR = re.compile(r"saddr \(?([^)]*?)\)? ACCEPT;")


def _ferm_sources(text: str) -> dict[int, int]:
    """Source prefixes admitted by the term's lines of one ferm file, per family (variables expanded)."""
    defs = {}
    for line in text.splitlines():
        if (m := _DEF.match(line.strip())):
            defs[m.group(1)] = m.group(2).split()
    counts = {4: 0, 6: 0}
    family = 0
    term_line = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("domain ip table"):
            family = 4
        elif line.startswith("domain ip6 table"):
            family = 6
        elif line.startswith("#"):
            term_line = "term-" in line
        elif term_line and line.endswith("ACCEPT;") and (m := _SADDR.search(line)):
            for item in m.group(1).split():
                counts[family] += len(defs[item[1:]]) if item.startswith("$") else 1
            term_line = False
    return counts


def _host_families(text: str) -> set[int]:
    """The address families of the host a ferm file is for (its header lists the addresses).

    netpolc writes a statement's IPv6 sources into `domain ip6` even on a host with no IPv6
    address; Aerleon has no rule for a (source, destination) pair without a destination of the
    family, so only the host's own families are counted."""
    header = next(line for line in text.splitlines() if line.startswith("# Host "))
    return {6 if ":" in a else 4 for a in header.split("): ", 1)[1].split()}


def read_counts(files: dict[str, bytes]) -> dict[str, int]:
    """What the compiled files hold, in the summary's terms."""
    counts = {"src_dst_pairs_v4": 0, "src_dst_pairs_v6": 0, "apps_with_v4_flow": 0, "apps_with_v6_flow": 0,
              "k8s_ipblock_peers": 0, "port_ranges_merged": 0, "ferm_files": 0, "calico_policies": 0, "calico_rules": 0}
    for path, data in files.items():
        if path.startswith("ferm/srv-"):
            counts["ferm_files"] += 1
            text = data.decode()
            per_family = _ferm_sources(text)
            for f in _host_families(text):
                counts[f"src_dst_pairs_v{f}"] += per_family[f]
                counts[f"apps_with_v{f}_flow"] += per_family[f] > 0
    nets: dict[str, int] = {}
    policies = []
    for path, data in files.items():
        if not path.startswith("calico/"):
            continue
        for doc in yaml.safe_load_all(data):
            if doc is None:
                continue
            if doc["kind"] == "GlobalNetworkSet":
                nets[doc["metadata"]["labels"].get("netpolc.io/set", doc["metadata"]["name"])] = len(
                    doc["spec"].get("nets", []))
            elif doc["kind"] == "NetworkPolicy":
                policies.append(doc)
    for doc in policies:
        counts["calico_policies"] += 1
        ports = set()
        for rule in doc["spec"].get("ingress", []):
            counts["calico_rules"] += 1
            source = rule.get("source", {})
            counts["k8s_ipblock_peers"] += len(source.get("nets", []))
            for name in re.findall(r"== '([^']+)'", source.get("selector", "")):
                counts["k8s_ipblock_peers"] += nets.get(name, 0)
            ports.update(str(p) for p in rule.get("destination", {}).get("ports", []))
        counts["port_ranges_merged"] += len(ports)
    return counts


def check_summary(workload: dict, files: dict[str, bytes]) -> list[str]:
    """Differences between the workload's summary and what netpolc compiled; empty when they agree."""
    summary = workload["summary"]
    got = read_counts(files)
    problems = [f"{key}: workload says {summary[key]}, netpolc wrote {got[key]}"
                for key in ("src_dst_pairs_v4", "src_dst_pairs_v6", "apps_with_v4_flow", "apps_with_v6_flow",
                            "k8s_ipblock_peers", "port_ranges_merged") if got[key] != summary[key]]
    if got["ferm_files"] != summary["apps"] or got["calico_policies"] != summary["apps"]:
        problems.append(f"{summary['apps']} terms, but {got['ferm_files']} ferm files and "
                        f"{got['calico_policies']} Calico NetworkPolicies")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", nargs=2, metavar=("WORKLOAD_JSON", "POLICY_DIR"), required=True,
                    help="write the workload as a netpolc policy folder")
    args = ap.parse_args()
    write_policy(json.loads(Path(args.render[0]).read_text()), Path(args.render[1]))


if __name__ == "__main__":
    sys.exit(main())

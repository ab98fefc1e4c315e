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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from netaddr import IPRange, IPSet

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
_DPORT = re.compile(r"dport \(?([^)]*?)\)? saddr")


@dataclass
class Term:
    """What netpolc wrote for one term: per family the source prefixes of the host's ferm lines,
    and the source prefixes and port ranges of the app's Calico rules."""

    families: set[int] = field(default_factory=set)  # the host's own address families
    ferm: dict[int, list[str]] = field(default_factory=lambda: {4: [], 6: []})
    ferm_ports: set[tuple[int, int]] = field(default_factory=set)
    calico: list[str] = field(default_factory=list)
    calico_ports: set[tuple[int, int]] = field(default_factory=set)
    calico_rules: int = 0


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = str(text).replace("-", ":").partition(":")
    return int(lo), int(hi or lo)


def _read_ferm(text: str, term: Term) -> None:
    defs = {}
    for line in text.splitlines():
        if (m := _DEF.match(line.strip())):
            defs[m.group(1)] = m.group(2).split()
        elif line.startswith("# Host "):
            term.families = {6 if ":" in a else 4 for a in line.split("): ", 1)[1].split()}
    family, term_line, statement = 0, False, ""
    for line in text.splitlines():
        line = line.strip()
        if statement or (term_line and line.startswith("proto ")):
            statement += " " + line  # a long line wraps onto indented continuation lines
            if not statement.endswith(";"):
                continue
            if (m := _SADDR.search(statement)):
                for item in m.group(1).split():
                    term.ferm[family] += defs[item[1:]] if item.startswith("$") else [item]
            if (m := _DPORT.search(statement)):
                term.ferm_ports.update(_range(p) for p in m.group(1).split())
            statement, term_line = "", False
        elif line.startswith("domain ip table"):
            family = 4
        elif line.startswith("domain ip6 table"):
            family = 6
        elif line.startswith("#"):
            term_line = "term-" in line


def read_terms(files: dict[str, bytes]) -> dict[str, Term]:
    """Per term (`a00000`), what the ferm file of its host and the Calico policy of its app hold."""
    terms: dict[str, Term] = {}
    for path, data in files.items():
        if path.startswith("ferm/srv-"):
            _read_ferm(data.decode(), terms.setdefault(path[len("ferm/srv-"):-len(".conf")], Term()))
    nets: dict[str, list[str]] = {}
    policies = []
    for path, data in files.items():
        if path.startswith("calico/"):
            for doc in yaml.safe_load_all(data):
                if doc and doc["kind"] == "GlobalNetworkSet":
                    nets[doc["metadata"]["labels"]["netpolc.io/set"]] = doc["spec"].get("nets", [])
                elif doc and doc["kind"] == "NetworkPolicy":
                    policies.append(doc)
    for doc in policies:
        term = terms.setdefault("a" + doc["metadata"]["name"][len("app"):], Term())
        for rule in doc["spec"].get("ingress", []):
            term.calico_rules += 1
            source = rule.get("source", {})
            term.calico += source.get("nets", [])
            for name in re.findall(r"'([^']+)'", source.get("selector", "")):
                term.calico += nets[name]
            term.calico_ports.update(_range(p) for p in rule.get("destination", {}).get("ports", []))
    return terms


def _of(prefixes: list[str], family: int) -> IPSet:
    return IPSet(p for p in prefixes if (":" in p) == (family == 6))


def _cidrs(prefixes: list[str], family: int) -> int:
    """How many prefixes one named set of the family is after merging (netaddr, not netpolc)."""
    return len(_of(prefixes, family).iter_cidrs())


def compare(workload: dict, files: dict[str, bytes]) -> tuple[dict[str, int], list[str]]:
    """Counts of what netpolc wrote in the summary's terms, and each term where the addresses or
    ports differ from the workload (empty when both tools read the same intent).

    netpolc merges adjacent prefixes of a set (10.0.100.0/24 and 10.0.101.0/24 are written as
    10.0.100.0/23), so prefixes are compared as address sets; the counts are also given for the
    workload after the same merge, computed here with netaddr, to compare like with like."""
    terms = read_terms(files)
    clients = workload["clients"]
    got = dict.fromkeys(("src_dst_pairs_v4", "src_dst_pairs_v6", "apps_with_v4_flow", "apps_with_v6_flow",
                         "k8s_ipblock_peers", "port_ranges_merged", "merged_pairs_v4", "merged_pairs_v6",
                         "merged_ipblock_peers", "calico_rules", "ferm_files", "calico_policies"), 0)
    problems: list[str] = []
    for app in workload["apps"]:
        term = terms.get(app["term"])
        if term is None:
            problems.append(f"term {app['term']}: nothing written")
            continue
        sources = [p for c in app["sources"] for p in clients[c]]
        servers = {6 if ":" in p else 4 for p in app["servers"]}
        ports = {tuple(r) for svc in app["services"] for r in workload["services"][svc]["ports"]}
        merged = IPSet(ports_as_set(ports))
        got["ferm_files"] += 1
        got["calico_policies"] += term.calico_rules > 0
        got["calico_rules"] += term.calico_rules
        if term.families != servers:
            problems.append(f"term {app['term']}: host families {sorted(term.families)}, servers {sorted(servers)}")
        for f in (4, 6):
            want = _of(sources, f) if f in servers else IPSet()
            have = _of(term.ferm[f], f) if f in term.families else IPSet()
            if want != have:
                problems.append(f"term {app['term']}: ferm IPv{f} sources {have} but the workload says {want}")
            if f in term.families:
                got[f"src_dst_pairs_v{f}"] += len(term.ferm[f])
                got[f"apps_with_v{f}_flow"] += bool(term.ferm[f])
            if f in servers:
                got[f"merged_pairs_v{f}"] += sum(_cidrs(clients[c], f) for c in app["sources"])
        if IPSet(term.calico) != IPSet(sources):
            problems.append(f"term {app['term']}: Calico sources differ from the workload")
        got["k8s_ipblock_peers"] += len(term.calico)
        got["merged_ipblock_peers"] += sum(_cidrs(clients[c], f) for c in app["sources"] for f in (4, 6))
        for name, have_ports in (("Calico", term.calico_ports), ("ferm", term.ferm_ports)):
            if IPSet(ports_as_set(have_ports)) != merged:
                problems.append(f"term {app['term']}: {name} ports {sorted(have_ports)}, workload {sorted(ports)}")
        got["port_ranges_merged"] += len(term.calico_ports)
    return got, problems


def ports_as_set(ranges: Iterable[tuple[int, int]]) -> list[IPRange]:
    """Port ranges as ranges of integers (IPv4 addresses stand in for port numbers): an IPSet
    then says whether two lists cover the same ports, however they are split."""
    return [IPRange(lo, hi) for lo, hi in ranges]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", nargs=2, metavar=("WORKLOAD_JSON", "POLICY_DIR"), required=True,
                    help="write the workload as a netpolc policy folder")
    args = ap.parse_args()
    write_policy(json.loads(Path(args.render[0]).read_text()), Path(args.render[1]))


if __name__ == "__main__":
    sys.exit(main())

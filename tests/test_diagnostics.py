"""Malformed policies: each gives the right diagnostic, at the right place, with a useful hint.

Lines and columns are counted by hand from the input. Inputs marked `base` are appended to
the BASE estate (70 lines), so their line numbers count from its end.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

import pytest
from conftest import BASE, compile_sources, compile_text, errors

from compiler.diagnostics import render_json, render_text
from compiler.project import compile_folder

L = BASE.count("\n")  # the last line of BASE; appended text starts on line L + 1


def test_base_is_seventy_lines():
    # the relative line numbers below assume this
    assert L == 70


class Case(NamedTuple):
    text: str
    code: str
    line: int  # relative to the appended text when `base`
    column: int
    message: str
    hint: str | None = None
    base: bool = True


NEW_SITE = "site s2 {{\n  row a {{\n    subnet 10.250.0.0/24\n    rack r {{\n      {host}\n    }}\n  }}\n}}\n"

CASES = {
    # ---------------------------------------------------------------- syntax
    "unexpected-token": Case("site x {\n  row a {\n    subnet 10.0.0.0/24\n  }\n}\n}\n",
                             "E001", 6, 1, "found `}`", base=False),
    "unexpected-token-lists-keywords": Case("role x { allow tcp 22 from }", "E001", 1, 28,
                                            "`internet`", base=False),
    "unexpected-character": Case("site x {\n  row a @ {\n}\n", "E002", 2, 9, "unexpected character `@`", base=False),
    "unterminated-string": Case('site x {\n  description "Ashburn\n}\n', "E002", 2, 15, "unterminated string",
                                'ends with `"`', base=False),
    "unclosed-brace": Case("site x {\n  row a {\n    subnet 10.0.0.0/24\n  }\n", "E003", 4, 4,
                           "unexpected end of file", "`{` is not closed", base=False),
    "eof-mid-statement": Case("service s = tcp 80,", "E003", 1, 20, "unexpected end of file; expected", base=False),
    "unknown-keyword": Case("site x {\n  rooter r1 loopback 10.0.0.1 asn 1\n}\n", "E004", 2, 3,
                            "unknown keyword `rooter`", "did you mean `router`?", base=False),
    "unknown-keyword-top-level": Case("servce dns = udp 53\n", "E004", 1, 1, "unknown keyword `servce`",
                                      "did you mean `service`?", base=False),
    "unknown-keyword-in-rule": Case("role x {\n  allow tcp 22 form role y\n}\n", "E004", 2, 16,
                                    "unknown keyword `form`", "did you mean `from`?", base=False),
    "keyword-as-role-name": Case("role allow {\n}\n", "E001", 1, 6, "found keyword `allow`",
                                 "keywords cannot be used as names", base=False),
    "keyword-as-host-name": Case(NEW_SITE.format(host="host network 10.250.0.9"), "E001", 5, 12,
                                 "expected a name, found keyword `network`", "keywords cannot be used as names",
                                 base=False),
    "keyword-as-reference": Case("role x { allow tcp 1 from host internet }", "E001", 1, 32,
                                 "found keyword `internet`", base=False),
    "number-for-name": Case("role x { allow tcp 22 from host 10 }", "E001", 1, 33, "found a number `10`",
                            base=False),
    # ---------------------------------------------------------------- unknown names
    "unknown-role": Case("role x { allow tcp 1 from role kafka-brokr }", "E103", 1, 32,
                         "unknown role `kafka-brokr`", "did you mean `kafka-broker`?"),
    "unknown-network": Case("network n = network internl", "E103", 1, 21, "unknown network `internl`",
                            "did you mean `internal`?"),
    "unknown-service": Case("service s = service kafak", "E103", 1, 21, "unknown service `kafak`",
                            "did you mean `kafka`?"),
    "unknown-cluster": Case("network n = cluster wikikube-eqaid", "E103", 1, 21, "unknown cluster `wikikube-eqaid`",
                            "did you mean `wikikube-eqiad`?"),
    "unknown-host": Case("network n = host kafka1010", "E103", 1, 18, "unknown host `kafka1010`",
                         "did you mean `kafka1001`?"),
    "unknown-app": Case("role x { allow tcp 1 from app wbe }", "E103", 1, 31, "unknown app `wbe`",
                        "did you mean `web`?"),
    "unknown-rack": Case("network n = rack a44", "E103", 1, 18, "unknown rack `a44`", "did you mean `a4`?"),
    "unknown-rack-with-site": Case("network n = rack eqiad/a5", "E103", 1, 18, "unknown rack `eqiad/a5`",
                                   "did you mean `eqiad/a4`?"),
    "unknown-row": Case("network n = row eqiad/c", "E103", 1, 17, "unknown row `eqiad/c`"),
    "unknown-role-on-host": Case(NEW_SITE.format(host="host h9 10.250.0.9 roles bastoin"), "E103", 5, 32,
                                 "unknown role `bastoin`", "did you mean `bastion`?"),
    "unknown-uplink-router": Case("site s2 { row a { spine s9 asn 65000 uplink cr1-eqaid } }", "E103", 1, 45,
                                  "unknown router `cr1-eqaid`", "did you mean `cr1-eqiad`?"),
    "wrong-kind": Case("network n = host cr1-eqiad", "E103", 1, 18, "`cr1-eqiad` is a router, not a host",
                       "write `router cr1-eqiad`"),
    "unknown-name-of-another-kind": Case("network n = network kafka", "E103", 1, 21, "unknown network `kafka`",
                                         "there is a service of that name"),
    # ---------------------------------------------------------------- duplicates and names
    "duplicate-service": Case("service kafka = tcp 1", "E102", 1, 9, "duplicate service `kafka`"),
    "duplicate-host-vs-router": Case(NEW_SITE.format(host="host cr1-eqiad 10.250.0.9"), "E102", 5, 12,
                                     "duplicate host `cr1-eqiad`"),
    "duplicate-host": Case(NEW_SITE.format(host="host kafka1001 10.250.0.9"), "E102", 5, 12,
                           "duplicate host `kafka1001`"),
    "duplicate-rack-in-site": Case("site s2 {\n  row a { }\n  row b {\n    rack r { }\n    rack r { }\n  }\n}\n",
                                   "E102", 5, 10, "duplicate rack `s2/r`"),
    "role-listed-twice": Case(NEW_SITE.format(host="host h9 10.250.0.9 roles bastion, bastion"), "E102", 5, 41,
                              "role `bastion` is listed twice for host h9"),
    "two-ipv4-loopbacks": Case("site s2 {\n  router r9 loopback 192.0.2.9 192.0.2.10 asn 65000\n}\n", "E601", 2, 3,
                               "router r9 has more than one IPv4 loopback"),
    "name-uppercase": Case("service Web = tcp 80", "E101", 1, 9, "service name `Web` is not a valid DNS label",
                           "try `web`"),
    "name-underscore": Case("service my_svc = tcp 80", "E101", 1, 9, "service name `my_svc` is not a valid DNS label",
                            "try `my-svc`"),
    "name-dots": Case("service a.b = tcp 80", "E101", 1, 9, "service name `a.b` contains a dot", "try `a`"),
    "name-too-long": Case("service " + "a" * 64 + " = tcp 80", "E101", 1, 9, "is longer than 63 characters"),
    "name-trailing-dash": Case("role r- { }", "E101", 1, 6, "role name `r-` is not a valid DNS label", "try `r`"),
    # ---------------------------------------------------------------- addresses
    "invalid-ip": Case("network n = 10.0.0.256", "E201", 1, 13, "`10.0.0.256` is not a valid IP address"),
    "invalid-ipv6": Case("network n = 2001:db8:::1", "E201", 1, 13, "`2001:db8:::1` is not a valid IP address"),
    "invalid-prefix": Case("network n = 10.0.0.0/33", "E201", 1, 13, "invalid prefix length"),
    "host-bits": Case("network n = 10.0.0.1/8", "E202", 1, 13, "`10.0.0.1/8` has host bits set",
                      "did you mean `10.0.0.0/8`?"),
    "v6-cluster-id": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24\n  nodes host kube1003\n"
                          "  peer-with route-reflectors host kube1003 cluster-id 2620::1\n}\n", "E203", 6, 55,
                          "cluster ID must be an IPv4 address; `2620::1` is IPv6"),
    "host-prefix": Case(NEW_SITE.format(host="host h9 10.250.0.9/24"), "E207", 5, 15,
                        "must be a single address, not the prefix `10.250.0.9/24`", "write `10.250.0.9`"),
    "subnet-without-prefix": Case("site s2 { row a { subnet 10.250.0.0 } }", "E208", 1, 26,
                                  "needs a prefix length", "`10.250.0.0/24`"),
    "address-outside-subnet": Case(NEW_SITE.format(host="host h9 10.251.0.9"), "E204", 5, 15,
                                   "address 10.251.0.9 of host h9 is outside the subnets of row s2/a", "10.250.0.0/24"),
    "v6-address-without-v6-subnet": Case(NEW_SITE.format(host="host h9 10.250.0.9 2001:db8::9"), "E204", 5, 26,
                                         "address 2001:db8::9 of host h9 is outside", "IPv6 subnets of row s2/a: none"),
    "duplicate-address": Case(NEW_SITE.format(host="host h9 10.250.0.9\n      host h10 10.250.0.9"), "E205", 6, 16,
                              "address 10.250.0.9 of host h10 is already used by host h9"),
    "address-of-base-host": Case("site s2 {\n  row a {\n    subnet 10.64.0.0/22\n  }\n}\n", "E206", 3, 12,
                                 "subnet 10.64.0.0/22 of row s2/a overlaps 10.64.0.0/22 of row eqiad/a"),
    "overlapping-rows": Case("site s2 {\n  row a {\n    subnet 10.64.0.0/23\n  }\n}\n", "E206", 3, 12,
                             "subnet 10.64.0.0/23 of row s2/a overlaps 10.64.0.0/22 of row eqiad/a"),
    "pods-overlap-rack": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.64.130.0/25\n"
                              "  nodes host kube1003\n  peer-with tor\n}\n", "E206", 4, 8,
                              "10.64.130.0/25 of the pods range of cluster c2 overlaps 10.64.130.0/24 of rack "
                              "eqiad/e1"),
    "pods-inside-row-subnet": Case("cluster c2 {\n  site eqiad\n  asn 64700\n"
                                   "  pods 2620:0:861:cafe::/64 10.64.17.0/24\n"
                                   "  nodes host kube1003\n  peer-with tor\n}\n", "E206", 4, 29,
                                   "10.64.17.0/24 of the pods range of cluster c2 overlaps 10.64.16.0/22 of "
                                   "row eqiad/b"),
    "gateway-outside-subnet": Case("site s2 {\n  row a {\n    subnet 10.250.0.0/24\n    gateway 10.251.0.1\n  }\n}\n",
                                   "E209", 4, 13, "gateway 10.251.0.1 is outside the subnets of row s2/a",
                                   "subnets: 10.250.0.0/24"),
    "l3-rack-without-switch": Case("site s2 {\n  row e {\n    rack e9 {\n      subnet 10.250.0.0/24\n"
                                   "      gateway 10.250.0.1\n    }\n  }\n}\n", "E603", 3, 5,
                                   "rack s2/e9 has its own subnet but no switch", "`switch NAME asn N`"),
    "l3-rack-without-gateway": Case("site s2 {\n  row e {\n    rack e9 {\n      switch lsw9 asn 65009\n"
                                    "      subnet 10.250.0.0/24\n    }\n  }\n}\n", "E603", 3, 5,
                                    "rack s2/e9 is an L3 rack without a gateway"),
    "l2-rack-with-gateway": Case("site s2 {\n  row a {\n    subnet 10.250.0.0/24\n    rack a1 {\n"
                                 "      gateway 10.250.0.1\n    }\n  }\n}\n", "E603", 5, 7,
                                 "rack s2/a1 declares a gateway but no subnet"),
    "l3-rack-without-subnet": Case("site s2 {\n  row e {\n    rack e9 {\n      switch lsw9 asn 65009\n    }\n  }\n}\n",
                                   "E603", 3, 5, "rack s2/e9 has its own switch but no subnet"),
    # ---------------------------------------------------------------- ports
    "port-zero": Case("service s = tcp 0", "E401", 1, 17, "port 0 is out of range (1 to 65535)"),
    "port-too-big": Case("service s = udp 65536", "E401", 1, 17, "port 65536 is out of range"),
    "range-end-too-big": Case("service s = tcp 1-65536", "E401", 1, 19, "port 65536 is out of range"),
    "reversed-range": Case("service s = tcp 90-80", "E402", 1, 17, "port range 90-80 is reversed", "write `80-90`"),
    "bare-port": Case("service s = 80", "E403", 1, 13, "port 80 has no protocol", "write `tcp 80`"),
    "bare-port-after-icmp": Case("service s = icmp 8, 80", "E403", 1, 21, "port 80 has no protocol"),
    "bare-port-in-rule": Case("role bastion2 { allow 22 from any }", "E403", 1, 23, "port 22 has no protocol"),
    "unknown-icmp-type": Case("service s = icmp echo-requst", "E404", 1, 18, "unknown icmp type `echo-requst`",
                              "did you mean `echo-request`?"),
    "icmpv6-name-under-icmp": Case("service s = icmp neighbor-solicitation", "E404", 1, 18,
                                   "unknown icmp type `neighbor-solicitation`"),
    "icmp-type-out-of-range": Case("service s = icmp 256", "E405", 1, 18, "ICMP type 256 is out of range (0 to 254)",
                                     "Calico rejects type 255"),
    "icmp-code-out-of-range": Case("service s = icmp 3 code 300", "E405", 1, 25, "ICMP code 300 is out of range"),
    # ---------------------------------------------------------------- cycles and kinds
    "cyclic-networks": Case("network a = network b\nnetwork b = 10.0.0.0/8, network a", "E501", 2, 33,
                            "network `a` is defined in terms of itself: a -> b -> a"),
    "self-network": Case("network a = network a", "E501", 1, 21, "a -> a"),
    "cyclic-services": Case("service a = service b\nservice b = tcp 1, service a", "E407", 2, 28,
                            "service `a` refers to itself: a -> b -> a"),
    "app-in-network": Case("network n = app web", "E609", 1, 13, "`app` cannot be used in a network",
                           "allowed here: host"),
    "address-in-cluster-nodes": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24\n"
                                     "  nodes 10.64.16.11\n  peer-with tor\n}\n", "E609", 5, 9,
                                     "`an address` cannot be used as nodes of cluster c2"),
    "access-switch-as-peer": Case("network n = switch asw2-a-eqiad", "E609", 1, 20,
                                  "switch asw2-a-eqiad has no address the policy knows"),
    "site-prefix-on-host": Case("network n = host eqiad/kafka1001", "E609", 1, 18, "only racks and rows are written"),
    "default-role-as-peer": Case("role x { allow tcp 1 from role base }", "E609", 1, 32,
                                 "`base` is the default role, not a role"),
    "default-app-as-peer": Case("default app d { }\nrole x { allow tcp 1 from app d }", "E609", 2, 31,
                                "`d` is the default app block, not an app"),
    # ---------------------------------------------------------------- clusters
    "duplicate-cluster-setting": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  asn 64701\n  pods 10.90.0.0/24\n"
                                      "  nodes host kube1003\n  peer-with tor\n}\n", "E601", 4, 3,
                                      "`asn` is given twice in cluster c2"),
    "duplicate-cluster-asn": Case("cluster c2 {\n  site eqiad\n  asn 64601\n  pods 10.90.0.0/24\n"
                                  "  nodes host kube1003\n  peer-with tor\n}\n", "E302", 3, 7,
                                  "AS number 64601 of cluster c2 is already used by cluster wikikube-eqiad"),
    "asn-zero": Case("cluster c2 {\n  site eqiad\n  asn 0\n  pods 10.90.0.0/24\n  nodes host kube1003\n"
                     "  peer-with tor\n}\n", "E301", 3, 7, "AS number 0 is out of range"),
    "router-asn-too-big": Case("site s2 { router r9 loopback 192.0.2.9 asn 4294967296 }", "E301", 1, 44,
                               "AS number 4294967296 is out of range (1 to 4294967295)"),
    "two-ipv4-pod-ranges": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24 10.91.0.0/24\n"
                                "  nodes host kube1003\n  peer-with tor\n}\n", "E601", 4, 3,
                                "cluster c2 has more than one IPv4 pod range"),
    "two-ipv6-service-ranges": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24\n"
                                    "  services 2001:db8::/108 2001:db8:1::/108\n  nodes host kube1003\n"
                                    "  peer-with tor\n}\n", "E601", 5, 3,
                                    "cluster c2 has more than one IPv6 service range"),
    "two-access-switches": Case("site s2 {\n  row a {\n    switch sw1\n    switch sw2\n  }\n}\n", "E601", 4, 5,
                                "row s2/a declares more than one access switch"),
    "two-ipv4-gateways": Case("site s2 {\n  row a {\n    subnet 10.250.0.0/24\n    gateway 10.250.0.1\n"
                              "    gateway 10.250.0.2\n  }\n}\n", "E601", 5, 13,
                              "row s2/a has two gateways in subnet 10.250.0.0/24"),
    "single-uplink-share": Case("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24\n  nodes host kube1003\n"
                                "  peer-with tor\n  single-uplink max-share 150%\n}\n", "E602", 7, 27,
                                "share 150% is out of range"),
    "node-at-another-site": Case(NEW_SITE.format(host="host h9 10.250.0.9 roles k8s-worker"), "E604", -29, 9,
                                 "host h9 is at site s2, not at eqiad like cluster wikikube-eqiad"),
    "cluster-unknown-site": Case("cluster c2 {\n  site eqaid\n  asn 64700\n  pods 10.90.0.0/24\n  nodes host kube1003\n"
                                 "  peer-with tor\n}\n", "E103", 2, 8, "unknown site `eqaid`", "did you mean `eqiad`?"),
    # ---------------------------------------------------------------- roles and apps
    "two-default-roles": Case("default role base2 { }", "E605", 1, 14, "there is already a default role: `base`"),
    "two-default-apps": Case("default app d1 { }\ndefault app d2 { }", "E605", 2, 13,
                             "there is already a default app: `d1`"),
    "default-app-listen": Case("default app d {\n  listen tcp 80\n}", "E606", 2, 3,
                               "the default app applies to every app and cannot set `listen`"),
    "app-without-cluster": Case("app a2 {\n  listen tcp 80\n}", "E602", 1, 5, "app a2 does not say where it runs",
                                "add `cluster NAME`"),
    "allow-without-ports-in-role": Case("role bastion2 {\n  allow from role bastion\n}", "E607", 2, 3,
                                        "which ports?", "write the ports"),
    "in-cluster-the-app-does-not-run-in": Case("cluster c2 { site eqiad asn 64602 pods 10.64.80.0/24\n"
                                               "  nodes host kube1001 peer-with routers }\n"
                                               "app a2 {\n  cluster wikikube-eqiad  listen tcp 80\n"
                                               "  allow from app web in cluster c2\n}", "E609", 5, 33,
                                               "app a2 does not run in cluster c2", "its clusters: wikikube-eqiad"),
    "in-cluster-in-a-role": Case("role r2 {\n  allow tcp 1 from any in cluster wikikube-eqiad\n}", "E606", 2, 24,
                                 "`in cluster` applies to apps"),
    "peer-with-scope-selects-no-node": Case("cluster c2 {\n  site eqiad asn 64602 pods 10.64.80.0/24\n"
                                            "  nodes host kube1001\n  peer-with routers\n"
                                            "  peer-with tor for rack eqiad/e1\n}", "E612", 5, 3,
                                            "selects no node of cluster c2"),
    "peer-with-two-defaults": Case("cluster c2 {\n  site eqiad asn 64602 pods 10.64.80.0/24\n"
                                   "  nodes host kube1001\n  peer-with routers\n  peer-with tor\n}", "E601", 5, 3,
                                   "`peer-with` without `for` is given twice", "peer-with tor for row"),
    "peer-with-overlapping-scopes": Case("cluster c2 {\n  site eqiad asn 64602 pods 10.64.80.0/24\n"
                                         "  nodes role k8s-worker\n  peer-with routers for row eqiad/b\n"
                                         "  peer-with tor for host kube1001, kube1003\n}", "E612", 5, 3,
                                         "node kube1001 falls in two `peer-with` scopes"),
    "peer-with-scopes-leave-nodes-out": Case("cluster c2 {\n  site eqiad asn 64602 pods 10.64.80.0/24\n"
                                             "  nodes role k8s-worker\n  peer-with tor for rack eqiad/e1\n}",
                                             "E612", 4, 3, "with no `peer-with`: kube1001, kube1002",
                                             "add a `peer-with` without `for`"),
    "route-reflectors-select-no-host": Case("role rr {}\ncluster c2 {\n  site eqiad asn 64602 "
                                            "pods 10.64.80.0/24\n  nodes host kube1001\n"
                                            "  peer-with route-reflectors role rr cluster-id 244.0.0.1\n}",
                                            "E612", 5, 3, "selects no host", "name the reflector hosts"),
    "two-gateways-in-one-subnet": Case("site s2 {\n  row a {\n    subnet 10.9.0.0/24\n"
                                       "    gateway 10.9.0.1 10.9.0.2\n  }\n}", "E601", 4, 22,
                                       "has two gateways in subnet 10.9.0.0/24: 10.9.0.1 and 10.9.0.2"),
    "allow-without-ports-no-listen": Case("app a2 {\n  cluster wikikube-eqiad\n  allow from app web\n}", "E607", 3, 3,
                                          "there is no `listen` to default to"),
    "connect-role-without-ports": Case("app a2 {\n  cluster wikikube-eqiad\n  connect to role bastion\n}",
                                       "E607", 3, 19, "connecting to role bastion needs ports",
                                       "only apps have listening ports"),
    "connect-app-without-listen": Case("app a2 {\n  cluster wikikube-eqiad\n  connect to app a3\n}\n"
                                       "app a3 { cluster wikikube-eqiad }", "E607", 3, 18,
                                       "app a3 has no `listen` to default to"),
    "bare-peer": Case("role x { allow tcp 1 from bastion }", "E608", 1, 27, "`bastion` does not say what it is",
                      "write `role bastion`"),
    "bare-peer-after-address": Case("network n = 10.0.0.0/8, internal", "E608", 1, 25,
                                    "`internal` does not say what it is", "write `network internal`"),
    "invalid-date": Case("role bastion2 {\n  allow tcp 1 from any expires 2026-02-30\n}", "E610", 2, 24,
                         "`2026-02-30` is not a valid date", "YYYY-MM-DD"),
    "two-descriptions": Case('role bastion2 {\n  allow tcp 1 from any description "a" description "b"\n}', "E611", 2,
                             52, "a statement has one description"),
}

def _compile(case: Case):
    text = BASE + case.text if case.base else case.text
    return compile_text(text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_diagnostic(name):
    case = CASES[name]
    model, diags = _compile(case)
    assert model is None
    errs = errors(diags)
    assert [d.code for d in errs] == [case.code], [f"{d.span}: {d.code} {d.message}" for d in errs]
    (d,) = errs
    line = case.line + (L if case.base else 0)
    assert (d.span.file, d.span.line, d.span.column) == ("a.npl", line, case.column), d.message
    assert case.message in d.message
    if case.hint is not None:
        assert d.hint is not None and case.hint in d.hint, d.hint
    if d.code == "E003":  # end of file: an empty span, nothing to underline
        assert (d.span.end_line, d.span.end_column) == (d.span.line, d.span.column)
    else:
        assert d.span.end_line > d.span.line or d.span.end_column > d.span.column


def test_at_least_forty_cases():
    assert len(CASES) >= 40


# ------------------------------------------------------------------ cases with more than one diagnostic

def test_missing_cluster_settings_each_reported():
    _, diags = compile_text(BASE + "cluster c2 {\n  site eqiad\n}\n")
    errs = errors(diags)
    assert [d.code for d in errs] == ["E602"] * 4
    assert {(d.span.line, d.span.column) for d in errs} == {(L + 1, 9)}
    said = sorted(re.search(r"does not say `([a-z-]+)`", d.message).group(1) for d in errs)
    assert said == ["asn", "nodes", "peer-with", "pods"]
    assert all(d.hint for d in errs)


def test_pod_range_holding_a_row_subnet():
    # the wider range is declared later, but sorts first: the row's subnet is reported, the note finds the pods
    text = BASE + ("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.64.0.0/20\n  nodes host kube1003\n"
                   "  peer-with tor\n}\n")
    _, diags = compile_text(text)
    (d,) = errors(diags)
    assert (d.code, d.span.line, d.span.column) == ("E206", 7, 12)
    assert d.message == "subnet 10.64.0.0/22 of row eqiad/a overlaps 10.64.0.0/20 of the pods range of cluster c2"
    ((_, where),) = d.notes
    assert (where.line, where.column) == (L + 4, 8)


def test_duplicate_notes_point_at_the_first_declaration():
    _, diags = compile_text(BASE + NEW_SITE.format(host="host cr1-eqiad 10.250.0.9"))
    (d,) = errors(diags)
    ((note, where),) = d.notes
    assert "already declared as a router" in note
    assert (where.line, where.column) == (3, 10)


def test_duplicate_asn_note_points_at_the_first_asn():
    case = CASES["duplicate-cluster-asn"]
    _, diags = _compile(case)
    (d,) = errors(diags)
    ((_, where),) = d.notes
    assert (where.line, where.column) == (38, 7)


def test_duplicate_host_does_not_replace_the_first():
    # the second kafka1001 has no role: had it replaced the first, kafka-broker would have no host
    _, diags = compile_text(BASE + NEW_SITE.format(host="host kafka1001 10.250.0.9"))
    assert [d.code for d in diags] == ["E102"]


def test_host_named_like_a_router_does_not_crash_with_roles():
    _, diags = compile_text(BASE + NEW_SITE.format(host="host cr2-eqiad 10.250.0.9 roles bastion"))
    assert [d.code for d in diags] == ["E102"]


def test_invalid_service_range_reported_once():
    text = BASE + ("cluster c2 {\n  site eqiad\n  asn 64700\n  pods 10.90.0.0/24\n  services 10.91.0.0\n"
                   "  nodes host kube1003\n  peer-with tor\n}\n")
    _, diags = compile_text(text)
    (d,) = errors(diags)
    assert d.code == "E208"
    assert (d.span.line, d.span.column) == (L + 5, 12)


def test_default_role_cannot_turn_the_firewall_off():
    text = BASE.replace("default role base {", "default role base {\n  firewall none")
    _, diags = compile_text(text)
    (d,) = errors(diags)
    assert d.code == "E606"
    assert (d.span.line, d.span.column) == (58, 3)


def test_keyword_in_peer_list():
    _, diags = compile_text(BASE + "role x { allow tcp 1 from role bastion, service kafka }")
    (d,) = errors(diags)
    assert (d.code, d.span.line, d.span.column) == ("E001", L + 1, 41)
    # where peer kinds fit, the message lists them rather than calling `service` a name
    assert d.message.endswith("; found keyword `service`")
    assert "`role`" in d.message and "`host`" in d.message
    assert d.hint is None


def test_unexpected_token_is_named_once():
    _, diags = compile_text("role x { allow tcp 22 from }")
    (d,) = diags
    assert d.message.endswith("; found `}`")


def test_unknown_keyword_without_a_close_match_lists_the_keywords():
    _, diags = compile_text("site x {\n  zzz\n}\n")
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("E004", 2, 3)
    assert "`router`" in d.hint and "`row`" in d.hint


def test_expired_statement_is_a_warning():
    text = BASE + "role bastion2 {\n  allow tcp 1 from any expires 2026-11-24\n}"
    text = text.replace("roles bastion ", "roles bastion, bastion2 ")
    model, diags = compile_text(text)
    assert model is not None
    (d,) = diags
    assert (d.code, d.severity) == ("W001", "warning")
    assert (d.span.line, d.span.column) == (L + 2, 3)
    assert "expired on 2026-11-24" in d.message
    assert d.hint and "expiry date" in d.hint


def test_exclusion_that_removes_nothing_and_empty_network_are_warnings():
    model, diags = compile_text(BASE + "network n = 10.0.0.0/8 except 192.168.0.0/16\n"
                                       "network e = 10.1.0.0/16 except 10.0.0.0/8\n")
    assert model is not None
    got = [(d.code, d.severity, d.span.line, d.span.column) for d in diags]
    assert got == [("W003", "warning", L + 1, 31), ("W004", "warning", L + 2, 9)]
    assert "excluding 192.168.0.0/16 removes nothing from network `n`" in diags[0].message
    assert "network `e` holds no address" in diags[1].message
    assert model.networks["e"].cidrs == ()


def test_role_with_no_host_is_a_warning():
    model, diags = compile_text(BASE + "role lonely { }")
    assert model is not None
    (d,) = diags
    assert (d.code, d.severity, d.span.line, d.span.column) == ("W002", "warning", L + 1, 6)
    assert "role `lonely` is given to no host" in d.message


def test_many_errors_in_one_run_are_all_reported():
    text = BASE + ("service a = tcp 0\n"
                   "service b = udp 5-1\n"
                   "network c = network nowhere\n"
                   "role bastion2 { allow tcp 1 from bastion }\n"
                   "service Bad = tcp 1\n")
    model, diags = compile_text(text)
    assert model is None
    got = [(d.code, d.span.line, d.span.column) for d in errors(diags)]
    assert got == [("E401", L + 1, 17), ("E402", L + 2, 17), ("E103", L + 3, 21), ("E608", L + 4, 34),
                   ("E101", L + 5, 9)]


def test_errors_across_two_files():
    sources = {"base.npl": BASE,
               "z/extra.npl": "service s = tcp 70000\n\nrole r { allow service s from role nobody }\n",
               "m.npl": "network n = 10.0.0.1/8\n"}
    model, diags = compile_sources(sources)
    assert model is None
    got = [(d.span.file, d.code, d.span.line, d.span.column) for d in errors(diags)]
    assert got == [("m.npl", "E202", 1, 13), ("z/extra.npl", "E401", 1, 17), ("z/extra.npl", "E103", 3, 36)]


def test_syntax_errors_in_two_files_both_reported():
    sources = {"a.npl": "site x {", "b.npl": "role y { allow }"}
    model, diags = compile_sources(sources)
    assert model is None
    assert [(d.span.file, d.code) for d in diags] == [("a.npl", "E003"), ("b.npl", "E001")]
    assert (diags[1].span.line, diags[1].span.column) == (1, 16)


# ------------------------------------------------------------------ rendering

def test_render_text():
    text = BASE + "role x { allow tcp 1 from role kafka-brokr }\n"
    _, diags = compile_text(text)
    out = render_text(diags, {"a.npl": text}, root="policies")
    lines = out.splitlines()
    head = "policies/a.npl:71:32: error[E103]: unknown role `kafka-brokr`"
    i = lines.index(head)
    assert lines[i + 1] == " 71 | role x { allow tcp 1 from role kafka-brokr }"
    caret = lines[i + 2]
    assert caret == "    | " + " " * 31 + "^" + "~" * 10
    # the caret sits under the first letter of the name
    assert lines[i + 1][caret.index("^")] == "k"
    assert "  = help: did you mean `kafka-broker`?" in lines
    assert "policies/a.npl:71:6: warning[W002]: role `x` is given to no host" in lines
    assert lines[-1] == "1 error(s), 1 warning(s)"


def test_render_text_with_notes_and_no_root():
    text = BASE + "service kafka = tcp 1\n"
    _, diags = compile_text(text)
    out = render_text(diags, {"a.npl": text})
    assert "a.npl:71:9: error[E102]: duplicate service `kafka`" in out
    assert "  = note: `kafka` is already declared as a service here (a.npl:48:9)" in out


def test_render_json():
    text = BASE + "service s = tcp 90-80\n"
    _, diags = compile_text(text)
    data = json.loads(render_json(diags, root="p"))
    (item,) = data["diagnostics"]
    assert item["code"] == "E402"
    assert item["severity"] == "error"
    assert (item["file"], item["line"], item["column"]) == ("p/a.npl", 71, 17)
    assert (item["end_line"], item["end_column"]) == (71, 19)
    assert item["hint"] == "write `80-90`"


def test_end_of_file_points_after_the_last_token():
    text = "site x {\n  row a {\n  # nothing more\n\n"
    _, diags = compile_text(text)
    (d,) = diags
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("E003", 2, 10, 10)
    out = render_text(diags, {"a.npl": text})
    assert " 2 |   row a {\n   |          ^\n" in out


def test_lines_are_counted_on_newlines_only():
    # a form feed or U+2028 is whitespace to the parser, not a line break
    text = "# one\x0ctwo\u2028three\nservce x = tcp 1\n"
    _, diags = compile_text(text)
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("E004", 2, 1)
    out = render_text(diags, {"a.npl": text})
    assert " 2 | servce x = tcp 1\n   | ^~~~~~\n" in out


def test_crlf_line_endings():
    text = "site x {\r\n  row a @ {\r\n}\r\n"
    _, diags = compile_text(text)
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("E002", 2, 9)
    assert " 2 |   row a @ {\n   |         ^\n" in render_text(diags, {"a.npl": text})


def test_render_empty():
    assert render_text([], {}) == ""
    assert json.loads(render_json([])) == {"diagnostics": []}


def test_contextual_keywords_are_names_where_only_a_name_fits():
    model, diags = compile_text(BASE + "role etcd {}\napp d2 {\n  cluster wikikube-eqiad\n  namespace default\n"
                                "  listen tcp 80\n  allow from role etcd, tor\n}\nrole tor {}\n")
    assert model is not None, [d.message for d in diags]
    assert model.apps["d2"].namespace == "default"
    assert [p.label for p in model.apps["d2"].rules[0].peers] == ["role etcd", "role tor"]


@pytest.mark.parametrize("word", ["internet", "any", "host", "role", "service", "allow", "from"])
def test_reserved_words_are_never_names(word):
    model, diags = compile_text(f"network {word} = 10.0.0.0/8\n")
    assert model is None
    assert [d.code for d in errors(diags)] == ["E001"]


def test_invalid_utf8_is_located_at_its_byte(tmp_path):
    """E005 names the line and column (in characters) of the first bad byte, and quotes the line."""
    (tmp_path / "a.npl").write_bytes(b'network a = 10.0.0.0/8\nnetwork b = 10.1.0.0/16 description "caf\xe9"\n')
    result = compile_folder(tmp_path)
    [d] = result.diagnostics
    assert (d.code, d.span.file, d.span.line, d.span.column) == ("E005", "a.npl", 2, 41)
    assert result.sources["a.npl"].split("\n")[1] == 'network b = 10.1.0.0/16 description "caf\ufffd"'
    assert not result.files


def test_a_long_line_is_quoted_around_the_caret():
    """A 20,000-character line: the quote is a 160-character part of it around the column, cut with `…`."""
    text = "network n = " + ", ".join(f"network m{i}" for i in range(2000)) + "\n"
    _, diags = compile_text(text)
    out = render_text(diags, {"a.npl": text})
    lines = out.split("\n")
    col = text.index("network m1000") + len("network ") + 1  # the name m1000, counted by hand
    i = next(k for k, line in enumerate(lines) if line.startswith(f"a.npl:1:{col}: error[E103]"))
    quote, caret = lines[i + 1][len(" 1 | "):], lines[i + 2][len(" 1 | "):]
    assert quote.startswith("…") and quote.endswith("…") and len(quote) == 162
    assert quote[caret.index("^"):].startswith("m1000,")
    assert quote[1:-1] in text


def test_many_errors_on_one_long_line_print_little():
    """Each diagnostic quotes a bounded part of its line: 2,000 errors on a 30 kB line print well under 2 MB."""
    text = "network n = " + ", ".join(f"network m{i}" for i in range(2000)) + "\n"
    _, diags = compile_text(text)
    assert len(errors(diags)) == 2000
    assert len(render_text(diags, {"a.npl": text})) < 2_000_000

"""The Calico evaluator (tests/calico_eval.py) proven on hand-written resources with known answers,
before it judges the backend (tests/test_calico_matrix.py). Each answer follows from Calico's
documentation (shared/reference/notes/calico.md 2.1-2.3), not from running the evaluator."""

from __future__ import annotations

import textwrap

import pytest
from calico_eval import EGRESS, INGRESS, CalicoError, Cluster, Packet, Selector, SelectorError, make_pod

TCP80, TCP81, UDP53, TCP53 = Packet("tcp", 80), Packet("tcp", 81), Packet("udp", 53), Packet("tcp", 53)


def cluster(text: str, pods, namespace_labels=None) -> Cluster:
    return Cluster.from_yaml([textwrap.dedent(text)], pods, namespace_labels)


# ------------------------------------------------------------------------------------ selectors
LABELS = {"app": "web", "tier": "front-end", "projectcalico.org/name": "prod", "node-role.kubernetes.io/master": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("all()", True),
    ("all( )", True),
    ("!all()", False),
    ("app == 'web'", True),
    ('app == "web"', True),
    ("app=='web'", True),
    ("app == 'api'", False),
    ("missing == ''", False),
    ("app != 'api'", True),
    ("app != 'web'", False),
    ("missing != 'x'", True),  # != matches resources without the label
    ("app in {'api', 'web'}", True),
    ("app in {'api', 'web',}", True),  # trailing comma accepted
    ("app in {}", False),
    ("missing in {'x'}", False),
    ("app not in {'api'}", True),
    ("app not in {'web'}", False),
    ("app notin {'web'}", False),
    ("missing not in {'x'}", True),  # not in matches resources without the label
    ("has(app)", True),
    ("has( app )", True),
    ("has(missing)", False),
    ("!has(missing)", True),
    ("!!has(app)", True),
    ("has(node-role.kubernetes.io/master)", True),
    ("projectcalico.org/name == 'prod'", True),
    ("tier contains 'end'", True),
    ("tier contains 'back'", False),
    ("tier starts with 'front'", True),
    ("tier startswith 'front'", True),
    ("tier ends with 'end'", True),
    ("tier endswith 'front'", False),
    ("missing contains ''", False),
    ("app == 'web' && tier == 'front-end'", True),
    ("app == 'web' && tier == 'back-end'", False),
    ("app == 'api' || tier == 'front-end'", True),
    ("app == 'api' || tier == 'back-end'", False),
    # && binds tighter than ||: true || (false && false)
    ("app == 'web' || app == 'api' && tier == 'x'", True),
    ("(app == 'web' || app == 'api') && tier == 'x'", False),
    ("app == 'api' && tier == 'x' || has(app)", True),  # (false && false) || true
    # ! binds tighter than &&, the match operator tighter than !
    ("!app == 'api' && has(tier)", True),
    ("!(app == 'web' || has(x))", False),
    ("!has(x) && !has(y) || app == 'none'", True),
    ("( ( app == 'web' ) )", True),
])
def test_selector_grammar_and_semantics(text, expected):
    assert Selector.parse(text).matches(LABELS) is expected


@pytest.mark.parametrize("text", [
    "app == web",  # unquoted value
    "app ==",
    "app = 'web'",
    "(app == 'web'",
    "app == 'web')",
    "app == 'web' &&",
    "&& app == 'web'",
    "app == 'web' app == 'api'",
    "'web' == app",
    "app in ['web']",
    "app in {'web' 'api'}",
    "app in {web}",
    "has()",
    "has(app",
    "app",
    "app == 'it\\'s'",  # no escapes in strings: 'it\' then s' is left over
    "app == 'web' & tier == 'x'",
    "all",
    "x" * 513 + " == 'a'",
])
def test_selector_errors(text):
    with pytest.raises(SelectorError):
        Selector.parse(text)


def test_keywords_are_not_prefixes_of_labels():
    # `index` and `inbound` are labels, not the `in` operator
    assert Selector.parse("index == '1'").matches({"index": "1"})
    assert Selector.parse("has(inbound) && contains_x == 'y'").matches({"inbound": "", "contains_x": "y"})


def test_global_only_in_namespace_selectors():
    sel = Selector.parse("global()")
    assert sel.matches_namespace(None) is True  # a non-namespaced resource
    assert sel.matches_namespace({"projectcalico.org/name": "a"}) is False
    assert Selector.parse("all()").matches_namespace({"projectcalico.org/name": "a"}) is True
    assert Selector.parse("all()").matches_namespace(None) is False
    with pytest.raises(CalicoError):
        sel.matches({})


# ------------------------------------------------------------------------------------ fixtures
WEB = make_pod("web-1", "shop", {"app": "web"}, ["10.0.0.1", "fd00::1"])
API = make_pod("api-1", "shop", {"app": "api"}, ["10.0.0.2", "fd00::2"])
API_OTHER_NS = make_pod("api-2", "lab", {"app": "api"}, ["10.0.1.2", "fd00:1::2"])
DB_OTHER_NS = make_pod("db-1", "lab", {"app": "db"}, ["10.0.1.3", "fd00:1::3"])
PODS = [WEB, API, API_OTHER_NS, DB_OTHER_NS]
OUTSIDE = "192.0.2.10"
OUTSIDE6 = "2001:db8::10"

SETS = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: outside, labels: {netpolc.io/set: outside}}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: lab-pods, labels: {netpolc.io/set: lab-pods}}
spec: {nets: [10.0.1.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: dual, labels: {netpolc.io/set: dual}}
spec: {nets: [192.0.2.0/24, "2001:db8::/64"]}
"""


def api_ingress(rule: str, pods=PODS, extra: str = "") -> Cluster:
    """A NetworkPolicy selecting api in namespace shop with the one ingress rule given (YAML flow)."""
    return cluster(SETS + f"""\
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  selector: app == 'api'
  types: [Ingress]
  ingress:
  - {rule}
""" + extra, pods)


# ------------------------------------------------------------------------------------ namespace scoping
def test_network_policy_selects_pods_of_its_namespace_only():
    c = api_ingress("{action: Allow}")
    assert [(t.name, [p.name for p in ps]) for t, ps in c.applicable(API, INGRESS)] == [("default", ["api"])]
    assert not c.applicable(API_OTHER_NS, INGRESS)  # app == 'api' in namespace lab: not selected
    assert not c.applicable(API, EGRESS)  # types [Ingress]


def test_rule_selector_without_namespace_selector_is_same_namespace():
    c = api_ingress("{action: Allow, source: {selector: app == 'web'}}")
    assert c.allows(WEB, API, TCP80)
    web_in_lab = make_pod("web-2", "lab", {"app": "web"}, ["10.0.1.9"])
    c = api_ingress("{action: Allow, source: {selector: app == 'web'}}", [*PODS, web_in_lab])
    assert not c.allows(web_in_lab, API, TCP80)
    # and the selector matches endpoints, not addresses outside
    assert not c.allows(OUTSIDE, API, TCP80)


def test_namespace_selector_and_selector_in_one_peer_are_anded():
    c = api_ingress("{action: Allow, source: {selector: app == 'db', namespaceSelector: "
                    "projectcalico.org/name == 'lab'}}")
    assert c.allows(DB_OTHER_NS, API, TCP80)
    assert not c.allows(API_OTHER_NS, API, TCP80)  # in lab, but not db
    assert not c.allows(WEB, API, TCP80)  # not in lab


def test_two_peers_are_ored():
    c = api_ingress("{action: Allow, source: {selector: app == 'web'}}\n"
                    "  - {action: Allow, source: {namespaceSelector: projectcalico.org/name == 'lab'}}")
    assert c.allows(WEB, API, TCP80)
    assert c.allows(API_OTHER_NS, API, TCP80)
    assert c.allows(DB_OTHER_NS, API, TCP80)
    assert not c.allows(OUTSIDE, API, TCP80)


def test_namespace_selector_all_means_every_namespaced_endpoint_not_network_sets():
    c = api_ingress("{action: Allow, source: {namespaceSelector: all()}}")
    assert c.allows(DB_OTHER_NS, API, TCP80)
    assert c.allows(WEB, API, TCP80)
    assert not c.allows(OUTSIDE, API, TCP80)  # in GlobalNetworkSet outside, which is not namespaced


def test_namespace_selector_global_means_global_network_sets():
    c = api_ingress("{action: Allow, source: {selector: netpolc.io/set == 'outside', namespaceSelector: global()}}")
    assert c.allows(OUTSIDE, API, TCP80)
    assert not c.allows("192.0.3.1", API, TCP80)
    assert not c.allows(WEB, API, TCP80)
    # a pod whose address lies in a selected set matches it (felix matches IP sets)
    c = api_ingress("{action: Allow, source: {selector: netpolc.io/set == 'lab-pods', namespaceSelector: global()}}")
    assert c.allows(DB_OTHER_NS, API, TCP80)
    assert not c.allows(DB_OTHER_NS, API, TCP80, family=6)  # the set has no IPv6 net
    assert not c.allows(WEB, API, TCP80)


def test_network_policy_selector_without_global_does_not_see_global_sets():
    c = api_ingress("{action: Allow, source: {selector: netpolc.io/set == 'outside'}}")
    assert not c.allows(OUTSIDE, API, TCP80)


def test_not_selector_alone_in_a_network_policy_is_scoped_to_its_namespace():
    # felix: the rule selector becomes "namespace == shop"; the notSelector then removes app == 'web'
    c = api_ingress("{action: Allow, source: {notSelector: app == 'web'}}",
                    [*PODS, make_pod("cron-1", "shop", {"app": "cron"}, ["10.0.0.3"])])
    assert c.allows(c.pods[-1], API, TCP80)
    assert not c.allows(WEB, API, TCP80)
    assert not c.allows(DB_OTHER_NS, API, TCP80)
    assert not c.allows(OUTSIDE, API, TCP80)


def test_not_selector_is_never_scoped():
    # the notSelector picks the GlobalNetworkSet lab-pods although the rule is scoped to namespace lab:
    # db's address lies in it, so db is excluded
    c = api_ingress("{action: Allow, source: {selector: app == 'db', namespaceSelector: projectcalico.org/name == "
                    "'lab', notSelector: netpolc.io/set == 'lab-pods'}}")
    assert not c.allows(DB_OTHER_NS, API, TCP80)
    c = api_ingress("{action: Allow, source: {selector: app == 'db', namespaceSelector: projectcalico.org/name == "
                    "'lab', notSelector: netpolc.io/set == 'outside'}}")
    assert c.allows(DB_OTHER_NS, API, TCP80)


def test_global_network_policy_rule_selector_sees_every_namespace_and_sets():
    c = cluster(SETS + """\
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec:
  selector: app == 'api'
  ingress:
  - {action: Allow, source: {selector: app == 'db'}}
  - {action: Allow, source: {selector: netpolc.io/set == 'outside'}}
  - {action: Allow, protocol: UDP, source: {notSelector: has(app)}}
""", PODS)
    assert c.applicable(API_OTHER_NS, INGRESS) and c.applicable(API, INGRESS)
    assert c.allows(DB_OTHER_NS, API, TCP80)
    assert c.allows(OUTSIDE, API, TCP80)
    assert not c.allows(WEB, API, TCP80)
    # notSelector matches everything but the labelled endpoints, addresses outside the cluster included
    assert c.allows("198.51.100.1", API, UDP53)
    assert not c.allows(WEB, API, UDP53)


def test_global_network_policy_namespace_selector_restricts_selection():
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny}
spec:
  namespaceSelector: projectcalico.org/name in {'shop'}
  selector: all()
  types: [Ingress, Egress]
""", PODS)
    assert c.applicable(WEB, INGRESS) and c.applicable(API, EGRESS)
    assert not c.applicable(DB_OTHER_NS, INGRESS)
    assert not c.allows(WEB, API, TCP80)
    assert c.allows(DB_OTHER_NS, API_OTHER_NS, TCP80)  # lab: unselected, allows all
    assert not c.allows(DB_OTHER_NS, API, TCP80)  # api's ingress denies
    assert not c.allows(WEB, OUTSIDE, TCP80)


def test_namespace_labels_and_projectcalico_namespace_label():
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec:
  selector: projectcalico.org/namespace == 'lab'
  ingress:
  - {action: Allow, source: {namespaceSelector: team == 'blue'}}
""", PODS, {"shop": {"team": "blue"}})
    assert c.applicable(DB_OTHER_NS, INGRESS) and not c.applicable(API, INGRESS)
    assert c.allows(WEB, DB_OTHER_NS, TCP80)
    assert not c.allows(API_OTHER_NS, DB_OTHER_NS, TCP80)


# ------------------------------------------------------------------------------------ rules
def test_protocol_only_rule_opens_every_port_of_that_protocol_only():
    c = api_ingress("{action: Allow, protocol: TCP}")
    assert c.allows(WEB, API, TCP80) and c.allows(WEB, API, Packet("tcp", 65535))
    assert not c.allows(WEB, API, UDP53)
    assert not c.allows(WEB, API, Packet("sctp", 80))
    assert not c.allows(OUTSIDE, API, Packet("icmp", icmp_type=8, icmp_code=0))


def test_ports_and_ranges():
    c = api_ingress("{action: Allow, protocol: TCP, destination: {ports: [80, '9092:9093', '443']}}")
    allowed = {p for p in range(1, 10000) if c.allows(WEB, API, Packet("tcp", p))}
    assert allowed == {80, 443, 9092, 9093}
    assert not c.allows(WEB, API, Packet("udp", 80))


def test_udp_and_sctp_rules_never_open_tcp():
    c = api_ingress("{action: Allow, protocol: UDP, destination: {ports: [53]}}\n"
                    "  - {action: Allow, protocol: SCTP, destination: {ports: [38412]}}")
    assert c.allows(WEB, API, UDP53)
    assert c.allows(WEB, API, Packet("sctp", 38412))
    assert not c.allows(WEB, API, TCP53)
    assert not c.allows(WEB, API, Packet("tcp", 38412))
    assert not c.allows(WEB, API, Packet("udp", 38412))


def test_protocol_numbers_and_not_protocol():
    c = api_ingress("{action: Allow, protocol: 17}")
    assert c.allows(WEB, API, UDP53) and not c.allows(WEB, API, TCP53)
    c = api_ingress("{action: Allow, notProtocol: UDP}")
    assert c.allows(WEB, API, TCP53) and not c.allows(WEB, API, UDP53)


def test_source_ports_are_the_clients():
    c = api_ingress("{action: Allow, protocol: TCP, source: {ports: [80]}}")
    assert not c.allows(WEB, API, TCP80)  # the probe's source port is ephemeral
    assert c.allows(WEB, API, Packet("tcp", 9999, source_port=80))


def test_not_ports():
    c = api_ingress("{action: Allow, protocol: TCP, destination: {notPorts: ['1:1023']}}")
    assert not c.allows(WEB, API, TCP80) and c.allows(WEB, API, Packet("tcp", 1024))


def test_icmp_type_and_code():
    c = api_ingress("{action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}, ipVersion: 4}\n"
                    "  - {action: Allow, protocol: ICMPv6, icmp: {type: 135}, ipVersion: 6}")
    assert c.allows(OUTSIDE, API, Packet("icmp", icmp_type=3, icmp_code=4))
    assert not c.allows(OUTSIDE, API, Packet("icmp", icmp_type=3, icmp_code=1))
    assert not c.allows(OUTSIDE, API, Packet("icmp", icmp_type=135, icmp_code=0))
    assert c.allows(OUTSIDE6, API, Packet("icmpv6", icmp_type=135, icmp_code=0))
    assert c.allows(OUTSIDE6, API, Packet("icmpv6", icmp_type=135, icmp_code=7))  # any code of the type
    assert not c.allows(OUTSIDE6, API, Packet("icmpv6", icmp_type=3, icmp_code=4))
    assert not c.allows(OUTSIDE, API, Packet("tcp", 3))
    c = api_ingress("{action: Allow, protocol: ICMP, notICMP: {type: 8}}")
    assert c.allows(OUTSIDE, API, Packet("icmp", icmp_type=0, icmp_code=0))
    assert not c.allows(OUTSIDE, API, Packet("icmp", icmp_type=8, icmp_code=0))


def test_ip_version_and_per_family_nets():
    c = api_ingress("{action: Allow, ipVersion: 6}")
    assert c.allows(OUTSIDE6, API, TCP80) and not c.allows(OUTSIDE, API, TCP80)
    assert c.allows(WEB, API, TCP80, family=6) and not c.allows(WEB, API, TCP80, family=4)
    c = api_ingress("{action: Allow, source: {nets: [192.0.2.0/24]}}")
    assert c.allows(OUTSIDE, API, TCP80) and not c.allows(OUTSIDE6, API, TCP80)
    c = api_ingress("{action: Allow, source: {selector: netpolc.io/set == 'outside', namespaceSelector: global()}}")
    assert not c.allows(OUTSIDE6, API, TCP80)  # an IPv4-only set does not admit IPv6
    c = api_ingress("{action: Allow, source: {selector: netpolc.io/set == 'dual', namespaceSelector: global()}}")
    assert c.allows(OUTSIDE6, API, TCP80) and c.allows(OUTSIDE, API, TCP80)


def test_not_nets_and_every_criterion_anded():
    c = api_ingress("{action: Allow, protocol: TCP, source: {nets: [192.0.2.0/24], notNets: [192.0.2.128/25]},"
                    " destination: {ports: [80]}}")
    assert c.allows("192.0.2.1", API, TCP80)
    assert not c.allows("192.0.2.200", API, TCP80)
    assert not c.allows("192.0.2.1", API, TCP81)
    assert not c.allows("192.0.2.1", API, Packet("udp", 80))


def test_empty_rule_matches_everything():
    c = api_ingress("{action: Allow}")
    assert c.allows(OUTSIDE6, API, Packet("sctp", 1))
    assert c.allows(OUTSIDE, API, Packet("icmp", icmp_type=8, icmp_code=0))


# ------------------------------------------------------------------------------------ order, tiers, types
def two_policies(first_order: str, second_order: str, first_action: str = "Deny", second_action: str = "Allow",
                 first_name: str = "a", second_name: str = "b") -> Cluster:
    return cluster(f"""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: {first_name}, namespace: shop}}
spec:
  {first_order}
  selector: app == 'api'
  ingress: [{{action: {first_action}, protocol: TCP, destination: {{ports: [80]}}}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: {second_name}}}
spec:
  {second_order}
  selector: app == 'api'
  ingress: [{{action: {second_action}}}]
""", PODS)


def test_first_match_in_order_decides():
    assert not two_policies("order: 10", "order: 20").allows(WEB, API, TCP80)  # deny first
    assert two_policies("order: 30", "order: 20").allows(WEB, API, TCP80)  # allow first
    assert two_policies("order: 10", "order: 20").allows(WEB, API, TCP81)  # the deny does not match
    assert not two_policies("", "order: 20", "Allow", "Deny").allows(WEB, API, TCP80)  # unset order is last
    assert not two_policies("order: 5", "order: 5.5", "Deny", "Allow").allows(WEB, API, TCP80)  # floats
    # equal order: the name decides ("a" before "b")
    assert not two_policies("order: 10", "order: 10").allows(WEB, API, TCP80)
    assert two_policies("order: 10", "order: 10", first_name="z").allows(WEB, API, TCP80)


def test_log_continues_and_pass_skips_the_tier():
    assert two_policies("order: 10", "order: 20", "Log").allows(WEB, API, TCP80)
    # Pass skips b in tier default, then the profile allows everything
    c = two_policies("order: 10", "order: 20", "Pass", "Deny")
    assert c.allows(WEB, API, TCP80)
    assert not c.allows(WEB, API, TCP81)


def test_tiers_in_order_and_default_action():
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: platform}
spec: {order: 200, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.pass-web}
spec:
  tier: security
  selector: app == 'api'
  ingress: [{action: Pass, source: {selector: app == 'web'}}, {action: Allow, protocol: UDP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: platform.nothing}
spec:
  tier: platform
  selector: app == 'api'
  ingress: [{action: Allow, protocol: ICMP}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  order: 1
  selector: app == 'api'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
""", PODS)
    assert c.allows(WEB, API, TCP80)  # passed by security, nothing in platform (Pass), allowed in default
    assert not c.allows(WEB, API, TCP81)  # ... end of tier default
    assert c.allows(OUTSIDE, API, UDP53)  # security allows
    assert not c.allows(OUTSIDE, API, TCP80)  # end of tier security (Deny)
    with pytest.raises(CalicoError):
        cluster("""\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: x.y}
spec: {tier: x, selector: all()}
""", PODS)


def test_end_of_tier_deny_and_unselected_pods():
    c = api_ingress("{action: Allow, protocol: TCP, destination: {ports: [80]}}")
    assert not c.allows(WEB, API, TCP81)  # selected, nothing allows: end of tier
    assert c.allows(API, WEB, TCP81)  # web: unselected, allows all; api egress: not governed
    assert c.allows(OUTSIDE, WEB, Packet("sctp", 9))
    assert c.end_decision(WEB, INGRESS, OUTSIDE, TCP81)[1].startswith("no policy selects")


def test_policy_without_rules_denies_its_types():
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: quiet, namespace: shop}
spec: {selector: app == 'web', types: [Egress]}
""", PODS)
    assert not c.allows(WEB, OUTSIDE, TCP80)
    assert c.allows(OUTSIDE, WEB, TCP80)  # ingress not governed


@pytest.mark.parametrize(("spec", "types"), [
    ("ingress: [{action: Allow}]", {INGRESS}),
    ("egress: [{action: Allow}]", {EGRESS}),
    ("ingress: [{action: Allow}]\n  egress: [{action: Allow}]", {INGRESS, EGRESS}),
    ("order: 1", {INGRESS}),
])
def test_default_types(spec, types):
    c = cluster(f"""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: p, namespace: shop}}
spec:
  selector: app == 'web'
  {spec}
""", PODS)
    assert c.policies[0].types == types


def test_egress_rule_types_must_be_declared_to_count():
    # egress rules in a policy whose types say Ingress only are ignored: egress stays open
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: app == 'web'
  types: [Ingress]
  egress: [{action: Deny}]
""", PODS)
    assert c.allows(WEB, OUTSIDE, TCP80)
    assert not c.allows(OUTSIDE, WEB, TCP80)


def test_connection_needs_egress_at_source_and_ingress_at_destination():
    c = cluster("""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: app == 'web'
  types: [Ingress, Egress]
  egress: [{action: Allow, protocol: TCP, destination: {selector: app == 'api', ports: [80, 81]}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  selector: app == 'api'
  types: [Ingress, Egress]
  ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [80, 82]}}]
""", PODS)
    assert c.allows(WEB, API, TCP80)
    assert not c.allows(WEB, API, TCP81)  # api's ingress denies
    assert not c.allows(WEB, API, Packet("tcp", 82))  # web's egress denies
    allowed, reasons = c.connection(WEB, API, TCP81)
    assert not allowed
    assert reasons == ["egress allowed by NetworkPolicy shop/web egress rule 0",
                       "ingress denied by end of tier default"]
    assert not c.allows(API, WEB, TCP80)


def test_fast_path_agrees_with_single_decisions():
    c = api_ingress("{action: Allow, protocol: TCP, destination: {ports: ['80:90']}}\n"
                    "  - {action: Deny, protocol: UDP, source: {nets: [192.0.2.0/25]}}\n"
                    "  - {action: Allow, protocol: UDP}")
    packets = tuple(Packet(proto, port) for proto in ("tcp", "udp", "sctp") for port in (53, 79, 80, 90, 91))
    for peer in (OUTSIDE, "192.0.2.200", "10.0.0.1", "10.0.1.2"):
        fast = c.end_allowed_packets(API, INGRESS, peer, packets)
        assert fast == {p for p in packets if c.end_allows(API, INGRESS, peer, p)}
    assert c.end_allowed_packets(API, INGRESS, OUTSIDE, packets) == {Packet("tcp", p) for p in (80, 90)}


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("rule", [
    "{action: Allow, destination: {ports: [80]}}",  # ports without a protocol
    "{action: Allow, protocol: ICMP, destination: {ports: [80]}}",
    "{action: Allow, protocol: TCP, destination: {ports: [7000:59]}}",  # YAML 1.1: the base-60 integer 420059
    "{action: Allow, protocol: TCP, destination: {ports: ['90:80']}}",
    "{action: Allow, protocol: TCP, destination: {ports: [http]}}",  # named port: not modelled
    "{action: Allow, protocol: tcpx}",
    "{action: Allow, protocol: ICMP, icmp: {type: 3}, ipVersion: 6}",
    "{action: Allow, protocol: ICMPv6, icmp: {type: 2}, ipVersion: 4}",
    "{action: Allow, protocol: ICMP, icmp: {code: 4}}",
    "{action: Allow, protocol: ICMP, icmp: {type: 255}}",
    "{action: Allow, icmp: {type: 8}}",
    "{action: Accept}",
    "{action: Allow, ipVersion: 5}",
    "{action: Allow, ipVersion: 4, source: {nets: ['2001:db8::/64']}}",
    "{action: Allow, source: {selector: global()}}",
    "{action: Allow, source: {selector: app = 'x'}}",
    "{action: Allow, source: {serviceAccounts: {names: [a]}}}",
    "{action: Allow, http: {methods: [GET]}}",
    "{action: Allow, destination: {nets: [not-a-cidr]}}",
])
def test_refused_rules(rule):
    with pytest.raises(CalicoError):
        api_ingress(rule)


def test_refused_resources():
    v3 = "apiVersion: projectcalico.org/v3\n"
    for text in [
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkSet\nmetadata: {name: a}\nspec: {}\n",
        v3 + "kind: HostEndpoint\nmetadata: {name: a}\nspec: {}\n",
        v3 + "kind: NetworkPolicy\nmetadata: {name: a}\nspec: {}\n",  # no namespace
        v3 + "kind: GlobalNetworkPolicy\nmetadata: {name: a}\nspec: {selector: global()}\n",
        v3 + "kind: GlobalNetworkPolicy\nmetadata: {name: a}\nspec: {types: [Both]}\n",
        v3 + "kind: GlobalNetworkSet\nmetadata: {name: a}\nspec: {allowedEgressDomains: [x.org]}\n",
    ]:
        with pytest.raises(CalicoError):
            cluster(text, PODS)


# ------------------------------------------------------------------------------------ a contract-shaped cluster
CONTRACT_SHAPED = """\
# Generated by netpolc; do not edit.
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: role-prometheus
  labels: {netpolc.io/set: role-prometheus}
spec:
  nets: [10.64.0.20/32, "2620:0:861:101::20/128"]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: netpolc-default-deny}
spec:
  order: 2000
  namespaceSelector: projectcalico.org/name in {'shop'}
  selector: all()
  types: [Ingress, Egress]
  egress:
  - action: Allow
    protocol: UDP
    destination: {selector: k8s-app == 'kube-dns', namespaceSelector: projectcalico.org/name == 'kube-system',
                  ports: [53]}
  - action: Allow
    protocol: TCP
    destination: {selector: k8s-app == 'kube-dns', namespaceSelector: projectcalico.org/name == 'kube-system',
                  ports: [53]}
  - {action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}, ipVersion: 4}
  - {action: Allow, protocol: ICMPv6, icmp: {type: 2}, ipVersion: 6}
  ingress:
  - {action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}, ipVersion: 4}
  - {action: Allow, protocol: ICMPv6, icmp: {type: 2}, ipVersion: 6}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: netpolc-app-baseline}
spec:
  order: 200
  namespaceSelector: projectcalico.org/name in {'shop'}
  selector: app in {'web', 'api'}
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: netpolc.io/set == 'role-prometheus', namespaceSelector: global()}
    destination: {ports: [9102]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  order: 100
  selector: app == 'api'
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'web', namespaceSelector: projectcalico.org/name == 'shop'}
    destination: {ports: [9000, '9001:9002']}
"""


def test_a_contract_shaped_cluster():
    kube_dns = make_pod("coredns-1", "kube-system", {"k8s-app": "kube-dns"}, ["10.0.9.9", "fd00:9::9"])
    pods = [*PODS, kube_dns]
    c = Cluster.from_yaml([CONTRACT_SHAPED], pods)
    # three policies select api
    assert [p.name for _, ps in c.applicable(API, INGRESS) for p in ps] == [
        "api", "netpolc-app-baseline", "netpolc-default-deny"]
    assert c.allows(WEB, kube_dns, UDP53) and c.allows(WEB, kube_dns, TCP53)
    assert not c.allows(WEB, kube_dns, Packet("udp", 54))
    assert c.allows(kube_dns, WEB, Packet("udp", 54)) is False  # web's ingress denies
    assert c.allows(kube_dns, API_OTHER_NS, Packet("udp", 54))  # neither end is policed
    assert not c.allows(WEB, API, Packet("tcp", 9000))  # api allows it, web's egress does not
    assert c.end_allows(API, INGRESS, WEB.address(4), Packet("tcp", 9002))
    assert not c.end_allows(API, INGRESS, WEB.address(4), Packet("tcp", 9003))
    assert c.allows("10.64.0.20", API, Packet("tcp", 9102))
    assert c.allows("2620:0:861:101::20", API, Packet("tcp", 9102))
    assert not c.allows("10.64.0.21", API, Packet("tcp", 9102))
    assert c.allows(WEB, "8.8.8.8", Packet("icmp", icmp_type=3, icmp_code=4))
    assert not c.allows(WEB, "8.8.8.8", Packet("icmp", icmp_type=8, icmp_code=0))
    assert c.allows("2001:4860::1", WEB, Packet("icmpv6", icmp_type=2, icmp_code=0))
    assert not c.allows("2001:4860::1", WEB, Packet("icmpv6", icmp_type=128, icmp_code=0))

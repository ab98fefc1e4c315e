"""Every statement of the language parses and resolves to the model values its text says.

Expected values are written by hand from the policy text, never copied from output.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import BASE, compile_sources, compile_text, errors
from netaddr import IPAddress, IPNetwork, IPSet

from compiler import model as m
from compiler.diagnostics import Diagnostics
from compiler.parser import parse_text


def nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(IPNetwork(c) for c in cidrs)


def ips(*addrs: str) -> tuple[IPAddress, ...]:
    return tuple(IPAddress(a) for a in addrs)


def ok(text: str) -> m.Model:
    """Compile and require a model with no diagnostics at all."""
    model, diags = compile_text(text)
    assert diags == [], [f"{d.span}: {d.code} {d.message}" for d in diags]
    assert model is not None
    return model


def P(proto: str, first: int | None = None, last: int | None = None) -> m.PortMatch:  # noqa: N802
    return m.PortMatch(proto, first, first if last is None else last)


def I(proto: str, icmp_type: int | None = None, code: int | None = None) -> m.PortMatch:  # noqa: N802, E743
    return m.PortMatch(proto, icmp_type=icmp_type, icmp_code=code)


def flows_of(model: m.Model, owner: str) -> list[m.Flow]:
    return [f for f in model.flows if f.rule.owner == owner]


def service_ports(decls: str, name: str) -> tuple[m.PortMatch, ...]:
    return ok(BASE + decls).services[name].ports


# ------------------------------------------------------------------ the base estate

def test_base_compiles_without_any_diagnostic():
    model = ok(BASE)
    assert model.files == ("a.npl",)
    assert set(model.hosts) == {"kafka1001", "bast1001", "kube1001", "kube1002", "kube1003"}


def test_parse_text_keeps_positions():
    f = parse_text("x.npl", "\n\n  service web = tcp 80\n", Diagnostics())
    assert f is not None
    (svc,) = f.declarations
    assert (svc.span.line, svc.span.column) == (3, 3)
    assert (svc.name.span.line, svc.name.span.column, svc.name.span.end_column) == (3, 11, 14)


# ------------------------------------------------------------------ topology

def test_site():
    site = ok(BASE).sites["eqiad"]
    assert site.name == "eqiad"
    assert site.description == "Ashburn"
    assert site.routers == ("cr1-eqiad", "cr2-eqiad")
    assert site.rows == ("eqiad/a", "eqiad/b", "eqiad/e")
    assert (site.span.line, site.span.column) == (1, 1)


def test_router():
    model = ok(BASE)
    r = model.routers["cr1-eqiad"]
    assert r.site == "eqiad"
    assert r.loopbacks == ips("208.80.154.196", "2620:0:861:ffff::1")
    assert r.asn == 14907
    assert r.description is None
    assert r.span.line == 3
    assert model.routers["cr2-eqiad"].loopbacks == ips("208.80.154.197", "2620:0:861:ffff::2")


def test_router_description():
    model = ok('site x { router r1 loopback 192.0.2.1 asn 65001 description "edge" }')
    assert model.routers["r1"].description == "edge"
    assert model.routers["r1"].asn == 65001


def test_l2_row_subnets_gateways_switch():
    row = ok(BASE).rows["eqiad/a"]
    assert row.key == "eqiad/a" and row.name == "a" and row.site == "eqiad"
    assert row.switch == "asw2-a-eqiad"
    assert row.spines == ()
    # both `subnet` lines, IPv4 before IPv6
    assert row.subnets == nets("10.64.0.0/22", "208.80.154.0/26", "2620:0:861:101::/64")
    assert row.gateways == ips("10.64.0.1", "2620:0:861:101::1")
    assert row.racks == ("eqiad/a4",)


def test_row_description():
    model = ok('site x { row a { description "first row" subnet 10.1.0.0/24 } }')
    assert model.rows["x/a"].description == "first row"
    assert model.rows["x/a"].subnets == nets("10.1.0.0/24")
    assert model.rows["x/a"].switch is None


def test_switches_access_spine_tor():
    sw = ok(BASE).switches
    a = sw["asw2-a-eqiad"]
    assert (a.kind, a.site, a.row, a.rack, a.asn, a.uplinks) == ("access", "eqiad", "eqiad/a", None, None, ())
    assert sw["asw2-b-eqiad"].asn == 64700
    sp = sw["ssw1-e1-eqiad"]
    assert (sp.kind, sp.row, sp.rack, sp.asn) == ("spine", "eqiad/e", None, 64810)
    assert sp.uplinks == ("cr1-eqiad", "cr2-eqiad")
    tor = sw["lsw1-e1-eqiad"]
    assert (tor.kind, tor.row, tor.rack, tor.asn) == ("tor", "eqiad/e", "eqiad/e1", 64811)
    assert ok(BASE).rows["eqiad/e"].spines == ("ssw1-e1-eqiad",)


def test_spine_without_uplink_and_switch_description():
    model = ok('site x { row a { spine s1 asn 65010 description "spine one" '
               'rack r { switch t1 description "tor one" subnet 10.9.0.0/24 gateway 10.9.0.1 } } }')
    assert model.switches["s1"].uplinks == ()
    assert model.switches["s1"].description == "spine one"
    assert model.switches["t1"].asn is None
    assert model.switches["t1"].description == "tor one"


def test_l2_rack():
    rack = ok(BASE).racks["eqiad/a4"]
    assert (rack.key, rack.name, rack.site, rack.row) == ("eqiad/a4", "a4", "eqiad", "eqiad/a")
    assert rack.layer == "l2"
    assert rack.switch is None
    assert rack.subnets == () and rack.gateways == ()
    assert rack.hosts == ("bast1001", "kafka1001")


def test_l3_rack():
    rack = ok(BASE).racks["eqiad/e1"]
    assert rack.layer == "l3"
    assert rack.switch == "lsw1-e1-eqiad"
    assert rack.subnets == nets("10.64.130.0/24", "2620:0:861:109::/64")
    assert rack.gateways == ips("10.64.130.1", "2620:0:861:109::1")
    assert rack.hosts == ("kube1003",)
    assert rack.row == "eqiad/e"


def test_rack_description():
    model = ok('site x { row a { subnet 10.1.0.0/24 rack r1 { description "cage 3" } } }')
    assert model.racks["x/r1"].description == "cage 3"


def test_hosts():
    hosts = ok(BASE).hosts
    k = hosts["kafka1001"]
    assert (k.site, k.row, k.rack) == ("eqiad", "eqiad/a", "eqiad/a4")
    assert k.addresses == ips("10.64.0.10", "2620:0:861:101::10")
    assert k.roles == ("kafka-broker",)
    assert k.firewall is True
    assert k.description is None
    b = hosts["bast1001"]
    assert b.addresses == ips("208.80.154.10")  # in the row's second (public) subnet
    assert b.description == "bastion"
    assert hosts["kube1002"].roles == ("k8s-worker", "prometheus")
    assert hosts["kube1003"].rack == "eqiad/e1"
    assert hosts["kube1003"].addresses == ips("10.64.130.11", "2620:0:861:109::11")


def test_host_without_roles():
    model = ok("site x { row a { subnet 10.1.0.0/24 rack r1 { host h1 10.1.0.5 } } }")
    assert model.hosts["h1"].roles == ()
    assert model.hosts["h1"].addresses == ips("10.1.0.5")


def test_comments_and_free_layout():
    model = ok("# estate\nsite x{row a{subnet 10.1.0.0/24 # the row\nrack r1{host h1\n10.1.0.5}}}")
    assert model.hosts["h1"].rack == "x/r1"


# ------------------------------------------------------------------ clusters

CLUSTER_FULL = """
cluster full {
  description "everything"
  site eqiad
  asn 64602
  pods 10.80.0.0/21 2620:0:861:cafe::/64
  services 10.80.8.0/24 2620:0:861:caff::/108
  nodes role k8s-worker, host kafka1001
  control-plane host kube1001, kube1002
  etcd rack eqiad/a4
  peer-with route-reflectors host kube1001, kube1002 cluster-id 10.64.16.11
  survive router, row, switch
  single-uplink max-share 50%
}
"""


def test_cluster_every_setting():
    model = ok(BASE + CLUSTER_FULL)
    c = model.clusters["full"]
    assert c.description == "everything"
    assert c.site == "eqiad"
    assert c.asn == 64602
    assert c.pod_cidrs == nets("10.80.0.0/21", "2620:0:861:cafe::/64")
    assert c.service_cidrs == nets("10.80.8.0/24", "2620:0:861:caff::/108")
    assert c.nodes == ("kafka1001", "kube1001", "kube1002", "kube1003")
    assert c.control_plane == ("kube1001", "kube1002")
    assert c.etcd == ("bast1001", "kafka1001")
    assert c.peerings[0].mode == "route-reflectors"
    assert c.peerings[0].reflectors == ("kube1001", "kube1002")
    assert c.peerings[0].cluster_id == IPAddress("10.64.16.11")
    assert c.survive == ("router", "row", "switch")
    assert c.single_uplink_max_share == 50


def test_cluster_base_defaults():
    c = ok(BASE).clusters["wikikube-eqiad"]
    assert c.peerings[0].mode == "routers"
    assert c.peerings[0].reflectors == () and c.peerings[0].cluster_id is None
    assert c.nodes == ("kube1001", "kube1002", "kube1003")
    assert c.control_plane == () and c.etcd == ()
    assert c.service_cidrs == nets("10.64.72.0/24")
    assert c.survive == ()
    assert c.single_uplink_max_share is None


@pytest.mark.parametrize("mode", ["routers", "tor"])
def test_cluster_simple_peering_modes(mode):
    text = BASE + f"cluster c2 {{ site eqiad asn 64700 pods 10.90.0.0/24 nodes host kube1003 peer-with {mode} }}"
    c = ok(text).clusters["c2"]
    assert c.peerings[0].mode == mode
    assert c.nodes == ("kube1003",)


def test_cluster_members_by_row_and_survive_every_failure():
    text = BASE + ("cluster c2 { site eqiad asn 64700 pods 10.90.0.0/24 nodes row eqiad/b peer-with tor "
                   "survive route-reflector, rack, router, switch, row }")
    c = ok(text).clusters["c2"]
    assert c.nodes == ("kube1001", "kube1002")
    assert c.survive == ("rack", "route-reflector", "router", "row", "switch")


# ------------------------------------------------------------------ networks

def test_network_of_cidrs_and_description():
    model = ok(BASE + 'network n = 192.168.0.0/16, 172.16.0.0/12 description "rfc1918 bits"')
    n = model.networks["n"]
    assert n.cidrs == nets("172.16.0.0/12", "192.168.0.0/16")
    assert n.description == "rfc1918 bits"
    assert [e.kind for e in n.members] == ["cidr", "cidr"]


def test_network_with_exclusion():
    n = ok(BASE + "network n = 10.0.0.0/8 except 10.64.0.0/16").networks["n"]
    # 10.0.0.0/8 without 10.64.0.0/16, by hand: 10.0-63, 10.65, 10.66-67, 10.68-71, 10.72-79, 10.80-95,
    # 10.96-127, 10.128-255
    assert n.cidrs == nets("10.0.0.0/10", "10.65.0.0/16", "10.66.0.0/15", "10.68.0.0/14", "10.72.0.0/13",
                           "10.80.0.0/12", "10.96.0.0/11", "10.128.0.0/9")
    assert [e.name for e in n.excluded] == ["10.64.0.0/16"]


def test_nested_networks_and_exclusion_of_a_host():
    text = BASE + ("network inner = 10.64.0.0/22, 192.168.1.0/24\n"
                   "network outer = network inner, 203.0.113.0/24 except host kafka1001\n")
    model = ok(text)
    assert model.networks["inner"].cidrs == nets("10.64.0.0/22", "192.168.1.0/24")
    outer = model.networks["outer"]
    # 10.64.0.0/22 minus 10.64.0.10: .0-7, .8-9, .11, .12-15, .16-31, .32-63, .64-127, .128-255, 10.64.1-3
    assert outer.cidrs == nets("10.64.0.0/29", "10.64.0.8/31", "10.64.0.11/32", "10.64.0.12/30",
                               "10.64.0.16/28", "10.64.0.32/27", "10.64.0.64/26", "10.64.0.128/25",
                               "10.64.1.0/24", "10.64.2.0/23", "192.168.1.0/24", "203.0.113.0/24")
    assert [(e.kind, e.name) for e in outer.members] == [("network", "inner"), ("cidr", "203.0.113.0/24")]


def test_network_member_kinds():
    model = ok(BASE + (
        "network h = host kafka1001, bast1001\n"
        "network r = router cr1-eqiad\n"
        "network sw = switch lsw1-e1-eqiad\n"
        "network ro = role k8s-worker\n"
        "network cl = cluster wikikube-eqiad\n"
        "network l2 = rack eqiad/a4\n"
        "network l3 = rack e1\n"
        "network rw = row eqiad/b\n"
        "network re = row eqiad/e\n"
        "network st = site eqiad\n"
        "network ad = 10.1.2.3, 2001:db8::1\n"
        "network an = any\n"))
    n = model.networks
    assert n["h"].cidrs == nets("10.64.0.10/32", "208.80.154.10/32", "2620:0:861:101::10/128")
    assert [e.kind for e in n["h"].members] == ["host", "host"]  # `bast1001` takes the kind before it
    assert n["r"].cidrs == nets("208.80.154.196/32", "2620:0:861:ffff::1/128")
    assert n["sw"].cidrs == nets("10.64.130.1/32", "2620:0:861:109::1/128")
    assert n["ro"].cidrs == nets("10.64.16.11/32", "10.64.16.12/32", "10.64.130.11/32", "2620:0:861:109::11/128")
    assert n["cl"].cidrs == nets("10.64.64.0/21", "2620:0:861:cabe::/64")
    assert n["l2"].cidrs == nets("10.64.0.10/32", "208.80.154.10/32", "2620:0:861:101::10/128")
    assert n["l2"].members[0].name == "eqiad/a4"
    assert n["l3"].cidrs == nets("10.64.130.0/24", "2620:0:861:109::/64")
    assert n["l3"].members[0].name == "eqiad/e1"
    assert n["rw"].cidrs == nets("10.64.16.0/22")
    assert n["re"].cidrs == nets("10.64.130.0/24", "2620:0:861:109::/64")  # a row holds its L3 racks' subnets
    assert n["st"].cidrs == nets("10.64.0.0/22", "10.64.16.0/22", "10.64.130.0/24", "208.80.154.0/26",
                                 "208.80.154.196/31", "2620:0:861:101::/64", "2620:0:861:109::/64",
                                 "2620:0:861:ffff::1/128", "2620:0:861:ffff::2/128")
    assert n["ad"].cidrs == nets("10.1.2.3/32", "2001:db8::1/128")
    assert n["an"].cidrs == nets("0.0.0.0/0", "::/0")


def test_internet_excludes_private_ranges_and_the_estate():
    model = ok(BASE + "network net = internet")
    inet = IPSet(model.networks["net"].cidrs)
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                    "100.64.0.0/10", "fc00::/7", "fe80::/10"):
        assert not (inet & IPSet([private])), private
    for own in ("208.80.154.0/26", "208.80.154.196/32", "208.80.154.197/32", "2620:0:861:101::/64",
                "2620:0:861:109::/64", "2620:0:861:cabe::/64", "2620:0:861:ffff::1/128"):
        assert not (inet & IPSet([own])), own
    for public in ("8.8.8.8/32", "208.80.154.64/26", "208.80.154.198/32", "1.0.0.0/8", "2a00:1450::/32"):
        assert IPSet([public]) <= inet, public


# ------------------------------------------------------------------ services and ports

def test_service_bare_ports_take_the_previous_protocol():
    ports = service_ports("service logstash = tcp 4560, 10514, 11514, udp 8324, 10514, 11514, 12201", "logstash")
    assert ports == (P("tcp", 4560), P("tcp", 10514), P("tcp", 11514),
                     P("udp", 8324), P("udp", 10514), P("udp", 11514), P("udp", 12201))


def test_service_ranges_and_description():
    model = ok(BASE + 'service cassandra-admin = tcp 7199-7202, sctp 9000 description "jmx"')
    svc = model.services["cassandra-admin"]
    assert svc.ports == (P("sctp", 9000), P("tcp", 7199, 7202))
    assert svc.description == "jmx"


def test_service_bare_range_after_protocol():
    assert service_ports("service s = udp 53, 8000-8010", "s") == (P("udp", 53), P("udp", 8000, 8010))


def test_service_icmp_names_numbers_and_codes():
    ports = service_ports("service p = icmp echo-request, icmp 3 code 4, icmp 11, icmp 254 code 0", "p")
    assert ports == (I("icmp", 3, 4), I("icmp", 8), I("icmp", 11), I("icmp", 254, 0))


def test_service_icmpv6_names_differ_from_icmp():
    ports = service_ports("service p = icmp echo-request, icmpv6 echo-request, icmpv6 neighbour-solicitation",
                          "p")
    assert ports == (I("icmp", 8), I("icmpv6", 128), I("icmpv6", 135))


def test_service_icmp_any_type():
    assert service_ports("service p = icmp, icmpv6 echo-reply", "p") == (I("icmp"), I("icmpv6", 129))
    assert service_ports("service p = icmp 8, icmp", "p") == (I("icmp"),)


def test_service_icmp_type_covers_its_codes():
    assert service_ports("service p = icmp 3 code 4, icmp 3, icmp 3 code 1", "p") == (I("icmp", 3),)


def test_service_protocol_only_covers_its_ports():
    assert service_ports("service s = tcp 80, tcp, udp 53", "s") == (P("tcp"), P("udp", 53))
    assert str(P("tcp", None, None)) == "tcp"


def test_service_any():
    assert service_ports("service s = tcp 80, any, icmp", "s") == (m.PortMatch("any"),)


def test_nested_services():
    text = "service http = tcp 80\nservice https = tcp 443\nservice web = service http, service https, udp 443"
    model = ok(BASE + text)
    assert model.services["web"].ports == (P("tcp", 80), P("tcp", 443), P("udp", 443))


def test_service_defined_after_use():
    model = ok(BASE + "service web = service late\nservice late = tcp 8443")
    assert model.services["web"].ports == (P("tcp", 8443),)


def test_overlapping_and_adjacent_ranges_merge():
    ports = service_ports("service s = tcp 80-90, 85-100, 101, 200, 80, 300-400, 350", "s")
    assert ports == (P("tcp", 80, 101), P("tcp", 200), P("tcp", 300, 400))


def test_duplicates_merge_and_base_ports_are_merged():
    assert service_ports("service s = udp 53, udp 53, tcp 53", "s") == (P("tcp", 53), P("udp", 53))
    assert ok(BASE).services["kafka"].ports == (P("tcp", 9092, 9093),)


# ------------------------------------------------------------------ roles

def test_role_rules_and_hosts():
    role = ok(BASE).roles["kafka-broker"]
    assert role.default is False
    assert role.firewall is True
    assert role.hosts == ("kafka1001",)
    (rule,) = role.rules
    assert (rule.owner_kind, rule.owner, rule.direction) == ("role", "kafka-broker", "ingress")
    assert rule.ports == (P("tcp", 9092, 9093),)
    assert [(e.kind, e.name) for e in rule.peers] == [("network", "internal")]


def test_role_description():
    model = ok(BASE + 'role kafka-broker2 { description "spare" }\n'
               + "site s2 { row a { subnet 10.250.0.0/24 rack r { host h9 10.250.0.9 roles kafka-broker2 } } }")
    assert model.roles["kafka-broker2"].description == "spare"
    assert model.roles["kafka-broker2"].hosts == ("h9",)


def test_default_role_applies_to_every_host():
    model = ok(BASE)
    base = model.roles["base"]
    assert base.default is True
    assert base.hosts == ("bast1001", "kafka1001", "kube1001", "kube1002", "kube1003")
    (flow,) = flows_of(model, "base")
    assert flow.destinations[0].kind == "all-hosts"
    assert flow.destinations[0].cidrs == nets(
        "10.64.0.10/32", "10.64.16.11/32", "10.64.16.12/32", "10.64.130.11/32", "208.80.154.10/32",
        "2620:0:861:101::10/128", "2620:0:861:109::11/128")
    assert flow.sources[0].cidrs == nets("208.80.154.10/32")
    assert flow.ports == (P("tcp", 22),)


def test_firewall_none_turns_host_firewall_off():
    model = ok(BASE.replace("roles bastion", "roles bastion, lvs") + "role lvs { firewall none }")
    assert model.roles["lvs"].firewall is False
    assert model.hosts["bast1001"].firewall is False
    assert model.hosts["kafka1001"].firewall is True
    assert model.roles["bastion"].firewall is True


def test_role_allow_flow():
    model = ok(BASE)
    (flow,) = flows_of(model, "kafka-broker")
    (src,) = flow.sources
    (dst,) = flow.destinations
    assert (src.kind, src.name, src.cidrs) == ("network", "internal", nets("10.0.0.0/8", "2620:0:860::/46"))
    assert (dst.kind, dst.name, dst.cidrs) == ("role", "kafka-broker",
                                               nets("10.64.0.10/32", "2620:0:861:101::10/128"))
    assert flow.ports == (P("tcp", 9092, 9093),)
    assert flow.rule.direction == "ingress"


def test_role_allow_from_any():
    (flow,) = flows_of(ok(BASE), "bastion")
    assert flow.sources[0].kind == "any"
    assert flow.sources[0].cidrs == nets("0.0.0.0/0", "::/0")
    assert flow.destinations[0].cidrs == nets("208.80.154.10/32")


def test_role_connect_flow():
    model = ok(BASE)
    (flow,) = flows_of(model, "prometheus")
    (src,) = flow.sources
    (dst,) = flow.destinations
    assert (src.kind, src.name, src.cidrs) == ("role", "prometheus", nets("10.64.16.12/32"))
    assert (dst.kind, dst.name) == ("role", "k8s-worker")
    assert dst.cidrs == nets("10.64.16.11/32", "10.64.16.12/32", "10.64.130.11/32", "2620:0:861:109::11/128")
    assert flow.ports == (P("tcp", 9100),)
    assert flow.rule.direction == "egress"


def test_one_flow_per_peer_and_bare_peer_kind():
    text = BASE + "role kafka-broker2 { allow tcp 1-2 from host kube1001, kube1002, role bastion }\n"
    text = text.replace("roles kafka-broker\n", "roles kafka-broker, kafka-broker2\n")
    model = ok(text)
    fl = flows_of(model, "kafka-broker2")
    assert [(f.sources[0].kind, f.sources[0].name) for f in fl] == [
        ("host", "kube1001"), ("host", "kube1002"), ("role", "bastion")]
    assert all(f.ports == (P("tcp", 1, 2),) for f in fl)
    assert all(f.rule is fl[0].rule for f in fl)


def test_descriptions_and_expires():
    text = BASE.replace(
        "allow service kafka from network internal",
        'allow service kafka from network internal description "clients" expires 2027-06-30')
    (rule,) = ok(text).roles["kafka-broker"].rules
    assert rule.description == "clients"
    assert rule.expires == dt.date(2027, 6, 30)


def test_options_in_either_order_and_expiry_today_is_not_expired():
    text = BASE.replace("allow tcp 22 from any", 'allow tcp 22 from any expires 2026-11-25 description "x"')
    (rule,) = ok(text).roles["bastion"].rules
    assert rule.expires == dt.date(2026, 11, 25)
    assert rule.description == "x"


def test_rack_reference_resolves_when_unique():
    text = BASE + "role extra { allow tcp 5 from rack a4 }\n"
    model, diags = compile_text(text)
    assert errors(diags) == []
    (flow,) = flows_of(model, "extra")
    assert (flow.sources[0].kind, flow.sources[0].name) == ("rack", "eqiad/a4")


def test_rack_reference_is_ambiguous_across_sites():
    text = BASE + ("site codfw { row a { subnet 10.192.0.0/22 rack a4 { host x2001 10.192.0.5 roles bastion } } }\n"
                   "role extra { allow tcp 5 from rack a4 }\n")
    model, diags = compile_text(text)
    assert model is None
    (err,) = errors(diags)
    assert err.code == "E103"
    assert "codfw/a4, eqiad/a4" in err.message
    assert (err.span.line, err.span.column) == (BASE.count("\n") + 2, 36)
    # written with its site, it resolves
    model, diags = compile_text(text.replace("from rack a4", "from rack codfw/a4"))
    assert errors(diags) == []
    (flow,) = flows_of(model, "extra")
    assert flow.sources[0].name == "codfw/a4"
    assert flow.sources[0].cidrs == nets("10.192.0.5/32")


# ------------------------------------------------------------------ apps

def test_app_settings():
    model = ok(BASE)
    web = model.apps["web"]
    assert web.default is False
    assert web.clusters == ("wikikube-eqiad",)
    assert web.namespace == "web"  # the app's name when not given
    assert web.listen == (P("tcp", 8080),)
    api = model.apps["api"]
    assert api.listen == (P("tcp", 9000, 9001),)


def test_app_namespace_description_and_two_clusters():
    text = BASE + ('site codfw { router cr1-codfw loopback 208.80.153.192 asn 14907 '
                   'row a { subnet 10.192.0.0/22 rack a1 { host kube2001 10.192.0.11 roles k8s-worker } } }\n'
                   'cluster wikikube-codfw { site codfw asn 64602 pods 10.192.64.0/21 nodes host kube2001 '
                   'peer-with routers }\n'
                   'app eventgate { description "events" clusters wikikube-eqiad, wikikube-codfw '
                   'namespace eventgate-main listen tcp 4492, 9102, udp 4492 }\n')
    text = text.replace("nodes role k8s-worker", "nodes host kube1001, kube1002, kube1003")
    app = ok(text).apps["eventgate"]
    assert app.description == "events"
    assert app.clusters == ("wikikube-codfw", "wikikube-eqiad")
    assert app.namespace == "eventgate-main"
    assert app.listen == (P("tcp", 4492), P("tcp", 9102), P("udp", 4492))


def test_default_app():
    text = BASE + "default app baseline { connect service dns to network internal }"
    model = ok(text)
    app = model.apps["baseline"]
    assert app.default is True
    assert app.clusters == () and app.namespace is None and app.listen == ()
    (flow,) = flows_of(model, "baseline")
    (src,) = flow.sources
    assert src.kind == "all-apps"
    assert src.apps == ("api", "web")  # every app but the default block itself
    assert flow.destinations[0].name == "internal"
    assert flow.ports == (P("tcp", 53), P("udp", 53))


def test_app_allow_without_ports_defaults_to_listen():
    model = ok(BASE)
    (flow,) = [f for f in flows_of(model, "api") if f.rule.direction == "ingress"]
    (src,) = flow.sources
    (dst,) = flow.destinations
    assert (src.kind, src.name, src.cidrs, src.apps) == ("app", "web", (), ("web",))
    assert (dst.kind, dst.name, dst.apps) == ("app", "api", ("api",))
    assert flow.ports == (P("tcp", 9000, 9001),)
    assert flow.rule.ports is None  # none written: the flows carry the listen ports


def test_app_allow_with_ports_from_role():
    text = BASE.replace("allow from app web", "allow from app web\n  allow tcp 9102 from role prometheus")
    model = ok(text)
    fl = [f for f in flows_of(model, "api") if f.sources[0].kind == "role"]
    (flow,) = fl
    assert flow.sources[0].cidrs == nets("10.64.16.12/32")
    assert flow.destinations[0].apps == ("api",)
    assert flow.ports == (P("tcp", 9102),)


def test_app_connect_to_app_defaults_to_its_listen():
    model = ok(BASE)
    (flow,) = flows_of(model, "web")
    assert (flow.sources[0].kind, flow.sources[0].name) == ("app", "web")
    assert (flow.destinations[0].kind, flow.destinations[0].name) == ("app", "api")
    assert flow.ports == (P("tcp", 9000, 9001),)
    assert flow.rule.direction == "egress"


def test_app_connect_to_two_apps_each_on_its_own_ports():
    text = BASE + "app client { cluster wikikube-eqiad connect to app web, api }"
    model = ok(text)
    fl = flows_of(model, "client")
    assert [(f.destinations[0].name, f.ports) for f in fl] == [
        ("web", (P("tcp", 8080),)), ("api", (P("tcp", 9000, 9001),))]
    assert fl[0].rule.ports is None  # none written: each destination app's own listen ports


def test_app_connect_to_role_network_and_internet():
    text = BASE + ("app client { cluster wikikube-eqiad\n"
                   "  connect service kafka to role kafka-broker\n"
                   "  connect udp 53 to network internal\n"
                   "  connect tcp 443 to internet\n"
                   "  connect tcp 8080 to app web\n}")
    model = ok(text)
    fl = flows_of(model, "client")
    got = [(f.sources[0].apps, f.destinations[0].kind, f.destinations[0].name, f.ports) for f in fl]
    assert got == [
        (("client",), "role", "kafka-broker", (P("tcp", 9092, 9093),)),
        (("client",), "network", "internal", (P("udp", 53),)),
        (("client",), "internet", "internet", (P("tcp", 443),)),
        (("client",), "app", "web", (P("tcp", 8080),)),
    ]
    assert fl[0].destinations[0].cidrs == nets("10.64.0.10/32", "2620:0:861:101::10/128")
    inet = IPSet(fl[2].destinations[0].cidrs)
    assert IPAddress("8.8.8.8") in inet
    assert IPAddress("10.1.1.1") not in inet
    assert IPAddress("208.80.154.10") not in inet


def test_role_connect_to_app_defaults_to_its_listen():
    model = ok(BASE.replace("connect tcp 9100 to role k8s-worker", "connect to app api, web"))
    fl = flows_of(model, "prometheus")
    assert [(f.sources[0].name, f.destinations[0].apps, f.ports) for f in fl] == [
        ("prometheus", ("api",), (P("tcp", 9000, 9001),)),
        ("prometheus", ("web",), (P("tcp", 8080),)),
    ]


def test_default_app_allow_with_ports():
    model = ok(BASE + "default app baseline { allow tcp 9100 from role prometheus }")
    (flow,) = flows_of(model, "baseline")
    assert flow.destinations[0].kind == "all-apps"
    assert flow.destinations[0].apps == ("api", "web")
    assert flow.sources[0].cidrs == nets("10.64.16.12/32")
    assert flow.rule.direction == "ingress"


def test_role_allow_from_app_and_cluster():
    text = BASE.replace("allow service kafka from network internal",
                        "allow service kafka from app web, cluster wikikube-eqiad")
    model = ok(text)
    fl = flows_of(model, "kafka-broker")
    assert [(f.sources[0].kind, f.sources[0].apps, f.sources[0].cidrs) for f in fl] == [
        ("app", ("web",), ()),
        ("cluster", (), nets("10.64.64.0/21", "2620:0:861:cabe::/64")),
    ]


def test_declarations_across_files_in_any_order():
    sources = {"b.npl": "role extra { allow tcp 7 from network later }\n",
               "a.npl": BASE.replace("roles bastion", "roles bastion, extra"),
               "c/late.npl": "network later = 192.0.2.0/24\n"}
    model, diags = compile_sources(sources)
    assert diags == []
    assert model.files == ("a.npl", "b.npl", "c/late.npl")
    (flow,) = flows_of(model, "extra")
    assert flow.sources[0].cidrs == nets("192.0.2.0/24")
    assert flow.rule.span.file == "b.npl"


def test_string_escapes():
    model = ok(BASE + r'network n = 192.0.2.0/24 description "say \"hi\" \\ bye"')
    assert model.networks["n"].description == 'say "hi" \\ bye'


def test_default_app_allow_without_ports_opens_each_apps_own_listen_ports():
    model = ok(BASE + "default app baseline { allow from cluster wikikube-eqiad }\n"
               "app quiet { cluster wikikube-eqiad }\n")
    fl = flows_of(model, "baseline")
    # one flow per app that listens, on that app's ports; `quiet` listens on nothing and gets none
    assert [(f.sources[0].label, f.destinations[0].label, f.ports) for f in fl] == [
        ("cluster wikikube-eqiad", "app api", (P("tcp", 9000, 9001),)),
        ("cluster wikikube-eqiad", "app web", (P("tcp", 8080),)),
    ]


def test_rule_in_cluster_restricts_to_those_clusters():
    text = BASE + ("cluster c2 { site eqiad asn 64602 pods 10.64.80.0/24 nodes host kube1001 peer-with routers }\n"
                   "app multi { clusters wikikube-eqiad, c2  listen tcp 80\n"
                   "  connect tcp 9092 to network internal in cluster c2\n  allow from app web }\n")
    model = ok(text)
    connect, allow = model.apps["multi"].rules
    assert connect.clusters == ("c2",)
    assert allow.clusters == ()


def test_peer_with_scoped_to_rows_and_racks():
    text = BASE.replace("  peer-with routers\n", "  peer-with routers\n  peer-with tor for rack eqiad/e1\n")
    model = ok(text)
    default, scoped = sorted(model.clusters["wikikube-eqiad"].peerings, key=lambda p: p.scoped)
    assert (default.mode, default.nodes, default.scoped) == ("routers", ("kube1001", "kube1002"), False)
    assert (scoped.mode, scoped.nodes, scoped.scoped) == ("tor", ("kube1003",), True)


def test_spines_at_site_level():
    text = BASE.replace('  description "Ashburn"\n',
                        '  description "Ashburn"\n  spine ssw1-f1-eqiad asn 64810 uplink cr2-eqiad\n')
    model = ok(text)
    assert model.sites["eqiad"].spines == ("ssw1-f1-eqiad",)
    sw = model.switches["ssw1-f1-eqiad"]
    assert (sw.kind, sw.row, sw.uplinks) == ("spine", None, ("cr2-eqiad",))


def test_two_gateways_in_two_subnets_of_a_row():
    text = BASE.replace("    gateway 10.64.0.1 2620:0:861:101::1\n",
                        "    gateway 10.64.0.1 2620:0:861:101::1 208.80.154.1\n")
    model = ok(text)
    assert [str(g) for g in model.rows["eqiad/a"].gateways] == ["10.64.0.1", "208.80.154.1", "2620:0:861:101::1"]

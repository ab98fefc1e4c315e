"""The resolver's shortcuts give what the long way gives, and never swallow a diagnostic.

- a list of services only is resolved once per distinct list (compiler/resolve/ports.py): an
  unknown service written in the same list twice is reported twice, at each place;
- a host with one address per family skips set arithmetic (compiler/resolve/endpoints.py):
  its CIDRs equal those an IPSet gives, and a host with two adjacent addresses of one family
  still has them merged;
- whether a peer stands for any address is decided once per peer name (resolve/safety.py):
  the same wide network twice is reported (E701) at both statements.
"""

from __future__ import annotations

from conftest import BASE, compile_text, errors
from netaddr import IPAddress, IPNetwork, IPSet

from compiler import model as m


def test_an_unknown_service_in_a_repeated_list_is_reported_at_each_use():
    text = BASE + ("role r1 { allow service kafka, service nope from network internal }\n"
                   "role r2 { allow service kafka, service nope from network internal }\n")
    _, diags = compile_text(text)
    unknown = [d for d in errors(diags) if d.code == "E103" and "nope" in d.message]
    assert len(unknown) == 2
    assert len({d.span.line for d in unknown}) == 2


def test_a_repeated_list_of_services_resolves_as_written_once():
    text = BASE + ("role r1 { allow service dns, service kafka from network internal }\n"
                   "role r2 { allow service dns, service kafka from network internal }\n"
                   "role r3 { allow service kafka, service dns from network internal }\n")
    model, diags = compile_text(text)
    assert model is not None, [d.message for d in errors(diags)]
    want = (m.PortMatch("tcp", 53, 53), m.PortMatch("tcp", 9092, 9093), m.PortMatch("udp", 53, 53))
    for role in ("r1", "r2", "r3"):
        assert model.roles[role].rules[0].ports == want


def test_a_hosts_cidrs_equal_what_a_set_gives():
    model, _ = compile_text(BASE)
    assert model is not None
    hosts = sorted(model.hosts)
    text = BASE + "".join(f"role to-{h} {{ connect tcp 1 to host {h} }}\n" for h in hosts)
    model, diags = compile_text(text)
    assert model is not None, [d.message for d in errors(diags)]
    ends = {e.name: e.cidrs for f in model.flows for e in f.destinations if e.kind == "host"}
    assert sorted(ends) == hosts and len(hosts) >= 5
    for name, cidrs in ends.items():
        assert cidrs == m.family_sorted(IPSet(model.hosts[name].addresses).iter_cidrs()), name
    assert any(len(c) == 2 for c in ends.values())  # a host with both families among them


def test_two_adjacent_addresses_of_one_host_are_still_merged():
    # kafka1001 gets a second IPv4 address next to a first one on an even boundary: one /31
    text = BASE.replace("host kafka1001 10.64.0.10 2620:0:861:101::10",
                        "host kafka1001 10.64.0.10 10.64.0.11 2620:0:861:101::10")
    text += "role r1 { connect tcp 1 to host kafka1001 }\n"
    model, diags = compile_text(text)
    assert model is not None, [d.message for d in errors(diags)]
    ends = {e.cidrs for f in model.flows for e in f.destinations if e.kind == "host" and e.name == "kafka1001"}
    assert ends == {(IPNetwork("10.64.0.10/31"), IPNetwork("2620:0:861:101::10/128"))}
    assert IPAddress("10.64.0.11") in model.hosts["kafka1001"].addresses


def test_a_wide_network_is_reported_at_every_statement():
    text = BASE + ("network half = 0.0.0.0/1\n"
                   "role r1 { allow tcp 22 from network half }\n"
                   "role r2 { allow tcp 22 from network half }\n")
    _, diags = compile_text(text)
    wide = [d for d in errors(diags) if d.code == "E701"]
    assert len({d.span.line for d in wide}) == 2

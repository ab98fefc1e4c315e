"""Safe defaults: a sensitive port open to any address needs `exposed "why"` (E701, E702, W006);
egress holding the internet must name `internet` (E703); every kind of statement with `expires`
is reported (W001); the lock-out guard covers every host with a firewall (F001, W007).

Each case is a small file `t.npl` beside the lab below; the expected line and column of each
finding are counted by hand from the case's text (the peer, or the option, it is about).
"""

from __future__ import annotations

import pytest
from conftest import compile_sources, errors
from netaddr import IPNetwork, IPSet

from compiler import analysis, exposure
from compiler.model import Endpoint
from compiler.ranges import Ranges

LAB = """\
site lab {
  router cr1-lab loopback 198.51.100.1 2001:db8:ffff::1 asn 65000
  row a {
    switch asw-a-lab
    subnet 10.1.0.0/24 2001:db8:1::/64
    gateway 10.1.0.1 2001:db8:1::1
    rack a1 {
      host bast1 10.1.0.10 2001:db8:1::10 roles bastion
      host db1 10.1.0.12 2001:db8:1::12 roles node
      host node1 10.1.0.21 2001:db8:1::21 roles node
    }
  }
}
cluster k1 {
  site lab
  asn 64601
  pods 10.2.0.0/16 2001:db8:2::/64
  nodes role node
  peer-with routers
}
role bastion {
  ssh-gateway
  allow tcp 22 from role bastion
}
role node { allow tcp 22 from role bastion }
default role base {
  allow tcp 9100 from 10.1.0.0/24
}
"""


def run(case: str, lab: str = LAB):
    """Compile with the lock-out guard, as `compile` does."""
    model, diags = compile_sources({"lab.npl": lab, "t.npl": case})
    if model is not None:
        diags = diags + [f.as_diagnostic() for f in analysis.lockout(model)]
    return model, diags


def found(diags, code: str) -> set[tuple[str, int, int]]:
    return {(d.span.file, d.span.line, d.span.column) for d in diags if d.code == code}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), start=1) if needle in line)


# ---------------------------------------------------------------------------- E701

@pytest.mark.parametrize(("case", "where"), [
    ("role db {\n  allow tcp 5432 from any\n}\n", [(2, 23)]),                     # PostgreSQL
    ("role db {\n  allow tcp 22 from network everywhere\n}\n"
     "network everywhere = 0.0.0.0/1, 128.0.0.0/1\n", [(2, 29)]),                   # two /1s are any address
    ("role db {\n  allow any from internet\n}\n", [(2, 18)]),                       # every port
    ("role db {\n  allow tcp from 0.0.0.0/0\n}\n", [(2, 18)]),                      # every TCP port
    ("role db {\n  allow udp 11211 from ::/0\n}\n", [(2, 24)]),                     # memcached over UDP, all of v6
    ("role db {\n  allow tcp 2000-2400 from any\n}\n", [(2, 28)]),                  # a range over etcd
    ("role db {\n  allow tcp 22 from 10.0.0.0/8, any\n}\n", [(2, 33)]),             # only the peer that is any
    ("app broker {\n  cluster k1\n  listen tcp 9092\n  allow from any\n}\n", [(4, 14)]),  # `listen` ports
    ("default app all-apps {\n  allow tcp 10250 from internet\n}\n", [(2, 24)]),     # the kubelet, every app
    ("role gw {\n  ssh-gateway\n  allow tcp 22 from any\n}\n", [(3, 21)]),          # the bastion case too
])
def test_sensitive_port_from_anywhere_is_an_error_at_the_peer(case: str, where: list[tuple[int, int]]) -> None:
    model, diags = run(case)
    assert model is None
    assert found(diags, "E701") == {("t.npl", line, col) for line, col in where}
    assert {d.code for d in errors(diags)} == {"E701"}


def test_e701_says_what_and_shows_the_explicit_form() -> None:
    _, diags = run("role db {\n  allow tcp 5432 from any\n}\n")
    (d,) = errors(diags)
    assert d.message == "`any` may reach role db on PostgreSQL (tcp 5432), a sensitive port"
    assert '`allow tcp 5432 from any exposed "' in d.hint
    _, diags = run("role gw {\n  ssh-gateway\n  allow tcp 22 from any\n}\n")  # the bastion case
    (d,) = errors(diags)
    assert d.hint.startswith("an SSH gateway is the way in from outside") and "exposed" in d.hint


def test_the_default_role_is_checked_too() -> None:
    nodes = "  allow tcp 9100 from 10.1.0.0/24\n"
    lab = LAB.replace(nodes, nodes + "  allow tcp 3306 from any\n")
    _, diags = run("", lab)
    assert found(diags, "E701") == {("lab.npl", line_of(lab, "tcp 3306 from any"), 23)}
    assert "default role base" in errors(diags)[0].message


@pytest.mark.parametrize("case", [
    "role db {\n  allow tcp 443 from any\n}\n",                     # not sensitive
    "role db {\n  allow tcp 5432 from 10.0.0.0/8\n}\n",             # not any address
    "role db {\n  allow tcp 5432 from 0.0.0.0/2\n}\n",              # a quarter of v4 is not any address
    "role db {\n  allow tcp 6443 from any\n}\n",                    # exposed with care: lint warns (L031)
    "role db {\n  allow icmp, icmpv6 from any\n}\n",                # ICMP is no port
    "role db {\n  connect tcp 22 to role node\n}\n",                # the source is the role, not any address
])
def test_what_is_not_e701(case: str) -> None:
    model, diags = run(case)
    assert model is not None, [str(d) for d in errors(diags)]
    assert not found(diags, "W006")


def test_exposed_says_it_and_keeps_the_reason() -> None:
    model, diags = run('role db {\n  allow tcp 5432 from any exposed "the vendor\'s replica"\n}\n')
    assert model is not None and not found(diags, "W006")
    (rule,) = model.roles["db"].rules
    assert rule.exposed == "the vendor's replica"
    model, diags = run('role db {\n  allow tcp 6443 from any exposed "kubectl"\n}\n')  # with care: used too
    assert model is not None and not found(diags, "W006")


def test_exposed_needs_a_reason_and_is_said_once() -> None:
    _, diags = run('role db {\n  allow tcp 22 from any exposed " "\n}\n')
    assert found(diags, "E702") == {("t.npl", 2, 33)}
    assert not found(diags, "E701")  # said on purpose, just without a reason
    _, diags = run('role db {\n  allow tcp 22 from any exposed "a" exposed "b"\n}\n')
    assert found(diags, "E611") == {("t.npl", 2, 37)}


def test_exposed_where_nothing_sensitive_is_open_is_a_warning() -> None:
    model, diags = run('role db {\n  allow tcp 443 from any exposed "x"\n}\n')
    assert model is not None and found(diags, "W006") == {("t.npl", 2, 26)}
    model, diags = run('app web {\n  cluster k1\n  connect tcp 443 to internet exposed "x"\n}\n')
    assert model is not None and found(diags, "W006") == {("t.npl", 3, 31)}


# ---------------------------------------------------------------------------- E703

@pytest.mark.parametrize(("case", "where"), [
    ("role db {\n  connect tcp 443 to any\n}\n", (2, 22)),
    ("role db {\n  connect tcp 443 to 0.0.0.0/0\n}\n", (2, 22)),
    ("role db {\n  connect tcp 443 to ::/0\n}\n", (2, 22)),
    ("role db {\n  connect tcp 443 to 16.0.0.0/7\n}\n", (2, 22)),            # two /8s of public space
    ("role db {\n  connect tcp 443 to 2000::/3\n}\n", (2, 22)),              # IPv6's global unicast
    ("role db {\n  connect tcp 443 to network outside\n}\n"
     "network outside = 0.0.0.0/1\n", (2, 30)),                               # a network of them
    ("app web {\n  cluster k1\n  connect tcp 443 to any\n}\n", (3, 22)),
    ("default app all-apps {\n  connect icmp to any\n}\n", (2, 19)),
    ("default role everyone {\n  connect tcp 80 to any\n}\n", (2, 21)),
])
def test_egress_to_the_internet_must_name_it(case: str, where: tuple[int, int]) -> None:
    lab = LAB.replace("default role base", "role base") if case.startswith("default role") else LAB
    model, diags = run(case, lab)
    assert model is None
    assert found(diags, "E703") == {("t.npl", *where)}
    assert "`internet`" in errors(diags)[0].hint


@pytest.mark.parametrize("case", [
    "role db {\n  connect tcp 443 to internet\n}\n",
    "role db {\n  connect tcp 443 to internet, 10.0.0.0/8\n}\n",
    "role db {\n  connect tcp 443 to network world\n}\nnetwork world = internet, 10.0.0.0/8\n",
    "role db {\n  connect tcp 443 to network w2\n}\n"
    "network world = internet\nnetwork w2 = network world except 8.8.8.8\n",
    "role db {\n  connect tcp 443 to 17.0.0.0/8\n}\n",              # one /8: one organisation
    "role db {\n  connect tcp 443 to 2001:4860::/32\n}\n",         # one organisation's IPv6
    "role db {\n  connect any to 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7\n}\n",  # private space
    "role db {\n  connect any to site lab\n}\n",                     # our own, public ranges too
])
def test_what_is_not_e703(case: str) -> None:
    model, diags = run(case)
    assert model is not None, [str(d) for d in errors(diags)]


def test_public_share_counts_only_addresses_of_internet() -> None:
    private = Ranges(IPSet(["10.0.0.0/8", "16.0.0.0/8"]))  # as if the estate held 16.0.0.0/8
    wide = Endpoint("cidr", "16.0.0.0/7", (IPNetwork("16.0.0.0/7"),), (), None)  # type: ignore[arg-type]
    assert not exposure.internet_wide(wide, private)  # one public /8 left: not more than a /8
    assert exposure.internet_wide(wide, Ranges(IPSet(["10.0.0.0/8"])))
    assert private.shared(IPNetwork("8.0.0.0/6")) == 2 ** 24  # 8-11.x.x.x holds 10.0.0.0/8
    assert private.shared(IPNetwork("10.255.255.0/24")) == 256
    assert private.shared(IPNetwork("9.0.0.0/8")) == 0


# ---------------------------------------------------------------------------- W001

def test_every_kind_of_statement_with_expires_is_reported() -> None:
    case = ("role db {\n  allow tcp 8080 from 10.0.0.0/8 expires 2026-01-01\n}\n"
            "app web {\n  cluster k1\n  listen tcp 80\n  connect tcp 443 to internet expires 2026-11-24\n}\n"
            "default app all-apps {\n  allow tcp 9102 from 10.0.0.0/8 expires 2025-12-31\n"
            "  allow tcp 9103 from 10.0.0.0/8 expires 2026-11-25\n}\n")  # expires today: still in force
    lab = LAB.replace("  allow tcp 9100 from 10.1.0.0/24\n", "  allow tcp 9100 from 10.1.0.0/24 expires 2026-11-01\n")
    model, diags = run(case, lab)
    assert model is not None
    assert found(diags, "W001") == {("t.npl", 2, 3), ("t.npl", 7, 3), ("t.npl", 10, 3),
                                    ("lab.npl", line_of(lab, "expires 2026-11-01"), 3)}


# ---------------------------------------------------------------------------- the lock-out guard

FAR = """\
site far {
  row a {
    switch asw-a-far
    subnet 10.9.0.0/24 2001:db8:9::/64
    rack r1 {
      host far1 10.9.0.10 2001:db8:9::10 roles far
    }
  }
}
"""


def test_a_host_in_a_site_without_a_bastion_is_guarded() -> None:
    model, diags = run(FAR + "role far { allow tcp 22 from role bastion }\n")
    assert model is not None and not found(diags, "F001")
    _, diags = run(FAR + "role far { allow tcp 80 from any }\n")  # no SSH from the bastions of lab
    assert found(diags, "F001") == {("t.npl", 6, 7)}
    assert "bast1" in errors(diags)[0].message


def test_a_host_no_bastion_can_reach_is_a_warning() -> None:
    lab = LAB.replace("host bast1 10.1.0.10 2001:db8:1::10", "host bast1 10.1.0.10")  # IPv4 bastion
    far = FAR.replace("host far1 10.9.0.10 2001:db8:9::10", "host far1 2001:db8:9::10")  # IPv6-only host
    model, diags = run(far + "role far { allow tcp 80 from any }\n", lab)
    assert model is not None
    assert found(diags, "W007") == {("t.npl", 6, 7)}
    assert not found(diags, "F001")

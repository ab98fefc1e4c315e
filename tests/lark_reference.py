"""The parser as it was before `compiler.lalr`: lark's own lexer, tree and Transformer.

Kept as the reference `tests/test_lexer.py` checks the fast parser against:
same grammar, same keyword callback, lark's contextual lexer, a lark Tree with
propagated positions, then this Transformer (unchanged from the old parser).
"""

from __future__ import annotations

import functools
from typing import Any

from lark import Lark, Token, Transformer, v_args

from compiler import syntax as s
from compiler.diagnostics import Span
from compiler.parser import GRAMMAR_PATH, _keyword_as_name, _token_span


@functools.cache
def reference_lark() -> Lark:
    """The Lark instance the old parser used, built here from the same grammar file."""
    return Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=True, lexer_callbacks={"NAME": _keyword_as_name})


def reference_parse(path: str, text: str) -> s.File:
    """The old `parse_text` on valid input; lark's exception on invalid input."""
    return _ToSyntax(path).transform(reference_lark().parse(text))


def _first(items: list, cls: type) -> Any:
    return next((i for i in items if isinstance(i, cls)), None)


def _all(items: list, cls: type) -> tuple:
    return tuple(i for i in items if isinstance(i, cls))


@v_args(meta=True)
class _ToSyntax(Transformer):
    """Turns the lark tree into `compiler.syntax` nodes with spans."""

    def __init__(self, path: str):
        super().__init__(visit_tokens=True)
        self.path = path

    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 1, 1, 1, 1)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # tokens -----------------------------------------------------------
    @v_args(meta=False, inline=False)
    def NAME(self, tok: Token) -> s.Name:  # noqa: N802 - lark callback names follow terminals
        return s.Name(str(tok), _token_span(self.path, tok))

    @v_args(meta=False, inline=False)
    def INT(self, tok: Token) -> s.Int:  # noqa: N802
        return s.Int(int(tok), _token_span(self.path, tok))

    @v_args(meta=False, inline=False)
    def ADDRESS(self, tok: Token) -> s.Address:  # noqa: N802
        return s.Address(str(tok), _token_span(self.path, tok))

    @v_args(meta=False, inline=False)
    def STRING(self, tok: Token) -> s.Text:  # noqa: N802
        raw = str(tok)[1:-1]
        value = raw.replace('\\"', '"').replace("\\\\", "\\")
        return s.Text(value, _token_span(self.path, tok))

    @v_args(meta=False, inline=False)
    def DATE(self, tok: Token) -> s.Text:  # noqa: N802
        return s.Text(str(tok), _token_span(self.path, tok))

    # shared pieces ----------------------------------------------------
    def start(self, meta, items):
        return s.File(self.path, tuple(items))

    def block_description(self, meta, items):
        return ("block_description", items[0])

    def stmt_description(self, meta, items):
        return items[0]

    def name_list(self, meta, items):
        return tuple(items)

    def ref(self, meta, items):
        return s.Ref(tuple(i for i in items if i is not None), self._span(meta))

    def peer_kind(self, meta, items):
        return str(items[0])

    def typed_peer(self, meta, items):
        return s.TypedPeer(items[0], items[1], self._span(meta))

    def bare_peer(self, meta, items):
        return s.BarePeer(items[0], self._span(meta))

    def address_peer(self, meta, items):
        return s.AddressPeer(items[0], self._span(meta))

    def any_peer(self, meta, items):
        return s.AnyPeer(self._span(meta))

    def internet_peer(self, meta, items):
        return s.InternetPeer(self._span(meta))

    def peer_list(self, meta, items):
        return tuple(items)

    # ports ------------------------------------------------------------
    def protocol(self, meta, items):
        return str(items[0])

    icmp_protocol = protocol

    def port_range(self, meta, items):
        return (items[0], items[1])

    def proto_ports(self, meta, items):
        first, last = items[1] if items[1] else (None, None)
        return s.ProtoPorts(items[0], first, last, self._span(meta))

    def bare_ports(self, meta, items):
        first, last = items[0]
        return s.BarePorts(first, last, self._span(meta))

    def icmp_named(self, meta, items):
        return ("named", items[0])

    def icmp_numbered(self, meta, items):
        return ("numbered", items[0], items[1])

    def icmp_ports(self, meta, items):
        proto, match = items[0], items[1]
        name = number = code = None
        if match and match[0] == "named":
            name = match[1]
        elif match:
            number, code = match[1], match[2]
        return s.IcmpPorts(proto, name, number, code, self._span(meta))

    def service_ref(self, meta, items):
        return s.ServiceRef(items[0], self._span(meta))

    def any_protocol(self, meta, items):
        return s.AnyProtocol(self._span(meta))

    def port_list(self, meta, items):
        return tuple(items)

    # topology ---------------------------------------------------------
    @staticmethod
    def _block_description(items: list) -> s.Text | None:
        for i in items:
            if isinstance(i, tuple) and i and i[0] == "block_description":
                return i[1]
        return None

    def site(self, meta, items):
        return s.Site(items[0], self._block_description(items), _all(items, s.Router), _all(items, s.Spine),
                      _all(items, s.Row), self._span(meta))

    def router(self, meta, items):
        return s.Router(items[0], _all(items, s.Address), _first(items, s.Int), _first(items, s.Text),
                        self._span(meta))

    def row(self, meta, items):
        return s.Row(items[0], self._block_description(items), _all(items, s.Switch), _all(items, s.Spine),
                     _all(items, s.Subnet), _all(items, s.Gateway), _all(items, s.Rack), self._span(meta))

    def rack(self, meta, items):
        return s.Rack(items[0], self._block_description(items), _all(items, s.Switch), _all(items, s.Subnet),
                      _all(items, s.Gateway), _all(items, s.Host), self._span(meta))

    def switch(self, meta, items):
        return s.Switch(items[0], items[1], items[2], self._span(meta))

    def spine(self, meta, items):
        return s.Spine(items[0], items[1], items[2] or (), items[3], self._span(meta))

    def subnet(self, meta, items):
        return s.Subnet(_all(items, s.Address), _first(items, s.Text), self._span(meta))

    def gateway(self, meta, items):
        return s.Gateway(_all(items, s.Address), self._span(meta))

    def host(self, meta, items):
        roles = next((i for i in items if isinstance(i, tuple)), ())
        return s.Host(items[0], _all(items, s.Address), roles, _first(items, s.Text), self._span(meta))

    # clusters ---------------------------------------------------------
    def _setting(keyword: str):  # noqa: N805 - a factory used in the class body
        def make(self, meta, items):
            return s.Setting(keyword, tuple(i for i in items if i is not None), self._span(meta))
        return make

    cluster_site = _setting("site")
    cluster_asn = _setting("asn")
    cluster_pods = _setting("pods")
    cluster_services = _setting("services")
    cluster_nodes = _setting("nodes")
    cluster_control_plane = _setting("control-plane")
    cluster_etcd = _setting("etcd")
    cluster_peering = _setting("peer-with")
    cluster_survive = _setting("survive")
    cluster_single_uplink = _setting("single-uplink")
    app_clusters = _setting("clusters")
    app_namespace = _setting("namespace")
    app_listen = _setting("listen")

    def peering_mode(self, meta, items):
        return tuple(str(i) if isinstance(i, Token) else i for i in items)

    def failure(self, meta, items):
        return s.Name(str(items[0]), _token_span(self.path, items[0]))

    def cluster(self, meta, items):
        return s.Cluster(items[0], self._block_description(items), _all(items, s.Setting), self._span(meta))

    # names ------------------------------------------------------------
    def network(self, meta, items):
        return s.Network(items[0], items[1], items[2] or (), items[3], self._span(meta))

    def service(self, meta, items):
        return s.Service(items[0], items[1], items[2], self._span(meta))

    # intent -----------------------------------------------------------
    def expires(self, meta, items):
        return s.Expires(items[0].value, self._span(meta))

    def _rule(verb: str):  # noqa: N805
        def make(self, meta, items):
            ports = items[0]
            peers = items[1]
            rest = items[2:]
            return s.Rule(verb, ports, peers, _all(rest, s.Text), _all(rest, s.Expires), _all(rest, s.OnlyIn),
                          self._span(meta), _all(rest, s.Exposed))
        return make

    def exposed(self, meta, items):
        return s.Exposed(items[0], self._span(meta))

    def only_in(self, meta, items):
        return s.OnlyIn(tuple(items[0]), self._span(meta))

    allow = _rule("allow")
    connect = _rule("connect")

    def no_firewall(self, meta, items):
        return ("no_firewall", self._span(meta))

    def ssh_gateway(self, meta, items):
        return ("ssh_gateway", self._span(meta))

    def role(self, meta, items):
        default = items[0] is not None
        rest = items[1:]
        no_fw = tuple(i[1] for i in rest if isinstance(i, tuple) and i and i[0] == "no_firewall")
        gateway = tuple(i[1] for i in rest if isinstance(i, tuple) and i and i[0] == "ssh_gateway")
        return s.Role(rest[0], default, self._block_description(rest), _all(rest, s.Rule), no_fw, self._span(meta),
                      gateway)

    def app(self, meta, items):
        default = items[0] is not None
        rest = items[1:]
        return s.App(rest[0], default, self._block_description(rest), _all(rest, s.Setting), _all(rest, s.Rule),
                     self._span(meta))

"""Source text to syntax tree, with syntax errors turned into diagnostics.

The grammar lives in `grammar/netpolc.lark` (LALR, contextual lexer). A file
with a syntax error reports its first one; the resolver does not run on a
project with syntax errors, since a half-read file would only add noise.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import syntax as s
from .diagnostics import Diagnostics, Span, did_you_mean

GRAMMAR_PATH = Path(__file__).resolve().parent.parent / "grammar" / "netpolc.lark"

_TERMINAL_WORDS = {
    "NAME": "a name",
    "ADDRESS": "an address",
    "INT": "a number",
    "STRING": "a quoted string",
    "DATE": "a date (YYYY-MM-DD)",
    "$END": "end of file",
}


@functools.cache
def _parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=True, lexer_callbacks={"NAME": _keyword_as_name})


@functools.cache
def _keyword_types() -> dict[str, str]:
    """Keyword text to its terminal name, e.g. `role` -> ROLE."""
    return {t.pattern.value: t.name for t in _parser().terminals
            if t.pattern.type == "str" and t.pattern.value[:1].isalpha()}


# Keywords that are names where only a name fits: `role etcd`, `namespace default`,
# `role tor`. Every other keyword is reserved everywhere. None of these can start a
# peer, so a name spelled like one never changes the meaning of a peer list
# (`network foo, internet` must never read a network called `internet`).
CONTEXTUAL = frozenset({"etcd", "default", "tor", "routers", "nodes", "pods", "services", "spine", "gateway",
                        "ssh-gateway"})


def _keyword_as_name(tok: Token) -> Token:
    """Keep a reserved word a keyword even where only a name is expected.

    The contextual lexer lexes `role` as a NAME wherever the keyword `role` cannot
    come next, so `role role {}` would declare a role named `role`; retyping the
    token makes the parser reject it ("expected a name, found keyword").
    """
    if str(tok) in CONTEXTUAL:
        return tok
    kind = _keyword_types().get(str(tok))
    return Token.new_borrow_pos(kind, str(tok), tok) if kind else tok


def reserved_words() -> set[str]:
    """Keywords that can never be names (the contextual ones are names where only a name fits)."""
    return keywords() - CONTEXTUAL


def keywords() -> set[str]:
    """Every keyword of the language."""
    out = set()
    for t in _parser().terminals:
        if t.pattern.type == "str" and t.pattern.value[:1].isalpha():
            out.add(t.pattern.value)
    return out


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    for t in _parser().terminals:
        if t.name == name:
            return f"`{t.pattern.value}`" if t.pattern.type == "str" else name.lower()
    return name


def _keyword_of(name: str) -> str | None:
    for t in _parser().terminals:
        if t.name == name and t.pattern.type == "str" and t.pattern.value[:1].isalpha():
            return t.pattern.value
    return None


def _token_span(path: str, tok: Token) -> Span:
    return Span(path, tok.line or 1, tok.column or 1, tok.end_line or tok.line or 1,
                tok.end_column or (tok.column or 1) + len(str(tok)))


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if _keyword_of(tok.type):
        return f"keyword `{tok}`"
    if tok.type not in _TERMINAL_WORDS and any(t.name == tok.type and t.pattern.type == "str"
                                               for t in _parser().terminals):
        return f"`{tok}`"  # punctuation: the terminal's description is the token itself
    return f"{_describe_terminal(tok.type)} `{tok}`"


def _expected(err: UnexpectedInput) -> set[str]:
    """Every terminal the parser could take at the error.

    When the contextual lexer cannot lex a token in the current state it raises
    with the lexer's terminals, which omit keywords (they are lexed through
    NAME); the parse table of the state has the full set.
    """
    state = getattr(err, "state", None)
    table = getattr(getattr(state, "parse_conf", None), "parse_table", None)
    if table is not None and getattr(state, "position", None) in table.states:
        terminals = {t.name for t in _parser().terminals} | {"$END"}
        return set(table.states[state.position]) & terminals  # the table also holds rule gotos
    return set(getattr(err, "expected", set()))


def _syntax_error(path: str, text: str, err: UnexpectedInput, diags: Diagnostics) -> None:
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        span = Span(path, err.line, err.column, err.line, err.column + 1)
        if ch == '"':
            diags.error("E002", "unterminated string", span, "a string ends with `\"` on the same line")
        else:
            diags.error("E002", f"unexpected character `{ch}`", span)
        return
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok = err.token
        span = _token_span(path, tok)
        expected = sorted(_expected(err) - {"$END"})
        words = sorted({_describe_terminal(e) for e in expected})
        expected_text = ", ".join(words[:12]) + (", ..." if len(words) > 12 else "")
        expected_keywords = [k for k in (_keyword_of(e) for e in expected) if k]
        if tok.type == "NAME" and expected_keywords and "NAME" not in expected:
            diags.error("E004", f"unknown keyword `{tok}`", span,
                        did_you_mean(str(tok), expected_keywords) or f"expected one of: {expected_text}")
            return
        if _keyword_of(tok.type) and "NAME" in expected and not expected_keywords:
            # only a name fits here; where keywords fit too (`from service x`) the list below says which
            diags.error("E001", f"expected a name, found keyword `{tok}`", span,
                        "keywords cannot be used as names; choose another name")
            return
        diags.error("E001", f"expected {expected_text}; found {_describe_token(tok)}", span)
        return
    # end of input in the middle of a statement: point just after the last token (lark's
    # $END token borrows its position); lines are counted on "\n" only, as lark counts them
    tok = getattr(err, "token", None)
    if getattr(tok, "end_line", None) and getattr(tok, "end_column", None):
        line, column = tok.end_line, tok.end_column
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    expected = sorted(_expected(err) - {"$END"})
    words = sorted({_describe_terminal(e) for e in expected})
    hint = "a block opened with `{` is not closed" if "RBRACE" in expected else None
    listed = ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")
    diags.error("E003", "unexpected end of file" + (f"; expected {listed}" if words else ""),
                Span(path, line, column, line, column), hint)  # empty: nothing is there to underline


def parse_text(path: str, text: str, diags: Diagnostics) -> s.File | None:
    """Parse one file; on a syntax error, record it and return None."""
    try:
        tree = _parser().parse(text)
    except (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF) as err:
        _syntax_error(path, text, err, diags)
        return None
    return _ToSyntax(path).transform(tree)


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

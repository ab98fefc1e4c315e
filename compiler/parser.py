"""Source text to syntax tree, with syntax errors turned into diagnostics.

The grammar lives in `grammar/netpolc.lark` (LALR, contextual lexer); lark
builds the tables and reports errors, `compiler.lalr` runs them on valid input. A file
with a syntax error reports its first one; the resolver does not run on a
project with syntax errors, since a half-read file would only add noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import lalr
from . import syntax as s
from .diagnostics import Diagnostics, Span, did_you_mean
from .fast_dataclass import constructor

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
    """Parse one file; on a syntax error, record it and return None.

    `compiler.lalr` parses valid input; on its first error lark parses the text
    again, so every diagnostic comes from lark's own exception as it always has.
    """
    build = _Build(path)
    try:
        with gc_paused(large=len(text) > _LARGE):
            ok, declarations = lalr.run(text, _tables(), build.tokens, build.rules())
    except NumberTooLongError as err:
        shown = err.text if len(err.text) <= 24 else f"{err.text[:12]}…{err.text[-6:]}"
        diags.error("E032", f"the number `{shown}` has {len(err.text):,} digits; no value here has more than "
                    f"{MAX_DIGITS}", err.span, "check for a missing space or a pasted value")
        return None
    if ok:
        return s.File(path, tuple(declarations))
    try:
        _parser().parse(text)
    except (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF) as err:
        _syntax_error(path, text, err, diags)
        return None
    raise AssertionError(f"{path}: compiler.lalr rejected a text lark accepts")  # tests/test_lexer.py: never


_LARGE = 1 << 16  # bytes of text: a tree worth moving straight to the oldest GC generation


@contextlib.contextmanager
def gc_paused(large: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector while trees and models are built.

    A tree is a few hundred thousand new objects and no cycles: collecting while
    it grows finds nothing and cost more than the parse (2 MB: 1.2 s of 2.3 s).
    With `large`, what was built lives as long as the compile, so it then goes
    straight to the oldest generation (`gc.freeze` + `gc.unfreeze`: no traversal)
    instead of being traversed once per generation on its way there. Nests:
    the collector runs again only if it ran before the outermost pause.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if large:
            gc.freeze()
            gc.unfreeze()
        if collecting:
            gc.enable()


@functools.cache
def _tables() -> lalr.Tables:
    # lark's NAME callback, _keyword_as_name, as a table: the reserved keywords stay keywords
    reserved = {word: kind for word, kind in _keyword_types().items() if word not in CONTEXTUAL}
    return lalr.build_tables(_parser(), {"NAME": reserved})


def _first(items: list, cls: type) -> Any:
    return next((i for i in items if isinstance(i, cls)), None)


def _all(items: list, cls: type) -> tuple:
    return tuple([i for i in items if isinstance(i, cls)])  # a list comprehension: faster than a generator


def _block_description(items: list) -> s.Text | None:
    for i in items:
        if isinstance(i, tuple) and i and i[0] == "block_description":
            return i[1]
    return None


_MASK = lalr.COLUMN_MASK
_SHIFT = lalr.COLUMN_BITS
_new_span = constructor(Span)
# the syntax classes' constructors, at half the cost (compiler/fast_dataclass.py)
_n = SimpleNamespace(**{name: constructor(cls) for name, cls in vars(s).items()
                        if isinstance(cls, type) and dataclasses.is_dataclass(cls)})


def _span_of(path: str) -> Any:
    """The span of a rule from its packed first and last positions, for one file."""
    empty = lalr.EMPTY_START

    def span(first: int, last: int, new: Any = _new_span, shift: int = _SHIFT, mask: int = _MASK) -> Span:
        if first == empty:
            return Span(path, 1, 1, 1, 1)
        return new(path, first >> shift, first & mask, last >> shift, last & mask)
    return span


MAX_DIGITS = 20  # the largest value of the language, a 4-byte AS number, has 10 digits


class NumberTooLongError(Exception):
    """A number longer than any value of the language: refused before `int()` (which
    refuses strings of over 4,300 digits) or a range check ever sees it."""

    def __init__(self, text: str, span: Span):
        super().__init__(text)
        self.text, self.span = text, span


def _token_builders(path: str) -> dict[str, Any]:
    """A node for each kind of token that carries a value; other tokens stay their text."""
    span, name_, int_, address, text_ = _new_span, _n.Name, _n.Int, _n.Address, _n.Text

    def name(text: str, line: int, column: int, end: int) -> s.Name:
        return name_(text, span(path, line, column, line, end))

    def number(text: str, line: int, column: int, end: int) -> s.Int:
        if len(text) > MAX_DIGITS:
            raise NumberTooLongError(text, span(path, line, column, line, end))
        return int_(int(text), span(path, line, column, line, end))

    def addr(text: str, line: int, column: int, end: int) -> s.Address:
        return address(text, span(path, line, column, line, end))

    def string(text: str, line: int, column: int, end: int) -> s.Text:
        value = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return text_(value, span(path, line, column, line, end))

    def date(text: str, line: int, column: int, end: int) -> s.Text:
        return text_(text, span(path, line, column, line, end))

    return {"NAME": name, "INT": number, "ADDRESS": addr, "STRING": string, "DATE": date}


class _Build:
    """Builds `compiler.syntax` nodes as the parser reduces, one method per rule (or alias).

    A method gets the rule's kept children (lark's rules: no anonymous tokens,
    `None` for an absent `[item]`) and its first and last position, packed.
    """

    def __init__(self, path: str):
        self.path = path
        self.tokens = _token_builders(path)
        self._span = _span_of(path)

    def rules(self) -> list:
        return [None if r.inline else getattr(self, r.name) for r in _tables().rules]

    # shared pieces ----------------------------------------------------
    def start(self, items, first, last):
        return items

    def block_description(self, items, first, last):
        return ("block_description", items[0])

    def stmt_description(self, items, first, last):
        return items[0]

    def name_list(self, items, first, last):
        return tuple(items)

    def ref(self, items, first, last):
        return _n.Ref(tuple([i for i in items if i is not None]), self._span(first, last))

    def peer_kind(self, items, first, last):
        return items[0]  # keyword tokens are their text

    def typed_peer(self, items, first, last):
        return _n.TypedPeer(items[0], items[1], self._span(first, last))

    def bare_peer(self, items, first, last):
        return _n.BarePeer(items[0], self._span(first, last))

    def address_peer(self, items, first, last):
        return _n.AddressPeer(items[0], self._span(first, last))

    def any_peer(self, items, first, last):
        return _n.AnyPeer(self._span(first, last))

    def internet_peer(self, items, first, last):
        return _n.InternetPeer(self._span(first, last))

    def peer_list(self, items, first, last):
        return tuple(items)

    # ports ------------------------------------------------------------
    def protocol(self, items, first, last):
        return items[0]

    icmp_protocol = protocol

    def port_range(self, items, first, last):
        return (items[0], items[1])

    def proto_ports(self, items, first, last):
        low, high = items[1] if items[1] else (None, None)
        return _n.ProtoPorts(items[0], low, high, self._span(first, last))

    def bare_ports(self, items, first, last):
        low, high = items[0]
        return _n.BarePorts(low, high, self._span(first, last))

    def icmp_named(self, items, first, last):
        return ("named", items[0])

    def icmp_numbered(self, items, first, last):
        return ("numbered", items[0], items[1])

    def icmp_ports(self, items, first, last):
        proto, match = items[0], items[1]
        name = number = code = None
        if match and match[0] == "named":
            name = match[1]
        elif match:
            number, code = match[1], match[2]
        return _n.IcmpPorts(proto, name, number, code, self._span(first, last))

    def service_ref(self, items, first, last):
        return _n.ServiceRef(items[0], self._span(first, last))

    def any_protocol(self, items, first, last):
        return _n.AnyProtocol(self._span(first, last))

    def port_list(self, items, first, last):
        return tuple(items)

    # topology ---------------------------------------------------------
    def site(self, items, first, last):
        return _n.Site(items[0], _block_description(items), _all(items, s.Router), _all(items, s.Spine),
                      _all(items, s.Row), self._span(first, last))

    def router(self, items, first, last):
        return _n.Router(items[0], _all(items, s.Address), _first(items, s.Int), _first(items, s.Text),
                        self._span(first, last))

    def row(self, items, first, last):
        return _n.Row(items[0], _block_description(items), _all(items, s.Switch), _all(items, s.Spine),
                     _all(items, s.Subnet), _all(items, s.Gateway), _all(items, s.Rack), self._span(first, last))

    def rack(self, items, first, last):
        return _n.Rack(items[0], _block_description(items), _all(items, s.Switch), _all(items, s.Subnet),
                      _all(items, s.Gateway), _all(items, s.Host), self._span(first, last))

    def switch(self, items, first, last):
        return _n.Switch(items[0], items[1], items[2], self._span(first, last))

    def spine(self, items, first, last):
        return _n.Spine(items[0], items[1], items[2] or (), items[3], self._span(first, last))

    def subnet(self, items, first, last):
        return _n.Subnet(_all(items, s.Address), _first(items, s.Text), self._span(first, last))

    def gateway(self, items, first, last):
        return _n.Gateway(_all(items, s.Address), self._span(first, last))

    def host(self, items, first, last):
        roles = next((i for i in items if isinstance(i, tuple)), ())
        return _n.Host(items[0], _all(items, s.Address), roles, _first(items, s.Text), self._span(first, last))

    # clusters ---------------------------------------------------------
    def _setting(keyword: str):  # noqa: N805 - a factory used in the class body
        def make(self, items, first, last):
            return _n.Setting(keyword, tuple([i for i in items if i is not None]), self._span(first, last))
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

    def peering_mode(self, items, first, last):
        return tuple(items)  # keyword tokens are their text already

    def failure(self, items, first, last):
        return _n.Name(items[0], self._span(first, last))  # one token: the rule's span is the token's

    def cluster(self, items, first, last):
        return _n.Cluster(items[0], _block_description(items), _all(items, s.Setting), self._span(first, last))

    # names ------------------------------------------------------------
    def network(self, items, first, last):
        return _n.Network(items[0], items[1], items[2] or (), items[3], self._span(first, last))

    def service(self, items, first, last):
        return _n.Service(items[0], items[1], items[2], self._span(first, last))

    # intent -----------------------------------------------------------
    def expires(self, items, first, last):
        return _n.Expires(items[0].value, self._span(first, last))

    def _rule(verb: str):  # noqa: N805
        def make(self, items, first, last):
            rest = items[2:]
            return _n.Rule(verb, items[0], items[1], _all(rest, s.Text), _all(rest, s.Expires), _all(rest, s.OnlyIn),
                           self._span(first, last), _all(rest, s.Exposed))
        return make

    def exposed(self, items, first, last):
        return _n.Exposed(items[0], self._span(first, last))

    allow = _rule("allow")
    connect = _rule("connect")

    def only_in(self, items, first, last):
        return _n.OnlyIn(tuple(items[0]), self._span(first, last))

    def no_firewall(self, items, first, last):
        return ("no_firewall", self._span(first, last))

    def ssh_gateway(self, items, first, last):
        return ("ssh_gateway", self._span(first, last))

    def role(self, items, first, last):
        default = items[0] is not None
        rest = items[1:]
        no_fw = tuple(i[1] for i in rest if isinstance(i, tuple) and i and i[0] == "no_firewall")
        gateway = tuple(i[1] for i in rest if isinstance(i, tuple) and i and i[0] == "ssh_gateway")
        return _n.Role(rest[0], default, _block_description(rest), _all(rest, s.Rule), no_fw,
                      self._span(first, last), gateway)

    def app(self, items, first, last):
        default = items[0] is not None
        rest = items[1:]
        return _n.App(rest[0], default, _block_description(rest), _all(rest, s.Setting), _all(rest, s.Rule),
                     self._span(first, last))

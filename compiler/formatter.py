"""The canonical layout of a `.npl` file, for `netpolc fmt`.

The formatter works on the token stream, not on the syntax tree: the file is
parsed with the language's own grammar (every token kept), the parse tree says
where statements and blocks begin and end, and the comments, which the grammar
ignores, are recovered from the text between tokens. The output is the same
tokens, in the same order, laid out by these rules:

- one statement per line, indented two spaces per enclosing block; a block's
  `{` ends its statement's line and its `}` stands alone, at the statement's
  indentation; an empty block is written `{}`;
- one space between the tokens of a statement, except: none before `,` and `%`,
  and none around the `/` of `site/row` and the `-` of a port range;
- a statement may continue on further lines where its author broke it, but only
  after a list's `,` (the next line is aligned with the list's first item) or
  before a clause keyword (`from`, `to`, `except`, `roles`, `uplink`, `for`,
  `cluster-id`, `in`, `expires`, `exposed`, `description`; the next line is indented one
  level more than the statement); any other line break inside a statement is
  joined;
- strings are requoted: a quote and a backslash are escaped with a backslash,
  nothing else is (the value stays the same);
- comments are kept, each where it was: a comment on a line of its own stays on
  a line of its own, indented as the statements around it (or as a continuation
  line inside a statement); an end-of-line comment stays after the token it
  followed, two spaces after the code, and the end-of-line comments of a
  group of lines (up to a blank line, a full-line comment or a line holding
  `{` or `}`) are aligned in one column;
- blank lines between statements and comments are kept, a run of them as one;
  none at the start or end of the file or of a block body, nor inside a
  statement;
- statements are never reordered, settings included (the comments around
  them would have to move with them); long lines are not wrapped; trailing
  whitespace is removed; the file ends with one newline.

Meaning cannot change: `format_text` re-reads its own output and fails (rather
than return it) unless the tokens and comments are exactly the original ones.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from .parser import GRAMMAR_PATH, _keyword_as_name

INDENT = "  "
BLOCKS = frozenset({"site", "row", "rack", "cluster", "role", "app"})
# keywords a statement may be broken before (the break is kept where the author made it)
CLAUSE_KEYWORDS = frozenset({"from", "to", "except", "roles", "uplink", "for", "cluster-id", "in", "expires",
                             "description", "exposed"})
_VALUE_TERMINALS = frozenset({"NAME", "INT", "ADDRESS", "STRING", "DATE"})
_LIST_ITEM_TOKENS = frozenset({"NAME", "INT", "ADDRESS"})


class FormatError(Exception):
    """The text does not parse (`syntax`), or formatting it would change its tokens or comments (a bug)."""

    def __init__(self, message: str, syntax: bool):
        super().__init__(message)
        self.syntax = syntax


@functools.cache
def _parser() -> Lark:
    """The compiler's grammar and lexer, keeping every token (keywords and punctuation too) in the tree."""
    return Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                keep_all_tokens=True, maybe_placeholders=False, lexer_callbacks={"NAME": _keyword_as_name})


@dataclass
class _Tok:
    tok: Token
    depth: int  # block nesting level of the statement the token belongs to
    stmt: int  # the statement it belongs to (a block's `{` and `}` belong to the block's statement)
    list_first: int | None = None  # for a list's `,`: index of the list's first token

    @property
    def text(self) -> str:
        return str(self.tok)

    @property
    def is_open(self) -> bool:
        return self.tok.type == "LBRACE"

    @property
    def is_close(self) -> bool:
        return self.tok.type == "RBRACE"

    @property
    def is_comma(self) -> bool:
        return self.tok.type == "COMMA"


def _flatten(tree: Tree) -> list[_Tok]:
    """The file's tokens in order, each with its statement and depth."""
    out: list[_Tok] = []
    counter = itertools.count()

    def leaves(node: Tree, depth: int, sid: int) -> None:
        first: int | None = None
        for child in node.children:
            if first is None and (isinstance(child, Tree) or child.type in _LIST_ITEM_TOKENS):
                first = len(out)
            if isinstance(child, Tree):
                leaves(child, depth, sid)
            else:
                out.append(_Tok(child, depth, sid, first if child.type == "COMMA" else None))

    def statement(node: Tree, depth: int) -> None:
        sid = next(counter)
        if node.data not in BLOCKS:
            leaves(node, depth, sid)
            return
        for child in node.children:
            if isinstance(child, Tree):
                statement(child, depth + 1)
            else:
                out.append(_Tok(child, depth, sid))

    for child in tree.children:
        statement(child, 0)
    return out


def unquote(raw: str) -> str:
    """A STRING token's value, exactly as the compiler's parser reads it."""
    return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token_text(tok: Token) -> str:
    return quote(unquote(str(tok))) if tok.type == "STRING" else str(tok)


@dataclass
class _Gap:
    """The text between two tokens: an end-of-line comment, then full lines (comments and blanks)."""

    eol: str | None
    items: list[str | None]  # a comment's text, or None for a blank line
    newline: bool  # whether the gap holds a line break at all

    @property
    def comments(self) -> list[str]:
        return ([self.eol] if self.eol else []) + [i for i in self.items if i is not None]


def _gap(text: str, after_token: bool) -> _Gap:
    lines = text.split("\n")
    eol = None
    if after_token:
        head, lines = lines[0], lines[1:]
        if "#" in head:
            eol = head[head.index("#"):].rstrip()
    else:
        lines = lines or [""]
    items: list[str | None] = []
    for j, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            items.append(stripped)
        elif not stripped and j < len(lines) - 1:  # the last piece is the start of the next token's line
            items.append(None)
    return _Gap(eol, items, len(text.split("\n")) > 1)


def _inline_separator(a: _Tok, b: _Tok) -> str:
    if b.text in (",", "%") and b.tok.type not in _VALUE_TERMINALS:
        return ""
    for t in (a, b):
        if t.tok.type in ("SLASH", "MINUS"):
            return ""
    return " "


def _may_break(a: _Tok, b: _Tok) -> bool:
    return a.is_comma or (b.text in CLAUSE_KEYWORDS and b.tok.type not in _VALUE_TERMINALS)


class _Writer:
    """Output lines; a line is [code, end-of-line comment or None, whether it ends an alignment group]."""

    def __init__(self) -> None:
        self.lines: list[list] = []

    @property
    def column(self) -> int:
        return len(self.lines[-1][0]) if self.lines else 0

    def newline(self, indent: int) -> None:
        self.lines.append([" " * indent, None, False])

    def text(self, s: str, brace: bool = False) -> None:
        if not self.lines:
            self.newline(0)
        self.lines[-1][0] += s
        self.lines[-1][2] |= brace

    def full_comment(self, indent: int, comment: str) -> None:
        self.lines.append([" " * indent + comment, None, True])

    def blank(self) -> None:
        self.lines.append(["", None, True])

    def eol(self, comment: str) -> None:
        self.lines[-1][1] = comment

    def render(self) -> str:
        """The lines, end-of-line comments aligned per group.

        A group is a run of lines between blank lines, full-line comments and lines holding a
        `{` or `}` (such a line is a group of its own); its comments start two spaces after the
        longest code among its lines that have a comment.
        """
        groups: list[list[list]] = [[]]
        for line in self.lines:
            if line[2]:
                groups += [[line], []]
            else:
                groups[-1].append(line)
        out: list[str] = []
        for group in groups:
            width = max((len(code) for code, comment, _ in group if comment is not None), default=0)
            for code, comment, _ in group:
                out.append(code.rstrip() if comment is None else code + " " * (width - len(code) + 2) + comment)
        return "\n".join(out) + "\n" if out else ""


def _emit_gap_lines(w: _Writer, gap: _Gap, indent: int, blank_before: bool, blank_after: bool) -> None:
    """Full-line comments of a gap at `indent`; blank lines, one for a run, where both sides have something."""
    seen = blank_before
    pending = False
    for item in gap.items:
        if item is None:
            pending = seen
            continue
        if pending:
            w.blank()
        w.full_comment(indent, item)
        seen, pending = True, False
    if pending and blank_after:
        w.blank()


def _layout(text: str, toks: list[_Tok]) -> tuple[str, list[str]]:
    """The formatted text, and every comment in order."""
    w = _Writer()
    comments: list[str] = []
    columns: list[int] = []  # output column of each token
    if not toks:
        gap = _gap(text, after_token=False)
        comments += gap.comments
        _emit_gap_lines(w, gap, 0, False, False)
        return w.render(), comments

    gap = _gap(text[:toks[0].tok.start_pos], after_token=False)
    comments += gap.comments
    _emit_gap_lines(w, gap, 0, False, True)
    w.newline(0)
    columns.append(w.column)
    w.text(_token_text(toks[0].tok))

    for i in range(1, len(toks)):
        a, b = toks[i - 1], toks[i]
        gap = _gap(text[a.tok.end_pos:b.tok.start_pos], after_token=True)
        comments += gap.comments
        if gap.eol:
            w.eol(gap.eol)
        has_comments = bool(gap.eol) or any(item is not None for item in gap.items)
        if a.is_open and b.is_close:
            kind = "empty"
        elif a.is_open:
            kind = "open"
        elif b.is_close:
            kind = "close"
        elif a.stmt != b.stmt:
            kind = "statement"
        else:
            kind = "inline"

        if kind == "inline":
            cont = columns[a.list_first] if a.is_comma and a.list_first is not None else (a.depth + 1) * len(INDENT)
            if has_comments:
                _emit_gap_lines(w, gap, cont, False, False)
                w.newline(cont)
            elif gap.newline and _may_break(a, b):
                w.newline(cont)
            else:
                w.text(_inline_separator(a, b))
        elif kind == "empty" and not has_comments:
            pass
        else:
            if kind == "statement":
                comment_indent, blank_before, blank_after = b.depth, True, True
            elif kind == "open":
                comment_indent, blank_before, blank_after = b.depth, False, True
            else:  # close, or an empty block holding comments
                comment_indent, blank_before, blank_after = b.depth + 1, kind != "empty", False
            _emit_gap_lines(w, gap, comment_indent * len(INDENT), blank_before, blank_after)
            w.newline(b.depth * len(INDENT))
        columns.append(w.column)
        w.text(_token_text(b.tok), brace=b.is_open or b.is_close)

    gap = _gap(text[toks[-1].tok.end_pos:], after_token=True)
    comments += gap.comments
    if gap.eol:
        w.eol(gap.eol)
    _emit_gap_lines(w, gap, 0, True, False)
    return w.render(), comments


def _read(text: str) -> list[_Tok]:
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise FormatError(f"syntax error at line {err.line}, column {err.column}", syntax=True) from None
    return _flatten(tree)


def _signature(toks: list[_Tok]) -> list[tuple[str, str]]:
    return [(t.tok.type, unquote(t.text) if t.tok.type == "STRING" else t.text) for t in toks]


def format_text(text: str) -> str:
    """`text` in the canonical layout. Raises FormatError when it does not parse."""
    toks = _read(text)
    out, comments = _layout(text, toks)
    try:
        again = _read(out)
    except FormatError as err:
        raise FormatError(f"the formatted text does not parse ({err})", syntax=False) from None
    if _signature(again) != _signature(toks) or _layout(out, again)[1] != comments:
        raise FormatError("formatting would change the tokens or comments", syntax=False)
    return out

"""A lean LALR driver over lark's own tables: lexing, parsing and building in one loop.

Why: lark's generic pipeline (a `Token` object per token, a `Tree` per rule,
positions propagated through `meta`, then a `Transformer` pass) costs about
eighty times a plain regex scan of the same text. This module keeps everything
that decides *what* is parsed from lark, the grammar, its LALR table, its
terminal order and its keyword rules, and only runs it with less machinery:

- the lexer is lark's contextual lexer rebuilt as one compiled regex per parser
  state (the terminals that state accepts, ordered as lark orders them, keywords
  folded into the terminal that also matches them as lark's "unless" does),
  with whitespace and comments skipped by a possessive prefix of the same regex;
- the parser is lark's LALR table, with lark's rules for which children a rule
  keeps (filtered tokens, inlined `_rules`, `None` for an absent `[item]`);
- a rule's position is its first to last token, which is what lark's
  `propagate_positions` gives; a stack entry keeps its start as one packed int,
  and a rule ends with the last token read (its children are the top of the stack).

It only handles valid input: on the first lexing or parsing error it gives up
and the caller runs lark itself, whose exceptions carry the details the
diagnostics need. `tests/test_lexer.py` checks tokens and trees against lark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark import Lark
from lark.grammar import Rule as LarkRule
from lark.lexer import PatternRE, PatternStr, TerminalDef
from lark.parsers.lalr_analysis import Shift

END = "$END"
_EOF_GROUP = "_EOF"  # not a lark terminal name: those are upper case
EMPTY_START = 1 << 62  # a rule that read no token: its start sorts after every real one
EMPTY_END = -1
COLUMN_BITS = 32  # a position packs as line << 32 | column, so min and max order them
COLUMN_MASK = (1 << COLUMN_BITS) - 1


@dataclass(frozen=True)
class RulePlan:
    """What a reduction does: how many stack entries, which children it keeps, what it becomes."""

    size: int
    origin: str
    keep: tuple[tuple[int, bool, int], ...] | None  # (child, splice it, Nones before); None: all, as they are
    nones_after: int
    pick: Callable[[list], list] | None  # keep and nones_after compiled to one function
    inline: bool  # `_rule` or lark's own `__rule_star`: a list its parent splices in
    name: str  # the callback name: alias, else the rule's name


@dataclass
class Tables:
    """Everything the driver reads, indexed by LALR state."""

    start: int
    end: int
    actions: list[dict[str, int]]  # terminal -> shift to state (>= 0) or reduce rule ~index (< 0)
    gotos: list[dict[str, int]]
    scanners: list[Callable[[str, int], re.Match | None]]
    retype: list[dict[str, dict[str, str]]]  # terminal -> {text: terminal}: keywords matched as NAME
    rules: list[RulePlan]


def _sort_key(t: TerminalDef) -> tuple:
    # lark.lexer.BasicLexer's order: the first alternative that matches wins, not the longest
    return (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name)


def _fullmatch(t: TerminalDef, s: str) -> bool:
    m = re.match(t.pattern.to_regexp(), s)
    return m is not None and m.group(0) == s


def _state_lexer(terminals: list[TerminalDef], ignore: list[TerminalDef],
                 after: dict[str, dict[str, str]]) -> tuple[str, dict[str, dict[str, str]]]:
    """One state's regex and keyword retyping, as lark's BasicLexer builds them.

    lark drops a string terminal that a regex terminal of the same priority
    matches in full (`role` and NAME) and retypes the regex's match instead;
    `after` is the user's callback on top (keywords that stay keywords where the
    parser does not take them). Ignored terminals become a prefix: none of the
    grammar's other terminals can start where they do, the tests check it.
    """
    regexps = [t for t in terminals if isinstance(t.pattern, PatternRE)]
    strings = [t for t in terminals if isinstance(t.pattern, PatternStr)]
    # a flagged string ("role"i) would retype more than its exact text: not supported
    assert not any(s.pattern.flags for s in strings), "string terminals with flags are not supported"
    embedded: set[str] = set()
    retype: dict[str, dict[str, str]] = {}
    for r in regexps:
        unless = {s.pattern.value: s.name for s in strings
                  if s.priority == r.priority and _fullmatch(r, s.pattern.value)}
        embedded |= {s.name for s in strings if s.pattern.value in unless and s.pattern.flags <= r.pattern.flags}
        if unless or r.name in after:
            table = {k: v for k, v in after.get(r.name, {}).items() if k not in unless}
            table.update(unless)
            retype[r.name] = table
    kept = sorted((t for t in terminals if t.name not in embedded), key=_sort_key)
    retype = {str(k): {str(w): str(n) for w, n in v.items()} for k, v in retype.items()}
    skip = "|".join(t.pattern.to_regexp() for t in sorted(ignore, key=_sort_key))
    alts = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in kept] + [rf"(?P<{_EOF_GROUP}>\Z)"]
    return f"({f'(?:{skip})*+' if skip else ''})(?:{'|'.join(alts)})", retype


class _LazyScanner:
    """Compiles a state's regex on first use: small files visit few of the states."""

    def __init__(self, scanners: list, state: int, pattern: str):
        self.scanners, self.state, self.pattern = scanners, state, pattern

    def __call__(self, text: str, pos: int) -> re.Match | None:
        match = re.compile(self.pattern).match
        self.scanners[self.state] = match
        return match(text, pos)


def _plan(rule: LarkRule) -> RulePlan:
    """lark.parse_tree_builder.maybe_create_child_filter, for the LALR, no-ambiguity case."""
    expansion = rule.expansion
    assert not (rule.options.expand1 and not rule.alias), f"`?{rule.origin.name}` without alias is not supported"
    flags = rule.options.empty_indices
    if flags:
        bits = "".join(str(int(b)) for b in flags)
        empty = [len(ones) for ones in bits.split("0")]
    else:
        empty = [0] * (len(expansion) + 1)
    keep = []
    nones = 0
    for i, sym in enumerate(expansion):
        nones += empty[i]
        if rule.options.keep_all_tokens or not (sym.is_term and sym.filter_out):
            keep.append((i, not sym.is_term and sym.name.startswith("_"), nones))
            nones = 0
    nones += empty[len(expansion)]
    plain = not flags and len(keep) == len(expansion) and not any(splice for _, splice, _ in keep)
    name = rule.alias or rule.options.template_source or rule.origin.name
    kept = None if plain else tuple(keep)
    return RulePlan(len(expansion), str(rule.origin.name), kept, nones, _picker(kept, nones),
                    rule.origin.name.startswith("_"), str(name))


def _picker(keep: tuple[tuple[int, bool, int], ...] | None, nones_after: int) -> Callable[[list], list] | None:
    """lark.parse_tree_builder.ChildFilterLALR for one rule, as straight-line code.

    A rule's children are picked from the popped stack entries `c`: `[c[1], c[3]]`,
    an inlined child's list spliced in, `None` where an `[item]` is absent. A
    first spliced child is extended in place, so a left-recursive list (`a: a b`)
    grows without a copy per item.
    """
    if keep is None and not nones_after:
        return None
    lines = ["x = c"] if keep is None else []
    for i, splice, nones in keep or ():
        if nones:
            lines.append(f"x += [None] * {nones}" if lines else f"x = [None] * {nones}")
        if lines:
            lines.append(f"x += c[{i}]" if splice else f"x.append(c[{i}])")
        else:
            lines.append(f"x = c[{i}]" if splice else f"x = [c[{i}]]")
    if not lines:
        lines.append("x = []")
    if nones_after:
        lines.append(f"x += [None] * {nones_after}")
    namespace: dict[str, Any] = {}
    exec("def pick(c):\n    " + "\n    ".join(lines) + "\n    return x\n", namespace)  # noqa: S102
    return namespace["pick"]


def build_tables(lark: Lark, after: dict[str, dict[str, str]]) -> Tables:
    """Read lark's LALR table and terminals into the driver's form."""
    parse_table = lark.parser.parser.parser.parse_table  # lark.parsers.lalr_parser._Parser
    by_name = {str(t.name): t for t in lark.terminals}
    ignore = [by_name[str(n)] for n in lark.lexer_conf.ignore]
    count = len(parse_table.states)
    assert set(parse_table.states) == set(range(count)), "lark numbers its states 0..n-1"
    rules: list[RulePlan] = []
    rule_index: dict[LarkRule, int] = {}
    actions: list[dict[str, int]] = [{} for _ in range(count)]
    gotos: list[dict[str, int]] = [{} for _ in range(count)]
    scanners: list[Any] = [None] * count
    retype: list[dict[str, dict[str, str]]] = [{} for _ in range(count)]
    by_accepts: dict[frozenset, tuple[str, dict]] = {}
    for state, row in parse_table.states.items():
        for symbol, (action, arg) in row.items():
            symbol = str(symbol)  # lark's names can be Tokens, whose == is Python code
            if symbol not in by_name and symbol != END:
                gotos[state][symbol] = arg
            elif action is Shift:
                actions[state][symbol] = arg
            else:
                if arg not in rule_index:
                    rule_index[arg] = len(rules)
                    rules.append(_plan(arg))
                actions[state][symbol] = ~rule_index[arg]
        accepts = frozenset(str(n) for n in row if n in by_name and n not in lark.lexer_conf.ignore)
        if accepts not in by_accepts:
            by_accepts[accepts] = _state_lexer([by_name[n] for n in sorted(accepts)], ignore, after)
        pattern, retype[state] = by_accepts[accepts]
        scanners[state] = _LazyScanner(scanners, state, pattern)
    return Tables(parse_table.start_states["start"], parse_table.end_states["start"], actions, gotos,
                  scanners, retype, rules)


def run(text: str, tables: Tables, tokens: dict[str, Callable[[str, int, int, int], Any]],
        builders: list[Callable[[list, int, int], Any] | None], trace: list | None = None) -> tuple[bool, Any]:
    """Parse `text`; (True, what the start rule built) or (False, None) at the first error.

    `tokens[type](text, line, column, end_column)` builds a value for a kept
    terminal (others stay their text); `builders[i](children, start, end)`
    builds rule i (None: an inlined rule, kept as a list), start and end packed
    as line << 32 | column. `trace`, if given, receives every token lexed as
    (type, text, start_pos, end_pos, line, column, end_line, end_column).
    """
    actions, gotos, scanners, retype = tables.actions, tables.gotos, tables.scanners, tables.retype
    steps = [(r.size, r.origin, r.pick, None if r.inline else build)
             for r, build in zip(tables.rules, builders, strict=True)]
    end_state = tables.end
    eof, end, empty_start, empty_end, bits = _EOF_GROUP, END, EMPTY_START, EMPTY_END, COLUMN_BITS
    states = [tables.start]
    values: list = []
    starts: list[int] = []  # each entry's first position; its last is the last token read (see below)
    pos = 0
    last = empty_end
    line = 1
    line_start = 0
    find = text.find
    newline = find("\n")  # the next line break: tokens before it need no counting
    if newline < 0:
        newline = len(text)
    while True:
        state = states[-1]
        m = scanners[state](text, pos)
        if m is None:
            return False, None
        kind = m.lastgroup
        begin = m.end(1)
        if begin > newline:  # skipped whitespace crossed line breaks (lark counts "\n" only)
            line += text.count("\n", newline, begin)
            line_start = text.rindex("\n", newline, begin) + 1
            newline = find("\n", begin)
            if newline < 0:
                newline = len(text)
        pos = m.end()
        column = begin - line_start + 1
        end_column = column + pos - begin
        if kind == eof:
            kind = end
            value: Any = ""
        else:
            value = text[begin:pos]
            table = retype[state].get(kind)
            if table is not None:
                kind = table.get(value, kind)
        if trace is not None:
            trace.append((kind, value, begin, pos, line, column, line, end_column))
        make = tokens.get(kind)
        if make is not None:
            value = make(value, line, column, end_column)
        key = line << bits
        first = key | column
        row = actions[state]
        while True:
            try:
                action = row[kind]
            except KeyError:
                return False, None
            if action >= 0:
                states.append(action)
                values.append(value)
                starts.append(first)
                last = key | end_column
                break
            size, origin, pick, build = steps[~action]
            # A rule's children are the top entries of the stack, so a rule that read any token
            # ends with the last token read.
            if size == 1:  # the common case: replace the top entry in place
                children = [values[-1]]
                rule_start = starts[-1]
                del states[-1]
            elif size:
                children = values[-size:]
                rule_start = starts[-size]
                if rule_start == empty_start:  # the first child read nothing
                    rule_start = min(starts[-size:])
                del values[-size + 1:], states[-size:], starts[-size + 1:]
            else:
                children = []
                rule_start = empty_start
                values.append(None)
                starts.append(empty_start)
            if pick is not None:
                children = pick(children)
            if build is not None:
                children = build(children, rule_start, last if rule_start != empty_start else empty_end)
            state = gotos[states[-1]][origin]
            states.append(state)
            values[-1] = children
            starts[-1] = rule_start
            if state == end_state and kind == end:
                return True, children
            row = actions[state]

"""compiler.lalr against lark itself: the same tokens, the same trees, the same verdict.

The reference is built here from the same grammar file: lark's contextual lexer
with the `_keyword_as_name` callback, lark's LALR parser with propagated
positions, and the old Transformer (tests/lark_reference.py). Every token is
compared on type, text and all six positions; every tree node with its span.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BASE
from hypothesis import given
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput
from lark_reference import reference_lark, reference_parse
from test_fuzz import FUZZ, RICH, TOKENS, mutated

from compiler import lalr, parser
from compiler.diagnostics import Diagnostics

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("policies", "examples", "tests") for p in (ROOT / d).rglob("*.npl"))

Tok = tuple  # (type, text, start_pos, end_pos, line, column, end_line, end_column)


def lark_tokens(text: str) -> tuple[list[Tok], bool]:
    """The tokens lark's contextual lexer gives its parser, up to the first error; and whether it parsed."""
    out: list[Tok] = []
    interactive = reference_lark().parse_interactive(text)
    last = None
    try:
        for t in interactive.iter_parse():
            out.append((t.type, t.value, t.start_pos, t.end_pos, t.line, t.column, t.end_line, t.end_column))
            last = t
        interactive.feed_eof(last)
    except UnexpectedInput:
        return out, False
    return out, True


def fast_tokens(text: str, tables: lalr.Tables | None = None) -> tuple[list[Tok], bool]:
    """The tokens compiler.lalr reads, up to the first error; and whether it parsed."""
    trace: list[Tok] = []
    tables = tables or parser._tables()
    build = parser._Build("t.npl")
    builders = [None if r.inline else getattr(build, r.name) for r in tables.rules]
    tokens = {**build.tokens, "INT": lambda text, *_: text}  # a number of any length (E032 is parse_text's)
    ok, _ = lalr.run(text, tables, tokens, builders, trace)
    return [t for t in trace if t[0] != lalr.END], ok


def same_as_lark(text: str) -> None:
    """Tokens, verdict and tree all equal the reference's."""
    want, want_ok = lark_tokens(text)
    got, got_ok = fast_tokens(text)
    assert got == want
    assert got_ok == want_ok
    diags = Diagnostics()
    tree = parser.parse_text("t.npl", text, diags)
    if any(kind == "INT" and len(value) > parser.MAX_DIGITS for kind, value, *_ in want):
        assert tree is None and [d.code for d in diags.items][:1] in (["E032"], ["E001"], ["E002"], ["E003"])
    elif want_ok:
        assert tree == reference_parse("t.npl", text)
        assert not diags.items
    else:
        assert tree is None
        assert [d.code for d in diags.items][:1] in (["E001"], ["E002"], ["E003"], ["E004"])


# ------------------------------------------------------------------ the project's own files

@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_npl_file(path):
    same_as_lark(path.read_text(encoding="utf-8", errors="replace"))  # the fuzz corpus holds bad UTF-8


def test_the_corpus_is_not_empty_and_parses():
    assert len(SOURCES) > 30
    assert lark_tokens(BASE)[1] and lark_tokens(RICH)[1]
    assert fast_tokens(BASE)[1] and fast_tokens(RICH)[1]


# ------------------------------------------------------------------ what the lexer must get right

TRICKY = [
    "",  # nothing at all
    "  \n\t\n",
    "# only a comment",  # a comment at the end of input, no newline
    "role r {}# c\n#d",
    "role r {}\r\nrole s {}\r\n",  # \r is whitespace, only \n counts lines
    "role r {}\f\vrole s {}\u2028role t {}\x85role u {}",  # Unicode whitespace, no line break to lark
    "app x { namespacefoo }",  # a keyword lexes without a word boundary where no name fits
    "app x { namespace default }",  # contextual keywords are names where a name fits
    "role etcd {} role tor {} role spine {} role gateway {} role ssh-gateway {}",
    "role role {}",  # a reserved keyword stays a keyword where a name is expected
    "network n = dead:beef, 1.2.3.4/8, ::, ::ffff:1.2.3.4, 10.0.0.0/33, beef",  # ADDRESS before NAME
    "network n = host a:b",  # a name where an address cannot come
    "cluster c { pods 10.0.0.0/8 asn 64512 peer-with routers }",
    "cluster c { peer-with route-reflectors host a cluster-id 1.2.3.4 survive route-reflector, row }",
    "cluster c { single-uplink max-share 50% }",
    "service s = tcp 80-90, 443, icmp echo-request, icmp 3 code 4, icmpv6, sctp, any, service t",
    'app a { connect tcp 1 to internet expires 2027-01-01 description "q \\" \\\\ x" in clusters k }',
    "app a { connect to role r expires 2027-1-01 }",  # not a DATE
    "service s = tcp \u0663\u0660",  # Arabic-Indic digits are \d to Python's re, as to lark
    "site s { row r { rack k { host h 10.0.0.1 roles a, b } } }",
    "default role r { firewall none ssh-gateway allow from any }",
    "role r { allow from row eqiad/a, rack eqiad/a4, site s }",
    'role r { allow from any description "unterminated\n }',
    "role r { allow from any } }",
    "role r { @ }",
    "role r {",
    "networkx n = any",
    "service s = tcp 80 -",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_text(text):
    same_as_lark(text)


# ------------------------------------------------------------------ generated text

SEPARATORS = ["", " ", "  ", "\n", "\t", "\r\n", "#c\n", " # x\n", "\f", "\u2028"]
FRAGMENTS = TOKENS + ["dead:beef", "a:b", "1:2", "::", "1.2.3.4.5", "10.0.0", "2027-01-011", "٣", "é", ":",
                      '"', "\\", "x-", "-x", "a.b.c", "_x", "0x10", "1e5", "route-reflectorsx", "tcp80"]


@st.composite
def glued(draw) -> str:
    """Fragments joined by any separator, none included: keywords meet names and numbers head on."""
    parts = draw(st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(SEPARATORS)), max_size=40))
    return "".join(f + sep for f, sep in parts)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_tokens(tokens):
    same_as_lark(" ".join(tokens))


@FUZZ
@given(glued())
def test_glued_fragments(text):
    same_as_lark(text)


@FUZZ
@given(mutated())
def test_mutated_valid_input(text):
    same_as_lark(text)


@FUZZ
@given(st.text(alphabet=st.sampled_from(sorted(set(RICH)) + ["\u0663", "\f"]), max_size=200))
def test_random_text_over_the_policy_alphabet(text):
    same_as_lark(text)


@FUZZ
@given(st.integers(0, len(RICH)), st.integers(0, 40), st.text(max_size=5))
def test_character_splice(at, cut, insert):
    same_as_lark(RICH[:at] + insert + RICH[at + cut:])


# ------------------------------------------------------------------ the comparison can fail

def test_a_seeded_lexer_bug_is_caught():
    """Tables built as if `etcd` were reserved lex `role etcd {}` differently: the comparison sees it."""
    reserved = {w: k for w, k in parser._keyword_types().items() if w not in parser.CONTEXTUAL - {"etcd"}}
    buggy = lalr.build_tables(parser._parser(), {"NAME": reserved})
    text = "role etcd {}"
    assert fast_tokens(text)[0] == lark_tokens(text)[0]
    assert fast_tokens(text, buggy)[0] != lark_tokens(text)[0]

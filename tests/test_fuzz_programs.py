"""Fuzzing with valid programs: whatever the language can say, the compiler answers without a traceback.

`fuzz_programs.grammar_programs()` derives text from the grammar's own rules; `estates()` writes
coherent estates statement kind by statement kind. Each program must parse, `netpolc fmt` must be
idempotent on it, and compiling it must give files or located errors (`fuzz_checks.check_folder`).
CI runs a fixed number of examples with a fixed seed; NETPOLC_FUZZ_EXAMPLES raises the count.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from fuzz_checks import TODAY, check_folder, check_program
from fuzz_programs import GRAMMAR, _rules, estates, grammar, grammar_programs, random_program
from hypothesis import HealthCheck, given, settings
from lark import Lark
from lark.grammar import Terminal

from compiler.diagnostics import Diagnostics
from compiler.formatter import format_text
from compiler.parser import parse_text
from compiler.project import build_model, compile_folder

EXAMPLES = int(os.environ.get("NETPOLC_FUZZ_EXAMPLES", "120"))
# derandomize: CI replays the same examples every run, so a red build is reproducible
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TMP = Path(tempfile.mkdtemp(prefix="netpolc-fuzz-programs-"))


@FUZZ
@given(grammar_programs())
def test_grammar_programs_parse_format_and_compile(text):
    check_program(TMP / "grammar", text)


@FUZZ
@given(estates())
def test_estates_compile_or_fail_located(files):
    check_folder(TMP / "estate", files)
    for rel, text in files.items():
        once = format_text(text)
        assert format_text(once) == once, rel


# `?rule`s: their alternatives appear under their aliases (proto_ports, typed_peer...)
INLINED = {"port_item", "peer"}


def test_the_grammar_walk_reaches_every_rule_and_keyword():
    """Every rule and keyword of the grammar appears in 300 derived programs: no statement kind is left unfuzzed."""
    rules = {str(r.alias or r.origin.name) for r in grammar().rules} - {"start"} - INLINED
    rules = {name for name in rules if not name.startswith("_")}
    literal = {sym.name for exps in _rules().values() for exp in exps for sym in exp
               if isinstance(sym, Terminal) and sym.name.isupper() and sym.name.isalpha()}
    seen: set[str] = set()
    tokens: set[str] = set()
    for seed in range(300):
        tree = _tree(random_program(seed))
        seen.update(t.data for t in tree.iter_subtrees())
        tokens.update(tok.type for tok in tree.scan_values(lambda v: hasattr(v, "type")))
    assert not rules - seen, sorted(rules - seen)
    assert not literal - tokens, sorted(literal - tokens)


def _tree(text: str):
    """The parse tree with keywords kept, to see which were used."""
    return _keeping_tokens().parse(text)


@functools.cache
def _keeping_tokens() -> Lark:
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual", keep_all_tokens=True)


def test_most_generated_estates_resolve_and_compile():
    """The estate generator is useful only if it gets past the resolver: most of its programs compile."""
    outcomes: list[bool] = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(estates())
    def collect(files):
        assert build_model(files, Diagnostics(), today=TODAY) is not None
        root = TMP / "share"
        from fuzz_checks import write_folder
        write_folder(root, files)
        outcomes.append(compile_folder(root, today=TODAY).ok)

    collect()
    assert sum(outcomes) >= 0.7 * len(outcomes), f"{sum(outcomes)} of {len(outcomes)} compiled"


def test_grammar_programs_are_not_trivial():
    """The walk must write real statements, not only empty files."""
    texts: list[str] = []

    @settings(max_examples=50, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(grammar_programs())
    def collect(text):
        assert parse_text("a.npl", text, Diagnostics()) is not None
        texts.append(text)

    collect()
    assert sum(len(t.split()) >= 10 for t in texts) >= len(texts) // 2

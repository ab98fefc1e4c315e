"""Fuzzing the front end: whatever the text, the compiler answers with diagnostics, never a traceback.

Three sources of input: random text, random sequences of the language's own tokens, and
small mutations of a valid policy (which reach the resolver far more often than random text).
"""

from __future__ import annotations

import os
import re

from conftest import BASE, TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.diagnostics import Diagnostics
from compiler.parser import keywords
from compiler.project import build_model

# NETPOLC_FUZZ_EXAMPLES raises the count for a longer hunt; the default keeps the file under a minute
EXAMPLES = int(os.environ.get("NETPOLC_FUZZ_EXAMPLES", "250"))
# derandomize: CI replays the same examples every run, so a red build is reproducible
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# BASE plus statements it lacks, so mutations reach every kind of statement
RICH = BASE + """
service icmps = icmp echo-request, icmp 3 code 4, icmpv6, tcp 7199-7202, 8000, any
service web = service kafka, udp 53
network outer = network internal, host kafka1001, router cr1-eqiad, switch lsw1-e1-eqiad, rack eqiad/a4,
  row eqiad/b, site eqiad, cluster wikikube-eqiad, internet except 10.64.0.0/24 description "x"
cluster rr {
  site eqiad
  asn 64602
  pods 10.80.0.0/21 2620:0:861:cafe::/64
  services 10.80.8.0/24
  nodes rack e1
  control-plane host kube1003
  etcd host kube1003
  peer-with route-reflectors host kube1001, kube1002 cluster-id 10.64.16.11
  survive router, row
  single-uplink max-share 50%
}
role lvs { firewall none }
default app baseline { connect service dns to network internal expires 2027-01-01 }
app other { clusters wikikube-eqiad, rr namespace other-ns listen tcp 80
  allow tcp 9 from role bastion description "b"
  connect tcp 443 to internet
  connect to app web, api
}
"""


def check(sources: dict[str, str]) -> None:
    """The invariants: no exception, errors iff no model, every span inside its text."""
    diags = Diagnostics()
    model = build_model(sources, diags, today=TODAY)
    errs = [d for d in diags.items if d.severity == "error"]
    if model is None:
        assert errs, "no model and no error"
    else:
        assert not errs
    for d in diags.items:
        assert d.span is not None, d
        assert d.span.file in sources
        lines = sources[d.span.file].split("\n")
        assert 1 <= d.span.line <= len(lines), (d, len(lines))
        assert 1 <= d.span.column <= len(lines[d.span.line - 1]) + 1, d
        assert d.span.line <= d.span.end_line <= len(lines), d
        assert 1 <= d.span.end_column <= len(lines[d.span.end_line - 1]) + 1, d
        assert d.message and d.code[0] in "EW"


def test_rich_seed_is_valid():
    diags = Diagnostics()
    assert build_model({"a.npl": RICH}, diags, today=TODAY) is not None, diags.sorted()


# ------------------------------------------------------------------ (a) random text

@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    check({"a.npl": text})


@FUZZ
@given(st.text(alphabet=st.sampled_from(sorted(set(BASE))), max_size=400))
def test_random_text_over_the_policy_alphabet(text):
    check({"a.npl": text})


# ------------------------------------------------------------------ (b) the language's tokens

NAMES = ["eqiad", "a", "a4", "e1", "cr1-eqiad", "kafka1001", "kube1003", "lsw1-e1-eqiad", "wikikube-eqiad",
         "internal", "kafka", "dns", "bastion", "k8s-worker", "base", "web", "api", "x", "Bad_Name", "a.b",
         "echo-request", "eqiad/a4", "eqiad/b", "n" * 70]
ADDRESSES = ["10.0.0.0/8", "10.64.0.5", "10.64.0.1/22", "208.80.154.196", "2620:0:861:101::10", "::/0",
             "10.0.0.256", "1.2.3.4/33", "2001:db8:::1", "::ffff:10.0.0.1", "fe80::1/10", ":", "10.64.130.11"]
NUMBERS = ["0", "1", "22", "80", "255", "256", "65535", "65536", "4294967296", "99999999999999999999"]
PUNCT = ["{", "}", ",", "=", "/", "-", "%", "\n", "#c\n"]
STRINGS = ['"text"', '"esc \\" q"', '""', '"unterminated']
DATES = ["2027-06-30", "2020-01-01", "2026-02-30"]
TOKENS = sorted(keywords()) + NAMES + ADDRESSES + NUMBERS + PUNCT + STRINGS + DATES


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_tokens(tokens):
    check({"a.npl": " ".join(tokens)})


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_tokens_after_a_valid_estate(tail, other):
    check({"a.npl": BASE + " ".join(tail), "b.npl": " ".join(other)})


# ------------------------------------------------------------------ (c) mutations of valid input

TOKEN_RE = re.compile(r'"[^"\n]*"|#[^\n]*|[A-Za-z0-9_.:/%\-]+|\S')


def _tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


SEED_TOKENS = _tokens(RICH)
KEYWORDS = keywords()
ADDRESS_RE = re.compile(r"^[0-9a-fA-F.:]*[.:][0-9a-fA-F.:]*(/\d+)?$")


def _token_class(tok: str) -> str:
    """Which tokens may stand in for this one and keep the statement parseable."""
    if tok.isdigit():
        return "number"
    if ADDRESS_RE.match(tok):
        return "address"
    if tok[:1].isalpha() and tok not in KEYWORDS:
        return "name"
    return "other"


SAME_CLASS = {
    "number": NUMBERS + ["9092", "64601", "14907", "8", "3"],
    "address": ADDRESSES + ["10.64.16.11", "10.64.0.1", "2620:0:861:109::1", "10.64.64.0/21"],
    "name": NAMES + sorted({t for t in SEED_TOKENS if _token_class(t) == "name"}),
}


@st.composite
def mutated(draw) -> str:
    toks = list(SEED_TOKENS)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(toks) - 1))
        # same-class replacements keep the text parseable, so the resolver's checks get exercised
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert", "bignum", "char",
                                   "truncate", "same", "same", "same", "same"]))
        if op == "same":
            cls = _token_class(toks[i])
            if cls in SAME_CLASS:
                toks[i] = draw(st.sampled_from(SAME_CLASS[cls]))
        elif op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == "replace":
            toks[i] = draw(st.sampled_from(TOKENS))
        elif op == "insert":
            toks.insert(i, draw(st.sampled_from(TOKENS)))
        elif op == "bignum":
            nums = [k for k, t in enumerate(toks) if t.isdigit()]
            if nums:
                k = nums[i % len(nums)]
                toks[k] = draw(st.sampled_from(["0", "65536", "4294967296", "999999999999999999999999"]))
        elif op == "char":
            t = toks[i]
            pos = draw(st.integers(0, len(t)))
            ch = draw(st.sampled_from(list("aZ0_-.:/{}\"#\t") + ["\n"]))
            toks[i] = t[:pos] + ch + t[pos + 1:]
        else:
            toks = toks[:max(i, 1)]
        if not toks:
            toks = ["}"]
    return " ".join(toks)


@FUZZ
@given(mutated())
def test_mutated_valid_input(text):
    check({"a.npl": text})


REPLACEABLE = [i for i, t in enumerate(SEED_TOKENS) if _token_class(t) in SAME_CLASS]


@st.composite
def renamed(draw) -> str:
    """Names, addresses and numbers swapped for others of their class: still parses, rarely resolves."""
    toks = list(SEED_TOKENS)
    for i in draw(st.lists(st.sampled_from(REPLACEABLE), min_size=1, max_size=4)):
        toks[i] = draw(st.sampled_from(SAME_CLASS[_token_class(SEED_TOKENS[i])]))
    return " ".join(toks)


@FUZZ
@given(renamed())
def test_renamed_valid_input(text):
    check({"a.npl": text})


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(st.integers(0, len(RICH)), st.integers(0, 40), st.text(max_size=5))
def test_character_splice(at, cut, insert):
    check({"a.npl": RICH[:at] + insert + RICH[at + cut:]})

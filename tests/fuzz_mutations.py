"""Hypothesis strategies that damage the reference estate (`policies/`), file by file.

Each example is the whole estate with one file changed by one to three mutations, at the token
level (deleted, duplicated, swapped tokens), the byte level (flipped bytes, invalid UTF-8,
truncation) or in size (a very long line, deep nesting of `{`, a huge peer list). The rest of
the estate stays valid, so a damaged file is judged among the real names it refers to.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import strategies as st

POLICIES = Path(__file__).resolve().parent.parent / "policies"

# a string, a comment, a word (names, numbers, addresses, dates) or one other character
TOKEN_RE = re.compile(rb'"[^"\n]*"|#[^\n]*|[A-Za-z0-9_.:/%\-]+|\S')


def reference_estate() -> dict[str, bytes]:
    """Every `*.npl` of the reference estate, by path relative to `policies/`."""
    return {p.relative_to(POLICIES).as_posix(): p.read_bytes() for p in sorted(POLICIES.rglob("*.npl"))}


ESTATE = reference_estate()
FILES = sorted(ESTATE)
SPANS = {rel: [m.span() for m in TOKEN_RE.finditer(data)] for rel, data in ESTATE.items()}

INVALID_UTF8 = [b"\xff", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80"]


def _token(draw, data: bytes, rel: str) -> tuple[int, int]:
    spans = SPANS[rel]
    start, end = spans[draw(st.integers(0, len(spans) - 1))]
    return start, min(end, len(data))


def _delete(draw, data: bytes, rel: str) -> bytes:
    a, b = _token(draw, data, rel)
    return data[:a] + data[b:]


def _duplicate(draw, data: bytes, rel: str) -> bytes:
    a, b = _token(draw, data, rel)
    return data[:b] + b" " + data[a:b] + data[b:]


def _swap(draw, data: bytes, rel: str) -> bytes:
    (a, b), (c, d) = sorted([_token(draw, data, rel), _token(draw, data, rel)])
    if c < b:  # overlapping after earlier edits: nothing to swap
        return data
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def _flip(draw, data: bytes, rel: str) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]


def _byte(draw, data: bytes, rel: str) -> bytes:
    i = draw(st.integers(0, len(data)))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]


def _truncate(draw, data: bytes, rel: str) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


def _invalid_utf8(draw, data: bytes, rel: str) -> bytes:
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.sampled_from(INVALID_UTF8)) + data[i:]


# Sizes stay where one input takes well under the 5 s bound on a loaded machine. Larger ones are
# slow but linear (about 0.1-0.3 ms a peer or port: 37,500 ports on one line 3-11 s, 10,000 IPv6
# peers 2-6 s, 40,000 unknown names 14 s); capping them is the Limits section's business.
LONG_LINE_SIZES = [10_000, 100_000]
NESTING_SIZES = [100, 1_000, 10_000, 100_000]
PEER_LIST_SIZES = [1_000, 5_000]


def long_line(kind: str, n: int) -> bytes:
    """A line of about n characters: a comment, a name, a string or a list of n/8 ports."""
    if kind == "comment":
        return b"# " + b"x" * n
    if kind == "name":
        return b"network " + b"n" * n + b" = 10.0.0.0/8"
    if kind == "string":
        return b'service s = tcp 1 description "' + b"d" * n + b'"'
    return b"service many = " + b", ".join(b"tcp %d" % (1 + i % 65535) for i in range(n // 8))


def nesting(kind: str, n: int) -> bytes:
    """n `{` (closed again with `balanced`), alone or after the head of a block."""
    inner = b"{" * n + (b"}" * n if kind.endswith("balanced") else b"")
    return {"bare": b"", "site": b"site deep ", "role": b"role deep "}[kind.split("-")[0]] + inner


def huge_peers(kind: str, n: int) -> bytes:
    """A network naming n peers: IPv4 or IPv6 prefixes, networks (unknown), or one host n times."""
    if kind == "addresses":
        items = [b"10.%d.%d.0/24" % (i >> 8 & 255, i & 255) for i in range(n)]
    elif kind == "v6":
        items = [b"2001:db8:%x::/48" % i for i in range(n)]
    elif kind == "names":
        items = [b"network n%d" % i for i in range(n)]
    else:
        items = [b"host kafka1001"] * n
    return b"network huge-peers = " + b", ".join(items)


LARGE_KINDS = {
    "long-line": (long_line, ["comment", "name", "string", "ports"], LONG_LINE_SIZES),
    "nesting": (nesting, ["bare", "bare-balanced", "site", "site-balanced", "role", "role-balanced"],
                NESTING_SIZES),
    "huge-peers": (huge_peers, ["addresses", "v6", "names", "hosts"], PEER_LIST_SIZES),
}


def _large(op: str):
    build, kinds, sizes = LARGE_KINDS[op]

    def mutate(draw, data: bytes, rel: str) -> bytes:
        block = build(draw(st.sampled_from(kinds)), draw(st.sampled_from(sizes)))
        i = data.rfind(b"\n", 0, draw(st.integers(0, len(data)))) + 1  # at the start of a line
        return data[:i] + block + b"\n" + data[i:]
    return mutate


OPERATORS = {
    "delete": _delete, "duplicate": _duplicate, "swap": _swap, "flip": _flip, "byte": _byte,
    "truncate": _truncate, "invalid-utf8": _invalid_utf8, **{op: _large(op) for op in LARGE_KINDS},
}
SMALL = ["delete", "duplicate", "swap", "flip", "byte", "truncate", "invalid-utf8"]
LARGE = ["long-line", "nesting", "huge-peers"]


@st.composite
def mutated_estates(draw, operators: tuple[str, ...] = tuple(SMALL)) -> tuple[dict[str, bytes], str, list[str]]:
    """(the estate with one file damaged, that file, the mutations applied in order)."""
    rel = draw(st.sampled_from(FILES))
    data = ESTATE[rel]
    ops = draw(st.lists(st.sampled_from(operators), min_size=1, max_size=3))
    if set(ops) & set(LARGE):  # one large input at a time, or the time bound measures the sum
        ops = [op for op in ops if op not in LARGE] + [next(op for op in ops if op in LARGE)]
    for op in ops:
        data = OPERATORS[op](draw, data, rel)
    return {**ESTATE, rel: data}, rel, ops

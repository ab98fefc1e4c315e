"""Limits: long chains and cycles of definitions, deep nesting, enormous files, long lines and
many addresses give a clear error or a result in bounded time, never a RecursionError or a hang.

The time bounds are generous (the machine may be shared); what they catch is the quadratic or
exponential case, which takes minutes or never ends.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import compile_sources, errors
from netaddr import IPAddress, IPSet

from compiler import project
from compiler.diagnostics import Diagnostics, render_text
from compiler.project import compile_folder, load_sources

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from limits import LAB  # noqa: E402  the same small estate bench/limits.py times

N = 10_000


def timed(sources: dict[str, str], bound: float):
    start = time.monotonic()
    model, diags = compile_sources(sources)
    took = time.monotonic() - start
    assert took < bound, f"took {took:.1f} s"
    return model, diags


# ---------------------------------------------------------------------------- chains and cycles

def test_a_chain_of_10000_networks_resolves() -> None:
    chain = "".join(f"network n{i} = network n{i + 1}\n" for i in range(N)) + f"network n{N} = 10.1.0.0/16\n"
    model, diags = timed({"a.npl": LAB + chain}, 60)
    assert model is not None, [str(d) for d in errors(diags)]
    assert [str(c) for c in model.networks["n0"].cidrs] == ["10.1.0.0/16"]


def test_a_cycle_of_10000_networks_is_one_error_with_its_ends() -> None:
    cycle = "".join(f"network n{i} = network n{(i + 1) % N}\n" for i in range(N))
    model, diags = timed({"a.npl": LAB + cycle}, 60)
    assert model is None
    (d,) = [d for d in diags if d.code == "E501"]
    assert d.span.line == LAB.count("\n") + N  # the reference that closes it: `network n9999 = network n0`
    names = N + 1  # n0 ... n9999 and n0 again; six shown at each end
    assert d.message.startswith("network `n0` is defined in terms of itself: n0 -> n1 -> n2")
    assert d.message.endswith(f"... ({names - 12} more) ... -> n9995 -> n9996 -> n9997 -> n9998 -> n9999 -> n0")


def test_a_short_cycle_is_written_out_whole() -> None:
    _, diags = compile_sources({"a.npl": LAB.replace("n0 }", "a }") + "network a = network b\nnetwork b = network a\n"})
    assert [d.message for d in diags if d.code == "E501"] == [
        "network `a` is defined in terms of itself: a -> b -> a"]


def test_a_chain_and_a_cycle_of_10000_services() -> None:
    lab = LAB.replace("tcp 80 from network n0", "service s0 from 10.0.0.0/8")
    chain = "".join(f"service s{i} = service s{i + 1}\n" for i in range(N)) + f"service s{N} = tcp 80\n"
    model, diags = timed({"a.npl": lab + chain}, 60)
    assert model is not None, [str(d) for d in errors(diags)]
    assert [str(p) for p in model.services["s0"].ports] == ["tcp 80"]
    cycle = "".join(f"service s{i} = service s{(i + 1) % N}\n" for i in range(N))
    model, diags = timed({"a.npl": lab + cycle}, 60)
    assert model is None
    (d,) = [d for d in diags if d.code == "E407"]
    assert d.message.startswith("service `s0` refers to itself: s0 -> s1") and "more) ..." in d.message


# ---------------------------------------------------------------------------- nesting and lines

def test_deep_nesting_is_a_syntax_error_at_once() -> None:
    text = "site a { row b { rack c {" + "{" * 100_000 + "}" * 100_000
    _, diags = timed({"a.npl": text}, 30)
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("E001", 1, 26)]


@pytest.mark.parametrize("digits", [21, 4301, 100_000])
def test_a_number_too_long_for_any_value_is_located(digits: int) -> None:
    # int() refuses strings of over 4,300 digits: this was a traceback (exit 3) before E032
    text = "service s = tcp 80, " + "9" * digits + "\n"
    _, diags = timed({"a.npl": text}, 10)
    assert [(d.code, d.span.line, d.span.column, d.span.end_column) for d in diags] == [
        ("E032", 1, 21, 21 + digits)]
    assert f"{digits:,} digits" in diags[0].message


def test_a_number_of_20_digits_is_read_and_range_checked() -> None:
    _, diags = timed({"a.npl": "service s = tcp " + "9" * 20 + "\n"}, 10)
    assert [d.code for d in diags] != ["E032"] and errors(diags), "20 digits: a value, refused by its range check"


def test_a_long_line_is_quoted_around_the_caret() -> None:
    line = "role web { allow tcp 80 from " + ", ".join(["10.0.0.1"] * 100_000) + " wrong }"
    sources = {"a.npl": LAB.replace("role web { allow tcp 80 from network n0 }\n", "") + line + "\n"}
    _, diags = timed(sources, 60)
    (d,) = errors(diags)
    assert d.span.column == line.index("wrong") + 1
    shown, caret = render_text([d], sources).split("\n")[1:3]
    assert len(shown) < 200
    at = caret.index("^")
    assert shown[at:at + 5] == "wrong"  # the caret is under the word, in the excerpt


# ---------------------------------------------------------------------------- enormous files

def test_a_file_over_16_mib_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "ok.npl").write_text(LAB + "network n0 = 10.1.0.0/16\n")
    with (tmp_path / "huge.npl").open("wb") as f:  # sparse: nothing to read if the size is checked first
        f.truncate(project.MAX_FILE_BYTES + 1)
    diags = Diagnostics()
    sources = load_sources(tmp_path, diags)
    assert [(d.code, d.span.file if d.span else None) for d in diags.sorted()] == [("E030", "huge.npl")]
    assert "huge.npl is 16,777,217 bytes" in diags.sorted()[0].message
    assert list(sources) == ["ok.npl"]
    result = compile_folder(tmp_path)
    assert not result.ok and result.model is None


def test_the_files_together_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project, "MAX_TOTAL_BYTES", 1000)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.npl").write_text("# " + "x" * 400 + "\n")
    diags = Diagnostics()
    assert list(load_sources(tmp_path, diags)) == ["a.npl", "b.npl"]
    assert [(d.code, d.span.file) for d in diags.sorted()] == [("E031", "c.npl")]


# ---------------------------------------------------------------------------- many addresses

def _v4(i: int) -> str:
    return f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def test_a_network_of_100000_addresses() -> None:
    net = "network n0 = " + ", ".join(_v4(2 * i) for i in range(100_000)) + "\n"
    model, diags = timed({"a.npl": LAB + net}, 120)
    assert model is not None, [str(d) for d in errors(diags)]
    assert IPSet(model.networks["n0"].cidrs).size == 100_000  # every other address: nothing merges


def test_internet_minus_100000_addresses() -> None:
    net = "network n0 = internet except " + ", ".join(_v4(2 * i) for i in range(100_000)) + "\n"
    model, diags = timed({"a.npl": LAB + net}, 120)
    assert model is not None, [str(d) for d in errors(diags)]
    held = IPSet(model.networks["n0"].cidrs)
    assert IPAddress("11.0.0.0") not in held and IPAddress("11.0.0.1") in held
    assert IPAddress(_v4(2 * 99_999)) not in held and IPAddress(_v4(2 * 99_999 + 1)) in held


def test_100000_ipv6_ranges() -> None:
    net = "network n0 = " + ", ".join(f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64" for i in range(0, 200_000, 2)) + "\n"
    model, diags = timed({"a.npl": LAB + net}, 120)
    assert model is not None, [str(d) for d in errors(diags)]
    assert len(model.networks["n0"].cidrs) == 100_000

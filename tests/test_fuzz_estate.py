"""Fuzzing with the reference estate damaged: diagnostics, never a traceback, in bounded time and memory.

Inputs are `policies/` with one file mutated (`fuzz_mutations.py`): tokens deleted, duplicated or
swapped, bytes flipped or inserted, files truncated, invalid UTF-8, very long lines, deep nesting,
huge peer lists. They go through `compile_folder` and `netpolc compile` (`fuzz_checks.py`). Every
input that ever crashed or hung is kept in `tests/fuzz_corpus/` and replayed here.
CI runs a fixed number of examples with a fixed seed; NETPOLC_FUZZ_EXAMPLES raises the count.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from fuzz_checks import LIMIT_MIB, TODAY, check_cli, check_folder, write_folder
from fuzz_mutations import ESTATE, LARGE, LARGE_KINDS, OPERATORS, mutated_estates
from hypothesis import HealthCheck, given, settings

from compiler import cli
from compiler.project import compile_folder

EXAMPLES = int(os.environ.get("NETPOLC_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=max(EXAMPLES // 6, 5))
TMP = Path(tempfile.mkdtemp(prefix="netpolc-fuzz-estate-"))
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"


def test_the_reference_estate_compiles():
    """The seed is valid, so what the mutations break is theirs."""
    check_folder(TMP / "seed", ESTATE)
    assert compile_folder(TMP / "seed", today=TODAY).ok


@FUZZ
@given(mutated_estates())
def test_small_mutations(case):
    files, _rel, _ops = case
    check_folder(TMP / "small", files)


@FEW
@given(mutated_estates(tuple(LARGE)))
def test_large_inputs(case):
    files, _rel, _ops = case
    check_folder(TMP / "large", files)


@FEW
@given(mutated_estates(tuple(OPERATORS)))
def test_cli_exit_codes_and_carets(case):
    files, _rel, _ops = case
    check_cli(TMP / "cli", files)


# the heaviest kind of each large input (by time measured), at its largest size
HEAVIEST = {"long-line": "ports", "nesting": "site", "huge-peers": "names"}


@pytest.mark.parametrize("op", LARGE)
def test_memory_of_the_largest_inputs_is_bounded(op):
    """tracemalloc's peak for the heaviest large input of each kind stays under the bound.

    (Time is bounded by check_folder, untraced: tracemalloc slows the compile several times.)
    """
    build, _kinds, sizes = LARGE_KINDS[op]
    rel = "networks.npl"
    files = {**ESTATE, rel: ESTATE[rel] + b"\n" + build(HEAVIEST[op], max(sizes)) + b"\n"}
    check_folder(TMP / "memory", files)
    tracemalloc.start()
    try:
        compile_folder(TMP / "memory", today=TODAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < LIMIT_MIB * 2**20, f"{peak / 2**20:.0f} MiB"


def _corpus() -> list[tuple[str, str, str]]:
    """(input file, where it goes, note) per line of fuzz_corpus/CORPUS."""
    out = []
    for line in (CORPUS / "CORPUS").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, where, note = line.split(None, 2)
            out.append((name, where, note))
    return out


def _corpus_files(name: str, where: str) -> dict[str, bytes]:
    data = (CORPUS / name).read_bytes()
    return {"input.npl": data} if where == "alone" else {**ESTATE, where: data}


@pytest.mark.parametrize(("name", "where", "note"), _corpus(), ids=[c[0] for c in _corpus()])
def test_corpus(name, where, note):
    """Each input that once crashed or hung, through compile_folder and the real command line."""
    files = _corpus_files(name, where)
    check_folder(TMP / "corpus", files)
    check_cli(TMP / "corpus-cli", files, subprocess_run=True)


def test_every_corpus_file_is_listed():
    listed = {name for name, _, _ in _corpus()}
    assert listed == {p.name for p in CORPUS.iterdir() if p.name != "CORPUS"}



@settings(FUZZ, max_examples=max(EXAMPLES // 12, 3))
@given(mutated_estates())
def test_the_other_commands_never_crash(case):
    """`check`, `verify`, `lint` and `fmt --check` on a damaged estate: exit 0 or 1, no traceback."""
    files, _rel, _ops = case
    root = TMP / "commands"
    write_folder(root, files)
    for argv in (["check", str(root), "--out", str(TMP / "no-out")], ["verify", str(root)],
                 ["lint", str(root)], ["fmt", "--check", str(root)]):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main(argv)
        assert code in (0, 1), (argv[0], code, err.getvalue()[-2000:])
        assert "Traceback" not in err.getvalue() + out.getvalue()

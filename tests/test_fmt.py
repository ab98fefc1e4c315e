"""`netpolc fmt`: the canonical layout, and proof that it never changes what a policy means.

- Every `.npl` of policies/ and examples/ (examples/weak included), and the `npl` examples of
  docs/language.md, formatted, compile to the same model (every resolved object and flow, spans
  aside), the same output files (source line references aside) and the same diagnostics.
- Every comment survives (the comments are counted by the grammar's own lexer, not by the
  formatter), formatting is idempotent, and the layout does not depend on the whitespace it
  started from.
- The layout rules, each on a hand-written before/after pair.
- The command: --check, --diff, atomic writes only of changed files, files that do not parse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from lark import Lark
from netaddr import IPAddress, IPNetwork, IPSet

from compiler.diagnostics import Span
from compiler.formatter import FormatError, format_text
from compiler.parser import GRAMMAR_PATH, _keyword_as_name
from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLES = REPO / "examples"
TODAY = dt.date(2026, 11, 25)

SOURCE_FILES = sorted([*POLICIES.rglob("*.npl"), *EXAMPLES.rglob("*.npl")])
POLICY_SETS = [POLICIES, *sorted({p.parent for p in EXAMPLES.rglob("*.npl")})]


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


# ------------------------------------------------------------------ helpers

def comments_of(text: str) -> list[str]:
    """Every comment, in order, as the grammar's lexer sees it (trailing whitespace aside)."""
    found: list[str] = []
    lark = Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                lexer_callbacks={"NAME": _keyword_as_name, "COMMENT": lambda t: found.append(str(t).rstrip())})
    lark.parse(text)
    return found


def plain(value: object) -> object:
    """A model value as plain data, with every span left out."""
    if isinstance(value, Span):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                tuple((f.name, plain(getattr(value, f.name))) for f in dataclasses.fields(value)
                      if not isinstance(getattr(value, f.name), Span)))
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), plain(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return tuple(plain(v) for v in value)
    if isinstance(value, IPAddress | IPNetwork | IPSet | dt.date):
        return str(value)
    return value


_LINE_REF = re.compile(r"([\w./-]+\.npl):\d+(:\d+)?")


def unlined(data: bytes) -> str:
    """Output text with its `file.npl:LINE` references made line-free (spans move when lines do)."""
    return _LINE_REF.sub(r"\1:L", data.decode("utf-8"))


def meaning(folder: Path) -> dict:
    """What a policy folder compiles to, without where in the files each thing was written."""
    result = compile_folder(folder, TODAY)
    model = result.model
    return {
        "diagnostics": sorted((d.code, d.severity, _LINE_REF.sub(r"\1:L", d.message)) for d in result.diagnostics),
        "model": None if model is None else {
            name: plain(getattr(model, name)) for name in
            ("sites", "rows", "racks", "routers", "switches", "hosts", "clusters", "networks", "services", "roles",
             "apps", "files")},
        "flows": None if model is None else sorted(repr(plain(f)) for f in model.flows),
        "files": {rel: unlined(data) for rel, data in result.files.items()},
    }


def format_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in dst.rglob("*.npl"):
        path.write_text(format_text(path.read_text(encoding="utf-8")), encoding="utf-8")
    return dst


def doc_blocks() -> list[str]:
    return re.findall(r"```npl\n(.*?)```", (REPO / "docs" / "language.md").read_text(encoding="utf-8"), re.S)


# ------------------------------------------------------------------ meaning is kept

def test_every_source_file_is_in_a_policy_set():
    covered = {p for folder in POLICY_SETS for p in folder.rglob("*.npl")}
    assert set(SOURCE_FILES) == covered
    assert any("weak" in p.parts for p in SOURCE_FILES)


@pytest.mark.parametrize("folder", POLICY_SETS, ids=_rel)
def test_formatting_keeps_the_compiled_model(folder: Path, tmp_path: Path):
    before = meaning(folder)
    after = meaning(format_copy(folder, tmp_path / "formatted"))
    assert before["model"] is not None or folder.parent.name == "weak" or before["diagnostics"]
    assert after["diagnostics"] == before["diagnostics"]
    assert after["model"] == before["model"]
    assert after["flows"] == before["flows"]
    assert after["files"].keys() == before["files"].keys()
    for rel in before["files"]:
        assert after["files"][rel] == before["files"][rel], rel


def test_formatting_keeps_the_estate_json_of_policies(tmp_path: Path):
    """policies/ is formatted line for line (no statement is joined or split), so estate.json is identical."""
    before = compile_folder(POLICIES, TODAY).files
    after = compile_folder(format_copy(POLICIES, tmp_path / "p"), TODAY).files
    assert after["estate.json"] == before["estate.json"]


def test_formatting_keeps_the_language_doc_examples(tmp_path: Path):
    original, formatted = tmp_path / "doc", tmp_path / "doc-formatted"
    original.mkdir()
    for i, block in enumerate(doc_blocks()):
        (original / f"block-{i:02}.npl").write_text(block, encoding="utf-8")
    shutil.copytree(original, formatted)
    for path in formatted.glob("*.npl"):
        path.write_text(format_text(path.read_text(encoding="utf-8")), encoding="utf-8")
    before, after = meaning(original), meaning(formatted)
    assert before["diagnostics"] == [] and before["model"] is not None
    assert after == before


@pytest.mark.parametrize("path", SOURCE_FILES, ids=_rel)
def test_formatting_keeps_every_comment_and_is_idempotent(path: Path):
    text = path.read_text(encoding="utf-8")
    once = format_text(text)
    assert Counter(comments_of(once)) == Counter(comments_of(text))
    assert comments_of(once) == comments_of(text)  # in the same order, too
    assert format_text(once) == once


@pytest.mark.parametrize("path", SOURCE_FILES, ids=_rel)
def test_the_layout_does_not_depend_on_the_spacing_it_started_from(path: Path):
    """Random spaces and tabs between tokens and random indentation give the same output."""
    text = path.read_text(encoding="utf-8")
    rng = random.Random(path.name)
    # a run of spaces/tabs outside strings and comments (a comment runs to the end of its line)
    pieces = re.split(r'("(?:[^"\\\n]|\\.)*"|#[^\n]*|[ \t]+)', text)
    out = []
    for piece in pieces:
        if piece and piece.strip(" \t") == "":
            piece = rng.choice([" ", "  ", "\t", " \t   "])
        elif piece and piece[0] not in '"#':  # code: a space or two before some commas, too
            piece = re.sub(",", lambda m: rng.choice([",", " ,", "\t,"]), piece)
        out.append(piece)
    shaken = "".join(out)
    assert shaken != text
    assert format_text(shaken) == format_text(text)


@pytest.mark.parametrize("path", SOURCE_FILES, ids=_rel)
def test_line_breaks_blank_lines_and_comments_anywhere(path: Path):
    """Breaks, blank lines and comments put between random tokens: still formatted, comments kept, idempotent."""
    text = path.read_text(encoding="utf-8")
    rng = random.Random("fuzz" + path.name)
    pieces = re.split(r'("(?:[^"\\\n]|\\.)*"|#[^\n]*|[ \t]+)', text)
    out = []
    for n, piece in enumerate(pieces):
        if piece and piece.strip(" \t") == "":
            roll = rng.random()
            if roll < 0.1:
                piece = "\n"
            elif roll < 0.15:
                piece = f"  # eol {n}\n"
            elif roll < 0.18:
                piece = f"\n\n\n   # full {n}\n\n"
        out.append(piece)
    fuzzed = "".join(out)
    once = format_text(fuzzed)
    assert comments_of(once) == comments_of(fuzzed)
    assert format_text(once) == once
    assert all(line == line.rstrip() for line in once.splitlines())


# ------------------------------------------------------------------ the layout, by hand

def check(before: str, after: str) -> None:
    assert format_text(before) == after
    assert format_text(after) == after


def test_indentation_braces_and_one_statement_per_line():
    check("""\
site s1 {
router cr1 loopback 192.0.2.1 asn 65000
      row a { switch asw-a
  rack a1 { host n1 10.1.0.11 roles web } }
}
role web { allow tcp 443 from any } role db {
    }
""", """\
site s1 {
  router cr1 loopback 192.0.2.1 asn 65000
  row a {
    switch asw-a
    rack a1 {
      host n1 10.1.0.11 roles web
    }
  }
}
role web {
  allow tcp 443 from any
}
role db {}
""")


def test_spaces_between_tokens():
    check("""\
service   s=tcp 80 ,443,udp 7199 - 7202
cluster c {
  nodes rack eqiad / e1 ,eqiad/e2
  survive router ,row
  single-uplink max-share 50 %
}
default   role base{allow icmp echo-request , icmpv6 3 code 4 from host a ,b}
""", """\
service s = tcp 80, 443, udp 7199-7202
cluster c {
  nodes rack eqiad/e1, eqiad/e2
  survive router, row
  single-uplink max-share 50%
}
default role base {
  allow icmp echo-request, icmpv6 3 code 4 from host a, b
}
""")


def test_continuation_lines_are_kept_where_a_clause_or_a_list_item_starts():
    check("""\
role r {
  allow tcp 80
          from any
      description "x"
  allow
    tcp 443 from
    any
  connect service a, service b,
  service c to role db, role web,
       role cache in cluster c1 expires 2030-01-01
}
network n = 10.0.0.0/8,
  10.1.0.0/16
  except 10.0.1.0/24
network m = host a, b description
  "joined: a string is not a clause"
""", """\
role r {
  allow tcp 80
    from any
    description "x"
  allow tcp 443 from any
  connect service a, service b,
          service c to role db, role web,
                       role cache in cluster c1 expires 2030-01-01
}
network n = 10.0.0.0/8,
            10.1.0.0/16
  except 10.0.1.0/24
network m = host a, b description "joined: a string is not a clause"
""")


def test_exposed_is_printed_and_a_break_before_it_is_kept():
    check("""\
role bastion { allow tcp 22 from any   exposed   "the way in" description "ssh"
allow tcp 5432 from any description "replica"
      exposed "the vendor's \\"replica\\""
}
""", """\
role bastion {
  allow tcp 22 from any exposed "the way in" description "ssh"
  allow tcp 5432 from any description "replica"
    exposed "the vendor's \\"replica\\""
}
""")


def test_full_line_comments_are_indented_with_the_statements_around_them():
    check("""\
   # about the site
site s1 {
# about the router
      router cr1 loopback 192.0.2.1 asn 65000
  row a {
        # before the closing brace, inside the block
  }
    # after the block, outside it
}
""", """\
# about the site
site s1 {
  # about the router
  router cr1 loopback 192.0.2.1 asn 65000
  row a {
    # before the closing brace, inside the block
  }
  # after the block, outside it
}
""")


def test_end_of_line_comments_stay_on_their_line_and_align_per_group():
    check("""\
cluster c {   # the block's line: a group of its own
  site s1 # short
  asn 64601        # longer code above
  pods 10.64.64.0/21 2620:0:861:cabe::/64
  nodes role k8s-worker      # a line without comment does not end the group

  peer-with routers     # a blank line ends it
  # so does a full-line comment
  survive router # alone
} # after the brace
""", """\
cluster c {  # the block's line: a group of its own
  site s1                # short
  asn 64601              # longer code above
  pods 10.64.64.0/21 2620:0:861:cabe::/64
  nodes role k8s-worker  # a line without comment does not end the group

  peer-with routers  # a blank line ends it
  # so does a full-line comment
  survive router  # alone
}  # after the brace
""")


def test_a_comment_inside_a_statement_keeps_its_line_break():
    check("""\
role r {
  allow tcp 80 # the port
  from # who
    # a full-line comment inside the statement
    role a, # first
    b
}
""", """\
role r {
  allow tcp 80  # the port
    from        # who
    # a full-line comment inside the statement
    role a,  # first
    b
}
""")


def test_blank_lines_kept_as_one_but_not_at_the_edges_of_files_blocks_or_inside_statements():
    check("""\


# header



role a {

  # first

  allow tcp 80

  from any


  allow tcp 443 from any

}


role b {}
role c {}

""", """\
# header

role a {
  # first

  allow tcp 80
    from any

  allow tcp 443 from any
}

role b {}
role c {}
""")


def test_strings_are_requoted_and_keep_their_value():
    check(r'''role r {
  description "a \"quoted\" word, a \\ and a \q"
}
''', r'''role r {
  description "a \"quoted\" word, a \\ and a \\q"
}
''')


def test_whitespace_line_endings_and_the_final_newline():
    check("role r {\r\n\tallow tcp 22 from any   # crlf and a tab\t\r\n}", """\
role r {
  allow tcp 22 from any  # crlf and a tab
}
""")


def test_statements_are_never_reordered():
    text = """\
cluster c {
  peer-with tor for row s1/e
  nodes role w
  peer-with routers
  asn 64601
  site s1
}
app x {
  connect tcp 1 to any
  listen tcp 80
  cluster c
}
"""
    check(text, text)


def test_empty_and_comment_only_files():
    check("", "")
    check("\n\n  \n", "")
    check("# only\n\n\n#   comments   \n", "# only\n\n#   comments\n")


def test_a_file_that_does_not_parse_is_refused():
    for bad in ("role r {\n  allow tcp 80 from\n", "role r { allow tcp 80 from any; }\n", 'role r { description "x }'):
        with pytest.raises(FormatError) as err:
            format_text(bad)
        assert err.value.syntax


def test_the_example_in_the_language_doc():
    doc = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Formatting"):doc.index("## Topology")]
    before, after = re.findall(r"```text\n(.*?)```", section, re.S)
    check(before, after)


# ------------------------------------------------------------------ the command

def netpolc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "compiler", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


UGLY = "role web {allow tcp 443 from any   # public\n}\n"
PRETTY = "role web {\n  allow tcp 443 from any  # public\n}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "policies" / "sub").mkdir(parents=True)
    (tmp_path / "policies" / "ugly.npl").write_text(UGLY)
    (tmp_path / "policies" / "sub" / "pretty.npl").write_text(PRETTY)
    (tmp_path / "policies" / "notes.txt").write_text("not a policy {")
    return tmp_path


def test_check_lists_the_files_that_would_change_and_writes_nothing(project: Path):
    r = netpolc("fmt", "--check", cwd=project)
    assert r.returncode == 1, r.stderr
    assert "would reformat policies/ugly.npl" in r.stderr
    assert "pretty.npl" not in r.stderr
    assert (project / "policies" / "ugly.npl").read_text() == UGLY
    assert r.stdout == ""


def test_diff_prints_a_unified_diff_and_writes_nothing(project: Path):
    r = netpolc("fmt", "--diff", "policies", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("--- a/policies/ugly.npl\n+++ b/policies/ugly.npl\n")
    assert "-role web {allow tcp 443 from any   # public\n" in r.stdout
    assert "+  allow tcp 443 from any  # public\n" in r.stdout
    assert (project / "policies" / "ugly.npl").read_text() == UGLY
    assert netpolc("fmt", "--diff", "--check", cwd=project).returncode == 1


def test_fmt_rewrites_only_changed_files_atomically(project: Path):
    ugly, pretty = project / "policies" / "ugly.npl", project / "policies" / "sub" / "pretty.npl"
    ugly.chmod(0o640)
    os.utime(pretty, ns=(1_000_000_000, 1_000_000_000))
    r = netpolc("fmt", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "reformatted policies/ugly.npl" in r.stderr
    assert ugly.read_text() == PRETTY
    assert ugly.stat().st_mode & 0o777 == 0o640
    assert pretty.stat().st_mtime_ns == 1_000_000_000  # unchanged: not written
    assert sorted(p.name for p in project.rglob("*") if p.is_file()) == ["notes.txt", "pretty.npl", "ugly.npl"]
    assert netpolc("fmt", "--check", cwd=project).returncode == 0


def test_paths_may_be_files_and_folders(project: Path):
    (project / "other").mkdir()
    (project / "other" / "x.npl").write_text(UGLY)
    r = netpolc("fmt", "other/x.npl", "policies/sub", cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / "other" / "x.npl").read_text() == PRETTY
    assert (project / "policies" / "ugly.npl").read_text() == UGLY  # not named


def test_a_file_that_does_not_parse_is_left_untouched_and_reported(project: Path):
    broken = project / "policies" / "broken.npl"
    broken.write_text("role x {\n  allow tcp 80 from\n")
    r = netpolc("fmt", cwd=project)
    assert r.returncode == 1
    assert "policies/broken.npl:2:20: error[E003]" in r.stderr
    assert "policies/broken.npl does not parse; left as it is" in r.stderr
    assert broken.read_text() == "role x {\n  allow tcp 80 from\n"
    assert (project / "policies" / "ugly.npl").read_text() == PRETTY  # the others are still formatted


def test_usage_errors(project: Path):
    assert netpolc("fmt", "missing", cwd=project).returncode == 2
    assert netpolc("fmt", "policies/notes.txt", cwd=project).returncode == 2


def test_policies_and_examples_are_formatted():
    """The committed sources are in the canonical layout (CI runs `netpolc fmt --check` the same way)."""
    r = netpolc("fmt", "--check", "policies", "examples", cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_a_link_out_of_the_folder_is_never_rewritten(tmp_path):
    """Like the compiler (E011), fmt on a folder touches only files inside it."""
    import subprocess
    import sys

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.npl").write_text("role   a {}\n")
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "x.npl").symlink_to(outside / "x.npl")
    (folder / "y.npl").write_text("role   b {}\n")
    run = subprocess.run([sys.executable, "-m", "compiler", "fmt", str(folder)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr
    assert (outside / "x.npl").read_text() == "role   a {}\n"
    assert (folder / "y.npl").read_text() == "role b {}\n"
    assert "links outside" in run.stderr

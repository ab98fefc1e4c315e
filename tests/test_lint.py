"""`netpolc lint`: each planted defect of `tests/lint_cases/` found with its code and place, and
nothing else; `policies/` without an error; silencing, JSON and exit codes.

Each folder of `tests/lint_cases/` is a small policy with its defects marked in comments; the
expected findings below are written by hand from those comments, as (code, file:line:column).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from compiler import cli
from compiler.analysis import lint
from compiler.diagnostics import Diagnostics
from compiler.model import PortMatch
from compiler.project import compile_folder, parse_all

REPO = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "lint_cases"
TODAY = dt.date(2026, 11, 25)

EXPECTED: dict[str, set[tuple[str, str]]] = {
    "redundant": {
        ("L001", "policy.npl:7:3"),     # tcp 22 from role bastion: the `any` of line 6 holds it
        ("L002", "policy.npl:8:44"),    # host web1 is in network office
        ("L001", "policy.npl:13:3"),    # tcp 8050 inside 8000-8100
        ("L001", "policy.npl:17:3"),    # 9000-9010: by 9000-9005 and 9006-9010 together
        ("L001", "policy.npl:18:3"),    # the default role says it for every host
        ("L001", "policy.npl:22:3"),    # the same statement twice: the later one
        ("L001", "policy.npl:36:3"),    # app to app: both ends opened by others
    },
    "unused": {
        ("L020", "policy.npl:4:9"),     # service ldap
        ("L020", "policy.npl:5:9"),     # service old-http, named only by the unused legacy
        ("L020", "policy.npl:6:9"),     # service legacy
        ("L021", "policy.npl:9:9"),     # network spare
        ("L014", "policy.npl:10:9"),    # network gone holds no address
        ("L011", "policy.npl:11:22"),   # `role ghost` in network mixed
        ("L010", "policy.npl:13:6"),    # role ghost, given to no host
        ("L011", "policy.npl:19:31"),   # `network gone` in a statement
        ("L011", "policy.npl:20:28"),   # `role ghost` in a statement
    },
    "nothing": {
        ("L012", "policy.npl:15:3"),    # allow into hosts without a firewall
        ("L013", "policy.npl:19:3"),    # a role's connect to a network
        ("L013", "policy.npl:20:3"),    # a role's connect to hosts without a firewall
        ("L012", "policy.npl:30:3"),    # default app allow without ports: no app listens
        ("L012", "policy.npl:31:3"),    # default app `in cluster k2`: no app runs there
    },
    "exposure": {
        ("L031", "policy.npl:8:22"),    # SNMP from internet
        ("L031", "policy.npl:16:23"),   # the API server from ::/0
        # the statements with `exposed` (sensitive ports, every port, the bastion, the API server
        # of line 23): said on purpose, nothing to report
    },
    "expiry": {
        ("L040", "policy.npl:5:3"),
        ("L040", "policy.npl:6:3"),     # expired yesterday
        ("L041", "policy.npl:7:3"),     # expires today: still in force, like W001
        ("L041", "policy.npl:8:3"),     # in 25 days
        ("L040", "policy.npl:17:3"),    # in an app
    },
    "overlap": {
        ("L050", "policy.npl:4:9"),     # b lists 10.20.0.0/24 like a
        ("L051", "policy.npl:6:9"),     # d half inside c
    },
    "pragma": {
        ("L031", "policy.npl:10:22"),   # the `# lint: allow` in the description is no comment
        ("L090", "policy.npl:12:40"),   # allows L040, which is not there
        ("L090", "policy.npl:13:40"),   # no such code
    },
}

ALLOWED: dict[str, set[tuple[str, str, str]]] = {  # (code, finding, the comment that silences it)
    "pragma": {
        ("L031", "policy.npl:6:23", "policy.npl:6:29"),  # a comment on the statement's line
        ("L001", "policy.npl:9:3", "policy.npl:8:3"),    # a comment line above it (in a block)
        ("L020", "policy.npl:16:9", "policy.npl:16:26"),  # on a declaration
    },
}

# What `policies/` gives (none is an error). A change here is a change in the reference estate's
# lint: look at it.
POLICIES: set[tuple[str, str]] = {
    # the LVS health-check statements: network mw-appserver-networks (or production-networks)
    # holds the LVS hosts too, so the statement after each says it already
    ("L001", "apps/api-gateway.npl:13:3"),
    ("L001", "apps/citation.npl:12:3"),
    ("L001", "apps/content.npl:21:3"),
    ("L001", "apps/content.npl:31:3"),
    ("L001", "apps/content.npl:49:3"),
    ("L001", "apps/content.npl:65:3"),
    ("L001", "apps/content.npl:77:3"),
    ("L001", "apps/content.npl:93:3"),
    ("L001", "apps/content.npl:110:3"),
    ("L001", "apps/eventing.npl:19:3"),
    ("L001", "apps/eventing.npl:37:3"),
    ("L001", "apps/kask.npl:14:3"),
    ("L001", "apps/kask.npl:26:3"),
    # `allow ... from app X` where mw-appserver-networks holds X's pod ranges (ingress) and the
    # default app's `connect any to network kubepods` X's egress
    ("L001", "apps/citation.npl:16:3"),
    ("L001", "apps/content.npl:35:3"),
    ("L001", "apps/content.npl:53:3"),
    ("L002", "apps/eventing.npl:23:39"),   # app changeprop (mobileapps also runs in staging: kept)
    # networks and a service declared as a catalogue, never used
    ("L021", "networks.npl:26:9"),    # network-infra
    ("L021", "networks.npl:47:9"),    # deployment-hosts
    ("L021", "networks.npl:73:9"),    # lvs-vips-eqiad
    ("L021", "networks.npl:74:9"),    # lvs-vips-codfw
    ("L021", "networks.npl:76:9"),    # lvs-kubemaster
    ("L021", "networks.npl:81:9"),    # lvs-cxserver
    ("L021", "networks.npl:83:9"),    # lvs-mathoid
    ("L021", "networks.npl:86:9"),    # lvs-linkrecommendation
    ("L021", "networks.npl:87:9"),    # lvs-sessionstore
    ("L021", "networks.npl:89:9"),    # lvs-eventgate-analytics
    ("L021", "networks.npl:92:9"),    # lvs-termbox
    ("L021", "networks.npl:94:9"),    # lvs-echostore
    ("L021", "networks.npl:95:9"),    # lvs-api-gateway
    ("L021", "networks.npl:96:9"),    # lvs-push-notifications
    ("L020", "services.npl:26:9"),    # bgp: BGP rules come from `peer-with`, never written
    # $INTERNAL against the sets built from the topology (its IPv6 /56s miss the pod /64s)
    ("L051", "networks.npl:18:9"),    # domain-networks / internal
    ("L051", "networks.npl:23:9"),    # internal / frack-networks
    ("L051", "networks.npl:26:9"),    # domain-networks / network-infra, internal / network-infra
    ("L051", "networks.npl:29:9"),    # internal / kubepods
    ("L051", "networks.npl:35:9"),    # internal / mw-appserver-networks
    ("L031", "roles.npl:65:36"),      # k8s-master: the API server from any
}


def run_lint(folder: Path, today: dt.date = TODAY) -> lint.Report:
    result = compile_folder(folder, today, render=False)
    assert result.ok, [str(d) for d in result.diagnostics if d.severity == "error"]
    files = parse_all(result.sources, Diagnostics())
    assert files is not None and result.model is not None
    return lint.analyse(result.model, files, result.sources, today)


def places(report: lint.Report) -> set[tuple[str, str]]:
    return {(f.code, str(f.span)) for f in report.findings}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_planted_defect_is_found_and_nothing_else(case: str) -> None:
    report = run_lint(CASES / case)
    assert places(report) == EXPECTED[case]
    for f in report.findings:
        assert f.severity == lint.CODES[f.code][0]
        assert f.hint


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_silenced_findings_are_kept_with_their_comment(case: str) -> None:
    report = run_lint(CASES / case)
    assert {(f.code, str(f.span), str(p.span)) for f, p in report.allowed} == ALLOWED.get(case, set())


def test_policies_lint_clean_and_every_silenced_finding_is_known() -> None:
    """policies/ gives no finding: what lint sees there (POLICIES) is each accepted on purpose with a
    `# lint: allow CODE -- why` comment on the statement, and these are exactly the known ones."""
    report = run_lint(REPO / "policies")
    assert not report.has_errors
    assert places(report) == set()
    assert {(f.code, str(f.span)) for f, _ in report.allowed} == POLICIES
    assert all("lint: allow" in REPO.joinpath("policies", p.span.file).read_text().split("\n")[p.span.line - 1]
               for _, p in report.allowed)


def test_the_case_folders_are_all_checked() -> None:
    assert sorted(p.name for p in CASES.iterdir() if p.is_dir()) == sorted(EXPECTED)


def test_a_redundant_statement_points_at_what_covers_it() -> None:
    report = run_lint(CASES / "redundant")
    by_place = {str(f.span): f for f in report.findings}
    first = by_place["policy.npl:7:3"]
    assert first.message == "redundant statement: all it allows is already allowed by policy.npl:6 (role db)"
    assert [str(s) for _, s in first.notes] == ["policy.npl:6:3"]
    both = by_place["policy.npl:17:3"]
    assert [str(s) for _, s in both.notes] == ["policy.npl:15:3", "policy.npl:16:3"]
    default = by_place["policy.npl:18:3"]
    assert "site.npl:33 (default role base)" in default.message
    peer = by_place["policy.npl:8:44"]
    assert peer.message.startswith("redundant peer host web1:")
    assert peer.hint == "remove host web1 from this statement"


def test_exposure_messages_name_the_ports() -> None:
    report = run_lint(CASES / "exposure")
    by_place = {str(f.span): f for f in report.findings}
    assert by_place["policy.npl:8:22"].message == "`internet` may reach role db on SNMP (udp 161)"
    assert by_place["policy.npl:16:23"].message == \
        "`::/0` (half an address family or more) may reach role web on the Kubernetes API server (tcp 6443)"
    assert "`exposed" in by_place["policy.npl:8:22"].hint


def test_expired_today_is_not_expired_tomorrow_it_is() -> None:
    report = run_lint(CASES / "expiry", dt.date(2026, 11, 26))
    assert ("L040", "policy.npl:7:3") in places(report)


@pytest.mark.parametrize(("have", "need", "covered"), [
    ([PortMatch("tcp", 80, 90)], [PortMatch("tcp", 85, 85)], True),
    ([PortMatch("tcp", 80, 85), PortMatch("tcp", 86, 90)], [PortMatch("tcp", 80, 90)], True),
    ([PortMatch("tcp", 80, 85), PortMatch("tcp", 87, 90)], [PortMatch("tcp", 80, 90)], False),
    ([PortMatch("tcp")], [PortMatch("tcp", 1, 65535)], True),
    ([PortMatch("tcp", 1, 65535)], [PortMatch("tcp")], True),
    ([PortMatch("udp")], [PortMatch("tcp", 53, 53)], False),
    ([PortMatch("any")], [PortMatch("icmp", icmp_type=8)], True),
    ([PortMatch("tcp"), PortMatch("udp")], [PortMatch("any")], False),
    ([PortMatch("icmp", icmp_type=3)], [PortMatch("icmp", icmp_type=3, icmp_code=4)], True),
    ([PortMatch("icmp", icmp_type=3, icmp_code=4)], [PortMatch("icmp", icmp_type=3)], False),
    ([PortMatch("icmp")], [PortMatch("icmp", icmp_type=8)], True),
    ([PortMatch("icmpv6")], [PortMatch("icmp", icmp_type=8)], False),
])
def test_port_containment(have: list[PortMatch], need: list[PortMatch], covered: bool) -> None:
    assert lint.ports_cover(have, need) is covered


def test_pragmas_are_comments_only() -> None:
    found = lint.pragmas({"a.npl": 'x "# lint: allow L030" # lint: allow L001, L002 -- because L030\n'
                                   "# see the `# lint: allow` comments\n"
                                   "  # lint: allow L040\n"})
    assert {k: (p.codes, p.alone, p.span.column) for k, p in found.items()} == {
        ("a.npl", 1): (("L001", "L002"), False, 24),
        ("a.npl", 3): (("L040",), True, 3),
    }


# ---------------------------------------------------------------------------- the command

def lint_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["lint", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_policies_exit_0_and_say_what_was_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint_cli(capsys, str(REPO / "policies"), "--today", "2026-11-25")
    assert code == 0
    assert "warning[" not in out and "error[" not in out
    assert out.endswith("lint: ok; 39 finding(s) silenced by `# lint: allow`\n")


def test_cli_exit_1_on_an_error_finding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint_cli(capsys, str(CASES / "expiry"), "--today", "2026-11-25")
    assert code == 1
    assert "error[L040]" in out and out.endswith("lint: failed\n")


@pytest.mark.parametrize(("case", "fail_on", "expected"), [
    ("unused", "error", 0), ("unused", "warning", 1),
    ("overlap", "warning", 1), ("redundant", "info", 1), ("expiry", "error", 1),
])
def test_cli_fail_on(capsys: pytest.CaptureFixture[str], case: str, fail_on: str, expected: int) -> None:
    code, _, _ = lint_cli(capsys, str(CASES / case), "--today", "2026-11-25", "--fail-on", fail_on)
    assert code == expected


def test_cli_expiry_depends_on_today(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint_cli(capsys, str(CASES / "expiry"), "--today", "2025-01-01")[0] == 0
    assert lint_cli(capsys, str(CASES / "expiry"), "--today", "2026-11-25")[0] == 1


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint_cli(capsys, str(CASES / "pragma"), "--today", "2026-11-25", "--format", "json")
    assert code == 0  # warnings only
    doc = json.loads(out)
    assert sorted(doc) == ["allowed", "diagnostics"]
    first = doc["diagnostics"][0]
    assert first["code"] == "L031" and first["severity"] == "warning"
    assert first["file"] == str(CASES / "pragma" / "policy.npl")
    assert (first["line"], first["column"]) == (10, 22)
    assert first["hint"]
    assert [(d["code"], d["line"]) for d in doc["diagnostics"]] == [("L031", 10), ("L090", 12), ("L090", 13)]
    assert [(d["code"], d["line"], d["allowed_by"].rsplit("/", 1)[1]) for d in doc["allowed"]] == [
        ("L031", 6, "policy.npl:6:29"), ("L001", 9, "policy.npl:8:3"), ("L020", 16, "policy.npl:16:26")]


def test_cli_a_policy_that_does_not_compile_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.npl").write_text("role web { allow tcp 443 from role wbe }\n")
    code, out, err = lint_cli(capsys, str(tmp_path))
    assert code == 1 and out == ""
    assert "error[E103]: unknown role `wbe`" in err and "lint: the policy does not compile" in err
    code, out, _ = lint_cli(capsys, str(tmp_path), "--format", "json")
    assert code == 1 and "E103" in [d["code"] for d in json.loads(out)["diagnostics"]]
    assert lint_cli(capsys, str(tmp_path / "missing"))[0] == 1


@pytest.mark.parametrize("args", [("--format", "xml"), ("--fail-on", "never"), ("--today", "tomorrow")])
def test_cli_usage_errors_exit_2(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["lint", str(REPO / "policies"), *args])
    assert exc.value.code == 2

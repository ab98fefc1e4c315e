"""`out/estate.json` against the JSON Schema the project ships, and the committed output against a fresh compile."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from compiler.project import compile_folder

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "compiler" / "schemas" / "estate.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
POLICY_SETS = [REPO / "policies"] + sorted(p for p in (REPO / "examples").iterdir() if list(p.glob("*.npl")))


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("folder", POLICY_SETS, ids=lambda p: p.name)
def test_compiled_estate_validates(folder: Path) -> None:
    result = compile_folder(folder)
    assert result.ok, [str(d.message) for d in result.diagnostics]
    estate = json.loads(result.files["estate.json"])
    errors = sorted(VALIDATOR.iter_errors(estate), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_committed_estate_validates_and_is_current() -> None:
    committed = (REPO / "out" / "estate.json").read_bytes()
    VALIDATOR.validate(json.loads(committed))
    assert compile_folder(REPO / "policies").files["estate.json"] == committed


def _estate() -> dict:
    return json.loads(compile_folder(REPO / "policies").files["estate.json"])


@pytest.mark.parametrize("mutate", [
    lambda e: e["hosts"][next(iter(e["hosts"]))]["addresses"]["ipv4"].append("10.0.0.300"),
    lambda e: e["hosts"][next(iter(e["hosts"]))]["addresses"]["ipv4"].append("2620:0:861::1"),
    lambda e: e["hosts"][next(iter(e["hosts"]))].update(color="red"),
    lambda e: e["hosts"].update({"Bad_Name": e["hosts"][next(iter(e["hosts"]))]}),
    lambda e: e["clusters"][next(iter(e["clusters"]))]["peerings"][0].update(mode="mesh"),
    lambda e: e["clusters"][next(iter(e["clusters"]))]["pods"]["ipv4"].append("10.0.0.0/33"),
    lambda e: e["routers"][next(iter(e["routers"]))].update(asn=0),
    lambda e: e["services"][next(iter(e["services"]))]["ports"].append("tcp 80 to 90"),
    lambda e: e.pop("hosts"),
], ids=["bad-ipv4", "v6-in-v4", "unknown-key", "bad-name", "bad-mode", "bad-prefix", "asn-0", "bad-port",
        "missing-table"])
def test_schema_rejects_broken_estates(mutate) -> None:
    estate = copy.deepcopy(_estate())
    mutate(estate)
    assert list(VALIDATOR.iter_errors(estate)), "the schema accepted a broken estate"

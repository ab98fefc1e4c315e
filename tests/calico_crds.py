"""Validate Calico resources against the real CRDs' `openAPIV3Schema` with jsonschema.

A CRD's structural schema is OpenAPI v3 with Kubernetes extensions, not JSON Schema; used as is,
it accepts too much or crashes (shared/reference/notes/calico.md 1.4). The conversion here:
- objects with `properties` get `additionalProperties: false` (the API server prunes unknown
  fields, so a misspelt field would silently vanish), unless they preserve unknown fields;
- `x-kubernetes-int-or-string`: integer or string, whatever `type` says beside it;
- `x-kubernetes-list-type: set` -> `uniqueItems`; `map` -> unique `x-kubernetes-list-map-keys`;
- `nullable` -> the type or null;
- Go RE2 inline flags (`^(?i)(Info|...)$`) moved to the front, where Python's `re` wants them;
- `format`: int32, int64, cidr and date-time are checked (jsonschema only annotates by default);
- CEL rules (`x-kubernetes-validations`) are not evaluated: `calico_rules.py` re-implements
  the ones that matter;
- any other keyword or extension is an error, so a new CRD cannot be half-understood.
`metadata` is only `type: object` in a CRD: names are checked here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from netaddr import AddrFormatError, IPNetwork

CRD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "calico" / "crds"
CRD_GLOB = "projectcalico.org_*.yaml"  # the native projectcalico.org/v3 CRDs, not crd.projectcalico.org/v1

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# JSON Schema keywords a structural schema may use, passed on as they are
PLAIN = {"type", "enum", "required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
         "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "multipleOf", "default",
         "uniqueItems", "title", "example", "format"}  # format: checked by FORMATS below
IGNORED = {"description", "x-kubernetes-map-type", "x-kubernetes-validations", "x-kubernetes-embedded-resource",
           "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
           "x-kubernetes-list-type", "nullable"}
_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


class UnknownKindError(LookupError):
    """A document whose apiVersion and kind no loaded CRD defines."""


def crd_dir() -> Path:
    """The CRD folder; in CI a missing folder fails the test (a skip would hide it), elsewhere it skips."""
    if not any(CRD_DIR.glob(CRD_GLOB)):
        message = f"Calico CRDs not found in {CRD_DIR} (shared/ must sit beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CRD_DIR


def go_regex(pattern: str) -> str:
    """RE2 allows flags mid-pattern (`^(?i)(a|b)$`); Python wants global flags first."""
    flags = "".join(_INLINE_FLAGS.findall(pattern))
    if not flags:
        return pattern
    if "U" in flags:
        raise ValueError(f"RE2 flag U (ungreedy) has no Python equivalent: {pattern!r}")
    return f"(?{''.join(sorted(set(flags)))})" + _INLINE_FLAGS.sub("", pattern)


def convert(node: dict, where: str = "$") -> dict:
    """A JSON Schema (2020-12) for one OpenAPI v3 structural schema node."""
    out: dict = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: convert(v, f"{where}.{k}") for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value, f"{where}[]") if isinstance(value, dict) else value
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [convert(v, where) for v in value]
        elif key == "pattern":
            out[key] = go_regex(value)
            re.compile(out[key])  # a pattern Python cannot read fails here, not mid-validation
        elif key in PLAIN:
            out[key] = value
        elif key not in IGNORED:
            raise ValueError(f"unknown schema keyword {key!r} at {where}: teach calico_crds.convert about it")
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out["x-list-map-keys"] = list(node.get("x-kubernetes-list-map-keys", []))
    elif list_type not in (None, "atomic"):
        raise ValueError(f"unknown x-kubernetes-list-type {list_type!r} at {where}")
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _list_map_keys(validator, keys, instance, schema):
    """`x-kubernetes-list-type: map`: no two items share their key fields."""
    if not validator.is_type(instance, "array"):
        return
    seen = set()
    for item in instance:
        k = tuple(item.get(key) for key in keys) if isinstance(item, dict) else (item,)
        if k in seen:
            yield jsonschema.ValidationError(f"duplicate list-map key {dict(zip(keys, k, strict=True))}")
        seen.add(k)


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@FORMATS.checks("cidr", raises=(AddrFormatError, ValueError))
def _cidr(value: object) -> bool:
    if isinstance(value, str):
        if "/" not in value:
            raise ValueError(f"{value!r} has no prefix length")
        IPNetwork(value)
    return True


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"x-list-map-keys": _list_map_keys})


class CRDs:
    """The CRDs of one folder, by (group, version, kind)."""

    def __init__(self, folder: Path):
        self.schemas: dict[tuple[str, str, str], tuple[str, dict]] = {}
        for path in sorted(folder.glob(CRD_GLOB)):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    schema = convert(version["schema"]["openAPIV3Schema"], f"{path.name}:{key[2]}")
                    Validator.check_schema(schema)
                    self.schemas[key] = (spec["scope"], schema)
        if not self.schemas:
            raise ValueError(f"no CRD in {folder}")

    @property
    def kinds(self) -> set[str]:
        return {k for _, _, k in self.schemas}

    def errors(self, doc: dict) -> list[str]:
        """Every schema and name error of one resource; UnknownKindError if no CRD defines it."""
        group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
        key = (group, version, str(doc.get("kind")))
        if key not in self.schemas:
            raise UnknownKindError(f"no CRD for apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r} "
                              f"(known: {sorted(self.kinds)})")
        scope, schema = self.schemas[key]
        validator = Validator(schema, format_checker=FORMATS)
        out = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
               for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
        return out + _metadata_errors(doc, scope)


def _metadata_errors(doc: dict, scope: str) -> list[str]:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    out = []
    if not isinstance(name, str) or not name:
        out.append("metadata.name: required")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        out.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    elif doc.get("kind") == "BGPConfiguration" and name != "default" and not name.startswith("node."):
        out.append(f"metadata.name: a BGPConfiguration is `default` or `node.<node>`, not {name!r}")
    if scope == "Cluster" and "namespace" in meta:
        out.append("metadata.namespace: set on a cluster-scoped resource")
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            out.append(f"metadata.annotations.{key}: {value!r} is not a string")
    return out


@cache
def load(folder: Path = CRD_DIR) -> CRDs:
    return CRDs(folder)

"""YAML for generated files: a header comment, then `---` documents in block style.

One dumper for every backend that writes YAML, so all of it is byte-stable: keys sorted,
no anchors or aliases (a reader should see every value where it applies), no line
folding (a selector stays on one line). libyaml's emitter is used where PyYAML has it
(ten times faster on a large estate); the tests check that it writes the same bytes as
the pure-Python one, which is used where libyaml is missing.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml


class Quoted(str):
    """A string always written double-quoted: Calico selectors, which may start with `!`
    and hold quotes of their own, read unambiguously as strings."""


def _dumper(base: type) -> type:
    class Dumper(base):  # type: ignore[valid-type,misc]
        def ignore_aliases(self, data: object) -> bool:
            return True

    Dumper.add_representer(Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"'))
    return Dumper


PURE_DUMPER = _dumper(yaml.SafeDumper)
DUMPER = _dumper(yaml.CSafeDumper) if getattr(yaml, "__with_libyaml__", False) else PURE_DUMPER


def dump_documents(header: Iterable[str], docs: Iterable[object], dumper: type | None = None) -> bytes:
    """Comment lines (given without `# `), then each document after `---`; no document, no `---`."""
    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.dump_all(list(docs), Dumper=dumper or DUMPER, explicit_start=True, default_flow_style=False,
                         sort_keys=True, allow_unicode=True, width=1 << 16)
    return (comments + body).encode("utf-8")

"""The compiled files (`{path: bytes}`, as the backends render them), parsed on demand, and the
lines of them that implement a decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .calico_files import CalicoFiles
from .ferm_file import FermFile


@dataclass(frozen=True)
class Emitted:
    """One line of a compiled file that implements a decision."""

    file: str  # relative to the output folder
    line: int
    text: str
    location: str | None  # the statement it names (annotation or comment)

    def as_json(self, out_dir: str = "") -> dict:
        return {"file": f"{out_dir}/{self.file}" if out_dir else self.file, "line": self.line, "text": self.text,
                "statement": self.location}


class Compiled:
    """The compiled files, parsed on demand."""

    def __init__(self, files: Mapping[str, bytes]):
        self.files = files
        self._calico: dict[str, CalicoFiles] = {}
        self._ferm: dict[str, FermFile | None] = {}

    def calico(self, cluster: str) -> CalicoFiles:
        if cluster not in self._calico:
            self._calico[cluster] = CalicoFiles(self.files, cluster)
        return self._calico[cluster]

    def ferm(self, host: str) -> FermFile | None:
        if host not in self._ferm:
            path = f"ferm/{host}.conf"
            self._ferm[host] = FermFile(path, self.files[path].decode()) if path in self.files else None
        return self._ferm[host]

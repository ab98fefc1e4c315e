"""The answer: per pair of parties, per family, each end's verdict with the statements that decide
it, the compiled lines that implement them, the nearest statements and a hint when it denies, and
any disagreement between the model and the files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...diagnostics import Span
from .compiled import Emitted
from .ends import Party
from .grants import Statement
from .question import Query, Spec

ALLOWED, DENIED, NOT_POLICED, UNKNOWN, NA = "allowed", "denied", "not policed", "unknown", "n/a"


@dataclass(frozen=True)
class Nearest:
    statement: Statement
    why: str

    def as_json(self, text_of: Callable[[Span], str] | None = None) -> dict:
        return {"statement": self.statement.as_json(text_of), "why": self.why}


@dataclass
class EndResult:
    """One policed (or unpoliced) end of a pair, in one family."""

    end: str  # source | destination
    enforcer: str  # calico | ferm | none
    subject: str
    verdict: str
    reason: str
    statements: list[Statement] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)
    nearest: list[Nearest] = field(default_factory=list)
    hint: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"end": self.end, "enforcer": self.enforcer, "subject": self.subject, "verdict": self.verdict,
                "reason": self.reason, "statements": [s.as_json(text_of) for s in self.statements],
                "emitted": [e.as_json(out_dir) for e in self.emitted],
                "nearest": [n.as_json(text_of) for n in self.nearest], "hint": self.hint, "problems": self.problems}


@dataclass
class FamilyResult:
    family: int
    verdict: str
    reason: str | None
    ends: list[EndResult]

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"verdict": self.verdict, "reason": self.reason,
                "ends": [e.as_json(text_of, out_dir) for e in self.ends]}


def _combine(verdicts: list[str]) -> str:
    real = [v for v in verdicts if v != NA]
    if not real:
        return NA
    if all(v == ALLOWED for v in real):
        return ALLOWED
    if all(v == DENIED for v in real):
        return DENIED
    if all(v in (ALLOWED, UNKNOWN) for v in real):
        return UNKNOWN
    return "mixed"


@dataclass
class PairResult:
    source: Party
    destination: Party
    families: list[FamilyResult]

    @property
    def verdict(self) -> str:
        return _combine([f.verdict for f in self.families])

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"source": self.source.as_json(), "destination": self.destination.as_json(), "verdict": self.verdict,
                "families": {f"ipv{f.family}": f.as_json(text_of, out_dir) for f in self.families}}


@dataclass
class Report:
    source: Spec
    destination: Spec
    query: Query
    pairs: list[PairResult]

    @property
    def verdict(self) -> str:
        return _combine([p.verdict for p in self.pairs])

    @property
    def problems(self) -> list[str]:
        return sorted({x for p in self.pairs for f in p.families for e in f.ends for x in e.problems})

    def as_json(self, text_of: Callable[[Span], str] | None = None, out_dir: str = "") -> dict:
        return {"source": self.source.text, "destination": self.destination.text, "query": self.query.as_json(),
                "verdict": self.verdict, "pairs": [p.as_json(text_of, out_dir) for p in self.pairs],
                "problems": self.problems}

"""The text of a statement as written, for the answer to quote."""

from __future__ import annotations

from collections.abc import Mapping

from ...diagnostics import Span


def statement_text(sources: Mapping[str, str], span: Span) -> str:
    """A statement as written, on one line: comments dropped, whitespace collapsed."""
    text = sources.get(span.file)
    if text is None:
        return ""
    lines = text.split("\n")[span.line - 1:span.end_line]
    if not lines:
        return ""
    if len(lines) == 1:
        lines[0] = lines[0][span.column - 1:span.end_column - 1]
    else:
        lines[0] = lines[0][span.column - 1:]
        lines[-1] = lines[-1][:span.end_column - 1]
    out = []
    for line in lines:
        kept, quoted, escaped = [], False, False
        for ch in line:
            if escaped:
                escaped = False
            elif ch == "\\" and quoted:
                escaped = True
            elif ch == '"':
                quoted = not quoted
            elif ch == "#" and not quoted:
                break
            kept.append(ch)
        out.append("".join(kept).strip())
    return " ".join(x for x in out if x)

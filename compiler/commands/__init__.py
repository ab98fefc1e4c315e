"""Review-workflow commands beyond compile/check/verify, each in its own module.

A module here defines `register(sub)`, which adds its subparser and sets
`handler=<function(args) -> exit code>` with `set_defaults`. Add it to COMMANDS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib

COMMANDS: tuple[str, ...] = ("diff", "explain", "fmt", "lint")  # module names, e.g. ("diff", "explain", "lint", "fmt")


def register_all(sub: argparse._SubParsersAction) -> None:
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)


def iso_date(text: str) -> dt.date:
    """An argparse type for `--today YYYY-MM-DD`, shared by every command that judges expiry."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None

"""Errors a user can act on.

Every error the tool raises for bad input is an ``RMGapError``: the CLI prints
its message as one paragraph and exits non-zero, the pytest plugin turns it into
a usage error. Messages say what is wrong, where (file, line, record) and how to
fix it, so nobody has to read a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RMGapError(Exception):
    """Base class: bad input or configuration, never a bug in this package."""


class DataError(RMGapError):
    """The benchmark file breaks the RMGAP schema."""

    def __init__(self, path: str, message: str, *, line: int | None = None,
                 record_id: str | None = None, fix: str = "", line_label: str = "line") -> None:
        where = str(path)
        if line is not None:  # line_label: "element" for a record of a JSON array file
            where += f", {line_label} {line}"
        if record_id is not None:
            where += f" (record {record_id!r})"
        text = f"{where}: {message}"
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)
        self.path, self.line, self.record_id = path, line, record_id


class ScorerError(RMGapError):
    """A scorer spec or option is wrong, or a scorer broke its contract."""


class CacheError(RMGapError):
    """The score cache file cannot be used (not a cache, newer schema, unwritable)."""


class ThresholdsError(RMGapError):
    """The thresholds file is invalid."""


class OutputError(RMGapError):
    """A report or baseline file cannot be written where the user asked."""


class BaselineError(RMGapError):
    """A baseline cannot be read or does not match the current run."""


class CalibrationError(RMGapError):
    """``rmgap calibrate`` was asked for a simulation it cannot run."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' Did you mean 'X'?' for the closest choice, or '' when nothing is close."""
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" Did you mean {close[0]!r}?" if close else ""

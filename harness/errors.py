"""Errors the CLI turns into one line and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


class UnknownNameError(HarnessError, KeyError):
    """An unknown backend, suite, dataset or option value; lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        close = closest(name, self.valid)
        hint = f" (did you mean '{close}'?)" if close else ""
        super().__init__(f"unknown {kind} '{name}'{hint}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type, tuple[str, str, list[str]]]:
        # Pickled (a Ray task's exception) with the arguments of __init__, not the message.
        return type(self), (self.kind, self.name, self.valid)


def closest(name: str, valid: Iterable[str]) -> str:
    """The valid name most like ``name`` (difflib, case-insensitive), ``""`` when none is close."""
    choices = {v.lower(): v for v in valid}
    found = difflib.get_close_matches(str(name).lower(), list(choices), n=1, cutoff=0.6)
    return choices[found[0]] if found else ""


class UnavailableError(HarnessError):
    """A known component whose requirements are missing (with the install hint)."""

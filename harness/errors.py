"""Errors the CLI turns into one line and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class HarnessError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


class UnknownNameError(HarnessError, KeyError):
    """An unknown backend, suite, dataset or option value; lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type, tuple[str, str, list[str]]]:
        # Pickled (a Ray task's exception) with the arguments of __init__, not the message.
        return type(self), (self.kind, self.name, self.valid)


class UnavailableError(HarnessError):
    """A known component whose requirements are missing (with the install hint)."""

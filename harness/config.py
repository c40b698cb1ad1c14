"""``harness run --config FILE``: run options from a TOML file.

The keys are the ``run`` options' names, at the top level of the file (``batch_size`` or
``batch-size``)::

    suite = "bn-vs-nobn"
    backend = ["torch", "jax"]   # or "torch,jax"
    epochs = 3
    lr = 0.05
    quick = true

Values have the options' types (integers for counts, numbers for ``lr`` and ``cell_timeout``,
``true``/``false`` for flags, strings otherwise) and pass the same checks as on the command
line, which overrides the file. Every problem is a :class:`HarnessError` naming the file and,
where it can be known, the line.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.schema import read_capped

MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few lines: a longer one (``/dev/zero``) is refused after 1 MiB."""
NOT_IN_FILES = ("help", "config", "resume")
"""Options a config file cannot set: ``--resume`` takes its settings from the store."""


@dataclass(frozen=True)
class OptionKind:
    """How a config value is checked: ``flag`` (bool), ``typed`` (number) or ``text``."""

    kind: str
    convert: Callable[[str], Any] | None = None


def option_kinds(parser: argparse.ArgumentParser) -> dict[str, OptionKind]:
    """The options of ``parser`` a config file may set, by destination name."""
    kinds = {}
    for action in parser._actions:
        if action.dest in NOT_IN_FILES:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            kinds[action.dest] = OptionKind("flag")
        elif callable(action.type):
            kinds[action.dest] = OptionKind("typed", action.type)
        else:
            kinds[action.dest] = OptionKind("text")
    return kinds


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli

        return tomli
    except ImportError:  # pragma: no cover
        raise HarnessError("--config needs Python 3.11, or tomli: pip install tomli") from None


def read_config(path: str) -> tuple[dict[str, Any], str]:
    """The parsed file and its text; unreadable, non-UTF-8 or invalid TOML is an error."""
    toml = _toml()
    try:
        raw = read_capped(path, MAX_CONFIG_BYTES, "config file")
    except OSError as exc:
        raise HarnessError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise HarnessError(f"{path}, line {line}: not UTF-8 text") from None
    try:
        return toml.loads(text), text
    except toml.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: invalid TOML: {exc}") from None


def key_line(text: str, key: str) -> int:
    """The 1-based line where top-level ``key`` (or table ``[key]``) is set; 0 if not found."""
    name = re.escape(key)
    pattern = re.compile(rf"^\s*(?:[\"']?{name}[\"']?\s*[.=]|\[+\s*[\"']?{name}[\"']?\s*[].])")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return 0


def convert(key: str, value: Any, kind: OptionKind) -> Any:
    """``value`` checked for option ``key``; ValueError/ArgumentTypeError say what is wrong."""
    if kind.kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind.kind == "typed":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        assert kind.convert is not None
        return kind.convert(str(value))
    if key == "backend" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def apply_config(args: argparse.Namespace, path: str, kinds: dict[str, OptionKind]) -> None:
    """Set every option of ``args`` still ``None`` from the file at ``path``."""
    data, text = read_config(path)
    seen: set[str] = set()
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        line = key_line(text, raw_key)
        where = f"{path}, line {line}" if line else path
        if key not in kinds:
            valid = ", ".join(sorted(kinds))
            raise HarnessError(f"{where}: unknown key '{raw_key}'; valid keys: {valid}")
        if key in seen:
            raise HarnessError(f"{where}: '{raw_key}' is set twice")
        seen.add(key)
        try:
            checked = convert(key, value, kinds[key])
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise HarnessError(f"{where}: {raw_key}: {exc}") from None
        if getattr(args, key, None) is None:
            setattr(args, key, checked)

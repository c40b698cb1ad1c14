"""Checks of what the harness reads back from files: ``results.json`` and the store's rows.

Every name and value read from a file is untrusted: a report's ``results.json`` may come from
anyone, a results file may be damaged. What the harness reads is checked here, before it is
used, so a wrong type is one ``harness: error:`` line (exit 2), never a traceback deep in a
report section; and a run id, which becomes a folder name, must be a plain name.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

RESULTS_MAX_BYTES = 1 << 30
"""The largest ``results.json`` read (the largest reference report's is a few MiB)."""
RESULTS_VERSION = 1
"""The ``version`` field of the ``results.json`` this harness writes; a file without one is a
version-1 file written before the field existed; a newer one is refused."""
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A run id: a name (letters, digits, ``.``, ``_``, ``-``; 128 at most), never a path."""
KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "list": (list,),
    "strs": (list,),
    "objs": (list,),
    "object": (dict,),
}
RUN_FIELDS = {"run_id": "str", "suite": "str", "status": "str", "settings": "object"}
SETTINGS_FIELDS = {
    "backends": "strs",
    "devices": "strs",
    "data": "object",
    "seeds": "int",
    "epochs": "int?",
    "batch_size": "int?",
    "lr": "number?",
    "init": "str?",
    "defaults": "str?",
    "quick": "bool",
}
CELL_FIELDS = {
    **{k: "str" for k in ("cell_id", "backend", "device", "variant", "status", "reason")},
    "stderr_tail": "str",
    "settings": "object",
    "epochs": "objs",
    "result": "object",
}
SPEC_FIELDS = {"model": "object", "train": "object", "data": "object", "extra": "object"}
CELL_SETTINGS_FIELDS = {"model": "object", "train": "object", "data": "object", "point": "object?"}


def check_run_id(run_id: object, where: str = "") -> str:
    """``run_id`` if it is a plain name (see :data:`RUN_ID`), else a :class:`HarnessError`."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        at = f"{where}: " if where else ""
        raise HarnessError(
            f"{at}run id {run_id!r} is not a name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit)"
        )
    return run_id


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def check_fields(data: object, fields: dict[str, str], where: str) -> None:
    """Each of ``fields`` (name -> kind, ``?`` for nullable) is in ``data`` with its type."""
    if not isinstance(data, dict):
        raise HarnessError(f"{where}: expected an object, got {_type_name(data)}")
    for name, kind in fields.items():
        nullable = kind.endswith("?")
        value = data.get(name) if nullable else data.get(name, ...)
        if value is ... and not nullable:
            raise HarnessError(f"{where}: missing field '{name}'")
        if value is None and nullable:
            continue
        types = KINDS[kind.rstrip("?")]
        wrong_bool = isinstance(value, bool) and bool not in types
        item = {"strs": str, "objs": dict}.get(kind.rstrip("?"))
        right_type = isinstance(value, types)
        wrong_items = (
            right_type and item is not None and not all(isinstance(v, item) for v in value or ())
        )
        if not right_type or wrong_bool or wrong_items:
            shown = f"a list of {item.__name__}" if item else kind.rstrip("?")
            got = f"{value!r:.40}" if item else _type_name(value)
            raise HarnessError(f"{where}: field '{name}' should be {shown}, got {got}")


def check_results_json(data: object, where: str) -> None:
    """``data`` has the shape of a ``results.json`` (any version up to this harness's)."""
    check_fields(data, {**RUN_FIELDS, "env": "object", "cells": "list"}, where)
    assert isinstance(data, dict)
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise HarnessError(f"{where}: 'version' should be a positive integer, got {version!r}")
    if version > RESULTS_VERSION:
        raise HarnessError(
            f"{where}: results.json version {version} is newer than this harness "
            f"({RESULTS_VERSION}); upgrade bn-harness to read it"
        )
    check_run_id(data["run_id"], where)
    check_fields(data["settings"], SETTINGS_FIELDS, f"{where}: settings")
    for i, cell in enumerate(data["cells"]):
        at = f"{where}: cells[{i}]"
        check_fields(cell, CELL_FIELDS, at)
        check_fields(cell["settings"], CELL_SETTINGS_FIELDS, at)
    if data.get("findings") is not None:
        check_fields(data, {"findings": "object"}, where)


def check_run_row(run: dict[str, Any], where: str) -> None:
    """A run row of the store, JSON decoded: its settings and environment are objects."""
    check_fields(run, {"settings": "object", "env": "object"}, where)


def check_cell_row(cell: dict[str, Any], where: str) -> None:
    """A cell row of the store, JSON decoded: its spec and result are objects."""
    check_fields(cell, {"spec": "object", "result": "object"}, where)


def read_capped(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the file at ``path``, refusing one longer than ``limit`` without reading
    more than that (``/dev/zero`` or a FIFO never ends); OSError passes through."""
    with open(path, "rb") as src:
        data = src.read(limit + 1)
    if len(data) > limit:
        raise HarnessError(f"{path}: {what} larger than {limit // 1024} KiB; not read")
    return data


def load_results_json(path: Path) -> dict[str, Any]:
    """A ``results.json`` read (at most :data:`RESULTS_MAX_BYTES`), parsed and checked."""
    try:
        raw = read_capped(path, RESULTS_MAX_BYTES, "a results.json")
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise HarnessError(f"{path}: not a harness results.json (not JSON: {exc})") from None
    check_results_json(data, str(path))
    return data  # type: ignore[no-any-return]


def check_report_cells(cells: list[dict[str, Any]], where: str) -> None:
    """Cells about to be reported: each spec has its model, train, data and extra objects,
    each part with every field of its dataclass (:data:`harness.specs.SPEC_PARTS`).

    A field added to a spec after the cell was stored gets its default, which is what the cell
    ran with (new fields default to the earlier behaviour); a field without a default that is
    missing is an error.
    """
    from harness.specs import SPEC_PARTS

    for cell in cells:
        at = f"{where}: cell {cell['cell_id']!r}: spec"
        check_fields(cell["spec"], SPEC_FIELDS, at)
        for part, cls in SPEC_PARTS.items():
            stored = cell["spec"][part]
            for f in dataclasses.fields(cls):
                if f.name in stored:
                    continue
                if f.default is not dataclasses.MISSING:
                    stored[f.name] = _plain(f.default)
                elif f.default_factory is not dataclasses.MISSING:
                    stored[f.name] = _plain(f.default_factory())
                else:
                    raise HarnessError(f"{at}: {part}: missing field '{f.name}'")


def _plain(value: Any) -> Any:
    """A spec default as the store holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value

"""Claims are looked up through the plugin registry, so a plugin's claim is evaluated like a
built-in one (and an unknown one is a one-line error, not a KeyError)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import claims
from harness.errors import HarnessError
from harness.plugins import get_plugins
from harness.registry import ClaimInfo
from harness.suite import Suite


def plugin_claim(cells: list[dict[str, Any]], suite: Any) -> list[claims.ClaimResult]:
    """A claim no built-in table knows: one result saying how many cells it saw."""
    return [claims.ClaimResult("from a plugin", "all", "cells", str(len(cells)), "supported")]


def _cell(seed: int) -> dict[str, Any]:
    spec = {"train": {"seed": seed}, "model": {}, "extra": {}}
    return {"backend": "fake", "device": "cpu", "variant": "bn", "status": "ok", "spec": spec,
            "result": {"epochs": [{"val_acc": 0.5}]}}  # fmt: skip


def test_a_plugins_claim_is_evaluated_through_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = get_plugins().claims  # shared by the process: its items are restored after
    monkeypatch.setattr(table, "items", dict(table.items))
    monkeypatch.setattr(table, "owners", dict(table.owners))
    table.add("plugin_claim", ClaimInfo("plugin_claim", f"{__name__}:plugin_claim", "test"))
    assert "plugin_claim" not in claims.CLAIMS
    suite = Suite("s", "d", extra={"claims": ("plugin_claim",)})
    (result,) = claims.evaluate([_cell(0), _cell(1)], suite)
    assert result.claim == "from a plugin" and result.measurement == "2"


def test_an_unknown_claim_names_the_registered_ones() -> None:
    suite = Suite("s", "d", extra={"claims": ("no_such_claim",)})
    with pytest.raises(HarnessError, match="bn_faster"):
        claims.evaluate([_cell(0)], suite)

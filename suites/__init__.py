"""Built-in suites (plain data), registered through the same hook as any plugin's suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.suites.bn_vs_nobn import BN_VS_NOBN

from harness.hookspecs import hookimpl


@hookimpl
def harness_register_suites(register: Callable[[Any], None]) -> None:
    """Register the built-in suites."""
    for suite in (BN_VS_NOBN,):
        register(suite)

"""Built-in suites (plain data), registered through the same hook as any plugin's suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.suites.batch_size import BATCH_SIZE, BATCH_SIZE_STEPS
from harness.suites.bn_numerics import BN_NUMERICS
from harness.suites.bn_only import BN_ONLY
from harness.suites.bn_placement import BN_PLACEMENT
from harness.suites.bn_vs_nobn import BN_VS_NOBN
from harness.suites.defaults_attribution import DEFAULTS_ATTRIBUTION
from harness.suites.ghost_bn import GHOST_BN
from harness.suites.init_scale import INIT_SCALE
from harness.suites.ioffe2015 import IOFFE2015
from harness.suites.lr_sweep import LR_SWEEP
from harness.suites.noise_injection import NOISE_INJECTION
from harness.suites.precise_bn import PRECISE_BN
from harness.suites.timing import TIMING


@hookimpl
def harness_register_suites(register: Callable[[Any], None]) -> None:
    """Register the built-in suites."""
    for suite in (
        BN_VS_NOBN,
        BN_NUMERICS,
        BATCH_SIZE,
        BATCH_SIZE_STEPS,
        LR_SWEEP,
        INIT_SCALE,
        BN_PLACEMENT,
        IOFFE2015,
        TIMING,
        GHOST_BN,
        DEFAULTS_ATTRIBUTION,
        NOISE_INJECTION,
        PRECISE_BN,
        BN_ONLY,
    ):
        register(suite)

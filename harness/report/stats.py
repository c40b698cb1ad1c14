"""Re-exports of :mod:`harness.stats` (the results layer) for report sections."""

from __future__ import annotations

from harness.stats import Spread, Summary, cell_key, group, median, paired_ratios, spread, summarize

__all__ = [
    "Spread",
    "Summary",
    "cell_key",
    "group",
    "median",
    "paired_ratios",
    "spread",
    "summarize",
]

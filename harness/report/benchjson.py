"""pytest-benchmark results in a report: the JSON of ``python benchmarks/run.py``.

Read when ``$HARNESS_BENCHMARK_JSON`` names one or more files (``os.pathsep``-separated) at
report time; the table is also kept in results.json. Each row is one benchmark: what it timed
(train step, epoch, eval pass), the backend, BN and batch size, and pytest-benchmark's own
statistics over its rounds (median, IQR, rounds) after its warm-up rounds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.report.context import ReportContext

ENV_VAR = "HARNESS_BENCHMARK_JSON"


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The ``benchmarks`` entries of every pytest-benchmark JSON file in ``paths``."""
    found = []
    for path in paths:
        data = json.loads(path.read_text())
        for bench in data.get("benchmarks", []):
            found.append({**bench, "file": path.name, "machine": data.get("machine_info", {})})
    return found


def rows(benchmarks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per benchmark (times in ms)."""
    out = []
    for bench in benchmarks:
        stats, params = bench.get("stats", {}), bench.get("params") or {}
        out.append(
            {
                "what": bench.get("group", ""),
                "backend": params.get("backend_name", params.get("backend", "")),
                "BN": _yes_no(params.get("bn")),
                "batch": params.get("batch_size", "all"),
                "median ms": f"{1e3 * stats.get('median', float('nan')):.3f}",
                "IQR ms": f"{1e3 * stats.get('iqr', float('nan')):.3f}",
                "rounds": stats.get("rounds", ""),
                "samples/s": _throughput(bench),
            }
        )
    return out


def _yes_no(value: Any) -> str:
    return "" if value is None else ("yes" if value else "no")


def _throughput(bench: dict[str, Any]) -> str:
    samples = (bench.get("extra_info") or {}).get("samples")
    median = bench.get("stats", {}).get("median")
    return f"{samples / median:,.0f}" if samples and median else "-"


def benchmark_section(ctx: ReportContext) -> str:
    """The benchmarks table, when ``$HARNESS_BENCHMARK_JSON`` names files; else nothing."""
    names = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if not names:
        return ""
    paths = [Path(p) for p in names if Path(p).is_file()]
    missing = [p for p in names if not Path(p).is_file()]
    table = rows(load(paths))
    ctx.data["benchmarks"] = table
    lines = ["### pytest-benchmark results", f"From {', '.join(f'`{p}`' for p in names)}."]
    if missing:
        lines.append(f"Not found: {', '.join(missing)}.")
    lines.append(tabulate(table, headers="keys", tablefmt="github") if table else "_no data_")
    return "\n\n".join(lines)

"""Report section of the timing suite: epoch times, baselines, BN's cost, roofline.

Every time is a median over the cell's rounds with its interquartile range ``[q1–q3]``; every
ratio is the median of the ratios of epochs measured in the same round of the same worker
(paired, so drift on a shared machine cancels), normalized per training sample where two loops
train on different numbers of samples (a tutorial keeps the last partial batch).
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.environment import WAIT_POLICY
from harness.report.benchjson import benchmark_section
from harness.report.context import ReportContext
from harness.report.stats import Spread, paired_ratios, spread
from harness.report.timing_cells import (
    Cell,
    Loop,
    epoch_flops,
    gemm_rate,
    loop,
    machine_rate,
    steady,
)
from harness.report.timing_cells import batch as _batch
from harness.report.timing_plots import epoch_plot
from harness.roofline import roofline_seconds

TOLERANCE = 0.10  # the harness should be at most 10% slower than the expert loop
CHECKED_BATCHES = (128, 512)
EXPLAIN = (
    "Each cell (one backend at one batch size) runs the harness's own training loop and the "
    "backend's baseline scripts (`baselines/<backend>_expert.py`, `_tutorial.py`), without and "
    "with BatchNorm, in the same worker: a first epoch (compilation and warm-up, reported "
    "apart), {warmup} uncounted warm-up epoch(s), then {rounds} rounds of one epoch per loop in "
    "a rotated order. Clocks are read after the device has finished; Python's garbage collector "
    "is paused during each epoch and runs between epochs. Times are medians [interquartile "
    "range] over the rounds; ratios are medians [IQR] of per-round ratios of epochs measured "
    "side by side."
)


def timing_cells(ctx: ReportContext) -> list[Cell]:
    """Finished timing cells, by backend (run order) then batch size."""
    backends = list(ctx.run["settings"].get("backends", []))
    cells = [c for c in ctx.ok_cells() if c["result"].get("loops")]
    rank = {name: i for i, name in enumerate(backends)}
    return sorted(cells, key=lambda c: (rank.get(c["backend"], 99), c["device"], _batch(c)))


def _where(cell: Cell) -> str:
    return cell["backend"] if cell["device"] == "cpu" else f"{cell['backend']}/{cell['device']}"


def ratio(top: Loop | None, bottom: Loop | None) -> Spread:
    """Paired per-round ratio of the per-sample epoch times of two loops."""
    if not top or not bottom:
        return spread([])
    a = [t / top["samples"] for t in top["times_s"]]
    b = [t / bottom["samples"] for t in bottom["times_s"]]
    return spread(paired_ratios(a, b))


def _num(value: float, fmt: str) -> str:
    return f"{value:{fmt}}" if math.isfinite(value) else "-"


def epoch_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """The harness's own loop: compile, steady epoch and step, throughput, eval, memory."""
    rows = []
    for cell in cells:
        res = cell["result"]
        for bn in (False, True):
            entry = loop(cell, "harness", bn)
            if entry is None:
                continue
            times = steady(entry)
            rows.append(
                {
                    "backend": _where(cell),
                    "batch": res["batch_size"],
                    "BN": "yes" if bn else "no",
                    "first epoch s": _num(entry["first_s"], ".3f"),
                    "compile s (first − median)": _num(entry["first_s"] - times.median, ".3f"),
                    "epoch s": times.text(".4f"),
                    "step ms": _num(1e3 * times.median / res["steps_per_epoch"], ".3f"),
                    "samples/s": _num(entry["samples"] / times.median, ",.0f"),
                    "eval s": spread(entry.get("eval_s", [])).text(".4f"),
                    "peak RSS MB": _num(res.get("peak_rss_mb", math.nan), ".0f"),
                }
            )
    return rows


def baseline_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """Harness against the expert and tutorial loops, per batch size and BN."""
    rows = []
    for cell in cells:
        for bn in (False, True):
            mine, expert, tutorial = (loop(cell, k, bn) for k in ("harness", "expert", "tutorial"))
            versus = ratio(mine, expert)
            rows.append(
                {
                    "backend": _where(cell),
                    "batch": cell["result"]["batch_size"],
                    "BN": "yes" if bn else "no",
                    "harness s": steady(mine).text(".4f"),
                    "expert s": steady(expert).text(".4f"),
                    "harness/expert": versus.text(".3f"),
                    "tutorial s": steady(tutorial).text(".4f"),
                    "harness/tutorial": ratio(mine, tutorial).text(".3f"),
                    "expert compile s": _num(_compile(expert), ".3f"),
                    "vs expert": ratio_verdict(versus),
                }
            )
    return rows


def _compile(entry: Loop | None) -> float:
    return entry["first_s"] - steady(entry).median if entry else math.nan


def ratio_verdict(versus: Spread) -> str:
    """What a harness/expert ratio says: faster, not more than 10% slower, or slower."""
    if versus.n == 0:
        return "no baseline"
    if versus.median < 1 - TOLERANCE:
        return f"{1 - versus.median:.0%} faster"
    if versus.median <= 1 + TOLERANCE:
        return f"not more than {TOLERANCE:.0%} slower"
    return f"**{versus.median - 1:.0%} slower**"


def bn_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """BN's cost: with-BN / without-BN epoch time, per loop, measured in the same rounds."""
    rows = []
    for cell in cells:
        row: dict[str, Any] = {"backend": _where(cell), "batch": cell["result"]["batch_size"]}
        for kind in ("harness", "expert", "tutorial"):
            row[f"{kind} BN/no-BN"] = ratio(loop(cell, kind, True), loop(cell, kind, False)).text(
                ".3f"
            )
        rows.append(row)
    return rows


def fraction(cell: Cell, entry: Loop | None, rate: float) -> float:
    """Roofline seconds at ``rate`` over the loop's median epoch, per sample."""
    if not entry:
        return math.nan
    best = roofline_seconds(epoch_flops(cell), rate)
    harness_samples = cell["result"]["steps_per_epoch"] * cell["result"]["batch_size"]
    per_epoch = steady(entry).median * harness_samples / entry["samples"]
    return best / per_epoch if per_epoch > 0 else math.nan


def roofline_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """GEMM rates, the epoch's GEMM FLOPs, the fastest epoch and the loops' fractions of it."""
    rows = []
    for cell in cells:
        best, mid = gemm_rate(cell)
        top, flops = machine_rate(cells, cell), epoch_flops(cell)
        rows.append(
            {
                "backend": _where(cell),
                "batch": cell["result"]["batch_size"],
                "own GEMM GFLOP/s best (median)": f"{_num(best / 1e9, '.1f')} "
                f"({_num(mid / 1e9, '.1f')})",
                "machine best GFLOP/s": _num(top / 1e9, ".1f"),
                "GFLOP/epoch": _num(flops / 1e9, ".2f"),
                "roofline epoch s": _num(roofline_seconds(flops, top), ".4f"),
                "harness no-BN": _pct(fraction(cell, loop(cell, "harness", False), top)),
                "harness BN": _pct(fraction(cell, loop(cell, "harness", True), top)),
                "expert no-BN": _pct(fraction(cell, loop(cell, "expert", False), top)),
                "harness no-BN, own GEMM": _pct(fraction(cell, loop(cell, "harness", False), best)),
            }
        )
    return rows


def no_gemm_note(cells: list[Cell]) -> str:
    """Why the own-GEMM cells show ``-``: the backends that do not implement matmul_rates."""
    names = sorted({_where(c) for c in cells if not math.isfinite(gemm_rate(c)[0])})
    if not names:
        return ""
    return (
        f"`-` in the own-GEMM columns of {', '.join(f'`{n}`' for n in names)}: the backend "
        "does not implement `matmul_rates` (optional, see docs/backend-contract.md)."
    )


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%" if math.isfinite(value) else "-"


def checks(cells: list[Cell]) -> list[str]:
    """One line per backend: harness/expert at the checked batch sizes, and what it says."""
    lines = []
    for cell in cells:
        if _batch(cell) not in CHECKED_BATCHES:
            continue
        for bn in (False, True):
            versus = ratio(loop(cell, "harness", bn), loop(cell, "expert", bn))
            if versus.n:
                lines.append(
                    f"- `{_where(cell)}` batch {_batch(cell)}, BN {'on' if bn else 'off'}: "
                    f"harness/expert {versus.text('.3f')}: {ratio_verdict(versus)}."
                )
    return lines


def _table(rows: list[dict[str, Any]]) -> str:
    return tabulate(rows, headers="keys", tablefmt="github") if rows else "_no data_"


def timing(ctx: ReportContext) -> str:
    """The timing section: explanation, checks, four tables, the plot, the benchmarks."""
    cells = timing_cells(ctx)
    if not cells:
        return "## Timing\n\n_No finished timing cell._"
    first = cells[0]["result"]
    parts = [
        "## Timing",
        EXPLAIN.format(warmup=first.get("warmup", 0), rounds=first.get("rounds", 0)),
        thread_line(cells),
        "### Harness against the expert baseline (batch 128 and 512)",
        "\n".join(checks(cells)) or "_No expert baseline ran._",
        "### Epoch time of the harness (steady state, compilation apart)",
        _table(epoch_rows(cells)),
        "### Harness against the baselines",
        _table(baseline_rows(cells)),
        "### BatchNorm's cost (same worker, same rounds)",
        _table(bn_rows(cells)),
        "### Roofline (an epoch's GEMM FLOPs at the best float32 GEMM rate measured here)",
        ROOFLINE_NOTE,
        _table(roofline_rows(cells)),
        no_gemm_note(cells),
        epoch_plot(ctx, cells),
        benchmark_section(ctx),
    ]
    _record(ctx, cells)
    return "\n\n".join(p for p in parts if p)


ROOFLINE_NOTE = (
    "A training step's GEMMs (forward, weight gradients, input gradients but the first "
    "layer's) are timed with each backend's own float32 matmul on the same shapes (repeats "
    "before and after the rounds). The roofline epoch is the epoch's GEMM FLOPs at the best "
    "rate any backend reached at that batch size (the machine's best); the fractions are that "
    "bound over the median epoch, and the last column uses the backend's own best rate instead. "
    "Bias, activations, BatchNorm, softmax and the optimizer update are not counted (<1% of "
    "the FLOPs, memory-bound), so 100% is out of reach; above 100% against the backend's own "
    "rate means its stand-alone GEMMs ran slower than inside training (measurement noise or "
    "per-call overhead). Cells run one after another: on a shared machine a rate measured in "
    "a quieter moment raises the bound of every cell at that batch size, while the own-rate "
    "column is measured in the cell's own worker, minutes apart at most."
)


def thread_line(cells: list[Cell]) -> str:
    """Intra-op threads each backend's worker reported (the same setting for all)."""
    seen: dict[str, str] = {}
    for cell in cells:
        versions = cell["result"].get("versions", {})
        threads = versions.get("intra_op_threads") or versions.get("xla_threads") or "?"
        seen.setdefault(_where(cell), str(threads))
    text = ", ".join(f"`{name}` {threads}" for name, threads in seen.items())
    env = cells[0]["result"].get("thread_env", {})
    shown = [f"`{k}={v}`" for k, v in env.items() if v]
    if WAIT_POLICY in env and not env[WAIT_POLICY]:
        shown.append(f"`{WAIT_POLICY}` unset (OpenMP's default: spin briefly, then sleep)")
    line = f"Intra-op threads per worker: {text}. Worker thread environment: "
    line += ", ".join(shown) or "n/a"
    shares = [c["result"].get("others_cpu_share") for c in cells]
    finite = [v for v in shares if isinstance(v, float) and math.isfinite(v)]
    if finite:
        line += (
            f". Other processes used {min(finite):.1%} to {max(finite):.1%} of the machine's CPU "
            "while a cell ran (work sharing the cores slows every clock, torch's spinning "
            f"OpenMP threads most: on a busy machine set `{WAIT_POLICY}=PASSIVE`)"
        )
    return line + "."


def _record(ctx: ReportContext, cells: list[Cell]) -> None:
    ctx.data["timing"] = {
        "epochs": epoch_rows(cells),
        "baselines": baseline_rows(cells),
        "bn_cost": bn_rows(cells),
        "roofline": roofline_rows(cells),
    }

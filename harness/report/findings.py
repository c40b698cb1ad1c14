"""The **Findings** section a report opens with, and the same table at the end of ``harness run``.

One row per claim (or, for the suites without claims, per headline result) and backend/device:
the verdict and the number behind it with its 95% interval. Rows come from what the other
sections measured (``ctx.data``), so the Findings section is rendered last and placed first.
Claim results are read generically (attributes or dict keys: ``claim``, ``where``, ``verdict``,
``measurement``, and ``diff``/``lo``/``hi``/``unit`` or ``numbers`` when present), so the
renderer keeps working while the claims machinery changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeGuard

from tabulate import tabulate

from harness.claims import evaluate
from harness.report import timing as tm
from harness.report.context import ReportContext

TITLE = "## Findings"
HEADERS = ["finding", "backend/device", "verdict", "number [95% interval]"]
Row = list[str]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``, else ``default``."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fmt(value: float) -> str:
    return f"{value:+.2f}" if 0.01 <= abs(value) < 1e4 or value == 0 else f"{value:+.2g}"


def _delta(diff: Any, factor: float, unit: str) -> str:
    """``Δ diff unit [lo, hi]`` of a difference dict, or ``""`` without a finite difference."""
    value, lo, hi = diff.get("diff"), diff.get("lo"), diff.get("hi")
    if not (_finite(value) and _finite(factor)):
        return ""
    interval = ""
    if _finite(lo) and _finite(hi):
        interval = f" [{_fmt(lo * factor)}, {_fmt(hi * factor)}]"
    return f"Δ {_fmt(value * factor)}{' ' + unit if unit else ''}{interval}"


def claim_number(result: Any) -> str:
    """``Δ diff unit [lo, hi]`` when the result has a difference and interval, else its text.

    ``diff`` may be a number (with ``lo``/``hi`` beside it) or a dict with ``diff``, ``lo`` and
    ``hi``; ``factor`` (default 1) scales all three into ``unit``. A verdict taken from the
    pooled difference of backends that agree within noise (``pooled``) shows that difference,
    the one the verdict comes from, and the backend's own after it.
    """
    diff = _get(result, "diff")
    if not isinstance(diff, dict):
        diff = {"diff": diff, "lo": _get(result, "lo"), "hi": _get(result, "hi")}
    factor = _get(result, "factor") or 1.0
    unit = _get(result, "unit") or ""
    own = _delta(diff, factor, unit)
    pooled = _get(result, "pooled") or {}
    shared = _delta(pooled, factor, unit) if isinstance(pooled, dict) else ""
    if shared:
        count = len(pooled.get("backends") or [])
        return f"{shared} pooled over {count} backends that agree within noise; own {own or '-'}"
    return own or str(_get(result, "measurement", "") or "-")


def claim_rows(results: Iterable[Any]) -> list[Row]:
    """One row per claim result (a ``ClaimResult`` or its ``to_dict()``)."""
    return [
        [
            str(_get(r, "claim", "?")),
            str(_get(r, "where", "?")),
            f"**{_get(r, 'verdict', '?')}**",
            claim_number(r),
        ]
        for r in results
    ]


def _claims(ctx: ReportContext) -> list[Any]:
    """The claims the claims section evaluated, else evaluated here; none for other suites."""
    if "claims" in ctx.data:
        return list(ctx.data["claims"])
    if not getattr(ctx.suite, "extra", {}).get("claims"):
        return []
    return evaluate(ctx.cells, ctx.suite)


def numerics_rows(data: dict[str, Any]) -> list[Row]:
    """bn-numerics: the BN cases against float64 and the conventions measured, per backend."""
    rows: list[Row] = []
    for where, counts in data.get("verdicts", {}).items():
        total = sum(counts.values())
        verdict = "pass" if not counts.get("fail") else "fail"
        text = (
            f"{counts.get('pass', 0)} pass, {counts.get('fail', 0)} fail, "
            f"{counts.get('finding', 0)} findings of {total} cases"
        )
        rows.append(["BN layer matches float64 (tolerance cases)", where, f"**{verdict}**", text])
    for where, conv in data.get("conventions", {}).items():
        core = conv.get("core", {}) if isinstance(conv, dict) else {}
        weight, asked = core.get("weight"), conv.get("momentum_asked")
        if _finite(weight) and _finite(asked):
            ok = abs(weight - asked) <= 1e-3 * max(abs(asked), 1e-12) + 1e-6
            verdict = "as asked" if ok else "differs"
            rows.append(["BN momentum translated", where, f"**{verdict}**", f"{weight:.4f}"])
        variance = core.get("variance", {})
        if variance.get("fed"):
            ratio = variance.get("ratio_to_biased")
            number = f"fed / biased = {ratio:.4f}" if _finite(ratio) else "-"
            rows.append(["Running variance fed", where, f"**{variance['fed']}**", number])
    return rows


def timing_rows(ctx: ReportContext) -> list[Row]:
    """timing: harness against the expert loop, and BN's cost, per backend and batch size."""
    rows: list[Row] = []
    for cell in tm.timing_cells(ctx):
        where, size = tm._where(cell), cell["result"].get("batch_size")
        for bn in (False, True):
            versus = tm.ratio(tm.loop(cell, "harness", bn), tm.loop(cell, "expert", bn))
            if versus.n:
                what = f"harness / expert epoch time, batch {size}, BN {'on' if bn else 'off'}"
                rows.append(
                    [what, where, f"**{tm.ratio_verdict(versus).strip('*')}**", versus.text(".3f")]
                )
        cost = tm.ratio(tm.loop(cell, "harness", True), tm.loop(cell, "harness", False))
        if cost.n:
            rows.append([f"BN's cost (BN / no BN), batch {size}", where, "-", cost.text(".3f")])
    return rows


def summary_rows(data: dict[str, Any]) -> list[Row]:
    """Suites without claims: final validation accuracy per backend and variant."""
    rows: list[Row] = []
    for row in data.get("summary", []):
        acc = row.get("final_val_acc") if isinstance(row, dict) else None
        if not isinstance(acc, dict) or not acc.get("n"):
            continue
        point = f" ({row['point']})" if row.get("point") else ""
        text = f"{100 * acc['mean']:.2f}%"
        if acc["n"] > 1 and _finite(acc.get("lo")) and _finite(acc.get("hi")):
            text += f" [{100 * acc['lo']:.2f}, {100 * acc['hi']:.2f}]"
        what = f"final val acc, {row.get('variant', '')}{point}"
        rows.append(
            [what, f"{row.get('backend')}/{row.get('device')}", "-", f"{text} (n={acc['n']})"]
        )
    return rows


def finding_rows(ctx: ReportContext) -> list[Row]:
    """The rows of the Findings table for this report, from what its sections measured."""
    claims = _claims(ctx)
    if claims:
        return claim_rows(claims)
    if "verdicts" in ctx.data or "conventions" in ctx.data:
        return numerics_rows(ctx.data)
    if "timing" in ctx.data:
        return timing_rows(ctx)
    return summary_rows(ctx.data)


def findings(ctx: ReportContext) -> str:
    """The Findings section (empty when nothing was measured); rows also go to results.json."""
    rows = finding_rows(ctx)
    ctx.data["findings_table"] = [dict(zip(HEADERS, r)) for r in rows]
    if not rows:
        return f"{TITLE}\n\nNo finished cell, so nothing was measured."
    note = (
        "Each finding per backend/device: the verdict and the number behind it (a difference "
        "between the two arms with its 95% interval where the finding compares two). The "
        "sections below give the details."
    )
    return f"{TITLE}\n\n{note}\n\n" + tabulate(rows, HEADERS, tablefmt="github")


def terminal_findings(report: Path) -> str:
    """The Findings table of a written ``report.md`` (what ``harness run`` prints at its end)."""
    try:
        text = report.read_text()
    except OSError:
        return ""
    start = text.find(TITLE + "\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(TITLE))
    body = text[start : end if end >= 0 else len(text)].strip()
    table = [line for line in body.splitlines() if line.startswith("|")]
    return "Findings:\n" + "\n".join(table) if table else body

"""Report sections of the training suites: header, summary table, learning curves, failures."""

from __future__ import annotations

import datetime
from typing import Any

from tabulate import tabulate

from harness.report.context import ReportContext
from harness.report.executor import executor_lines
from harness.summary import backend_versions, epochs_to_target
from harness.summary import summary_rows as _summary_rows

__all__ = ["backend_versions", "epochs_to_target", "failures", "header", "summary", "summary_rows"]


def _first_cell_result(ctx: ReportContext) -> dict[str, Any]:
    for cell in ctx.trained_cells():
        return dict(cell["result"])
    return {}


def wall_time(run: dict[str, Any]) -> str:
    """``, wall time 12.3 min (from 2026-12-02 01:00 UTC)`` when the run has stopped."""
    start, stop = run.get("created"), run.get("stopped")
    if not isinstance(start, (int, float)) or not isinstance(stop, (int, float)):
        return ""
    began = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    minutes = (stop - start) / 60
    shown = f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.2f} h"
    return f", wall time {shown} (from {began:%Y-%m-%d %H:%M} UTC)"


def data_identity(ds: dict[str, Any]) -> str:
    """The data's content digest (the same whatever folder it came from), else its source."""
    if ds.get("sha256"):
        return f"arrays sha256 `{str(ds['sha256'])[:16]}`"
    return str(ds.get("source", ""))


def header(ctx: ReportContext) -> str:
    """Title, what ran, on which data, with which settings and environment."""
    run, suite = ctx.run, ctx.suite
    first = ctx.cells[0]["spec"] if ctx.cells else {}
    ds = _first_cell_result(ctx).get("dataset", {})
    settings = run["settings"]
    env = run["env"]
    lines = [
        f"# {suite.name}: {suite.description}",
        "",
        f"Run `{run['run_id']}`, status **{run['status']}**, {len(ctx.cells)} cells stored"
        f"{wall_time(run)}.",
        "",
    ]
    if ds:
        lines.append(
            f"- **Dataset**: `{ds['name']}`, {ds['train']} train / {ds['val']} "
            f"validation samples ({data_identity(ds)})."
        )
        note = ds.get("note") or settings.get("data", {}).get("note")
        if note:
            lines.append(f"- **Note**: {note}")
    shown = {ds.get("note"), settings.get("data", {}).get("note")}
    for other in settings.get("notes", []):  # e.g. backends of --backend all not installed
        if other not in shown:
            lines.append(f"- **Note**: {other}")
    if first:
        m, t = first["model"], first["train"]
        sizes = "-".join(str(s) for s in m["hidden_sizes"])
        lines.append(
            f"- **Model**: MLP {ds.get('input_size', m['input_size'])}-{sizes}-"
            f"{ds.get('num_classes', m['num_classes'])}, "
            f"{m['activation']}, init `{m['init']}`, BN momentum {m['bn_momentum']} "
            f"(weight of the new batch statistic), epsilon {m['bn_epsilon']}."
        )
        lines.append(
            f"- **Training**: {t['optimizer']} lr {t['lr']}, momentum {t['momentum']}, "
            f"batch {t['batch_size']}, {t['epochs']} epochs, "
            f"seeds {settings.get('seeds')}."
        )
    lines.append(
        f"- **Backends**: {', '.join(settings.get('backends', []))}; devices "
        f"{', '.join(settings.get('devices', []))}; command `{settings.get('command', '')}`."
    )
    lines.append(
        f"- **Environment**: Python {env.get('python')}, {env.get('cpu')}, "
        f"{env.get('cores')} cores, {env.get('threads')} threads per worker, "
        f"git `{env.get('git_commit', '')[:12] or 'n/a'}`."
    )
    for backend, versions in backend_versions(ctx.cells).items():
        detail = ", ".join(f"{k} {v}" for k, v in versions.items())
        lines.append(f"  - `{backend}`: {detail}")
    lines += defaults_lines(ctx)
    lines += executor_lines(ctx)
    return "\n".join(lines)


def defaults_lines(ctx: ReportContext) -> list[str]:
    """``--defaults`` and, per backend, the conventions its cells really used (as reported by
    the backend: its framework's defaults read from the installed signatures)."""
    mode = ctx.run["settings"].get("defaults") or getattr(ctx.suite, "defaults", "mapped")
    seen: dict[str, dict[str, Any]] = {}
    for cell in ctx.trained_cells():
        attribution = cell["spec"].get("extra", {}).get("attribution") or {}
        if attribution.get("switch", "native") == "native":
            seen.setdefault(cell["backend"], cell["result"].get("conventions") or {})
    if mode != "native" and not any(seen.values()):
        return []
    lines = [
        f"- **Defaults**: `{mode}` ("
        + (
            "each framework's own init, BN momentum and epsilon, variance formula, Adam epsilon"
            if mode == "native"
            else "conventions translated from the core's values"
        )
        + "); effective conventions (BN momentum as the weight of the new batch statistic):"
    ]
    for backend, conv in seen.items():
        detail = ", ".join(f"{k} {v}" for k, v in conv.items())
        lines.append(f"  - `{backend}`: {detail or 'not reported'}")
    return lines


def summary_rows(ctx: ReportContext) -> list[dict[str, Any]]:
    """One row per (backend, device, variant, sweep point): aggregates over seeds."""
    return _summary_rows(ctx.cells, ctx.suite.target_acc)


def summary(ctx: ReportContext) -> str:
    """The summary table (mean ± sd over seeds)."""
    rows = summary_rows(ctx)
    ctx.data["summary"] = [
        {k: (v.__dict__ if hasattr(v, "mean") else v) for k, v in r.items()} for r in rows
    ]
    target = ctx.suite.target_acc
    table = [
        [
            r["backend"],
            r["device"],
            r["variant"] + (f" ({r['point']})" if r["point"] else ""),
            f"{r['ok']}/{r['seeds']}",
            r["final_val_acc"].text(".2f", 100),
            r["best_val_acc"].text(".2f", 100),
            r["final_train_loss"].text(),
            r["final_val_loss"].text(),
            f"{r['epochs_to_target'].text('.1f')} ({r['reached']}/{r['ok']})",
            f"{r['first_epoch_s']:.2f}",
            f"{r['median_epoch_s']:.3f}",
        ]
        for r in rows
    ]
    headers = [
        "backend",
        "device",
        "variant",
        "ok/seeds",
        "final val acc %",
        "best val acc %",
        "final train loss",
        "final val loss",
        f"epochs to {target:.0%} val acc",
        "1st epoch s",
        "median epoch s",
    ]
    return (
        "## Summary\n\nMean ± sd over seeds (a single seed prints its value). Epoch times: "
        "the first epoch (includes compilation/warm-up) apart from the median of the "
        "others (steady state), training steps only.\n\n"
        + tabulate(table, headers, tablefmt="github", disable_numparse=True)
    )


def failures(ctx: ReportContext) -> str:
    """Cells that did not finish normally, with their reason and last stderr lines."""
    bad = [c for c in ctx.cells if c["status"] != "ok"]
    if not bad:
        return ""
    lines = ["## Cells not ok", ""]
    for cell in bad:
        where = cell["result"].get("diverged_at")
        detail = f" at epoch {where['epoch']}, step {where['step']}" if where else ""
        lines.append(f"- `{cell['cell_id']}`: **{cell['status']}**{detail} {cell['reason']}")
        if cell.get("stderr_tail"):
            tail = "\n".join(cell["stderr_tail"].splitlines()[-8:])
            lines.append(f"\n  ```\n{tail}\n  ```")
    lines.append("\nMeans in the tables exclude these cells.")
    return "\n".join(lines)

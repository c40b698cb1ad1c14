"""Report sections of the training suites: header, summary table, learning curves, failures."""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.report.context import ReportContext, final, series
from harness.report.executor import executor_lines
from harness.report.stats import group, median, summarize


def _first_cell_result(ctx: ReportContext) -> dict[str, Any]:
    for cell in ctx.trained_cells():
        return dict(cell["result"])
    return {}


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
        f"Run `{run['run_id']}`, status **{run['status']}**, {len(ctx.cells)} cells stored.",
        "",
    ]
    if ds:
        lines.append(
            f"- **Dataset**: `{ds['name']}`, {ds['train']} train / {ds['val']} "
            f"validation samples ({ds.get('source', '')})."
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
    lines += executor_lines(ctx)
    return "\n".join(lines)


def backend_versions(cells: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per ``backend/device``: the framework versions and worker environment the first cell
    that reported them gave."""
    out: dict[str, dict[str, str]] = {}
    for cell in cells:
        key = f"{cell['backend']}/{cell['device']}"
        if cell["result"].get("versions") and key not in out:
            out[key] = {**cell["result"]["versions"], **cell["result"].get("worker_env", {})}
    return out


def epochs_to_target(cell: dict[str, Any], target: float) -> float:
    """First epoch whose validation accuracy reaches ``target`` (NaN when never)."""
    for i, acc in enumerate(series(cell, "val_acc"), 1):
        if acc >= target:
            return float(i)
    return math.nan


def summary_rows(ctx: ReportContext) -> list[dict[str, Any]]:
    """One row per (backend, device, variant, sweep point): aggregates over seeds."""
    rows = []
    target = ctx.suite.target_acc
    for (backend, device, variant, point), cells in group(
        ctx.cells, "backend", "device", "variant", "point"
    ).items():
        ok = [c for c in cells if c["status"] == "ok"]
        times = [t for c in ok for t in series(c, "time_s")[1:]]
        reached = [epochs_to_target(c, target) for c in ok]
        rows.append(
            {
                "backend": backend,
                "device": device,
                "variant": variant,
                "point": point,
                "seeds": len(cells),
                "ok": len(ok),
                "statuses": sorted({c["status"] for c in cells}),
                "final_val_acc": summarize(final(c, "val_acc") for c in ok),
                "best_val_acc": summarize(max(series(c, "val_acc"), default=math.nan) for c in ok),
                "final_train_loss": summarize(final(c, "train_loss") for c in ok),
                "final_val_loss": summarize(final(c, "val_loss") for c in ok),
                "epochs_to_target": summarize(reached),
                "reached": sum(1 for r in reached if math.isfinite(r)),
                "first_epoch_s": median(series(c, "time_s")[0] for c in ok if series(c, "time_s")),
                "median_epoch_s": median(times),
            }
        )
    return rows


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

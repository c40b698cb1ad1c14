"""The report header's executor lines: which executor ran the cells, and on which Ray nodes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.report.context import ReportContext


def _ray_summary(env: dict[str, Any]) -> str:
    facts = env.get("executor", {})
    tasks = (
        f"each cell a Ray task asking for {env.get('threads')} CPUs (and one GPU for a gpu "
        "cell, so a GPU runs one cell at a time), with its own worker subprocess"
    )
    if facts.get("name") != "ray":  # a run started on another executor, resumed on Ray
        return tasks
    address = facts.get("address") or "local instance"
    where = "a local instance started for the run"
    if address != "local instance":
        where = f"the cluster at `{address}`"
    size = ", ".join(
        _count(facts.get(key, 0), what)
        for key, what in (("nodes", "node"), ("cpus", "CPU"), ("gpus", "GPU"))
    )
    return f"Ray {facts.get('ray', '')}, {where} ({size} when the run started); {tasks}"


def _count(number: float, what: str) -> str:
    return f"{number:g} {what}{'' if number == 1 else 's'}"


def node_line(node: dict[str, Any], cells: int) -> str:
    """``node `ID` HOST (IP): CPU, cores, GPUs; N cells``."""
    gpus = ", ".join(m or f"GPU {g}" for g, m in zip(node["gpus"], node["gpu_models"]))
    return (
        f"  - node `{node['node_id'][:8]}` {node['hostname']} ({node['ip']}): {node['cpu']}, "
        f"{node['cores']} cores, {gpus or 'no GPU'}; {cells} cells"
    )


def nodes(cells: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Each Ray node that ran cells (its facts from the first cell seen) and its cell count."""
    seen: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for cell in cells:
        node = cell["result"].get("node")
        if node:
            seen.setdefault(node["node_id"], node)
            counts[node["node_id"]] += 1
    return [(seen[n], counts[n]) for n in seen]


def executor_lines(ctx: ReportContext) -> list[str]:
    """One line per executor that ran cells of the run, then one per Ray node."""
    default = ctx.run["settings"].get("executor", {}).get("name", "local")
    used = Counter(c["result"].get("executor", default) for c in ctx.cells)
    lines = []
    for name, count in sorted(used.items()):
        what = "worker subprocesses on the machine of the run"
        if name == "ray":
            what = _ray_summary(ctx.run["env"])
        lines.append(f"- **Executor**: `{name}` ({count} cells): {what}.")
    lines += [node_line(node, count) for node, count in nodes(ctx.cells)]
    return lines

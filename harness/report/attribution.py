"""The attribution section: which framework default explains the gap between two backends.

Rendered from :func:`harness.attribution.attribution`; empty unless the run used
``--defaults native`` on a suite listing this section (the switch cells then ran).
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.attribution import METRICS, attribution, effective_conventions
from harness.cells import final, group
from harness.report.context import ReportContext

TERMS = {
    "native gap": "**gap at native defaults** (B − A)",
    "mapped gap": "gap with every convention mapped",
    "init": "init: each framework's default initializers",
    "bn_momentum": "BN momentum: each framework's default",
    "bn_epsilon": "BN epsilon: each framework's default",
    "bn_variance": "batch-variance formula (Flax: one-pass)",
    "running_var": "running variance: biased vs PyTorch's unbiased (part of the mapped gap)",
    "adam_epsilon": "Adam epsilon: value and placement",
    "rest": "rest: arithmetic and interactions",
}
KEYS = ("init", "bn_momentum", "bn_epsilon", "bn_variance", "running_var", "adam_epsilon")
INTRO = (
    "## Attribution: which default makes the frameworks disagree\n\n"
    "Next to each variant at native defaults the run trained, with the same seeds (same batch "
    "order), a *mapped* arm (every convention translated from the core's values) and one arm per "
    "convention left alone to the framework (running variance: forced to PyTorch's unbiased "
    "one, which no framework lets the core map). A convention's share of the gap between "
    "backend B and the reference A is what it adds to `B − A` when both leave it to their "
    "framework, per seed: `(B_switched − B_mapped) − (A_switched − A_mapped)`; the running "
    "variance's share is what the gap loses when both feed the unbiased variance. The rest is "
    "the native gap minus every share. Final validation accuracy in pp and loss; mean over seeds "
    "[95% paired t-interval]; **bold**: the interval excludes 0."
)


def _cell(row: dict[str, Any], fmt: str) -> str:
    diff = row["diff"]
    if diff is None or (isinstance(diff, float) and math.isnan(diff)):
        return "-"
    lo, hi = row["lo"], row["hi"]
    bounds = "n/a" if lo is None or hi is None else f"{lo:{fmt}}, {hi:{fmt}}"
    text = f"{diff:+{fmt}} [{bounds}]"
    resolved = lo is not None and hi is not None and (lo > 0 or hi < 0)
    return f"**{text}**" if resolved else text


def _table(block: dict[str, Any]) -> str:
    by_term: dict[str, dict[str, dict[str, Any]]] = {}
    for row in block["rows"]:
        by_term.setdefault(row["term"], {})[row["metric"]] = row
    rows = [
        [TERMS.get(t, t), _cell(m["val_acc"], ".2f"), _cell(m["val_loss"], ".4f")]
        for t, m in by_term.items()
    ]
    headers = ["term", "Δ final val acc (pp)", "Δ final val loss"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _conventions_table(cells: list[dict[str, Any]]) -> str:
    conv = effective_conventions(cells)
    rows = []
    for backend, arms in conv.items():
        for arm in ("mapped", "native"):
            c = arms.get(arm)
            if c:
                rows.append(
                    [
                        backend,
                        arm,
                        *(str(c.get(k, "-")) for k in KEYS),
                        str(c.get("adam_epsilon_at", "-")),
                    ]
                )
    headers = [
        "backend",
        "arm",
        "init",
        "BN momentum (new-stat weight)",
        "BN epsilon",
        "variance formula",
        "running var fed",
        "Adam epsilon",
        "Adam epsilon added to",
    ]
    intro = (
        "Effective conventions each backend reported (its framework's defaults read from the "
        "installed version's signatures):\n\n"
    )
    return intro + tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def attribution_section(ctx: ReportContext) -> str:
    """The gap between backends at native defaults, split by convention, with intervals."""
    blocks = attribution(ctx.cells)
    ctx.data["attribution"] = blocks
    if not blocks:
        return ""
    parts = [INTRO, _conventions_table(ctx.cells)]
    for block in blocks:
        title = f"### `{block['base']}` ({block['device']}): B = `{block['b']}`, A = `{block['a']}`"
        parts.append(title + "\n\n" + _table(block))
    names = ", ".join(m for m, _ in METRICS)
    parts.append(f"Metrics: {names} of the last epoch.")
    return "\n\n".join(parts)


def _loss_gaps(members: list[dict[str, Any]]) -> list[str]:
    """Per minority-convention backend: its final val loss's distance from the others', as
    trained and with the other running-variance convention (the cell's measured re-evaluation)."""
    by_backend: dict[str, list[dict[str, Any]]] = {}
    for cell in members:
        by_backend.setdefault(cell["backend"], []).append(cell)
    fed = {
        b: cs[0]["result"].get("conventions", {}).get("running_var") for b, cs in by_backend.items()
    }
    counts = {v: list(fed.values()).count(v) for v in set(fed.values()) if v}
    if len(counts) < 2:
        return []
    majority = max(counts, key=lambda v: counts[v])
    notes = []
    for backend, cells in by_backend.items():
        others = [final(c, "val_loss") for b, cs in by_backend.items() if b != backend for c in cs]
        swapped = [c["result"].get("other_running_var", {}).get("val_loss") for c in cells]
        if fed[backend] == majority or not others or None in swapped:
            continue
        ref = sum(others) / len(others)
        own = sum(final(c, "val_loss") for c in cells) / len(cells)
        other = sum(swapped) / len(swapped)
        notes.append(
            f"`{backend}` (running variance fed: {fed[backend]}) ends {(own - ref) / ref:+.2%} "
            f"from the others' mean validation loss; the same trained weights evaluated with "
            f"the {majority} running variance: {(other - ref) / ref:+.2%}"
        )
    return notes


def _plain(cell: dict[str, Any]) -> bool:
    """A cell of the run's own variants (not an attribution switch or mapped arm)."""
    info = cell["spec"].get("extra", {}).get("attribution") or {}
    return info.get("switch", "native") == "native"


def running_var_note(cells: list[dict[str, Any]]) -> str:
    """Why one backend's BN validation loss sits apart, measured: each BN cell re-evaluated
    its trained model with the running variance of the other convention."""
    lines = []
    bn = [c for c in cells if c["result"].get("other_running_var") and _plain(c)]
    for (variant, device), members in group(bn, "variant", "device").items():
        lines += [f"- `{variant}` ({device}): {n}." for n in _loss_gaps(members)]
    if not lines:
        return ""
    return (
        "Running variance in eval mode: PyTorch feeds the unbiased batch variance n/(n-1) var "
        "to its running average, Keras and Flax the biased one, so eval-mode (validation) "
        "outputs differ even from identical weights. Measured per BN cell by evaluating the "
        "trained model again with its running variance converted to the other convention:\n\n"
        + "\n".join(lines)
        + "\n\n"
    )

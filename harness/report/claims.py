"""The **Claims** section: per claim, the difference of its two arms with its interval per backend.

Claims are evaluated by :mod:`harness.claims` from the stored cells; the section lists the ones
the suite names in ``extra["claims"]`` and puts every number into ``results.json``.
"""

from __future__ import annotations

import math

from harness.claims import ClaimResult, evaluate
from harness.report.context import ReportContext

RULE = (
    "Each verdict comes from the 95% confidence interval of the **difference** Δ between the "
    "claim's two arms (first arm minus second): **supported** when it excludes 0 in the claimed "
    "direction, **contradicted** when it excludes 0 the other way, **unresolved** otherwise "
    "(or with fewer than 2 seeds). Arms that share seeds share their initial weights and batch "
    "order, so Δ is paired by seed (`paired-t`: t-interval of the per-seed differences); arms "
    "with different batch orders use Welch's interval (`welch`); counts (epochs to a target, "
    "stable learning rates) use a percentile bootstrap (`bootstrap`, 9,999 resamples), which "
    "stays inside the possible range but is optimistic with few seeds. The effect size is "
    "Cohen's d (d_z for paired arms: mean over sd of the per-seed differences). An unresolved "
    "claim says how many seeds would resolve the observed effect at 80% power, if it is real."
)


def multiplicity(results: list[ClaimResult]) -> str:
    """The sentence on multiple comparisons, with the Holm-adjusted p-values."""
    tested = [r for r in results if isinstance(r.p_holm, float)]
    if len(results) < 2:
        return ""
    text = (
        f"Intervals are per claim and backend (95% each, {len(results)} comparisons, not "
        "corrected for multiplicity)."
    )
    if tested:
        flips = [
            r
            for r in tested
            if r.own_verdict != "unresolved" and r.p_holm is not None and r.p_holm >= 0.05
        ]
        text += (
            f" Holm's adjustment over the {len(tested)} t-tested comparisons is given as "
            "p_Holm; "
            + (
                f"{len(flips)} resolved comparison(s) would not survive it."
                if flips
                else "every resolved t-tested comparison survives it (p_Holm < 0.05)."
            )
        )
    return text


def _pooled_note(r: ClaimResult) -> str:
    if not r.pooled:
        return ""
    return (
        f" (own interval: {r.own_verdict}; the backends agree within noise, verdict from the "
        f"per-seed mean over {', '.join(r.pooled['backends'])}: {r.pooled['text']})"
    )


def _p(r: ClaimResult) -> str:
    return f", p_Holm {r.p_holm:.2g}" if r.p_holm is not None and math.isfinite(r.p_holm) else ""


def claim_lines(results: list[ClaimResult]) -> list[str]:
    """Markdown: per claim a bullet with what was measured, then a sub-bullet per backend."""
    lines = []
    for claim in dict.fromkeys(r.claim for r in results):
        mine = [r for r in results if r.claim == claim]
        lines.append(f"- **{claim}** — {mine[0].what}:")
        for r in mine:
            lines.append(
                f"  - `{r.where}` {r.measurement}{_p(r)} → **{r.verdict}**{_pooled_note(r)}"
            )
    return lines


def claims(ctx: ReportContext) -> str:
    """Evaluate the suite's claims and render them (also into ``results.json``)."""
    if not ctx.suite.extra.get("claims"):
        return ""
    results = evaluate(ctx.cells, ctx.suite)
    ctx.data["claims"] = [r.to_dict() for r in results]
    if not results:
        return "## Claims\n\nNo cell trained, so no claim could be evaluated."
    parts = ["## Claims", RULE, multiplicity(results), "\n".join(claim_lines(results))]
    return "\n\n".join(p for p in parts if p)

"""The **Claims** section: one line per claim, the measurement behind it and a verdict per backend.

Claims are evaluated by :mod:`harness.claims` from the stored cells; the section lists the ones
the suite names in ``extra["claims"]`` and puts every number into ``results.json``.
"""

from __future__ import annotations

from harness.claims import ClaimResult, evaluate
from harness.report.context import ReportContext

RULE = (
    "Verdicts compare 95% t-intervals of the mean over seeds: **supported** when they do not "
    "overlap and the difference points the claimed way, **not supported** when they do not "
    "overlap and it points the other way, **unresolved** when they overlap (or there is only "
    "one seed, or no data)."
)


def claim_lines(results: list[ClaimResult]) -> list[str]:
    """Markdown bullets, one per claim: what was measured, then each backend's numbers."""
    lines = []
    for claim in dict.fromkeys(r.claim for r in results):
        mine = [r for r in results if r.claim == claim]
        per_backend = "; ".join(f"`{r.where}` {r.measurement} → **{r.verdict}**" for r in mine)
        lines.append(f"- **{claim}** — {mine[0].what}: {per_backend}.")
    return lines


def claims(ctx: ReportContext) -> str:
    """Evaluate the suite's claims and render them (also into ``results.json``)."""
    if not ctx.suite.extra.get("claims"):
        return ""
    results = evaluate(ctx.cells, ctx.suite)
    ctx.data["claims"] = [r.to_dict() for r in results]
    if not results:
        return "## Claims\n\nNo cell trained, so no claim could be evaluated."
    return "## Claims\n\n" + RULE + "\n\n" + "\n".join(claim_lines(results))

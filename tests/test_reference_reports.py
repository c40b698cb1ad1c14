"""The reference reports in reports/ are the tool's output for the results.json beside them.

Each report is rebuilt with ``harness report reports/NAME/results.json`` and must come out
identical, so every number in it is the one in results.json and nothing was edited by hand.
bn-numerics' trajectory section reads per-step ``.npz`` files that are not committed (tens of
MB); its table is checked against the trajectory findings of results.json instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.commands import report_from_json

ROOT = Path(__file__).resolve().parents[1]
REPORTS = sorted(
    p.parent
    for pattern in ("*/results.json", "mnist-5k/*/results.json")
    for p in (ROOT / "reports").glob(pattern)
)
SUITES = {"bn-vs-nobn", "bn-numerics", "batch-size", "lr-sweep", "timing", "init-scale"}
SUITES |= {"bn-placement", "ioffe2015", "batch-size-steps"}
TRAJECTORY = "## Trajectory check"


def rebuilt(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lines of the report rebuilt from ``folder``'s results.json, as the README says."""
    monkeypatch.chdir(ROOT)  # the timing report names its benchmark JSON relative to it
    size = "mnist-5k" if folder.parent.name == "mnist-5k" else "full"
    bench = f"reports/benchmarks/bench-{size}.json"  # the set's benchmarks, where they were run
    if (ROOT / bench).is_file():
        monkeypatch.setenv("HARNESS_BENCHMARK_JSON", bench)
    else:
        monkeypatch.delenv("HARNESS_BENCHMARK_JSON", raising=False)
    return report_from_json(folder / "results.json", str(tmp_path)).read_text().splitlines()


def test_every_suite_has_a_reference_report() -> None:
    """The offline mnist-5k set is complete; the full-size set covers the main suites."""
    small = {p.name for p in REPORTS if p.parent.name == "mnist-5k"}
    assert SUITES <= small
    full = {p.name for p in REPORTS if p.parent.name == "reports"}
    assert {"bn-vs-nobn", "ioffe2015", "bn-numerics", "batch-size-steps", "lr-sweep"} <= full
    assert {"init-scale", "bn-placement", "timing", "batch-size"} <= full


@pytest.mark.parametrize("folder", REPORTS, ids=lambda p: str(p.relative_to(ROOT / "reports")))
def test_reference_report_is_rebuilt_identically_from_its_results_json(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = rebuilt(folder, tmp_path, monkeypatch)
    old = (folder / "report.md").read_text().splitlines()
    if folder.name == "bn-numerics":
        old, new = (
            [line for line in lines if not line.startswith("- **Trajectory**")]
            for lines in (old, new)
        )
        old, new = old[: old.index(TRAJECTORY)], new[: new.index(TRAJECTORY)]
    assert new == old
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", "\n".join(old)):
        assert (folder / image).stat().st_size > 10_000, image


def test_bn_numerics_trajectory_table_is_the_findings_of_its_results_json() -> None:
    """Every stored step of the trajectory findings is a row of the report's table, with the
    same between-backend distances and tolerances (the table adds each backend's first step
    over tolerance, which has no between-backend numbers)."""
    folder = ROOT / "reports" / "mnist-5k" / "bn-numerics"
    steps = json.loads((folder / "results.json").read_text())["findings"]["trajectory"]
    steps = steps["divergence"]["steps"]
    text = (folder / "report.md").read_text()
    section = text[text.index(TRAJECTORY) :]
    section = section[: section.index("\n#", 1)]
    rows = {}
    for row in section.splitlines():
        if re.match(r"\| \d+ ", row):
            cells = [c.strip() for c in row.strip("|").split("|")]
            rows[int(cells[0])] = cells
    assert len(steps) > 10 and {s["step"] for s in steps} <= set(rows)
    fmt = "{rel:.2e} / {tol:.2e} {group}"
    for step in steps:
        cells = rows[step["step"]]
        assert cells[8] == fmt.format(**step["params"]).strip()
        assert cells[9] == fmt.format(**step["stats"]).strip()

"""Reports open with Findings, hold results.csv and vector figures in a fixed style."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.commands import load_results_json
from harness.errors import UnknownNameError
from harness.plugins import get_plugins
from harness.report import build_report
from harness.report.findings import claim_number, claim_rows, terminal_findings
from harness.report.style import BACKEND_COLOURS, backend_colour, parse_formats, variant_style

ROOT = Path(__file__).resolve().parents[1]
BN_VS_NOBN = ROOT / "reports" / "bn-vs-nobn" / "results.json"


def rebuild(out: Path, formats: tuple[str, ...] = ("png", "svg")) -> Path:
    """The bn-vs-nobn reference report rebuilt from its results.json into ``out``."""
    run, cells = load_results_json(BN_VS_NOBN)
    suite = get_plugins().suites.get(run["suite"])
    return build_report(run, cells, suite, out, formats)


def test_report_opens_with_findings_of_every_claim_and_backend(tmp_path: Path) -> None:
    report = rebuild(tmp_path)
    text = report.read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Findings"
    claims = json.loads((tmp_path / "results.json").read_text())["findings"]["claims"]
    table = terminal_findings(report).splitlines()[3:]  # title, header, rule
    assert len(table) == len(claims) > 0
    for row, claim in zip(table, claims):
        assert claim["claim"] in row and claim["where"] in row and claim["verdict"] in row


def test_results_csv_has_one_row_per_cell_and_epoch_with_the_json_values(tmp_path: Path) -> None:
    rebuild(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    with (tmp_path / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(c["epochs"]) for c in data["cells"])
    assert {"backend", "device", "variant", "seed", "epoch", "val_acc", "time_s"} <= set(rows[0])
    cell = data["cells"][5]
    mine = [r for r in rows if r["cell_id"] == cell["cell_id"]]
    assert [float(r["val_acc"]) for r in mine] == [e["val_acc"] for e in cell["epochs"]]
    assert [int(r["epoch"]) for r in mine] == list(range(1, len(cell["epochs"]) + 1))


def test_figures_in_the_chosen_formats_and_the_link_follows(tmp_path: Path) -> None:
    rebuild(tmp_path / "both")
    assert (tmp_path / "both" / "curves.svg").read_text().lstrip().startswith("<?xml")
    assert "![learning curves](curves.png)" in (tmp_path / "both" / "report.md").read_text()
    rebuild(tmp_path / "pdf", ("pdf",))
    assert (tmp_path / "pdf" / "curves.pdf").read_bytes().startswith(b"%PDF")
    assert not (tmp_path / "pdf" / "curves.png").exists()
    assert "(curves.pdf)" in (tmp_path / "pdf" / "report.md").read_text()


def test_one_fixed_colour_per_backend_and_style_per_variant() -> None:
    names = ["keras", "keras-jax", "keras-torch", "torch", "jax", "numpy"]
    assert len({backend_colour(n) for n in names}) == len(names) == len(BACKEND_COLOURS)
    assert backend_colour("torch/gpu") == backend_colour("torch")
    assert backend_colour("my-plugin") == backend_colour("my-plugin")  # stable fallback
    assert variant_style("bn") != variant_style("no-bn")
    assert parse_formats("PNG, svg") == ("png", "svg")
    with pytest.raises(UnknownNameError, match="valid: pdf, png, svg"):
        parse_formats("png,jpg")


@pytest.mark.parametrize(
    "result, expected",
    [
        (
            {"diff": {"diff": 0.021, "lo": 0.01, "hi": 0.03}, "factor": 100, "unit": "pp"},
            "Δ +2.10 pp [+1.00, +3.00]",
        ),  # noqa: E501
        ({"diff": -1.5, "lo": -2.0, "hi": -1.0, "unit": "epochs"}, "Δ -1.50 epochs [-2.00, -1.00]"),
        ({"measurement": "bn 2.0 vs no-bn 3.0"}, "bn 2.0 vs no-bn 3.0"),
    ],
)
def test_findings_read_claim_results_generically(result: dict, expected: str) -> None:
    assert claim_number(result) == expected
    row = claim_rows([{**result, "claim": "c", "where": "torch/cpu", "verdict": "supported"}])
    assert row == [["c", "torch/cpu", "**supported**", expected]]


def test_unknown_name_suggests_the_closest() -> None:
    err = UnknownNameError("suite", "bn-vs-nbn", ["bn-vs-nobn", "timing", "lr-sweep"])
    assert "did you mean 'bn-vs-nobn'?" in str(err)
    assert "did you mean" not in str(UnknownNameError("suite", "zzz", ["timing"]))


def test_a_rebuilt_svg_figure_is_byte_identical(tmp_path: Path) -> None:
    # A report rebuilt from results.json must not change its SVGs (no date, no random ids).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.style import save

    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 2], label="x")
        ax.legend()
        save(fig, tmp_path / name / "fig.png", ("svg",))
        plt.close(fig)
        outputs.append((tmp_path / name / "fig.svg").read_bytes())
    assert b"clip-path" in outputs[0] and outputs[0] == outputs[1]


def test_a_pooled_verdict_shows_the_pooled_interval_it_comes_from() -> None:
    # Backends that agree within noise share the verdict of their pooled difference; the
    # Findings number must be that difference, not the backend's own (which may include 0).
    own = {"diff": -0.48, "lo": -1.01, "hi": 0.05}
    pooled = {"diff": -0.43, "lo": -0.6, "hi": -0.27, "backends": ["torch/cpu", "jax/cpu"]}
    result = {"claim": "c", "where": "jax/cpu", "verdict": "supported", "diff": own}
    result.update({"factor": 100.0, "unit": "pp", "pooled": pooled})
    assert claim_number(result) == (
        "Δ -43.00 pp [-60.00, -27.00] pooled over 2 backends that agree within noise; "
        "own Δ -48.00 pp [-101.00, +5.00]"
    )
    assert claim_number({**result, "pooled": {}}) == "Δ -48.00 pp [-101.00, +5.00]"

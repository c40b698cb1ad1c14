"""The MLflow exporter: a run logged to a real local tracking folder and read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")


def test_run_exports_one_mlflow_run_per_cell_with_metrics_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3: file stores are opt-in
    uri = (tmp_path / "mlruns").as_uri()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true"}
    args = ["run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic"]
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--export", "mlflow", "--out", "rep"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("harness/tiny")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags["harness.kind"] == "run"]
    cells = {r.info.run_name: r for r in runs if r.data.tags["harness.kind"] == "cell"}
    assert parent.info.run_name == data["run_id"] and parent.info.status == "FINISHED"
    assert set(cells) == {c["cell_id"] for c in data["cells"]}
    for cell in data["cells"]:
        run = cells[cell["cell_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["harness.status"] == cell["status"] == "ok"
        assert run.data.params["train.lr"] == str(cell["settings"]["train"]["lr"])
        history = client.get_metric_history(run.info.run_id, "val_acc")
        got = sorted((m.step, m.value) for m in history)
        assert got == [(e["epoch"], pytest.approx(e["val_acc"])) for e in cell["epochs"]]
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/results.csv", "report/results.json"} <= report
    some = next(iter(cells.values())).info.run_id
    assert "report/report.md" in {a.path for a in client.list_artifacts(some, "report")}


def test_unknown_exporter_is_one_line_exit_2(tmp_path: Path) -> None:
    args = ["run", "--suite", "tiny", "--backend", "fake", "--export", "mlfow"]
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "harness: error: unknown exporter 'mlfow' (did you mean 'mlflow'?); valid: mlflow"
    )

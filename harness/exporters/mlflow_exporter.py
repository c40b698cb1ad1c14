"""The MLflow exporter: one MLflow run per cell, nested under one run per ``harness`` run.

Switched on by ``harness run --export mlflow`` (or ``HARNESS_EXPORT=mlflow``); logs to
``$MLFLOW_TRACKING_URI`` (a server, or ``file:///path/mlruns``), else mlflow's default. The
experiment is ``harness/<suite>``. Per cell: the settings as params (``model.*``, ``train.*``,
``data.*``, the sweep point), the backend, device, variant and status as tags, every per-epoch
metric with ``step`` = epoch, and the report's ``report.md`` and ``results.csv`` as artifacts;
the parent run gets the whole report folder under ``report/``. Needs
``pip install 'bn-harness[mlflow]'``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from harness.hookspecs import hookimpl

MAX_PARAM = 500  # characters of a param value kept (mlflow's limit is larger on new versions)
BATCH = 500  # metrics per log_batch call (mlflow accepts at most 1000)
STATUS = {"ok": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "skipped": "KILLED"}
RUN_KIND, CELL_KIND = "run", "cell"


def flat_params(record: dict[str, Any]) -> dict[str, str]:
    """A cell's settings as flat ``section.name`` -> text params."""
    spec = record.get("spec", {})
    params = {"cell_id": record["cell_id"], "backend": record["backend"]}
    params.update(device=record["device"], variant=record["variant"])
    for section in ("model", "train", "data"):
        for key, value in (spec.get(section) or {}).items():
            params[f"{section}.{key}"] = str(value)[:MAX_PARAM]
    for key, value in (spec.get("extra", {}).get("point") or {}).items():
        params[f"point.{key}"] = str(value)[:MAX_PARAM]
    return params


def epoch_metrics(record: dict[str, Any]) -> list[tuple[str, float, int]]:
    """``(name, value, epoch)`` for every finite numeric per-epoch metric of a cell."""
    out = []
    for i, epoch in enumerate(record["result"].get("epochs", []) or [], 1):
        step = int(epoch.get("epoch", i))
        for key, value in epoch.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                out.append((key, float(value), step))
    return out


class MlflowExporter:
    """Follows a run through the observer hooks and mirrors it into MLflow."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = ""
        self.parents: dict[str, str] = {}  # harness run id -> MLflow parent run id
        self.cells: dict[str, list[str]] = {}  # harness run id -> MLflow cell run ids

    def _experiment(self, suite: str) -> str:
        name = f"harness/{suite}"
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else self.client.create_experiment(name)

    def _find_parent(self, run_id: str) -> str:
        """The MLflow run of a resumed ``harness`` run, ``""`` when there is none yet."""
        query = f"tags.`harness.run_id` = '{run_id}' and tags.`harness.kind` = '{RUN_KIND}'"
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return found[0].info.run_id if found else ""

    @hookimpl
    def harness_run_started(self, run_id: str, suite: str, cells: list[dict[str, Any]]) -> None:
        """Create (or, for a resume, find) the parent MLflow run of this ``harness`` run."""
        self.experiment_id = self._experiment(suite)
        parent = self._find_parent(run_id)
        if not parent:
            tags = {"harness.run_id": run_id, "harness.suite": suite, "harness.kind": RUN_KIND}
            created = self.client.create_run(self.experiment_id, tags=tags, run_name=run_id)
            parent = created.info.run_id
        self.parents[run_id] = parent
        self.cells.setdefault(run_id, [])

    @hookimpl
    def harness_cell_finished(self, result: dict[str, Any]) -> None:
        """One nested MLflow run for the cell: params, per-epoch metrics, status."""
        from mlflow.entities import Metric, Param

        run_id = result["spec"].get("run_id") or next(iter(self.parents), "")
        parent = self.parents.get(run_id, "")
        tags = {
            "harness.run_id": run_id,
            "harness.kind": CELL_KIND,
            "harness.status": result["status"],
            "mlflow.parentRunId": parent,
            **{f"harness.{k}": str(result[k]) for k in ("backend", "device", "variant")},
        }
        if result.get("reason"):
            tags["harness.reason"] = str(result["reason"])[:MAX_PARAM]
        started = result["result"].get("started") or time.time()
        run = self.client.create_run(
            self.experiment_id,
            start_time=int(started * 1000),
            tags=tags,
            run_name=result["cell_id"],
        )
        cell = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in flat_params(result).items()]
        metrics = [Metric(k, v, now, step) for k, v, step in epoch_metrics(result)]
        for i in range(0, len(params), 100):
            self.client.log_batch(cell, params=params[i : i + 100])
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(cell, metrics=metrics[i : i + BATCH])
        finished = int((result.get("finished") or time.time()) * 1000)
        self.client.set_terminated(cell, STATUS.get(result["status"], "FAILED"), finished)
        self.cells.setdefault(run_id, []).append(cell)

    @hookimpl
    def harness_run_finished(self, run_id: str, status: str) -> None:
        """End the parent run: FINISHED, or KILLED for an interrupted run."""
        parent = self.parents.get(run_id)
        if parent:
            self.client.set_terminated(parent, "FINISHED" if status == "finished" else "KILLED")

    @hookimpl
    def harness_report_written(self, run_id: str, folder: str) -> None:
        """The report folder on the parent run; report.md and results.csv on every cell run."""
        parent = self.parents.get(run_id)
        if not parent:
            return
        self.client.log_artifacts(parent, folder, artifact_path="report")
        small = [Path(folder) / name for name in ("report.md", "results.csv")]
        for cell in self.cells.get(run_id, []):
            for path in small:
                if path.exists():
                    self.client.log_artifact(cell, str(path), artifact_path="report")

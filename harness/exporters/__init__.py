"""Exporters: send a run's results to the tools people keep results in, via the observer hooks.

An exporter is a plugin object whose ``harness_run_started``, ``harness_cell_finished``,
``harness_run_finished`` and ``harness_report_written`` hooks follow a run; the core never
calls it directly. It is switched on per run with ``harness run --export NAME[,NAME]`` (or
``$HARNESS_EXPORT``) and may need an optional extra: ``mlflow`` needs
``pip install 'bn-harness[mlflow]'`` and logs to ``$MLFLOW_TRACKING_URI`` (mlflow's default when
unset). The exporter's package is imported only when it is switched on.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from harness.errors import HarnessError, UnknownNameError
from harness.plugins import Plugins
from harness.registry import DIST_NAME, load_object

EXPORTERS = {"mlflow": "harness.exporters.mlflow_exporter:MlflowExporter"}
"""Exporter name -> ``module:class``, imported only when chosen."""
REQUIRES = {"mlflow": "mlflow"}
EXPORT_ENV = "HARNESS_EXPORT"


def chosen(args: argparse.Namespace) -> list[str]:
    """Exporter names from ``--export``, else ``$HARNESS_EXPORT`` (comma-separated)."""
    text = getattr(args, "export", None) or os.environ.get(EXPORT_ENV, "")
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in EXPORTERS:
            raise UnknownNameError("exporter", name, EXPORTERS)
        if importlib.util.find_spec(REQUIRES[name]) is None:
            raise HarnessError(
                f"exporter '{name}' needs {REQUIRES[name]}: pip install '{DIST_NAME}[{name}]'"
            )
    return names


def enable_exporters(args: argparse.Namespace, plugins: Plugins) -> list[str]:
    """Register the chosen exporters with the run's plugin manager; their names."""
    names = chosen(args)
    for name in names:
        if not plugins.pm.has_plugin(f"exporter:{name}"):
            plugins.pm.register(load_object(EXPORTERS[name])(), name=f"exporter:{name}")
    return names

"""What runs inside a Ray task: one cell through a :class:`~harness.runner.Runner`, node facts.

The task runs its cell in a worker subprocess exactly like the local executor, so a segfault,
an out-of-memory kill or a ``--cell-timeout`` fails the cell with its reason and stderr tail,
and the Ray worker carries on. A Ray worker process keeps at most one worker subprocess warm
between its tasks (the last cell's backend and device): the next cell of that backend skips
the framework import, and memory never holds more than the running cell's framework.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from typing import Any

from harness.environment import cpu_model
from harness.runner import Runner, quiet
from harness.specs import cell_from_dict

_WARM: dict[tuple[Any, ...], Runner] = {}
"""This Ray worker process's runner, under the key of its settings (at most one entry)."""


def _runner(threads: int, cell_timeout: float | None) -> Runner:
    """The warm runner for these settings (and these GPUs); any other one is closed."""
    key = (threads, cell_timeout, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if key not in _WARM:
        for old in _WARM.values():
            old.shutdown()
        _WARM.clear()
        from harness.plugins import get_plugins

        _WARM[key] = Runner(get_plugins(), threads, cell_timeout, echo=quiet)
    return _WARM[key]


def run_cell_task(cell_data: dict[str, Any], threads: int, cell_timeout: float | None) -> Any:
    """The Ray task: run one cell, return its store record with the node's facts."""
    cell = cell_from_dict(cell_data)
    runner = _runner(threads, cell_timeout)
    runner.keep_only(cell.backend, cell.device)
    record = runner.run_cell(cell)
    record["result"]["node"] = node_facts()
    return record


def node_facts() -> dict[str, Any]:
    """Where this task ran: Ray node id, hostname, IP, CPU model and cores, GPUs given to it."""
    import ray

    context = ray.get_runtime_context()
    gpus = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
    return {
        "node_id": context.get_node_id(),
        "hostname": socket.gethostname(),
        "ip": ray.util.get_node_ip_address(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "gpus": gpus,
        "gpu_models": [gpu_model(g) for g in gpus],
        "ray_worker_pid": os.getpid(),
    }


@functools.lru_cache(maxsize=16)
def gpu_model(index: str) -> str:
    """``NAME, driver VERSION`` of GPU ``index`` from ``nvidia-smi`` ("" when it cannot say)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "-i", index, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    name, _, driver = out.stdout.strip().partition(", ")
    return f"{name}, driver {driver}" if out.returncode == 0 and name else ""

"""The ``ray`` executor: each cell a Ray task, its record stored here as the task finishes.

A task asks Ray for ``--threads`` CPUs, and one GPU for a gpu cell, so Ray never puts two
cells on the same CPUs or GPU: timings stay as clean as with the local executor. Inside, the
cell runs in a worker subprocess (:mod:`harness.executors.ray_task`). Only this process writes
to the store. A task whose Ray worker dies (killed, out of memory, node lost) fails its cell
with Ray's reason; on Ctrl-C/SIGTERM the records of finished tasks are kept, the others are
cancelled (``force=True``: their Ray workers are killed, and a worker subprocess dies with its
parent) and the interruption goes on up, so exit codes and ``--resume`` work as locally.

Without ``--ray-address`` (or ``$RAY_ADDRESS``) a local Ray instance is started for the run,
listening on loopback only, and shut down after it; joining a cluster is bounded in time (see
:mod:`harness.executors.ray_connect`). Tasks see the variables of :data:`TASK_VARS` and those
named in ``$HARNESS_RAY_ENV`` (comma-separated) of this process, and no other: Ray keeps a
task's ``runtime_env`` in cluster metadata that every user of the cluster can read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import baselines
from harness.data.locate import ENV_DATA_DIR
from harness.errors import HarnessError, UnavailableError
from harness.executors import needs, ray_connect
from harness.executors.base import Executor, ExecutorOptions, Finish
from harness.executors.ray_connect import AUTH_MODE, LOOPBACK_IP
from harness.executors.ray_task import run_cell_task
from harness.plugins import PLUGINS_ENV
from harness.runner import make_record
from harness.specs import CellSpec

ENV_FORWARD = "HARNESS_RAY_ENV"
TASK_VARS = (PLUGINS_ENV, ENV_DATA_DIR, baselines.ENV_VAR)
"""The harness's own variables that change what a cell does, forwarded to every task; the
others (``$HARNESS_STORE``, ``$HARNESS_BENCHMARK_JSON``...) only matter in this process."""
INSTALL_HINT = needs("ray")
POLL_S = 1.0
TAIL_LINES = 40
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def import_ray() -> ModuleType:
    """``ray``, or :class:`UnavailableError` with the install hint."""
    try:
        import ray
    except Exception:  # ImportError, or a broken installation: either way, not usable
        raise UnavailableError(INSTALL_HINT) from None
    return ray


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables Ray tasks get: :data:`TASK_VARS` and the names listed in
    ``$HARNESS_RAY_ENV``, nothing else."""
    env = dict(os.environ if environ is None else environ)
    names = set(TASK_VARS)
    names |= {n.strip() for n in env.get(ENV_FORWARD, "").split(",") if n.strip()}
    return {n: env[n] for n in sorted(names) if n in env}


def task_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`forwarded_env`, with the folders this process would search made absolute: tasks
    run in a folder of their own (see :meth:`RayExecutor._init`), not in this one."""
    env = forwarded_env(environ)
    folders = [str(p.expanduser().resolve()) for p in baselines.search_path()]
    env[baselines.ENV_VAR] = os.pathsep.join(dict.fromkeys(folders))
    if env.get(ENV_DATA_DIR):
        env[ENV_DATA_DIR] = str(Path(env[ENV_DATA_DIR]).expanduser().resolve())
    return env


def task_failure(exc: Exception) -> dict[str, Any]:
    """The result of a cell whose Ray task died or raised, with Ray's message as its tail."""
    lines = ANSI.sub("", str(exc)).strip().splitlines() or [""]
    cause = getattr(exc, "cause", None)  # a RayTaskError: the task's own exception
    if isinstance(cause, BaseException):
        first = (str(cause).strip().splitlines() or [""])[0]
        reason = f"ray task raised {type(cause).__name__}: {first}"
    else:
        reason = f"ray task died: {type(exc).__name__}: {lines[0]}"
    return {
        "status": "failed",
        "reason": reason.rstrip(": "),
        "stderr_tail": "\n".join(lines[-TAIL_LINES:]),
    }


class RayExecutor(Executor):
    """Cells as Ray tasks on a cluster (``options.address``) or on a local Ray instance."""

    name = "ray"

    def __init__(self, options: ExecutorOptions) -> None:
        super().__init__(options)
        self.address = options.address or os.environ.get("RAY_ADDRESS", "")
        ray_connect.prepare(self.address)  # before ray is imported: it reads the variable then
        self.ray = import_ray()
        self.owns = False
        self.folder = ""  # the current folder of ray.init and of a local instance's workers
        self.cluster: dict[str, Any] = {}
        self.submitted: dict[Any, tuple[CellSpec, float]] = {}

    def start(self) -> None:
        """Connect to the cluster, or start a local instance; check a cell fits on a node."""
        if not self.ray.is_initialized():
            self.owns = True
            self._init()
            if not self.address:
                self._check_loopback()
        self.task = self.ray.remote(run_cell_task)
        self.cluster = self._cluster()
        biggest, threads = self.cluster["max_node_cpus"], self.options.threads
        if biggest < threads:
            raise HarnessError(
                f"each cell asks Ray for {threads} CPUs (--threads) but the largest node of the "
                f"Ray cluster has {biggest:g}; give --threads {max(int(biggest), 1)} or less"
            )

    def _init(self) -> None:
        """``ray.init`` from an empty folder of our own.

        Ray puts the driver's current folder first on its workers' ``sys.path`` (and a local
        instance's workers run in it). Run from a checkout, whose ``harness/`` holds no
        ``harness/backends`` or ``harness/suites``, the tasks would import that copy instead
        of the installed package and find no built-in backend.
        """
        kwargs: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "runtime_env": {"env_vars": task_env()},
        }
        if self.address:
            ray_connect.warn_unauthenticated(self.address)
        else:  # as many CPUs as the local executor would use: any --threads fits; loopback only
            cpus = max(os.cpu_count() or 1, self.options.threads)
            kwargs.update(num_cpus=cpus, include_dashboard=False, _node_ip_address=LOOPBACK_IP)
        self.folder = tempfile.mkdtemp(prefix="harness-ray-")
        here = os.getcwd()
        try:
            os.chdir(self.folder)
            if self.address:
                ray_connect.join(self.ray, self.address, kwargs)
            else:
                self.ray.init(address="local", **kwargs)
        except HarnessError:
            raise
        except Exception as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            first = (str(exc).strip().splitlines() or [""])[0]
            hint = ""
            if self.address and AUTH_MODE not in os.environ:
                hint = f" (a cluster with token authentication needs {AUTH_MODE}=token)"
            raise HarnessError(f"cannot use {where}: {type(exc).__name__}: {first}{hint}") from None
        finally:
            os.chdir(here)

    def _check_loopback(self) -> None:
        """Refuse a local instance that listens beyond loopback: ``ray`` was imported before
        :func:`~harness.executors.ray_connect.prepare` could tell it to use 127.0.0.1."""
        ips = sorted({str(n.get("NodeManagerAddress", "")) for n in self.ray.nodes()})
        if not all(ray_connect.is_loopback(ip) for ip in ips):
            raise HarnessError(
                f"the local Ray instance listens on {', '.join(ips)}, not on loopback only: "
                "ray was imported before the executor started; start it in a fresh process"
            )

    def _cluster(self) -> dict[str, Any]:
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        return {
            "name": self.name,
            "ray": getattr(self.ray, "__version__", ""),
            "address": self.address or "local instance",
            "nodes": len(nodes),
            "cpus": sum(n.get("CPU", 0) for n in nodes),
            "gpus": sum(n.get("GPU", 0) for n in nodes),
            "max_node_cpus": max((n.get("CPU", 0) for n in nodes), default=0),
        }

    def settings(self) -> dict[str, Any]:
        """The executor's name and the cluster address (``""``: a local instance)."""
        return {"name": self.name, "address": self.address}

    def describe(self) -> dict[str, Any]:
        """Ray's version and address, and the cluster's nodes, CPUs and GPUs at the start."""
        return dict(self.cluster)

    def run(self, cells: list[CellSpec], finish: Finish) -> None:
        """Submit every cell (grouped by backend, so warm workers get reused), store as they end."""
        try:
            for cell in sorted(cells, key=lambda c: (c.backend, c.device)):
                self._submit(cell, finish)
            self._announce()
            while self.submitted:
                ready, _ = self.ray.wait(list(self.submitted), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    finish(self._collect(ref))
        except BaseException:
            self._stop(finish)
            raise

    def _announce(self) -> None:
        c = self.cluster
        self.options.echo(
            f"harness: ray {c['ray']} ({c['address']}: {c['nodes']} node(s), {c['cpus']:g} CPUs, "
            f"{c['gpus']:g} GPUs): {len(self.submitted)} tasks of {self.options.threads} CPUs "
            "submitted; cells are listed as they finish"
        )

    def _submit(self, cell: CellSpec, finish: Finish) -> None:
        gpu = cell.device == "gpu"
        if gpu and not self.cluster["gpus"]:
            skipped = {"status": "skipped", "reason": "no GPU in the Ray cluster"}
            finish(make_record(cell, skipped, time.time()))
            return
        threads, timeout = self.options.threads, self.options.cell_timeout
        task = self.task.options(
            num_cpus=threads, num_gpus=1 if gpu else 0, max_retries=0, name=cell.cell_id
        )
        self.submitted[task.remote(cell.to_dict(), threads, timeout)] = (cell, time.time())

    def _collect(self, ref: Any) -> dict[str, Any]:
        """The task's record; a task that died or raised becomes a failed cell."""
        cell, submitted = self.submitted.pop(ref)
        try:
            record: dict[str, Any] = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return make_record(cell, task_failure(exc), submitted)
        return record

    def _stop(self, finish: Finish) -> None:
        """Cancel (kill) every running task, then store the cells whose task had returned."""
        refs = list(self.submitted)
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        records = [self._collect(ref) for ref in ready]
        for ref in self.submitted:
            self.ray.cancel(ref, force=True)
        self.submitted.clear()
        for record in records:
            if "node" in record["result"]:  # the task returned: its cell had finished
                finish(record)

    def close(self) -> None:
        """Shut down the local Ray instance, or disconnect from the cluster."""
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

"""The ray executor, for real: Ray instances on this machine (2 CPUs), through the ``harness``
command in subprocesses.

One Ray instance, held by a helper process for the module, is the "cluster" runs connect to
(``--ray-address``); the comparison with the local executor starts its own local instance, as
``harness run --executor ray`` does without an address. Each run carries a ``HARNESS_TEST_TAG``
variable (forwarded to Ray tasks like every ``HARNESS_*`` one), so a test can check that no Ray
worker or worker subprocess of its run outlives it. Without ray these tests skip, except the
one that checks what ``--executor ray`` says when ray is missing.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_reliability import FAST, harness, one_line_error, runs, start, stored, wait_for
from test_run import installed_harness, plant_decoy

from harness.plugins import get_plugins

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray missing: pip install 'bn-harness[ray]'")
AUTH = {"RAY_AUTH_MODE": "token"}
"""What a driver needs to join a Ray cluster with token authentication (Ray's default for a
local instance) at an explicit address; the token itself is in ~/.ray/auth_token."""
UNSTABLE = ("worker_pid", "started", "executor", "node")
"""Result keys that say where and when a cell ran, not what it computed."""


RAY_HOLDER = """
import logging, sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the tests are done, or pytest is gone
ray.shutdown()
"""


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The address of a Ray instance with 2 CPUs, held for this module by a helper process
    (a Ray driver inside pytest would fork a process that may have imported JAX)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", RAY_HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        address = holder.stdout.readline().strip()
        assert address, "the Ray instance did not start"
        yield address
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()


def tagged(tag: str) -> list[int]:
    """Live processes whose environment holds ``HARNESS_TEST_TAG=tag``."""
    needle = f"HARNESS_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def comparable(value: Any) -> Any:
    """A result without what differs between runs of the same cell: times, pids, places."""
    if isinstance(value, dict):
        return {
            k: comparable(v) for k, v in value.items() if k not in UNSTABLE and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def by_cell(path: Path) -> dict[str, dict[str, Any]]:
    """Stored cells by id."""
    return {c["cell_id"]: c for c in stored(path)}


def test_without_ray_executor_ray_is_exit_2_with_the_hint(tmp_path: Path) -> None:
    """``import ray`` failing (a shim on PYTHONPATH): one line with the install hint, no run."""
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    path = os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])
    args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
    out = harness(*args, env={"PYTHONPATH": path}, cwd=tmp_path)
    one_line_error(out, "executor 'ray' needs ray: pip install 'bn-harness[ray]'")
    assert not (tmp_path / "s.sqlite").exists()


@needs_ray
def test_an_unreachable_cluster_is_one_line_and_no_run(tmp_path: Path) -> None:
    """A refused ``HOST:PORT`` is exit 2 at once (Ray itself would retry for minutes)."""
    args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
    out = harness(*args, "--ray-address", "127.0.0.1:1", cwd=tmp_path)
    one_line_error(out, "cannot reach the Ray cluster at 127.0.0.1:1")
    assert not (tmp_path / "s.sqlite").exists()


def _backends() -> str:
    """The fake backend, and torch where it is installed."""
    return "fake" if get_plugins().backends.get("torch").install_hint() else "fake,torch"


@needs_ray
@pytest.mark.slow
def test_ray_results_equal_local_results(tmp_path: Path) -> None:
    """The same sweep on the local executor and on a local Ray instance started by the run:
    the same cells, statuses and metrics, bit for bit (deterministic CPU backends, the same
    threads); the report names the executor and the node; the Ray instance is gone after."""
    sweep = ("run", "--suite", "tiny", "--backend", _backends(), "--dataset", "synthetic")
    sweep += ("--quick", "--epochs", "2", "--seeds", "2")
    local = harness(*sweep, "--store", "local.sqlite", "--no-report", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    tag = {"HARNESS_TEST_TAG": str(tmp_path)}
    out = harness(
        *sweep, "--store", "ray.sqlite", "--out", "rep", "--executor", "ray", env=tag, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    a, b = by_cell(tmp_path / "local.sqlite"), by_cell(tmp_path / "ray.sqlite")
    assert sorted(a) == sorted(b) and len(a) == 4 * len(_backends().split(","))
    for cell_id in a:
        assert a[cell_id]["status"] == b[cell_id]["status"] == "ok"
        assert comparable(a[cell_id]["result"]) == comparable(b[cell_id]["result"]), cell_id
        assert b[cell_id]["result"]["executor"] == "ray" and b[cell_id]["result"]["node"]["ip"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert f"- **Executor**: `ray` ({len(b)} cells): Ray " in report
    assert "a local instance started for the run (1 node, " in report and "  - node `" in report
    assert not tagged(str(tmp_path))  # ray.shutdown() took the instance and its workers along


@needs_ray
def test_a_crash_in_a_ray_task_fails_only_its_cell(tmp_path: Path, ray_address: str) -> None:
    """On a running cluster: a segfaulting worker subprocess and a Ray worker killed under its
    task each fail one cell, with the reason; the other cells finish; nothing is left over."""
    faults = "fake/cpu/no-bn/lr=0.05/seed=0=segfault;/bn/lr=0.1/seed=1=killparent"
    env = {
        "FAKE_FAULTS": faults,
        "HARNESS_RAY_ENV": "FAKE_FAULTS",
        "HARNESS_TEST_TAG": str(tmp_path),
        **AUTH,
    }
    args = ("run", *FAST, "--store", "s.sqlite", "--no-report")
    out = harness(*args, "--executor", "ray", "--ray-address", ray_address, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cells = by_cell(tmp_path / "s.sqlite")
    segv = cells.pop("fake/cpu/no-bn/lr=0.05/seed=0")
    killed = cells.pop("fake/cpu/bn/lr=0.1/seed=1")
    assert segv["status"] == "failed" and segv["reason"] == "worker killed by signal 11 SIGSEGV"
    assert "Fatal Python error: Segmentation fault" in segv["stderr_tail"]
    assert killed["status"] == "failed", killed
    assert killed["reason"].startswith("ray task died: WorkerCrashedError"), killed["reason"]
    assert len(cells) == 6 and {c["status"] for c in cells.values()} == {"ok"}
    assert "  ok  (on " in out.stdout
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished"
    wait_for(lambda: not tagged(str(tmp_path)), timeout=30, what="the run's processes to exit")


@needs_ray
@pytest.mark.parametrize(
    "where, signum, code",
    [("cluster", signal.SIGINT, 130), ("local instance", signal.SIGTERM, 143)],
)
def test_interrupted_under_ray_keeps_finished_cells_and_resume_finishes(
    tmp_path: Path, request: pytest.FixtureRequest, where: str, signum: int, code: int
) -> None:
    """Ctrl-C (SIGINT to the process group) on a cluster, or SIGTERM to ``harness`` alone on
    the local instance it started, while a Ray task hangs: exit 130 or 143, the finished cell
    kept, the hung task cancelled, the local instance shut down, nothing left running; then
    ``--resume`` finishes with the run's own executor and address."""
    address = (
        ["--ray-address", request.getfixturevalue("ray_address")] if where == "cluster" else []
    )
    mark = tmp_path / "mark"  # absolute: a Ray worker runs in another folder
    env = {
        "FAKE_FAULT": "hang",
        "FAKE_FAULT_CELL": "/bn/",
        "FAKE_FAULT_MARK": str(mark),
        "HARNESS_RAY_ENV": "FAKE_FAULT,FAKE_FAULT_CELL,FAKE_FAULT_MARK",
        "HARNESS_TEST_TAG": str(tmp_path),
        **AUTH,
    }
    args = ("run", *FAST, "--quick", "--no-report", "--store", "s.sqlite", "--executor", "ray")
    proc = start(*args, *address, env=env, cwd=tmp_path)
    wait_for(lambda: len(stored(tmp_path / "s.sqlite")) == 1, what="the first cell")
    wait_for(mark.exists, what="the second cell to hang")
    assert len(tagged(str(tmp_path))) >= 2  # at least the Ray worker and the worker under it
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what the terminal does on Ctrl-C
    else:
        proc.send_signal(signum)
    assert proc.wait(timeout=60) == code
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and f"interrupted ({signal.Signals(signum).name})" in err
    (run,) = runs(tmp_path / "s.sqlite")
    assert run["status"] == "interrupted"
    assert [c["status"] for c in stored(tmp_path / "s.sqlite")] == ["ok"]
    wait_for(lambda: not tagged(str(tmp_path)), timeout=30, what="the run's processes to exit")
    _check_resume(tmp_path, run["run_id"], err)


def _check_resume(tmp_path: Path, run_id: str, err: str) -> None:
    """The printed resume command, run as it is, finishes the run on Ray."""
    resume = f"harness run --resume {run_id} --store s.sqlite"
    assert resume in err
    done = harness(*resume.split()[1:], env=AUTH, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 of 2 cells left" in done.stdout
    cells = stored(tmp_path / "s.sqlite")
    assert sorted(c["status"] for c in cells) == ["ok", "ok"]
    assert {c["result"]["executor"] for c in cells} == {"ray"}
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished"


@needs_ray
@pytest.mark.slow
def test_a_harness_folder_in_the_current_folder_does_not_shadow_the_package_in_ray_tasks(
    tmp_path: Path,
) -> None:
    """Ray puts the driver's current folder on its workers' sys.path: run from a checkout, a
    task imported its harness/ (no built-in backends there) and every cell failed."""
    plant_decoy(tmp_path)
    argv = ["run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--quick"]
    out = subprocess.run(
        [installed_harness(), *argv, "--store", "s.sqlite", "--executor", "ray"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    cells = stored(tmp_path / "s.sqlite")
    assert cells and all(c["status"] == "ok" for c in cells), [c["reason"] for c in cells]
    assert all(c["result"]["executor"] == "ray" for c in cells)

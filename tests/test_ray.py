"""The ray executor, for real: Ray instances on this machine (2 CPUs), through the ``harness``
command in subprocesses.

One Ray instance, held by a helper process for the module, is the "cluster" runs connect to
(``--ray-address``); the comparison with the local executor starts its own local instance, as
``harness run --executor ray`` does without an address. Both listen on loopback only. Each run
carries a ``HARNESS_TEST_TAG`` variable (forwarded to Ray tasks through ``$HARNESS_RAY_ENV``),
so a test can check that no Ray worker or worker subprocess of its run outlives it. Without ray
these tests skip, except the ones that need no Ray process.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_reliability import FAST, harness, one_line_error, runs, start, stored, wait_for
from test_run import installed_harness, plant_decoy

from harness.executors import ray_connect
from harness.executors.ray_executor import TASK_VARS, forwarded_env
from harness.interrupt import Interrupted
from harness.plugins import get_plugins

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray missing: pip install 'bn-harness[ray]'")
AUTH = {"RAY_AUTH_MODE": "token"}
"""What a driver needs to join a Ray cluster with token authentication (Ray's default for a
local instance) at an explicit address; the token itself is in ~/.ray/auth_token."""
UNSTABLE = ("worker_pid", "started", "executor", "node")
"""Result keys that say where and when a cell ran, not what it computed."""


TAG_ENV = {"HARNESS_RAY_ENV": "HARNESS_TEST_TAG"}
"""Forwards the test tag to Ray tasks (a variable the harness does not know)."""


RAY_HOLDER = """
import logging, sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR, _node_ip_address="127.0.0.1")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the tests are done, or pytest is gone
ray.shutdown()
"""


@pytest.fixture(scope="module")
def ray_holder() -> Iterator[tuple[str, int]]:
    """The address of a Ray instance with 2 CPUs on loopback, and the pid of the helper process
    that holds it for this module (a Ray driver inside pytest would fork a process that may have
    imported JAX)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", RAY_HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},  # Ray's loopback switch
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        address = holder.stdout.readline().strip()
        assert address, "the Ray instance did not start"
        yield address, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()


@pytest.fixture(scope="module")
def ray_address(ray_holder: tuple[str, int]) -> str:
    """The address of the module's Ray instance."""
    return ray_holder[0]


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


def descendants(pid: int) -> set[int]:
    """``pid`` and every live process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:  # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo.extend(children.get(todo.pop(), []))
    return found


def proc_ip(field: str) -> str:
    """The IP of a ``/proc/net/tcp{,6}`` address field (hex, in host byte order per word)."""
    raw = b"".join(bytes.fromhex(field[i : i + 8])[::-1] for i in range(0, len(field), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def listening(pids: set[int]) -> list[tuple[int, str]]:
    """``(pid, ip)`` of every TCP socket in LISTEN state that one of ``pids`` holds."""
    listen = {}  # socket inode -> local IP
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listen[fields[9]] = proc_ip(fields[1].split(":")[0])
    found = []
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes = [link[8:-1] for link in links if link.startswith("socket:[")]
        found += [(pid, listen[inode]) for inode in inodes if inode in listen]
    return found


def loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1, or 127.x as an IPv4-mapped IPv6 address (a dual-stack socket bound
    to it accepts 127.x connections only)."""
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def assert_on_loopback(pids: set[int]) -> None:
    """Every listening socket of ``pids`` (there must be some) is on loopback."""
    sockets = listening(pids)
    assert sockets, "no listening socket found"
    assert all(loopback(ip) for _, ip in sockets), sorted(set(sockets))


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
    out = harness(*args, "--ray-address", "127.0.0.1:1", env=AUTH, cwd=tmp_path)
    one_line_error(out, "cannot reach the Ray cluster at 127.0.0.1:1")
    assert not (tmp_path / "s.sqlite").exists()


def test_tasks_get_the_allow_list_and_harness_ray_env_only() -> None:
    """Ray keeps a task's ``runtime_env`` where every user of the cluster can read it: only the
    harness's own task variables and the names in ``$HARNESS_RAY_ENV`` go there."""
    environ = {
        "HARNESS_PLUGINS": "fake_plugin",
        "HARNESS_DATA_DIR": "/data",
        "HARNESS_API_TOKEN": "secret",
        "HARNESS_STORE": "/private/results.sqlite",
        "HARNESS_RAY_ENV": " FAKE_FAULT ,HARNESS_TEST_TAG,,MISSING",
        "FAKE_FAULT": "hang",
        "HARNESS_TEST_TAG": "t",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    assert forwarded_env(environ) == {
        "FAKE_FAULT": "hang",
        "HARNESS_DATA_DIR": "/data",
        "HARNESS_PLUGINS": "fake_plugin",
        "HARNESS_TEST_TAG": "t",
    }
    assert set(TASK_VARS) == {"HARNESS_PLUGINS", "HARNESS_DATA_DIR", "HARNESS_BASELINES"}


class StuckRay:
    """A ``ray`` module whose ``init`` hands SIGTERM to its own thread (not the main one, as the
    kernel may do with a process's signal), then hangs like Ray's retries in C++ until released
    (or 30 s have passed: then :attr:`hung_until_released` is False)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hung_until_released: bool | None = None

    def init(self, **kwargs: Any) -> None:
        main = Path(f"/proc/self/task/{threading.main_thread().native_id}/stat")
        time.sleep(0.3)  # the main thread is past thread.start() and in its wait: asleep
        wait_for(lambda: main.read_text().rsplit(")", 1)[1].split()[0] == "S", what="a wait")
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        self.hung_until_released = self.release.wait(30)


def test_a_signal_that_does_not_wake_the_waiting_main_thread_still_ends_the_join(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal that does not interrupt the main thread's wait (here: delivered to the joining
    thread; in CI, SIGTERM landing just before the wait blocked) still ends ``join`` at once
    with :class:`Interrupted`, while ``ray.init`` still hangs: the main thread waits in slices,
    so Python runs the handler. (A single wait ran it only when ``ray.init`` gave up.)"""
    monkeypatch.setenv("HARNESS_RAY_CONNECT_TIMEOUT", "600")
    ray = StuckRay()
    try:
        with pytest.raises(Interrupted) as caught:
            ray_connect.join(ray, "auto", {})  # type: ignore[arg-type]  # "auto": no probe
    finally:
        ray.release.set()
    wait_for(lambda: ray.hung_until_released is not None, what="the joining thread")
    assert caught.value.signum == signal.SIGTERM and ray.hung_until_released


class Mute:
    """A TCP server on 127.0.0.1 that accepts every connection and then says nothing, or sends
    ``garbage``: a port that is open but is no Ray cluster. Counts the connections."""

    def __init__(self, garbage: bytes = b"") -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.garbage, self.accepted, self.held = garbage, 0, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self.held.append(conn)
            if self.garbage:
                conn.sendall(self.garbage)

    def close(self) -> None:
        """Stop accepting, drop every connection."""
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=[b"", b"\x00\xffnot a Ray cluster\r\n" * 64], ids=["silent", "garbage"])
def mute(request: pytest.FixtureRequest) -> Iterator[Mute]:
    """A :class:`Mute` server, silent or sending garbage."""
    server = Mute(request.param)
    yield server
    server.close()


BOUND = {"HARNESS_RAY_CONNECT_TIMEOUT": "2"}


@needs_ray
def test_an_unjoinable_address_is_one_line_within_the_bound(tmp_path: Path, mute: Mute) -> None:
    """A port that accepts the connection but is no Ray cluster: exit 2 and one line naming
    the address and what to check once ``$HARNESS_RAY_CONNECT_TIMEOUT`` has passed (Ray itself
    retried for minutes); no run stored."""
    args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
    out = harness(*args, "--ray-address", mute.address, env={**AUTH, **BOUND}, cwd=tmp_path)
    line = one_line_error(out, f"cannot join the Ray cluster at {mute.address}: ")
    assert "within 2 s ($HARNESS_RAY_CONNECT_TIMEOUT)" in line and "RAY_AUTH_MODE=token" in line
    assert mute.accepted >= 1 and not (tmp_path / "s.sqlite").exists()


@needs_ray
def test_an_explicit_address_without_token_auth_is_warned_about(tmp_path: Path) -> None:
    """``--ray-address`` without ``RAY_AUTH_MODE=token``: Ray sends no token, and says nothing;
    the harness warns in one line (here before failing to join a mute port)."""
    server = Mute()
    try:
        args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
        env = {**BOUND, "RAY_AUTH_MODE": "disabled"}
        out = harness(*args, "--ray-address", server.address, env=env, cwd=tmp_path)
    finally:
        server.close()
    assert out.returncode == 2 and "Traceback" not in out.stderr
    warning, error = out.stderr.strip().splitlines()
    opening = f"harness: warning: the connection to the Ray cluster at {server.address} is not "
    assert warning.startswith(opening + "authenticated")
    assert "RAY_AUTH_MODE=token" in warning and error.startswith("harness: error: cannot join")


@needs_ray
def test_a_token_cluster_joined_without_the_token_ends_within_the_bound(
    tmp_path: Path, ray_address: str
) -> None:
    """A real cluster that answers but refuses the driver (token authentication, no
    ``RAY_AUTH_MODE=token``): ``ray.init`` retries forever in C++; the run ends after the bound
    with the warning and the error (Ray's C++ core may log its retries around them)."""
    args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
    env = {**BOUND, "RAY_AUTH_MODE": "disabled"}
    out = harness(*args, "--ray-address", ray_address, env=env, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    ours = [line for line in out.stderr.splitlines() if line.startswith("harness: ")]
    assert len(ours) == 2 and ours[0].startswith("harness: warning: "), out.stderr
    assert ours[1].startswith(f"harness: error: cannot join the Ray cluster at {ray_address}: ")
    assert not (tmp_path / "s.sqlite").exists()


@needs_ray
def test_sigterm_while_joining_a_mute_address_exits_143(tmp_path: Path) -> None:
    """SIGTERM while the run waits for a cluster that never answers ends it as usual (143, one
    line), long before the bound: the wait keeps signals working."""
    server = Mute()
    args = ("run", *FAST, "--quick", "--store", "s.sqlite", "--executor", "ray")
    env = {**AUTH, "HARNESS_RAY_CONNECT_TIMEOUT": "600"}
    proc = start(*args, "--ray-address", server.address, env=env, cwd=tmp_path)
    try:
        wait_for(lambda: server.accepted >= 2, what="the probe's connections")  # TCP, then gRPC
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        server.close()
    err = (tmp_path / "stderr.txt").read_text().strip()
    assert err == "harness: interrupted (SIGTERM)"
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
    tag = {"HARNESS_TEST_TAG": str(tmp_path), **TAG_ENV}
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
        "HARNESS_RAY_ENV": "FAKE_FAULTS,HARNESS_TEST_TAG",
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
    ``--resume`` finishes with the run's own executor and address. While the task hangs: every
    listening socket of the Ray instance is on loopback, and on the cluster the Ray workers
    lack the ``HARNESS_*`` variable that is not on the allow-list."""
    address = (
        ["--ray-address", request.getfixturevalue("ray_address")] if where == "cluster" else []
    )
    mark = tmp_path / "mark"  # absolute: a Ray worker runs in another folder
    env = {
        "FAKE_FAULT": "hang",
        "FAKE_FAULT_CELL": "/bn/",
        "FAKE_FAULT_MARK": str(mark),
        "HARNESS_RAY_ENV": "FAKE_FAULT,FAKE_FAULT_CELL,FAKE_FAULT_MARK,HARNESS_TEST_TAG",
        "HARNESS_TEST_TAG": str(tmp_path),
        "HARNESS_TEST_SECRET": "not for the cluster",  # a HARNESS_* name not on the allow-list
        **AUTH,
    }
    args = ("run", *FAST, "--quick", "--no-report", "--store", "s.sqlite", "--executor", "ray")
    proc = start(*args, *address, env=env, cwd=tmp_path)
    wait_for(lambda: len(stored(tmp_path / "s.sqlite")) == 1, what="the first cell")
    wait_for(mark.exists, what="the second cell to hang")
    run_pids = set(tagged(str(tmp_path)))
    assert len(run_pids) >= 2  # at least the Ray worker and the worker under it
    if where == "cluster":  # Ray workers of the cluster see only what the run forwards
        workers = run_pids - descendants(proc.pid)  # not the driver, which has every variable
        assert workers
        environs = [(Path("/proc") / str(pid) / "environ").read_bytes() for pid in workers]
        assert not [e for e in environs if b"HARNESS_TEST_SECRET=" in e]
        assert_on_loopback(descendants(request.getfixturevalue("ray_holder")[1]))
    else:  # the instance the run started: its GCS, raylet, agents and workers
        assert_on_loopback(descendants(proc.pid) | run_pids)
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

"""Worker process: one backend on one device, running cells sent by the runner.

Started as ``python -m harness.worker BACKEND DEVICE THREADS``. Protocol: JSON lines; the runner
writes ``{"cell": {...}}`` to stdin, the worker answers on its original stdout (``hello``,
``epoch``, ``result``). Everything else the frameworks print goes to stderr, which the runner
keeps the tail of, so a crash can be reported with its last lines (``faulthandler`` adds the
Python stack of a segfault to them). A worker whose runner disappears (even by SIGKILL) kills
itself and its children, so no worker outlives its run.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, TextIO

from harness import tasks
from harness.registry import load_object
from harness.specs import cell_from_dict

TRACEBACK_LINES = 40
ORPHAN_POLL_S = 1.0


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _channel() -> TextIO:
    """Keep the real stdout for the protocol; point fd 1 at stderr for framework chatter."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _send(proto: TextIO, message: dict[str, Any]) -> None:
    proto.write(json.dumps(_clean(message)) + "\n")
    proto.flush()


def _run_cell(backend: Any, cell_data: dict[str, Any], proto: TextIO) -> dict[str, Any]:
    cell = cell_from_dict(cell_data)
    os.environ["HARNESS_CELL_ID"] = cell.cell_id  # lets plugins and fault injection see the cell
    task = load_object(tasks.resolve(cell.task))
    start = time.perf_counter()
    emit = lambda msg: _send(proto, {**msg, "cell_id": cell.cell_id})  # noqa: E731
    missing = backend.unsupported(cell.model)
    if missing:  # an optional model feature the backend lacks: a reason, not a crash
        return {"status": "skipped", "reason": missing, "wall_s": 0.0}
    try:
        result = task(backend, cell, emit)
    except Exception as exc:  # MemoryError included: the runner retires this worker after it
        text = traceback.format_exc()
        sys.stderr.write(text)
        result = {
            "status": "failed",
            "reason": f"{type(exc).__name__}: {exc}".splitlines()[0],
            "stderr_tail": "\n".join(text.splitlines()[-TRACEBACK_LINES:]),
        }
    result["wall_s"] = time.perf_counter() - start
    return result


def _watch_parent(parent: int) -> None:
    """Kill this worker's process group once the runner that started it is gone."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Serve cells for one backend/device until stdin closes."""
    backend_name, device, threads = argv[0], argv[1], int(argv[2])
    faulthandler.enable()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    proto = _channel()
    from harness.plugins import get_plugins

    info = get_plugins().backends.get(backend_name)
    started = time.perf_counter()
    backend = load_object(info.factory)(device=device, threads=threads)
    hello = {
        "type": "hello",
        "devices": type(backend).devices(),
        "versions": backend.versions(),
        "import_s": time.perf_counter() - started,
        "pid": os.getpid(),
        "env": {k: os.environ.get(k, "") for k in info.worker_env},
    }
    _send(proto, hello)
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "cell" not in message:
            break
        result = _run_cell(backend, message["cell"], proto)
        _send(proto, {"type": "result", "cell_id": message["cell"]["cell_id"], "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

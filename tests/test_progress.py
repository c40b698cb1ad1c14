"""Live progress: a rich display with an ETA on a terminal, plain lines in a pipe, --quiet."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic"]
ETA = re.compile(r"left ~\s*\d+:\d\d:\d\d")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run ``harness ARGS`` with stdout and stderr on a pseudo-terminal; exit code and output."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args], cwd=cwd, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_terminal_shows_a_progress_display_with_time_left(tmp_path: Path) -> None:
    code, out = run_in_pty(ARGS, tmp_path)
    assert code == 0, out
    assert "\x1b[" in out  # a live display redraws with terminal escape codes
    text = ANSI.sub("", out)
    assert ETA.search(text), text[-2000:]
    assert re.search(r"cells \S* ?\d/8 elapsed", text)  # cells done / total
    assert "Findings" in text and "harness: report" in text


def test_pipe_gets_plain_lines_and_quiet_only_findings(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "harness.cli", *ARGS]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "\x1b[" not in out.stdout and not ETA.search(out.stdout)
    assert re.search(r"^\[1/8\] \S+  epoch 1/2  train_loss", out.stdout, re.M)
    assert re.search(r"^\[8/8\] \S+  ok$", out.stdout, re.M)
    quiet = subprocess.run(
        [*cmd, "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch" not in quiet.stdout and "[1/8]" not in quiet.stdout
    assert quiet.stdout.startswith("Findings:")

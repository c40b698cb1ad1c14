"""The README's `harness` commands, run as written, so they never rot.

``harness run`` lines get ``--dry-run``: every name, option, the dataset and the batch sizes are
checked exactly as in a real run, and the cells are expanded, but nothing trains (the suites
themselves are run by the other tests). The other sub-commands run for real against a store
holding one small run. Commands that need a network are checked for parsing only.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import required_backends

ROOT = Path(__file__).resolve().parents[1]
NETWORK = ("download",)
MISSING = re.compile(r"^harness: error: (backend|executor) '(?P<name>[^']+)' needs .*: pip install")


def readme_commands() -> list[str]:
    """Every line of a ```bash block in README.md that starts with ``harness``."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command.startswith("harness "):
                lines.append(command)
    return lines


def test_the_readme_has_commands() -> None:
    commands = readme_commands()
    assert any(c.startswith("harness run ") for c in commands)
    assert any(c.startswith("harness list") for c in commands)


def _harness(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_STORE": str(cwd / "store.sqlite")}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose store holds one small finished run (for `runs`, `report latest`), and a
    copy of a reference report (for `report reports/NAME/results.json`)."""
    path = tmp_path_factory.mktemp("readme")
    done = _harness(
        ["run", "--suite", "bn-vs-nobn", "--backend", "fake", "--quick", "--dataset", "synthetic"],
        path,
    )
    assert done.returncode == 0, done.stderr
    shutil.copytree(ROOT / "reports" / "bn-vs-nobn", path / "reports" / "bn-vs-nobn")
    return path


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_works_as_written(command: str, workdir: Path) -> None:
    argv = shlex.split(command)[1:]
    if any(word in argv for word in NETWORK):
        argv = [*argv, "--help"]  # no network here: check that the command parses
    elif argv[0] == "run":
        argv = [*argv, "--dry-run"]
    done = _harness([os.path.expanduser(a) for a in argv], workdir)
    missing = MISSING.search(done.stderr) if done.returncode == 2 else None
    if missing and missing["name"] not in required_backends():
        pytest.skip(done.stderr.strip())  # a tox env with one framework: as documented
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr

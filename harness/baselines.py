"""Finding and loading the stand-alone baseline scripts of ``baselines/`` by file path.

A baseline is a plain script, ``<backend>_<kind>.py`` (``torch_expert.py``, ``jax_tutorial.py``),
that trains the timing suite's MLP the way a framework's user would. The scripts ship inside the
package as ``harness.baselines_scripts`` (mapped from the checkout's ``baselines/`` folder, where
they stay readable side by side) and are loaded from there, or from the folders a user names in
``$HARNESS_BASELINES`` (``os.pathsep``-separated), never from the current folder: running the
harness in a folder someone else controls must not run their code. A baseline is imported inside
the worker, where its framework is already loaded. A baseline module provides
``prepare(x, y, batch_size, bn, seed, device)`` returning a function that trains one epoch and
returns its seconds (synchronized), ``run(...)`` for stand-alone use, and optionally
``DROP_REMAINDER`` (default True: an epoch is the full batches only, as the harness's batch
order).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ENV_VAR = "HARNESS_BASELINES"
PACKAGE = "harness.baselines_scripts"
CHECKOUT_DIR = Path(__file__).resolve().parents[1] / "baselines"
"""Where the scripts are in the checkout this module was imported from (an editable install made
before the package mapping existed finds no :data:`PACKAGE`)."""


def package_dir() -> Path:
    """The folder of the installed baseline scripts (:data:`PACKAGE`)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return CHECKOUT_DIR


def search_path() -> list[Path]:
    """Folders searched for baselines, first match wins: those of ``$HARNESS_BASELINES``, then
    the installed package's; never the current folder."""
    extra = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [*extra, package_dir()]


def find(backend: str, kind: str) -> Path | None:
    """The file of ``backend``'s ``kind`` baseline, or None when there is none."""
    for folder in search_path():
        path = folder / f"{backend}_{kind}.py"
        if path.is_file():
            return path
    return None


def load(path: Path) -> ModuleType:
    """Import a baseline script by its path (once per worker)."""
    name = f"harness_baseline_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import baseline {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (Flax modules) look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def epoch_samples(module: ModuleType, n: int, batch_size: int) -> int:
    """Samples one epoch of the baseline trains on: full batches, or all when it keeps the rest."""
    if getattr(module, "DROP_REMAINDER", True):
        return (n // batch_size) * batch_size
    return n

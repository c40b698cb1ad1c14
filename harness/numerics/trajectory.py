"""The trajectory check: the bn-vs-nobn MLP trained N steps, compared with float64 every step.

One :meth:`Backend.train` call over a batch order of shape ``(N, 1, batch)``: every "epoch" is a
single step, so the epoch callback sees the parameters after each step, while the optimizer (and
its momentum buffer) lives through the whole call and the step compiles once. Re-calling ``train``
per step would re-create the optimizer and lose SGD momentum; retraining ``order[:, :k]`` from
scratch would cost O(N^2) steps. The float64 :class:`ReferenceMLP` takes each step in lockstep
inside the callback (with the running-variance convention measured for this backend), so only
per-step numbers and a few snapshots are kept (a snapshot of the 784-512-256-10 MLP is 2 MB:
every step of 250 would be 0.5 GB); the per-step tolerance and the first step over it come from
:mod:`harness.numerics.drift`, and at that step the backend's own ReLU inputs are traced
(:meth:`Backend.trace_step`) to count the gates float32 flipped. The runner is
:mod:`harness.numerics.lockstep`; this module holds what the worker and the report share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.initializers import batch_order
from harness.numerics.errors import max_rel
from harness.specs import CellSpec

Params = dict[str, np.ndarray]


def order_for(n: int, cell: CellSpec, steps: int) -> np.ndarray:
    """The first ``steps`` batches of the canonical order (continuing into the next epochs when
    one epoch has fewer batches), one per 'epoch'."""
    size = cell.train.batch_size
    epochs = -(-steps // max(n // size, 1))
    order = batch_order(n, size, epochs, cell.train.seed).reshape(-1, size)
    if steps > len(order):
        raise ValueError(f"{steps} trajectory steps need {steps} batches; there are {len(order)}")
    return order[:steps, None, :]


def layer_groups(params: Params) -> dict[str, list[str]]:
    """Arrays compared together: ``dense_i`` (kernel, bias), ``norm_i`` (scale, offset) and
    ``norm_i stats`` (running mean, var).

    Grouping matters: a Dense bias in front of BN gets a zero gradient in exact arithmetic, so
    on its own its relative error would compare rounding noise with zero.
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(params):
        layer, _, leaf = name.partition("/")
        groups.setdefault(f"{layer} stats" if leaf in ("mean", "var") else layer, []).append(name)
    return groups


def group_rel(params: Params, ref: Params, names: list[str]) -> float:
    """Max-norm relative difference of a group of arrays taken as one vector."""
    flat = np.concatenate([np.ravel(params[n]).astype(np.float64) for n in names])
    return max_rel(flat, np.concatenate([np.ravel(ref[n]) for n in names]))


EARLY = (0, 1, 2, 5, 10, 20)
STRIDE = 25
WINDOW = 3
"""Snapshots kept: the early steps, every ``STRIDE``-th, and ``WINDOW`` steps either side of the
first step over tolerance (whose ReLU gates are traced at the ``WINDOW`` steps up to it)."""


def kept(step: int, steps: int) -> bool:
    """True when the snapshot after ``step`` is stored regardless of any divergence."""
    return step in EARLY or step % STRIDE == 0 or step == steps


def save_npz(path: Path, snaps: dict[int, Params], extra: dict[str, np.ndarray]) -> None:
    """Stored snapshots as ``step{k:03d}/{name}`` (step 0 = the start) plus ``extra`` arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"step{k:03d}/{name}": v for k, snap in snaps.items() for name, v in snap.items()}
    np.savez(path, **arrays, **extra)  # type: ignore[arg-type]


def load_npz(path: str | Path) -> tuple[dict[int, Params], dict[str, np.ndarray]]:
    """Inverse of :func:`save_npz`: snapshots by step, and the other arrays."""
    with np.load(path) as data:
        snaps: dict[int, Params] = {}
        extra = {}
        for key in data.files:
            if key.startswith("step"):
                step, name = key.split("/", 1)
                snaps.setdefault(int(step[4:]), {})[name] = data[key]
            else:
                extra[key] = data[key]
        return dict(sorted(snaps.items())), extra

"""Cell tasks: the functions a worker runs for one cell, all in this package.

A task takes ``(backend, cell, emit)`` and returns the cell's result dict: ``status`` plus
whatever the suite's report needs; ``emit`` sends progress (per-epoch metrics) to the runner. A
suite names its task as ``"module:function"``:

- :mod:`~harness.tasks.train`: ``train_cell`` (the default: canonical epochs), ``train_epochs``
  and ``train_steps`` (the sweeps: epochs, or equal numbers of steps whatever the batch size);
- :mod:`~harness.tasks.ioffe`: ``ioffe_cell`` (Ioffe & Szegedy 2015, section 4.1);
- :mod:`~harness.tasks.timing`: ``time_cell`` (the timing suite, against the baselines);
- :mod:`~harness.tasks.numerics`: ``numerics_cell`` (one BN layer against float64);
- :mod:`~harness.tasks.why`: ``core_cell`` and ``precise_cell`` (the why-BN-works suites).

Every task that trains a backend's model goes through :func:`harness.tasks.fit.fit`, the one
training loop (build from the canonical init, train over a given batch order with a per-round
watch for divergence and probes, evaluate); the ``core_cell`` suites step the core's own float
SGD loop instead (:mod:`harness.why.sgd`), by design. The package's ``__init__`` imports none
of its modules, so the lower layers can use :mod:`harness.tasks.common` without a circle.
"""

from __future__ import annotations

RENAMED = {
    "harness.tasks:train_cell": "harness.tasks.train:train_cell",
    "harness.sweep_tasks:train_epochs": "harness.tasks.train:train_epochs",
    "harness.sweep_tasks:train_steps": "harness.tasks.train:train_steps",
    "harness.ioffe_task:ioffe_cell": "harness.tasks.ioffe:ioffe_cell",
    "harness.timing_task:time_cell": "harness.tasks.timing:time_cell",
    "harness.numerics.task:numerics_cell": "harness.tasks.numerics:numerics_cell",
    "harness.why.tasks:core_cell": "harness.tasks.why:core_cell",
    "harness.why.tasks:precise_cell": "harness.tasks.why:precise_cell",
}
"""Where the tasks of earlier versions live now (cells in older stores name the old paths)."""


def resolve(path: str) -> str:
    """The current ``module:function`` of a task path, old or new."""
    return RENAMED.get(path, path)

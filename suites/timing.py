"""timing: how fast each backend trains, against the framework's expert and tutorial loops.

MLP 784-512-256-10 (ReLU), BN off and on, SGD momentum 0.9, at batch sizes 32, 128 and 512. One
cell per backend and batch size runs the harness's own loop and the backend's baseline scripts
(``baselines/<backend>_expert.py``, ``..._tutorial.py``) in the same worker, interleaved:
``train.epochs`` is the number of timed rounds (one epoch of every loop per round) after the
first (compile) epoch and ``warmup`` uncounted ones. The report gives steady-state epoch and
step times with their spread, samples/s, compile time apart, the worker's peak RSS, BN's cost
as a ratio measured in the same worker, harness/baseline ratios and the fraction of the GEMM
roofline. See :mod:`harness.tasks.timing` and :mod:`harness.report.timing`.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

TIMING = Suite(
    name="timing",
    description="epoch/step time, compile time, BN's cost, roofline; harness vs expert baselines",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, epochs=20),
    variants=(Variant("timing", label="BN off and on, harness and baselines, interleaved"),),
    sweep={"train.batch_size": (32, 128, 512)},
    seeds=1,
    quick={"epochs": 3, "seeds": 1, "train.batch_size": (128, 512)},
    task="harness.tasks.timing:time_cell",
    report=("header", "harness.report.timing:timing", "failures"),
    extra={"warmup": 1, "gemm_repeats": 5, "baselines": ("expert", "tutorial")},
)

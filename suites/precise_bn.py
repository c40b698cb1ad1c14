"""precise-bn: Wu & Johnson (2021), "Rethinking 'Batch' in BatchNorm", section 3, on an MLP.

Each backend trains with its own loop and BN layer (running averages at BN momentum ``m``, the
core's convention: the weight of the new batch statistic), then evaluates twice: with its
running averages, and with statistics recomputed over training batches after training
(``batch_statistics``, :func:`harness.why.sgd.precise_statistics`). Swept over batch size and
momentum: a small ``m`` (Keras/Flax momentum 0.99) averages slowly, over stale weights.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

PRECISE_BN = Suite(
    name="precise-bn",
    description="Wu & Johnson 2021: running-average vs recomputed BN statistics at evaluation",
    model=ModelSpec(hidden_sizes=(256, 128), activation="relu", norm="batchnorm"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, epochs=3),
    variants=(Variant("bn", label="BN"),),
    sweep={"train.batch_size": (4, 16, 64, 256), "model.bn_momentum": (0.01, 0.1, 0.5)},
    seeds=3,
    quick={"epochs": 1, "seeds": 1, "train.batch_size": (8, 128), "model.bn_momentum": (0.01, 0.1)},
    task="harness.tasks.why:precise_cell",
    report=("header", "harness.report.why:precise_bn", "failures", "harness.report.claims:claims"),
    extra={"claims": ("precise_small_batch", "precise_high_momentum"), "precise_batches": 500},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

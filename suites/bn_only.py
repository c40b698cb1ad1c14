"""bn-only: Frankle, Schwab & Morcos (2021), "Training BatchNorm and only BatchNorm", on an MLP.

Every variant has BN; they differ in what the core's SGD trains (``train.trainable``,
:mod:`harness.why.masks`): everything, only BN's scale and offset (the Dense weights frozen at
their random init), or as many randomly chosen Dense weights (two incoming weights per hidden
unit, BN frozen). The report gives the share of BN units switched off (|scale| near 0).
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

BN_ONLY = Suite(
    name="bn-only",
    description="Frankle et al. 2021: train only BN's scale/offset vs all vs random weights",
    model=ModelSpec(hidden_sizes=(256, 128), activation="relu", norm="batchnorm"),
    train=TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=128, epochs=10),
    variants=(
        Variant("all", train={"trainable": "all"}, label="train everything"),
        Variant("bn-only", train={"trainable": "bn-only"}, label="train only BN"),
        Variant("random-subset", train={"trainable": "random-subset"}, label="random weights"),
    ),
    seeds=3,
    quick={"epochs": 2, "seeds": 1},
    task="harness.tasks.why:core_cell",
    report=(
        "header",
        "harness.report.why:bn_only",
        "curves",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={"claims": ("bn_only_above_chance", "bn_only_beats_random"), "stat_batches": 20},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

"""bn-numerics: every backend's own BatchNorm layer audited against a float64 reference.

One cell per backend and device. The cell measures the layer's conventions (momentum, running
variance, epsilon, batch size 1), runs every case of :mod:`harness.numerics.cases`, and trains the
bn-vs-nobn MLP (784-512-256-10, ReLU, BN before the activation, SGD momentum 0.9, lr 0.01,
batch 64) from the canonical init with float64 in lockstep. In this suite ``epochs`` counts those
single-batch steps: 250 (long enough for float32 to meet a ReLU boundary and diverge: on MNIST
at step 179), or 5 with ``--quick``.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite

BN_NUMERICS = Suite(
    name="bn-numerics",
    description="BatchNorm forward, backward, running statistics and conventions vs float64",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", norm="batchnorm"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=64, epochs=250),
    seeds=1,
    quick={"epochs": 5, "seeds": 1},
    task="harness.tasks.numerics:numerics_cell",
    report=(
        "harness.report.numerics:header",
        "harness.report.numerics:summary",
        "harness.report.numerics:conventions",
        "harness.report.numerics:errors",
        "harness.report.numerics:cross_backend",
        "harness.report.numerics:trajectory",
        "harness.report.difftest:difftest",
    ),
)

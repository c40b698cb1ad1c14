"""bn-placement: BatchNorm before vs after the activation, and no BN, from the same start.

MLP 784-512-256-10 (ReLU), SGD momentum 0.9, lr 0.01, batch 64. The canonical init draws the
Dense kernels from the same stream whatever the norm, so all three variants of a seed start
from identical Dense weights (BN scale 1, offset 0).
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

BN_PLACEMENT = Suite(
    name="bn-placement",
    description="BatchNorm before vs after the ReLU, and no BN, from identical Dense weights",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=64, epochs=10),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn-before", {"norm": "batchnorm", "placement": "before"}, label="BN → ReLU"),
        Variant("bn-after", {"norm": "batchnorm", "placement": "after"}, label="ReLU → BN"),
    ),
    seeds=5,
    quick={"epochs": 2, "seeds": 1},
    report=("header", "summary", "curves", "agreement", "failures", "harness.report.claims:claims"),
    extra={
        "claims": ("placement", "bn_faster", "bn_more_accurate", "bn_regularizes"),
        "roles": {"bn": "bn-before", "bn_after": "bn-after"},
    },
    target_acc=0.93,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

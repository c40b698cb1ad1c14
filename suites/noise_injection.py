"""noise-injection: Santurkar, Tsipras, Ilyas & Madry (2018), "How does batch normalization help
optimization?", sections 2-3, on an MLP.

BN, no BN, and BN followed by noise that changes every unit's distribution at every step
(:mod:`harness.why.noise`, level ``train.bn_noise``), trained by the core's SGD over each
backend's ``loss_and_grads`` (:mod:`harness.why`), with the internal-covariate-shift measure and
the loss landscape along the gradient probed every ``probe_every`` steps.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

NOISE_INJECTION = Suite(
    name="noise-injection",
    description="Santurkar et al. 2018: BN, no BN, BN + per-step noise; ICS and smoothness",
    model=ModelSpec(hidden_sizes=(256, 128), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=128, epochs=5),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn", {"norm": "batchnorm"}, label="BN"),
        Variant("bn-noisy", {"norm": "batchnorm"}, {"bn_noise": 1.0}, "BN + injected noise"),
    ),
    seeds=3,
    quick={"epochs": 1, "seeds": 1},
    task="harness.tasks.why:core_cell",
    report=(
        "header",
        "harness.report.why:noise_injection",
        "curves",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={
        "claims": (
            "noisy_bn_as_good",
            "bn_smoother_loss",
            "bn_smoother_gradient",
            "bn_no_ics_reduction",
        ),
        "probe_every": 10,
        "stat_batches": 20,
    },
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

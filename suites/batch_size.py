"""batch-size: BatchNorm against batch size, with LayerNorm and GroupNorm as the alternatives.

MLP 784-512-256-10 (ReLU), norm before the activation, SGD momentum 0.9 at lr 0.01 for every
batch size (no lr scaling rule, so the comparison is of batch size alone), batch sizes 2..256.
``batch-size`` gives every batch size the same number of epochs (3; a large batch takes fewer
steps); ``batch-size-steps`` the same number of optimizer steps (5 rounds of 80; a large batch
sees more samples). BatchNorm cells also record their validation accuracy in training mode with
batches of the training size (``batch_mode_samples`` validation samples), to show how far the
running statistics are from what the network sees while it trains. GroupNorm (Wu & He 2018)
normalizes 32 groups of hidden units per sample (16 and 8 units in the 512 and 256 layers); its
claims compare each seed's accuracy *drop* from the largest to the smallest batch across norms
(paired by seed), so what batch size does to every model (steps, samples seen) cancels out.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
VARIANTS = (
    Variant("no-bn", {"norm": "none"}, label="without normalization"),
    Variant("bn", {"norm": "batchnorm"}, label="BatchNorm"),
    Variant("layernorm", {"norm": "layernorm"}, label="LayerNorm"),
    Variant("groupnorm", {"norm": "groupnorm", "norm_groups": 32}, label="GroupNorm (32 groups)"),
)
MODEL = ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before")
REPORT = (
    "header",
    "harness.report.sweeps:table",
    "harness.report.sweeps:plots",
    "agreement",
    "failures",
    "harness.report.claims:claims",
)
CLAIMS = ("small_batch_accuracy", "small_batch_gap", "bn_drop_vs_gn", "gn_batch_independent")

BATCH_SIZE = Suite(
    name="batch-size",
    description="no BN / BN / LayerNorm / GroupNorm at batch sizes 2..256, the same epochs each",
    model=MODEL,
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, epochs=3),
    variants=VARIANTS,
    sweep={"train.batch_size": BATCH_SIZES},
    seeds=3,
    quick={"epochs": 2, "seeds": 1, "train.batch_size": (4, 32, 256)},  # 2: a steady round
    task="harness.tasks.train:train_epochs",
    report=REPORT,
    extra={"claims": CLAIMS, "batch_mode_samples": 512},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

BATCH_SIZE_STEPS = Suite(
    name="batch-size-steps",
    description="no BN / BN / LayerNorm / GroupNorm at batch sizes 2..256, the same steps each",
    model=MODEL,
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, epochs=5),
    variants=VARIANTS,
    sweep={"train.batch_size": BATCH_SIZES},
    seeds=3,
    quick={"epochs": 2, "seeds": 1, "train.batch_size": (4, 32, 256)},
    task="harness.tasks.train:train_steps",
    report=REPORT,
    extra={"claims": CLAIMS, "steps_per_round": 80, "batch_mode_samples": 512},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)

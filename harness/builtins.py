"""The core's own report sections, claims and executors, registered through the same hooks as
any plugin's (so ``harness list`` shows them and a suite's names are checked against them).

Only ``"module:function"`` strings are registered: nothing here imports the report package,
the statistics or Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import ClaimInfo, ExecutorInfo, SectionInfo

SECTIONS = (
    SectionInfo("header", "harness.report.sections:header", "what ran, data, settings, versions"),
    SectionInfo("summary", "harness.report.sections:summary", "final metrics, mean ± sd"),
    SectionInfo("curves", "harness.report.curves:curves", "learning curves per backend"),
    SectionInfo("agreement", "harness.report.curves:agreement", "largest gaps between backends"),
    SectionInfo("failures", "harness.report.sections:failures", "cells not ok, with stderr"),
    SectionInfo(
        "difftest",
        "harness.report.difftest:difftest",
        "bn-numerics: one training step per layer vs float64 and between backends",
    ),
    SectionInfo(
        "attribution",
        "harness.report.attribution:attribution_section",
        "the gap between backends at native defaults, split by convention",
    ),
)
CLAIMS = (
    ("bn_faster", "BN reaches the target accuracy in fewer epochs (or steps)"),
    ("bn_more_accurate", "BN reaches a higher final validation accuracy"),
    ("bn_regularizes", "BN narrows the train-validation accuracy gap"),
    ("placement", "BN before the activation beats BN after it"),
    ("small_batch_accuracy", "BN falls below LayerNorm at the smallest batch"),
    ("small_batch_gap", "BN's train and eval modes disagree more at small batch"),
    ("higher_lr", "BN tolerates a higher largest stable learning rate"),
    ("wider_lr_range", "BN trains usefully over more of the learning-rate grid"),
    ("init_insensitive", "BN makes final accuracy less sensitive to the init scale"),
    ("stable_inputs", "BN keeps the sigmoid input distribution stable"),
    ("noisy_bn_as_good", "BN with per-step injected noise trains within ±1 pp of BN"),
    ("bn_smoother_loss", "BN's loss varies less along the gradient"),
    ("bn_smoother_gradient", "BN lowers the effective β-smoothness along the gradient"),
    ("bn_no_ics_reduction", "BN does not reduce internal covariate shift (gradient change)"),
    ("precise_small_batch", "recomputed BN statistics beat running averages at small batch"),
    ("precise_high_momentum", "recomputed BN statistics beat a slow running average"),
    ("bn_only_above_chance", "training only BN's scale and offset is far above chance"),
    ("bn_only_beats_random", "training only BN beats training as many random weights"),
    ("gn_batch_independent", "GN's small-batch accuracy drop is within 1 pp of LayerNorm's"),
    ("bn_drop_vs_gn", "BN's accuracy falls more than GN's from the largest to the smallest batch"),
    ("ghost_intermediate", "a pre-declared intermediate ghost batch beats both extremes"),
)
"""Claim name (a function of :mod:`harness.claims` of that name) and what it tests."""
EXECUTORS = (
    ExecutorInfo(
        "local",
        "harness.executors.local:LocalExecutor",
        "worker subprocesses on this machine, one cell at a time (the default)",
    ),
    ExecutorInfo(
        "ray",
        "harness.executors.ray_executor:RayExecutor",
        "each cell a Ray task, on a local Ray instance or a cluster (--ray-address)",
        requires=("ray",),
    ),
)


@hookimpl
def harness_register_sections(register: Callable[[Any], None]) -> None:
    """Register the built-in report sections."""
    for section in SECTIONS:
        register(section)


@hookimpl
def harness_register_claims(register: Callable[[Any], None]) -> None:
    """Register the BatchNorm claims of :mod:`harness.claims`."""
    for name, description in CLAIMS:
        register(ClaimInfo(name, f"harness.claims:{name}", description))


@hookimpl
def harness_register_executors(register: Callable[[Any], None]) -> None:
    """Register the local and Ray executors."""
    for executor in EXECUTORS:
        register(executor)

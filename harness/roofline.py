"""FLOP counts of the MLP's training step and the roofline: the fastest an epoch could be.

A training step of a Dense layer ``(in, out)`` on a batch ``b`` is three matrix multiplies:
the forward ``x @ W`` (b, in) x (in, out), the weight gradient ``x.T @ dy`` (in, b) x (b, out)
and the input gradient ``dy @ W.T`` (b, out) x (out, in), ``2 * b * in * out`` FLOPs each. The
first layer needs no input gradient (the data are not trained), so a step costs
``6 b sum(in * out) - 2 b in_0 out_0``. Bias adds, activations, BatchNorm, the softmax and the
optimizer update are left out: they are O(b * width) or O(params), under 1% of the GEMMs for
the 784-512-256-10 MLP, and mostly memory-bound. The roofline is therefore a bound on the GEMM
work alone: ``epoch FLOPs / measured GEMM rate`` seconds, never reachable, always below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from harness.specs import ModelSpec

Shape = tuple[int, int, int]
"""A matrix multiply ``(m, k, n)``: an (m, k) matrix times a (k, n) matrix."""


def gemm_flops(shape: Shape) -> int:
    """Multiply-adds counted as two FLOPs: ``2 m k n``."""
    m, k, n = shape
    return 2 * m * k * n


def forward_shapes(spec: ModelSpec, batch: int) -> list[Shape]:
    """The forward pass's matrix multiplies, input layer first."""
    return [(batch, fan_in, fan_out) for fan_in, fan_out in spec.layer_sizes()]


def train_shapes(spec: ModelSpec, batch: int) -> list[Shape]:
    """Every matrix multiply of one training step (forward, weight and input gradients)."""
    shapes: list[Shape] = []
    for i, (fan_in, fan_out) in enumerate(spec.layer_sizes()):
        shapes.append((batch, fan_in, fan_out))  # forward: x @ W
        shapes.append((fan_in, batch, fan_out))  # weight gradient: x.T @ dy
        if i > 0:
            shapes.append((batch, fan_out, fan_in))  # input gradient: dy @ W.T
    return shapes


def total_flops(shapes: Iterable[Shape]) -> int:
    """Sum of :func:`gemm_flops` over ``shapes``."""
    return sum(gemm_flops(s) for s in shapes)


def train_step_flops(spec: ModelSpec, batch: int) -> int:
    """GEMM FLOPs of one training step on a batch of ``batch`` samples."""
    return total_flops(train_shapes(spec, batch))


def eval_flops(spec: ModelSpec, samples: int) -> int:
    """GEMM FLOPs of a forward pass over ``samples`` samples."""
    return total_flops(forward_shapes(spec, samples))


def roofline_seconds(flops: float, rate: float | None) -> float:
    """The fastest ``flops`` can run at ``rate`` FLOP/s (NaN without a rate)."""
    if not rate or not math.isfinite(rate) or rate <= 0:
        return math.nan
    return flops / rate


def fraction_of_roofline(measured_s: float, flops: float, rate: float | None) -> float:
    """``roofline seconds / measured seconds``: 1.0 would be every cycle spent in GEMMs."""
    best = roofline_seconds(flops, rate)
    if not math.isfinite(best) or not measured_s > 0:
        return math.nan
    return best / measured_s


def measure_rates(
    run: Callable[[int], None], flops_per_call: float, repeats: int, min_seconds: float = 0.05
) -> list[float]:
    """FLOP/s of ``run(calls)``, which does ``calls`` passes and returns once they are done.

    One warm-up pass, then ``calls`` is doubled until a pass of ``calls`` lasts ``min_seconds``
    (these calibration passes are not measurements: a compiled ``run`` may compile again for a
    new ``calls``), then ``repeats`` measurements of ``calls * flops_per_call / seconds``.
    """
    run(1)
    calls = 1
    while calls < 1 << 16:
        start = time.perf_counter()
        run(calls)
        if time.perf_counter() - start >= min_seconds:
            break
        calls *= 2
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(calls)
        rates.append(calls * flops_per_call / (time.perf_counter() - start))
    return rates

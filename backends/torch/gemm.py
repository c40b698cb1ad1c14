"""The float32 matrix-multiply rate of ``torch.mm`` on given shapes (the timing roofline)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.roofline import Shape, measure_rates, total_flops


def matmul_rates(
    shapes: list[Shape], repeats: int, device: torch.device, sync: Callable[[], None]
) -> list[float]:
    """FLOP/s per repeat of every ``(m, k, n)`` product of ``shapes``, outputs preallocated."""
    gen = torch.Generator().manual_seed(0)
    pairs = [
        (torch.randn(m, k, generator=gen).to(device), torch.randn(k, n, generator=gen).to(device))
        for m, k, n in shapes
    ]
    outs = [torch.empty(a.shape[0], b.shape[1], device=device) for a, b in pairs]

    def run(calls: int) -> None:
        for _ in range(calls):
            for (a, b), out in zip(pairs, outs):
                torch.mm(a, b, out=out)
        sync()

    with torch.no_grad():
        return measure_rates(run, total_flops(shapes), repeats)

"""Keras on torch: eager steps over preloaded tensors, ``torch.autograd`` for the gradients.

Same names as :mod:`harness.backends.keras.engine_tensorflow`. Keras' torch engine has no
compiled epoch (``jit_compile`` means ``torch.compile``, which Keras marks experimental and
which recompiles per shape); the fast path is Keras' own eager train step (forward, autograd,
the optimizer's fused ``torch._foreach`` update) with the batches gathered on the device and
the losses read back once per epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import torch

from harness.backends.keras.loop import EpochFn, count_correct, cross_entropy
from harness.backends.keras.model import keep_tensorflow_out

ERRORS: tuple[type[Exception], ...] = ()
TRAIN_LOOP = "eager train steps (autograd + Keras optimizer) over preloaded tensors"


def configure(threads: int, device: str) -> str:
    """Keras kept off TensorFlow; torch's intra-op threads and full float32 matmuls (no TF32)."""
    keep_tensorflow_out()
    if threads > 0:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return "applied" if threads > 0 else "torch default"


def devices() -> list[str]:
    """CPU, plus GPU when CUDA is usable."""
    return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]


def versions(device: str) -> dict[str, str]:
    """torch version, threads, TF32."""
    info = {
        "torch": torch.__version__,
        "intra_op_threads": str(torch.get_num_threads()),
        "inter_op_threads": str(torch.get_num_interop_threads()),
        "tf32": str(torch.backends.cuda.matmul.allow_tf32),
    }
    if device == "gpu":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def synchronize(device: str) -> None:
    """Wait for queued CUDA work."""
    if device == "gpu":
        torch.cuda.synchronize()


def make_epoch_fn(model: keras.Model, opt: keras.optimizers.Optimizer, wd: float) -> EpochFn:
    """``epoch(x, y, order) -> (step_losses, correct)``: eager steps, one read-back."""
    variables = model.trainable_variables

    def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(xb, training=True)
        loss = cross_entropy(yb, logits)
        g = list(torch.autograd.grad(loss, [v.value for v in variables]))
        with torch.no_grad():
            if wd:  # coupled L2, as torch.optim: the decay goes through momentum / Adam moments
                g = [gi + wd * v.value for gi, v in zip(g, variables, strict=True)]
            opt.apply(g, variables)
        return loss.detach(), count_correct(yb, logits.detach())

    def run(x: Any, y: Any, order: Any) -> tuple[np.ndarray, int]:
        steps = int(order.shape[0])
        losses = torch.zeros(steps, device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        for i in range(steps):
            loss, hits = step(x[order[i]], y[order[i]])
            losses[i] = loss
            correct += hits
        return losses.cpu().numpy(), int(correct)  # .cpu() waits for the device

    return run


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as it is: the training loop runs eagerly too."""
    return fn


def wait(value: Any) -> None:
    """Block until ``value`` is computed."""
    if value.is_cuda:
        torch.cuda.synchronize()


def grads(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, list[Any]]:
    """``fn(*args) -> (scalar, aux)``: ``aux`` and the gradients of the scalar wrt ``args``."""
    leaves = [arg.detach().requires_grad_(True) for arg in args]
    target, aux = fn(*leaves)
    g = torch.autograd.grad(target, leaves)
    return [a.detach() for a in aux], list(g)


def inference() -> contextlib.AbstractContextManager[Any]:
    """The context for forward passes that need no gradient."""
    return torch.no_grad()

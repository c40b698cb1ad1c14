"""PyTorch adapter: ``nn.Linear``/``nn.BatchNorm1d`` (:mod:`.model`), the eager training loop
(:mod:`.loop`), thread and float32 settings (:mod:`.environment`), the matmul rate
(:mod:`.gemm`), and the probes the numerics and why-BN-works suites use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.backend import (
    Backend,
    BNCall,
    BNResult,
    EpochLoop,
    NormCall,
    Shape,
    StepRunner,
    TrainData,
)
from harness.backends.torch import environment, loop, probes
from harness.backends.torch.conventions import conventions
from harness.backends.torch.gemm import matmul_rates
from harness.backends.torch.model import MLP, get_params, set_params
from harness.backends.torch.norms import norm_apply
from harness.backends.torch.trace import trace_step
from harness.specs import ModelSpec, TrainSpec

Params = dict[str, np.ndarray]
EVAL_CHUNK = 8192
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend(Backend):
    """PyTorch ``nn.Linear``/``nn.BatchNorm1d`` MLP trained with ``torch.optim``."""

    name = "torch"
    model_features = ("groupnorm", "ghost-batch")

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        super().__init__(device, threads)
        self.torch_device = environment.configure(device, threads)

    @classmethod
    def devices(cls) -> list[str]:
        """CPU, plus GPU when CUDA is usable."""
        return environment.devices()

    def versions(self) -> dict[str, str]:
        """torch version, threads, TF32 and device name."""
        return environment.versions(self.torch_device)

    def synchronize(self) -> None:
        """Wait for queued CUDA work."""
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()

    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> MLP:
        """Canonical params when given, else torch's own default initializers (seeded)."""
        self.check_device()
        torch.manual_seed(seed)
        model = MLP(spec).to(self.torch_device)
        if params is not None:
            set_params(model, params)
        return model

    def conventions(self, spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
        """Effective conventions, torch's defaults read from its signatures."""
        return conventions(spec, train)

    def get_params(self, model: Any) -> Params:
        """Canonical layout (kernels transposed)."""
        return get_params(model)

    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical arrays."""
        set_params(model, params)

    def start_training(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray
    ) -> EpochLoop:
        """SGD/Adam over the given batch order, eagerly; metrics accumulated on the device."""
        return loop.start(model, data, spec, order, self.torch_device)

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """The loop of :meth:`train` without its per-epoch metrics (benchmarks)."""
        return loop.stepper(model, data, spec, self.torch_device, self.synchronize)

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of ``torch.mm`` (float32, this device) on ``shapes``, one per repeat."""
        return matmul_rates(shapes, repeats, self.torch_device, self.synchronize)

    @torch.no_grad()
    def _forward(self, model: MLP, x: np.ndarray, training: bool) -> torch.Tensor:
        saved = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        model.eval()
        if training:
            for norm in model.norms:
                norm.train()
        xt = torch.as_tensor(x, device=self.torch_device)
        chunk = xt.shape[0] if training else EVAL_CHUNK
        out = torch.cat([model(xt[i : i + chunk]) for i in range(0, xt.shape[0], chunk)])
        if training:
            model.load_state_dict(saved, strict=False)
        return out

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Model outputs; ``training`` normalizes with batch statistics, updating nothing."""
        return self._forward(model, x, training).cpu().numpy()

    def loss_and_grads(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        noise: Params | None = None,
    ) -> tuple[float, float, Params]:
        """Train-mode loss, accuracy and gradients at canonical ``params`` (see probes)."""
        return probes.loss_and_grads(spec, params, x, y, noise, self.torch_device)

    def batch_statistics(self, spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
        """Each BN layer's batch mean and biased variance on ``x`` (see probes)."""
        return probes.batch_statistics(spec, params, x, self.torch_device)

    @torch.no_grad()
    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation."""
        model.eval()
        xt = torch.as_tensor(x, device=self.torch_device)
        return model.pre_activations(xt, layer).cpu().numpy()

    def trace_step(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        native: bool = False,
        mutate: str = "",
    ) -> dict[str, np.ndarray]:
        """One traced training step (forward hooks and ``retain_grad``), see the contract."""
        return trace_step(spec, params, x, y, self.torch_device, native, mutate)

    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval (or train) mode."""
        logits = self._forward(model, x, training)
        yt = torch.as_tensor(y, dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, yt).item()
        acc = (logits.argmax(1) == yt).float().mean().item()
        return float(loss), float(acc)

    def norm_apply(
        self, x: np.ndarray, params: Params, call: NormCall, upstream: np.ndarray
    ) -> BNResult:
        """The MLP's ghost-batch BN or ``nn.GroupNorm`` once (:mod:`.norms`)."""
        return norm_apply(x, params, call, upstream, self.torch_device)

    def batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """One ``nn.BatchNorm1d`` forward/backward in the requested mode and dtype."""
        dtype = DTYPES[call.dtype]
        kwargs: dict[str, float] = {}
        if call.momentum is not None:
            kwargs["momentum"] = call.momentum
        if call.epsilon is not None:
            kwargs["eps"] = call.epsilon
        bn = nn.BatchNorm1d(x.shape[1], **kwargs).to(self.torch_device, dtype)
        with torch.no_grad():
            bn.weight.copy_(torch.as_tensor(params["scale"]))
            bn.bias.copy_(torch.as_tensor(params["offset"]))
            bn.running_mean.copy_(torch.as_tensor(params["mean"]))
            bn.running_var.copy_(torch.as_tensor(params["var"]))
        bn.train(call.training)
        xt = torch.tensor(x, dtype=dtype, device=self.torch_device, requires_grad=True)
        out = bn(xt)
        (out * torch.as_tensor(upstream, dtype=dtype, device=self.torch_device)).sum().backward()

        def np32(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().float().cpu().numpy()

        return BNResult(
            out=np32(out),  # type: ignore[arg-type]
            grad_x=np32(xt.grad),
            grad_scale=np32(bn.weight.grad),
            grad_offset=np32(bn.bias.grad),
            running_mean=np32(bn.running_mean),  # type: ignore[arg-type]
            running_var=np32(bn.running_var),  # type: ignore[arg-type]
        )

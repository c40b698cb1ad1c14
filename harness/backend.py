"""The backend contract: what every framework adapter implements.

Adapters live in ``backends/<name>/`` (installed as ``harness.backends.<name>``) and are imported
only inside a worker process. Data crosses the boundary as NumPy arrays; parameters use the
canonical layout of :mod:`harness.initializers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.specs import ModelSpec, TrainSpec

Params = dict[str, np.ndarray]
Shape = tuple[int, int, int]
StepRunner = Callable[[np.ndarray], None]
"""Trains the model in place on the batches of an index array ``(steps, batch)`` and returns
only after the device has finished; made by :meth:`Backend.stepper`."""


class DeviceUnavailableError(RuntimeError):
    """The backend was asked for a device it cannot see (``--device gpu`` without a GPU)."""


@dataclass
class TrainData:
    """Training and validation arrays: ``x`` float32 (n, features), ``y`` int (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class EpochMetrics:
    """One epoch's metrics. ``train_loss`` is the mean of the epoch's step losses."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    time_s: float
    lr: float = 0.0
    step_losses: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (step losses dropped; the store keeps per-epoch numbers)."""
        keys = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "time_s", "lr")
        out: dict[str, Any] = {k: float(getattr(self, k)) for k in keys}
        out["epoch"] = int(self.epoch)
        out.update(self.extra)
        return out


EpochCallback = Callable[[EpochMetrics], bool]
"""Called after each epoch; returning False stops training (e.g. on divergence)."""


@dataclass(frozen=True)
class BNCall:
    """One application of a backend's own BN layer (numerics suite).

    ``momentum``/``epsilon`` in the core convention; ``None`` means the framework's own default.
    A call with both ``None`` is a native-defaults call: every setting of the layer (Flax's
    variance formula included) is the framework's own.
    """

    training: bool = True
    momentum: float | None = 0.1
    epsilon: float | None = 1e-5
    dtype: str = "float32"


@dataclass
class BNResult:
    """Output of :meth:`Backend.batchnorm`; gradients are None in eval mode if not supported."""

    out: np.ndarray
    grad_x: np.ndarray | None
    grad_scale: np.ndarray | None
    grad_offset: np.ndarray | None
    running_mean: np.ndarray
    running_var: np.ndarray
    error: str = ""


class Backend(ABC):
    """A framework adapter. One instance lives in one worker process, on one device."""

    name: ClassVar[str] = ""

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        self.device = device
        self.threads = threads

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """Devices this framework can see here: ``["cpu"]`` plus ``"gpu"`` when one is usable."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Framework versions and settings that affect numerics (TF32, XLA, determinism)."""

    @abstractmethod
    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> Any:
        """Build the MLP from canonical ``params``, or with native init when ``params`` is None."""

    @abstractmethod
    def train(
        self,
        model: Any,
        data: TrainData,
        spec: TrainSpec,
        order: np.ndarray,
        on_epoch: EpochCallback | None = None,
    ) -> list[EpochMetrics]:
        """Train over ``order`` (epochs, steps, batch) and return per-epoch metrics.

        Returns only after device work has finished; ``time_s`` covers the epoch's steps.
        """

    @abstractmethod
    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy; eval mode (running stats) unless ``training``."""

    @abstractmethod
    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Raw outputs of the model; ``training`` uses batch statistics without updating."""

    @abstractmethod
    def get_params(self, model: Any) -> Params:
        """The model's parameters in the canonical layout (float32 NumPy arrays)."""

    @abstractmethod
    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical parameters into the model."""

    @abstractmethod
    def batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """Apply the framework's own BN layer once to ``x``.

        ``params`` holds ``scale``, ``offset``, ``mean``, ``var`` for the layer; gradients are
        of ``sum(out * upstream)``; running statistics are the layer's after the call.
        """

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation function, shape (n, width).

        The quantity of the BN paper's Figure 1 (b, c); after BN when BN precedes it.
        """
        raise NotImplementedError(f"backend '{self.name}' has no pre_activations")

    def synchronize(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Wait for queued device work (GPU); a no-op on synchronous CPUs."""

    def check_device(self) -> None:
        """Raise :class:`DeviceUnavailableError` when ``self.device`` is not visible here.

        Backends call it before placing work, so a GPU run on a machine without one stops with
        a clear message instead of silently running on the CPU (the runner skips such cells
        before they reach the backend; this guards direct use).
        """
        visible = type(self).devices()
        if self.device not in visible:
            raise DeviceUnavailableError(
                f"backend '{self.name}' cannot see a {self.device} here (visible: "
                f"{', '.join(visible)}); run with --device cpu or install the "
                f"{self.name} build for the {self.device}"
            )

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """A :data:`StepRunner` training ``model`` with the same compiled step as :meth:`train`.

        Optional (benchmarks time one step or one epoch with it); the data are placed on the
        device once, here, and no metrics are read back per call.
        """
        raise NotImplementedError(f"backend '{self.name}' has no stepper")

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of this framework's float32 matrix multiply on ``shapes``, one per repeat.

        Optional (the timing suite's roofline). Each repeat runs every ``(m, k, n)`` product of
        ``shapes`` (see :mod:`harness.roofline`) enough times to last a few tens of ms,
        synchronized, after a warm-up.
        """
        raise NotImplementedError(f"backend '{self.name}' has no matmul_rates")

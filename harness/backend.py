"""The backend contract: what every framework adapter implements.

Adapters live in ``backends/<name>/`` (installed as ``harness.backends.<name>``) and are imported
only inside a worker process. Data crosses the boundary as NumPy arrays; parameters use the
canonical layout of :mod:`harness.initializers`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.specs import BN_EPSILON, BN_MOMENTUM, ModelSpec, TrainSpec

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


def _nothing() -> None:
    """The default :attr:`EpochLoop.finish`."""


@dataclass
class EpochLoop:
    """An adapter's epochs for one :meth:`Backend.train` call, made by
    :meth:`Backend.start_training` (which starts the fresh optimizer and places the data).

    ``run(epoch, lr)`` trains epoch ``epoch`` (an index into the order given to
    ``start_training``) at learning rate ``lr`` with the framework's fast path (an eager loop, a
    compiled epoch) and returns the per-step losses and the number of correct training
    predictions as host values, only after the device has finished: the shared loop times
    exactly this call. ``finish()`` runs after it, untimed (copy state the loop keeps apart back
    into the model).
    """

    run: Callable[[int, float], tuple[np.ndarray, float]]
    finish: Callable[[], None] = _nothing


@dataclass(frozen=True)
class BNCall:
    """One application of a backend's own BN layer (numerics suite).

    ``momentum``/``epsilon`` in the core convention; ``None`` means the framework's own default.
    A call with both ``None`` is a native-defaults call: every setting of the layer (Flax's
    variance formula included) is the framework's own. ``variant`` names one of the layer
    variants the backend offers (:meth:`Backend.bn_variants`, e.g. ``"renorm"``); ``""`` is the
    plain layer.
    """

    training: bool = True
    momentum: float | None = BN_MOMENTUM
    epsilon: float | None = BN_EPSILON
    dtype: str = "float32"
    variant: str = ""


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


@dataclass(frozen=True)
class NormCall:
    """One application of a backend's ghost-batch BN or GroupNorm layer (``norm_apply``).

    ``kind`` is ``"ghost-batch"`` (BN over virtual batches of ``ghost_batch`` samples, with the
    running-statistics rule of :mod:`harness.numerics.ghost`) or ``"groupnorm"`` (``groups``
    groups of units). ``momentum`` is in the core convention (weight of the new statistic).
    """

    kind: str
    training: bool = True
    ghost_batch: int = 0
    groups: int = 0
    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON


class Backend(ABC):
    """A framework adapter. One instance lives in one worker process, on one device."""

    name: ClassVar[str] = ""
    model_features: ClassVar[tuple[str, ...]] = ()
    """Optional model features (:data:`harness.specs.MODEL_FEATURES`) this backend builds."""

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        self.device = device
        self.threads = threads

    def unsupported(self, spec: ModelSpec) -> str:
        """Why this backend cannot build ``spec`` (an optional feature it lacks), else ``""``.

        The worker skips such a cell with this reason instead of running it.
        """
        missing = [f for f in spec.features if f not in self.model_features]
        if not missing:
            return ""
        offered = ", ".join(self.model_features) or "none"
        return (
            f"backend '{self.name}' does not implement {', '.join(missing)} "
            f"(its optional model features: {offered})"
        )

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

    def train(
        self,
        model: Any,
        data: TrainData,
        spec: TrainSpec,
        order: np.ndarray,
        on_epoch: EpochCallback | None = None,
    ) -> list[EpochMetrics]:
        """Train over ``order`` (epochs, steps, batch) and return per-epoch metrics.

        Returns only after device work has finished; ``time_s`` covers the epoch's steps. The
        shared epoch loop of every built-in adapter: :meth:`start_training` makes the adapter's
        :class:`EpochLoop`; each epoch runs at ``spec.lr_at(epoch)``, timed, then is evaluated
        (:meth:`epoch_metrics`) and passed to ``on_epoch`` (False stops). An adapter implements
        :meth:`start_training`, or overrides ``train`` as a whole.
        """
        loop = self.start_training(model, data, spec, order)
        samples = max(1, int(order.shape[1]) * int(order.shape[2]))
        history: list[EpochMetrics] = []
        for epoch in range(int(order.shape[0])):
            lr = spec.lr_at(epoch)
            start = time.perf_counter()
            losses, correct = loop.run(epoch, lr)
            seconds = time.perf_counter() - start
            loop.finish()
            metrics = self.epoch_metrics(
                model, data, epoch, np.asarray(losses), float(correct) / samples, seconds
            )
            metrics.lr = lr
            history.append(metrics)
            if on_epoch is not None and not on_epoch(metrics):
                break
        return history

    def start_training(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray
    ) -> EpochLoop:
        """The :class:`EpochLoop` of one :meth:`train` call: a fresh optimizer (zero moments,
        step 0) for ``model``, the training data (and ``order``) placed on the device."""
        raise NotImplementedError(
            f"backend '{self.name}' implements neither train() nor start_training()"
        )

    def epoch_metrics(
        self,
        model: Any,
        data: TrainData,
        epoch: int,
        losses: np.ndarray,
        acc: float,
        seconds: float,
    ) -> EpochMetrics:
        """Metrics of epoch ``epoch`` (0-based) after it trained: the mean of the step
        ``losses``, the training accuracy ``acc``, the validation loss and accuracy in eval
        mode, ``seconds`` of training and the evaluation's own seconds (``extra["eval_s"]``)."""
        start = time.perf_counter()
        val_loss, val_acc = self.evaluate(model, data.x_val, data.y_val)
        return EpochMetrics(
            epoch=epoch + 1,
            train_loss=float(np.mean(losses)) if losses.size else float("nan"),
            train_acc=acc,
            val_loss=val_loss,
            val_acc=val_acc,
            time_s=seconds,
            step_losses=losses,
            extra={"eval_s": time.perf_counter() - start},
        )

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

    def norm_apply(
        self, x: np.ndarray, params: Params, call: NormCall, upstream: np.ndarray
    ) -> BNResult:
        """Apply the layer the MLP uses for ghost-batch BN or GroupNorm once to ``x``.

        Optional (conformance of the ``ghost-bn`` suite and GroupNorm). Like :meth:`batchnorm`:
        gradients of ``sum(out * upstream)``; ``params`` holds ``scale`` and ``offset`` (and
        ``mean``, ``var`` for ghost-batch BN, whose running statistics after the call are
        returned; GroupNorm returns empty ones).
        """
        raise NotImplementedError(f"backend '{self.name}' has no norm_apply")

    def conventions(self, spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
        """The conventions a model built from ``spec`` and trained with ``train`` really uses.

        Keys: ``init``, ``bn_momentum`` (core convention), ``bn_epsilon``, ``bn_variance``
        (formula), ``running_var`` (``biased``/``unbiased`` fed to the running average),
        ``adam_epsilon`` and ``adam_epsilon_at`` (where it is added). Adapters read the
        framework's defaults from its own signatures; this default knows only the translated
        values and says ``"not reported"`` for anything left to the framework.
        """
        unknown = "not reported"
        own = set(spec.native) | set(train.native)
        return {
            "init": spec.init,
            "bn_momentum": unknown if "bn_momentum" in own else spec.bn_momentum,
            "bn_epsilon": unknown if "bn_epsilon" in own else spec.bn_epsilon,
            "bn_variance": unknown,
            "running_var": unknown,
            "adam_epsilon": unknown if "adam_epsilon" in own else train.adam_epsilon,
        }

    def bn_variants(self) -> tuple[str, ...]:
        """Layer variants :meth:`batchnorm` offers through ``BNCall.variant`` (optional).

        ``"renorm"``: batch renormalization; ``"fused"``: a fused kernel whose running
        variance is the unbiased one. The numerics suite runs a variant only where offered.
        """
        return ()

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation function, shape (n, width).

        The quantity of the BN paper's Figure 1 (b, c); after BN when BN precedes it.
        """
        raise NotImplementedError(f"backend '{self.name}' has no pre_activations")

    def loss_and_grads(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        noise: Params | None = None,
    ) -> tuple[float, float, Params]:
        """Train-mode loss, accuracy and gradients of the MLP ``spec`` at canonical ``params``.

        Optional (the ``noise-injection`` and ``bn-only`` suites, see :mod:`harness.why`). BN
        normalizes with the batch's statistics and nothing is updated; ``noise`` holds, per
        hidden layer ``i``, ``norm_{i}/noise_scale`` and ``norm_{i}/noise_shift`` (width,) applied
        to the norm's output as ``out * scale + shift``. The gradients of the mean cross-entropy
        are returned for every ``dense_*``/``norm_*`` scale and offset, in the canonical layout.
        """
        raise NotImplementedError(f"backend '{self.name}' has no loss_and_grads")

    def batch_statistics(self, spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
        """Per BN layer, the mean and biased variance of its input over the batch ``x``.

        Optional (``precise-bn``): a train-mode forward (batch statistics in every layer) at
        canonical ``params``, updating nothing; keys ``norm_{i}/mean`` and ``norm_{i}/var``.
        """
        raise NotImplementedError(f"backend '{self.name}' has no batch_statistics")

    def trace_step(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        native: bool = False,
        mutate: str = "",
    ) -> dict[str, np.ndarray]:
        """One training step of the MLP built from canonical ``params`` with the framework's own
        layers, traced layer by layer on the batch ``(x, y)`` (differential testing).

        Optional. Returns float64-castable arrays in the canonical layout, keyed as
        :func:`harness.numerics.reference.trace_reference` keys them: ``{layer}/out`` and
        ``{layer}/grad`` (of the mean cross-entropy w.r.t. that output) for every layer of
        :func:`~harness.numerics.reference.trace_layers`, ``dense_i/grad_kernel|grad_bias``,
        ``norm_i/grad_scale|grad_offset``, ``norm_i/mean|var`` after the step, and ``loss``.
        ``native`` builds BN with the framework's own momentum, epsilon and variance formula;
        ``mutate`` (tests only) flips one convention, see
        :func:`harness.numerics.difftest.layer_spec`.
        """
        raise NotImplementedError(f"backend '{self.name}' has no trace_step")

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

"""Keras 3 (TensorFlow), the tutorial way: ``compile`` + ``fit(x, y)`` with the defaults.

NumPy arrays straight into ``fit``, ``metrics=["accuracy"]``, one step per call
(``steps_per_execution=1``), ``jit_compile="auto"`` (no XLA on a CPU), shuffling by ``fit``,
the last partial batch kept. Only the progress bar is off (``verbose=0``): the timing suite runs
it in a worker whose output is a log, not a terminal. Epoch time as seen by a callback.
Same MLP and optimizer as :mod:`keras_expert`.

    python baselines/keras_tutorial.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HIDDEN = (512, 256)
DROP_REMAINDER = False  # the last partial batch is trained on: an epoch is every sample


def mlp(inputs: int, classes: int, bn: bool) -> keras.Sequential:
    """Dense -> [BatchNormalization] -> ReLU per hidden layer, then a Dense head (logits)."""
    layers: list[Any] = [keras.Input(shape=(inputs,))]
    for width in HIDDEN:
        layers.append(keras.layers.Dense(width))
        if bn:
            layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
        layers.append(keras.layers.Activation("relu"))
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


class EpochTimer(keras.callbacks.Callback):
    """Seconds between ``on_epoch_begin`` and ``on_epoch_end`` of the last epoch; on a GPU
    the end waits for the device's queued work first."""

    def __init__(self, gpu: bool) -> None:
        """``gpu``: wait for the GPU before reading the clock at the end of an epoch."""
        super().__init__()
        self.gpu = gpu

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        """Start the clock."""
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        """Stop the clock once the device is done."""
        if self.gpu:
            tf.test.experimental.sync_devices()
        self.seconds = time.perf_counter() - self.start


def prepare(
    x: np.ndarray, y: np.ndarray, batch_size: int, bn: bool, seed: int = 0, device: str = "cpu"
) -> Callable[[], float]:
    """Build and compile once; the returned function trains one epoch and returns its seconds."""
    keras.utils.set_random_seed(seed)
    place = "/GPU:0" if device == "gpu" else "/CPU:0"
    with tf.device(place):
        model = mlp(x.shape[1], int(y.max()) + 1, bn)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    timer = EpochTimer(device == "gpu")

    def epoch() -> float:
        with tf.device(place):
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[timer])
        return float(timer.seconds)

    return epoch


def run(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    epochs: int,
    bn: bool,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Seconds of each of ``epochs`` epochs (the first includes tracing)."""
    epoch = prepare(x, y, batch_size, bn, seed, device)
    return [epoch() for _ in range(epochs)]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _cli import main

    main("keras_tutorial", run)

"""GPU paths: what a CPU-only machine can check, and GPU runs that skip without a GPU.

Checked everywhere: the environment that keeps JAX and TensorFlow from taking all GPU memory,
TF32 stated in every framework's versions, and a clear error (not a silent CPU run) when a
backend is asked for a GPU it cannot see. Marked ``gpu``: one epoch and a GEMM rate on the GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import backend_instance

from harness.backend import DeviceUnavailableError, TrainData
from harness.initializers import batch_order, canonical_params
from harness.plugins import get_plugins
from harness.registry import load_object
from harness.roofline import train_shapes
from harness.specs import ModelSpec, TrainSpec

FRAMEWORKS = ("torch", "keras", "jax")
SPEC = ModelSpec(input_size=8, hidden_sizes=(16,), num_classes=3, norm="batchnorm")


def test_worker_env_turns_off_jax_preallocation_and_grows_tf_memory() -> None:
    backends = get_plugins().backends
    assert backends.get("jax").worker_env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert backends.get("keras").worker_env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_tf32_is_off_and_recorded(name: str) -> None:
    versions = backend_instance(name).versions()
    assert versions["tf32"] == "False"
    assert versions["intra_op_threads"] == "2"


def _gpu_backend(name: str) -> Any:
    cpu = backend_instance(name)
    if "gpu" in type(cpu).devices():
        pytest.skip("a GPU is visible: the CPU-only error path cannot be shown")
    info = get_plugins().backends.get(name)
    return load_object(info.factory)(device="gpu", threads=2)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_asking_for_a_missing_gpu_is_a_clear_error(name: str) -> None:
    backend = _gpu_backend(name)
    assert "gpu" not in type(backend).devices()
    with pytest.raises(
        DeviceUnavailableError, match=f"backend '{name}' cannot see a gpu.*--device cpu"
    ):
        backend.build(SPEC, canonical_params(SPEC, 0))


def _data() -> TrainData:
    rng = np.random.default_rng(0)
    x = rng.random((64, 8), np.float32)
    y = rng.integers(0, 3, 64)
    return TrainData(x, y, x[:16], y[:16])


def _on_gpu(name: str) -> Any:
    cpu = backend_instance(name)
    if "gpu" not in type(cpu).devices():
        pytest.skip(f"no GPU visible to {name}")
    info = get_plugins().backends.get(name)
    return load_object(info.factory)(device="gpu", threads=2)


@pytest.mark.gpu
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_one_epoch_and_gemm_rate_on_the_gpu(name: str) -> None:
    backend = _on_gpu(name)
    model = backend.build(SPEC, canonical_params(SPEC, 0))
    history = backend.train(
        model, _data(), TrainSpec(batch_size=16, epochs=2), batch_order(64, 16, 2, 0)
    )
    assert all(np.isfinite(m.train_loss) and m.time_s > 0 for m in history)
    backend.synchronize()
    assert backend.versions()["tf32"] == "False"
    rates = backend.matmul_rates(train_shapes(SPEC, 16), repeats=2)
    assert len(rates) == 2 and min(rates) > 0

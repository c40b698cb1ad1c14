"""Where PyTorch runs: its thread count, full float32 everywhere, and the settings recorded."""

from __future__ import annotations

import torch


def configure(device: str, threads: int) -> torch.device:
    """Apply ``threads`` (0: torch's default) and full float32 (no TF32) so backends are
    comparable; the torch device for ``cpu``/``gpu``."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch.device("cuda" if device == "gpu" else "cpu")


def versions(torch_device: torch.device) -> dict[str, str]:
    """torch version, threads, TF32 and device name."""
    info = {
        "torch": torch.__version__,
        "intra_op_threads": str(torch.get_num_threads()),
        "inter_op_threads": str(torch.get_num_interop_threads()),
        "tf32": str(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_tf32": str(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": str(torch.are_deterministic_algorithms_enabled()),
        "device": str(torch_device),
    }
    if torch_device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = str(torch.version.cuda)
    return info


def devices() -> list[str]:
    """CPU, plus GPU when CUDA is usable."""
    return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

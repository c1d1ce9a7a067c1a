"""Where torch models train and predict: the ``device`` setting (``auto`` | ``cpu`` | ``cuda``).

``auto`` takes CUDA when torch sees a GPU and the CPU otherwise; ``cuda`` without a
usable GPU is an error that says so (a run that asked for a GPU must not quietly take
hours on the CPU). Models are always handed back, saved and loaded on the CPU, so a
model trained on a GPU scores on a laptop.
"""

from __future__ import annotations

import torch

from fusion_assets.models.config import DEVICES


def resolve_device(setting: str = "auto") -> torch.device:
    """The torch device for ``setting``; ``cuda`` without CUDA raises a ValueError."""
    if setting not in DEVICES:
        raise ValueError(f"device {setting!r} is not one of {', '.join(DEVICES)}.")
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        raise ValueError(
            "device 'cuda' was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}): "
            "set device to 'auto' (CUDA when present, else CPU) or 'cpu', or install a "
            "CUDA build of torch on a machine with a GPU."
        )
    return torch.device("cpu")


def autocast(device: torch.device, mixed_precision: bool) -> torch.autocast:
    """bfloat16 autocast on CUDA when asked (no loss scaling needed); a no-op otherwise."""
    return torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=bool(mixed_precision and device.type == "cuda"),
    )

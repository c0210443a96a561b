"""Choosing the torch device a stage runs on, from the ``device`` setting."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """The torch device for a ``device`` setting: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.

    :raises ValueError: ``cuda`` was asked for but torch sees no CUDA device, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "device 'cuda' was requested but torch sees no CUDA device (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use "
                "--set device=auto or device=cpu, or install a CUDA build of torch"
            )
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'")


def has_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA device that supports it, or a CPU with AVX-512 BF16
    or AMX (oneDNN's check). Elsewhere torch emulates bfloat16, slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()

"""Choosing the torch device from a user-facing name ("auto", "cpu", "cuda", "cuda:1")."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else CPU; asking for CUDA on a machine without it fails loudly, saying
    what is missing, rather than silently running (much slower) on CPU."""
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if device.type == "cuda":
        missing = missing_cuda(device)
        if missing:
            raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available here: {missing}")
    return device


def missing_cuda(device: torch.device) -> str | None:
    """What stands between this process and `device` (a CUDA device), or None."""
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) was built without CUDA; install a CUDA build of torch, or use "
            "device 'cpu' or 'auto'"
        )
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hidden = f" (CUDA_VISIBLE_DEVICES={visible!r} hides them?)" if visible is not None else ""
        return f"torch built for CUDA {torch.version.cuda} finds no GPU{hidden}: check the driver (nvidia-smi)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"there are {count} GPU(s) here (cuda:0 to cuda:{count - 1}), not cuda:{device.index}"
    return None

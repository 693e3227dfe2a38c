"""Choosing the torch device from a user-facing name ("auto", "cpu", "cuda", "cuda:1")."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else CPU; asking for CUDA on a machine without it fails loudly
    rather than silently running (much slower) on CPU."""
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available here; use 'cpu' or 'auto'")
    return device

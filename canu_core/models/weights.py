"""Backbone weights from a local file only: nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

SHOWN_PER_KIND = 10


def load_backbone_weights(module: nn.Module, path: str | Path) -> None:
    """Load an ImageNet-style state dict into a backbone, strictly.

    Accepts a raw state dict or {"state_dict": ...}; strips a DataParallel "module." prefix; drops the ImageNet
    classifier "fc.*" (backbones have none). Any missing / unexpected name or wrong shape raises one ValueError
    listing them, so a wrong file is never half-loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    state = {_strip_prefix(name, "module."): value for name, value in state.items()}
    state = {name: value for name, value in state.items() if not name.startswith("fc.")}
    problems = _mismatches(module.state_dict(), state)
    if problems:
        raise ValueError(f"weights in {path} do not match the backbone:\n" + "\n".join(problems))
    module.load_state_dict(state)


def _strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def _mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """One line per kind of problem: the count and the first SHOWN_PER_KIND names."""
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    wrong_shape = [
        f"{n} {tuple(given[n].shape)} != {tuple(t.shape)}"
        for n, t in expected.items()
        if n in given and given[n].shape != t.shape
    ]
    problems = []
    for kind, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if names:
            shown = ", ".join(names[:SHOWN_PER_KIND]) + (", ..." if len(names) > SHOWN_PER_KIND else "")
            problems.append(f"  {len(names)} {kind}: {shown}")
    return problems

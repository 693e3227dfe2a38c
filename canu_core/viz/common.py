"""Saving figures the same way everywhere: atomically, PNG, tight bounding box."""

from __future__ import annotations

import os
from pathlib import Path


def save_figure(fig, path: str | os.PathLike | None, dpi: int = 120) -> Path | None:
    """Write `fig` to `path` through a temporary file so an interrupted save never leaves a broken PNG."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    os.replace(tmp, path)
    return path

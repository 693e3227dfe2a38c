"""Datasets by name: "synthetic:<preset>" worlds generated on first use, or real datasets under `data_root`."""
from __future__ import annotations

from pathlib import Path

from ..runs import resolve_path
from .datasets import read_dataset
from .records import ReidDataset
from .synthetic import PRESETS, generate_world

SYNTHETIC_PREFIX = "synthetic:"
# Folders each real dataset may be in, below data_root (the names its authors distribute), first found wins.
REAL_FOLDERS = {
    "market1501": ("Market-1501-v15.09.15", "Market-1501", "market1501"),
    "dukemtmc": ("DukeMTMC-reID", "dukemtmc"),
    "msmt17": ("MSMT17_V2", "MSMT17_V1", "MSMT17", "msmt17"),
}


def dataset_root(name: str, data_root: str | Path = "data", world_seed: int = 0) -> Path:
    """Where dataset `name` lives (or, for a synthetic world, will be generated)."""
    root = resolve_path(data_root)
    if name.startswith(SYNTHETIC_PREFIX):
        return root / f"synthetic_{name[len(SYNTHETIC_PREFIX):]}_seed{world_seed}"
    if name not in REAL_FOLDERS:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {sorted(REAL_FOLDERS)} or "
            f"{[SYNTHETIC_PREFIX + p for p in PRESETS]}"
        )
    candidates = [root / folder for folder in REAL_FOLDERS[name]]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"dataset {name!r} not found: expected one of these folders: {', '.join(map(str, candidates))}. "
        "Real datasets are never downloaded: put your copy there or set data_root."
    )


def load_dataset(name: str, data_root: str | Path = "data", world_seed: int = 0) -> ReidDataset:
    """Read a real dataset, or generate (once) and read a synthetic world."""
    root = dataset_root(name, data_root, world_seed)
    if name.startswith(SYNTHETIC_PREFIX):
        preset = name[len(SYNTHETIC_PREFIX):]
        if preset not in PRESETS:
            raise ValueError(f"unknown synthetic preset {preset!r}: expected one of {sorted(PRESETS)}")
        return generate_world(PRESETS[preset], root, seed=world_seed)
    return read_dataset(name, root)

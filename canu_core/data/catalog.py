"""Datasets by name: "synthetic:<preset>" worlds generated on first use, or real datasets under `data_root`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..runs import resolve_path
from .checks import check_evaluable, check_image_files
from .datasets import read_dataset
from .records import ReidDataset
from .synthetic import PRESETS, OtherWorldError, WorldSpec, generate_world

SYNTHETIC_PREFIX = "synthetic:"
# Folders each real dataset may be in, below data_root (the names its authors distribute), first found wins.
REAL_FOLDERS = {
    "market1501": ("Market-1501-v15.09.15", "Market-1501", "market1501"),
    "dukemtmc": ("DukeMTMC-reID", "dukemtmc"),
    "msmt17": ("MSMT17_V2", "MSMT17_V1", "MSMT17", "msmt17"),
}


def world_spec(name: str, camera_coverage: float | None = None) -> WorldSpec:
    """The spec of synthetic world `name` ("synthetic:<preset>"), its camera coverage replaced when given."""
    preset = name[len(SYNTHETIC_PREFIX) :]
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}: expected one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    return spec if camera_coverage is None else dataclasses.replace(spec, camera_coverage=camera_coverage)


def dataset_root(
    name: str, data_root: str | Path = "data", world_seed: int = 0, camera_coverage: float | None = None
) -> Path:
    """Where dataset `name` lives (or, for a synthetic world, will be generated: one folder per seed and
    coverage)."""
    root = resolve_path(data_root)
    if name.startswith(SYNTHETIC_PREFIX):
        coverage = "" if camera_coverage is None else f"_coverage{camera_coverage}"
        return root / f"synthetic_{name[len(SYNTHETIC_PREFIX) :]}_seed{world_seed}{coverage}"
    if name not in REAL_FOLDERS:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {sorted(REAL_FOLDERS)} or "
            f"{[SYNTHETIC_PREFIX + p for p in PRESETS]}"
        )
    if camera_coverage is not None:
        raise ValueError(
            f"camera coverage is a knob of synthetic worlds; {name!r} is a real dataset: leave "
            f"target_coverage unset (found {camera_coverage})"
        )
    candidates = [root / folder for folder in REAL_FOLDERS[name]]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"dataset {name!r} not found: expected one of these folders: {', '.join(map(str, candidates))}. "
        "Real datasets are never downloaded: put your copy there or set data_root."
    )


def load_dataset(
    name: str, data_root: str | Path = "data", world_seed: int = 0, camera_coverage: float | None = None
) -> ReidDataset:
    """Read a real dataset, or generate (once) and read a synthetic world, then check it (checks.py): a bad image
    file or a test split that cannot be evaluated fails here, before any training."""
    root = dataset_root(name, data_root, world_seed, camera_coverage)
    if name.startswith(SYNTHETIC_PREFIX):
        dataset = _synthetic_world(name, root, world_seed, camera_coverage)
    else:
        dataset = read_dataset(name, root)
    check_evaluable(dataset)
    check_image_files(dataset.train + dataset.query + dataset.gallery)
    return dataset


def _synthetic_world(name: str, root: Path, world_seed: int, camera_coverage: float | None) -> ReidDataset:
    """The world, generated on first use. A folder that holds an older version of its preset (the preset or the
    renderer changed since) is regenerated: it is the lab's own output, rebuilt from the same spec and seed."""
    spec = world_spec(name, camera_coverage)
    try:
        return generate_world(spec, root, seed=world_seed)
    except OtherWorldError:
        print(f"{root} holds another version of {name}: regenerating it")
        return generate_world(spec, root, seed=world_seed, overwrite=True)

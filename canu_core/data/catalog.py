"""Datasets by name: "synthetic:<preset>" worlds generated on first use, or real datasets under `data_root`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

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


# The knobs of a synthetic world a run may change (WorldSpec fields), with the suffix each gives its folder.
WORLD_KNOBS = {"camera_coverage": "coverage", "area_fashion": "fashion", "visit_skew": "skew"}
# The parameters that set them on the target world.
TARGET_KNOBS = {
    "target_coverage": "camera_coverage",
    "target_area_fashion": "area_fashion",
    "target_visit_skew": "visit_skew",
}


def target_world(params) -> dict[str, float]:
    """The knobs of the synthetic target that `params` set (target_coverage, target_area_fashion,
    target_visit_skew; None: the preset's own)."""
    return {knob: getattr(params, name) for name, knob in TARGET_KNOBS.items() if getattr(params, name) is not None}


def world_spec(name: str, world: Mapping[str, float] | None = None) -> WorldSpec:
    """The spec of synthetic world `name` ("synthetic:<preset>"), with the knobs in `world` replaced."""
    preset = name[len(SYNTHETIC_PREFIX) :]
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}: expected one of {sorted(PRESETS)}")
    knobs = _knobs(world)
    return dataclasses.replace(PRESETS[preset], **knobs) if knobs else PRESETS[preset]


def _knobs(world: Mapping[str, float] | None) -> dict[str, float]:
    unknown = sorted(set(world or {}) - set(WORLD_KNOBS))
    if unknown:
        raise ValueError(f"unknown world knobs {unknown}: expected some of {sorted(WORLD_KNOBS)}")
    return {knob: value for knob, value in (world or {}).items() if value is not None}


def dataset_root(
    name: str, data_root: str | Path = "data", world_seed: int = 0, world: Mapping[str, float] | None = None
) -> Path:
    """Where dataset `name` lives (or, for a synthetic world, will be generated: one folder per seed and per
    setting of the knobs in `world`)."""
    root = resolve_path(data_root)
    knobs = _knobs(world)
    if name.startswith(SYNTHETIC_PREFIX):
        suffix = "".join(f"_{WORLD_KNOBS[knob]}{knobs[knob]}" for knob in WORLD_KNOBS if knob in knobs)
        return root / f"synthetic_{name[len(SYNTHETIC_PREFIX) :]}_seed{world_seed}{suffix}"
    if name not in REAL_FOLDERS:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {sorted(REAL_FOLDERS)} or "
            f"{[SYNTHETIC_PREFIX + p for p in PRESETS]}"
        )
    if knobs:
        raise ValueError(
            f"{', '.join(sorted(knobs))} are knobs of synthetic worlds; {name!r} is a real dataset: leave "
            f"{', '.join(n for n, k in TARGET_KNOBS.items() if k in knobs)} unset (found {knobs})"
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
    name: str, data_root: str | Path = "data", world_seed: int = 0, world: Mapping[str, float] | None = None
) -> ReidDataset:
    """Read a real dataset, or generate (once) and read a synthetic world, then check it (checks.py): a bad image
    file or a test split that cannot be evaluated fails here, before any training."""
    root = dataset_root(name, data_root, world_seed, world)
    if name.startswith(SYNTHETIC_PREFIX):
        dataset = _synthetic_world(name, root, world_seed, world)
    else:
        dataset = read_dataset(name, root)
    check_evaluable(dataset)
    check_image_files(dataset.train + dataset.query + dataset.gallery)
    return dataset


def _synthetic_world(name: str, root: Path, world_seed: int, world: Mapping[str, float] | None) -> ReidDataset:
    """The world, generated on first use. A folder that holds an older version of its preset (the preset or the
    renderer changed since) is regenerated: it is the lab's own output, rebuilt from the same spec and seed."""
    spec = world_spec(name, world)
    try:
        return generate_world(spec, root, seed=world_seed)
    except OtherWorldError:
        print(f"{root} holds another version of {name}: regenerating it")
        return generate_world(spec, root, seed=world_seed, overwrite=True)

"""Datasets: the readers of the real layouts (Market-1501, DukeMTMC-reID, MSMT17), the synthetic multi-camera
worlds, transforms and the P x K sampler."""

from .catalog import load_dataset, target_world
from .records import ImageRecord, ReidDataset, ids_and_cameras
from .synthetic import PRESETS, dataset_readout, generate_world

__all__ = [
    "PRESETS",
    "generate_world",
    "ImageRecord",
    "ReidDataset",
    "dataset_readout",
    "ids_and_cameras",
    "load_dataset",
    "target_world",
]

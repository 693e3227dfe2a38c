"""Datasets: the readers of the real layouts (Market-1501, DukeMTMC-reID, MSMT17), the synthetic multi-camera
worlds, transforms and the P x K sampler."""

from .catalog import load_dataset
from .records import ImageRecord, ReidDataset, ids_and_cameras

__all__ = ["ImageRecord", "ReidDataset", "ids_and_cameras", "load_dataset"]

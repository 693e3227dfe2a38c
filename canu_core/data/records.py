"""The one record type every dataset reader and the synthetic world produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np


class ImageRecord(NamedTuple):
    """One image: its file, person id (0 = distractor, -1 = junk) and 0-based camera index."""

    path: str
    pid: int
    camid: int


@dataclass
class ReidDataset:
    """Train / query / gallery splits of one re-ID dataset, as (path, pid, camid) records."""

    name: str
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    num_cameras: int
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def summary(self) -> dict[str, dict[str, int]]:
        """Image, identity and camera counts per split; distractors (pid 0) and junk (-1) count as images only."""
        return {
            split: {
                "images": len(records),
                "ids": len({r.pid for r in records if r.pid > 0}),
                "cameras": len({r.camid for r in records}),
                "distractors": sum(r.pid == 0 for r in records),
            }
            for split, records in (("train", self.train), ("query", self.query), ("gallery", self.gallery))
        }


def ids_and_cameras(records: Sequence[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """The records' person ids and 0-based camera ids, as arrays in their order (what the diagnostics compare
    features and clusters with)."""
    return np.array([r.pid for r in records], dtype=np.int64), np.array([r.camid for r in records], dtype=np.int64)

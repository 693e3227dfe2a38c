"""P x K identity sampling for the triplet loss, preferring for each identity images from different cameras."""
from __future__ import annotations

from collections import defaultdict
from itertools import zip_longest
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from .records import ImageRecord


class RandomIdentitySampler(Sampler[int]):
    """Dataset indices in batches of `batch_ids` (P) identities x `instances` (K) images each.

    Per epoch every identity is drawn once, in a random order; the last `num_ids % P` of that order are dropped so
    that every batch holds P distinct identities. Hence len(sampler) = (num_ids // P) * P * K: use it with
    DataLoader(batch_size=P * K). For each identity: a random anchor image, then images from the other cameras
    (round-robin over those cameras, so K instances span as many cameras as the identity has), then other images of
    the anchor's camera, then - only when the identity has fewer than K images - repeats drawn at random
    (MMT's RandomMultipleGallerySampler idea; single-image identities are repeated K times).

    Works on ground-truth or pseudo-label records alike (pid = cluster label); outliers (pid -1) must be removed
    by the caller. The order depends only on (seed, epoch, pass): call set_epoch(e, p) before each pass.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_ids: int = 16, instances: int = 4, seed: int = 0):
        if batch_ids < 1 or instances < 1:
            raise ValueError(f"batch_ids and instances must be >= 1, got {batch_ids} and {instances}")
        self.indices_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            if record.pid < 0:
                raise ValueError(f"record {index} has pid {record.pid}: remove outliers / junk before sampling")
            self.indices_by_pid[record.pid].append(index)
        if len(self.indices_by_pid) < batch_ids:
            raise ValueError(f"{len(self.indices_by_pid)} identities cannot fill a batch of {batch_ids} identities")
        self.pids = sorted(self.indices_by_pid)
        self.camids = [record.camid for record in records]
        self.batch_ids = batch_ids
        self.instances = instances
        self.seed = seed
        self.epoch = 0
        self.pass_index = 0

    def set_epoch(self, epoch: int, pass_index: int = 0) -> None:
        """Select the order of pass `pass_index` of `epoch` (an epoch of fixed iterations may need several passes)."""
        self.epoch = epoch
        self.pass_index = pass_index

    def __len__(self) -> int:
        return (len(self.pids) // self.batch_ids) * self.batch_ids * self.instances

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, self.pass_index])
        order = rng.permutation(len(self.pids))
        kept = order[: len(self.pids) // self.batch_ids * self.batch_ids]
        for position in kept:
            yield from self._instances(self.indices_by_pid[self.pids[position]], rng)

    def _instances(self, indices: list[int], rng: np.random.Generator) -> list[int]:
        """K dataset indices of one identity: anchor, other cameras round-robin, same camera, then repeats."""
        anchor = indices[rng.integers(len(indices))]
        by_camera: dict[int, list[int]] = defaultdict(list)
        for index in indices:
            if index != anchor:
                by_camera[self.camids[index]].append(index)
        same_camera = by_camera.pop(self.camids[anchor], [])
        cameras = sorted(by_camera)
        other_cameras = [rng.permutation(by_camera[cameras[i]]).tolist() for i in rng.permutation(len(cameras))]
        round_robin = [index for rank in zip_longest(*other_cameras) for index in rank if index is not None]
        chosen = [anchor] + round_robin + rng.permutation(same_camera).tolist()
        if len(chosen) < self.instances:
            chosen += rng.choice(indices, size=self.instances - len(chosen)).tolist()
        return chosen[: self.instances]


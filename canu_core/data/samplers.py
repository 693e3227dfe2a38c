"""Identity sampling for the triplet loss: MMT's RandomMultipleGallerySampler (mmt/utils/data/sampler.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from .records import ImageRecord


def images_per_pass(images_per_identity: Sequence[int], instances: int) -> int:
    """How many indices one pass of the sampler draws: K per identity, one for an identity with a single image."""
    return sum(instances if count > 1 else 1 for count in images_per_identity)


class RandomIdentitySampler(Sampler[int]):
    """Dataset indices in groups, one group per identity, every identity once per pass in a random order; use it
    with DataLoader(batch_size=batch_ids * instances, drop_last=True), as MMT does.

    A group is MMT's: a random anchor image, then K - 1 images of the same identity **from other cameras** (drawn
    without replacement if the identity has at least K such images, with replacement otherwise); only an identity
    seen by a single camera fills its group with its other images (same rule), and an identity with a single image
    gives its anchor alone. Groups are concatenated, so a group may straddle two batches, and a batch holds
    `batch_ids` identities only when every group is full. Camera-biased clusters are what this rule is for: an
    identity with one image from another camera is drawn with K - 1 copies of it, never with same-camera fill.

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
            raise ValueError(
                f"{len(self.indices_by_pid)} identities cannot fill a batch of {batch_ids} identities: pass "
                f"-p batch_ids {len(self.indices_by_pid)} or fewer"
            )
        self.pids = sorted(self.indices_by_pid)
        self.camids = np.array([record.camid for record in records])
        self.batch_ids = batch_ids
        self.instances = instances
        self.seed = seed
        self.epoch = 0
        self.pass_index = 0
        if len(self) < batch_ids * instances:
            raise ValueError(
                f"a pass draws {len(self)} images (identities with a single image give one), fewer than "
                f"one batch of {batch_ids} x {instances}"
            )

    def set_epoch(self, epoch: int, pass_index: int = 0) -> None:
        """Select the order of pass `pass_index` of `epoch` (an epoch of fixed iterations may need several passes)."""
        self.epoch = epoch
        self.pass_index = pass_index

    def __len__(self) -> int:
        return images_per_pass([len(indices) for indices in self.indices_by_pid.values()], self.instances)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, self.pass_index])
        for position in rng.permutation(len(self.pids)):
            yield from self._group(np.asarray(self.indices_by_pid[self.pids[position]]), rng)

    def _group(self, indices: np.ndarray, rng: np.random.Generator) -> list[int]:
        """The anchor, then K - 1 draws from the other cameras' images, or (one camera) from the other images."""
        anchor = indices[rng.integers(len(indices))]
        candidates = indices[self.camids[indices] != self.camids[anchor]]
        if not len(candidates):
            candidates = indices[indices != anchor]
            if not len(candidates):
                return [int(anchor)]
        fill = rng.choice(candidates, size=self.instances - 1, replace=len(candidates) < self.instances)
        return [int(anchor), *fill.tolist()]

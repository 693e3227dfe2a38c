"""Pieces every training loop shares: pseudo/true label relabelling, loaders, the LR schedule, checkpoint state."""
from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch.utils.data import DataLoader

from ..data.image_dataset import ImageDataset
from ..data.records import ImageRecord
from ..data.samplers import RandomIdentitySampler
from ..data.transforms import build_train_transform


def relabel(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], dict[int, int]]:
    """Map the pids present to 0..C-1 in sorted order, as classifiers need; returns the records and the mapping."""
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records], mapping


def identity_loader(records: Sequence[ImageRecord], height: int, width: int, batch_ids: int, instances: int,
                    seed: int, num_workers: int = 0) -> DataLoader:
    """P x K batches of augmented images, to be drawn through `batches` (which sets the sampler's epoch)."""
    sampler = RandomIdentitySampler(records, batch_ids=batch_ids, instances=instances, seed=seed)
    dataset = ImageDataset(records, build_train_transform(height, width))
    return DataLoader(dataset, batch_size=batch_ids * instances, sampler=sampler, num_workers=num_workers,
                      drop_last=True, persistent_workers=num_workers > 0)


def warmup_multistep(optimizer: torch.optim.Optimizer, warmup_epochs: int, milestones: Sequence[int],
                     gamma: float = 0.1, warmup_factor: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """MMT's WarmupMultiStepLR, stepped once per epoch: linear warm-up from `warmup_factor`, then x`gamma` at each
    milestone."""
    def factor(epoch: int) -> float:
        warm = 1.0
        if epoch < warmup_epochs:
            alpha = epoch / warmup_epochs
            warm = warmup_factor * (1 - alpha) + alpha
        return warm * gamma ** sum(epoch >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batches(loader: DataLoader, iterations: int, epoch: int):
    """`iterations` batches of epoch `epoch` (0: exactly one pass), starting a new pass of the identity sampler,
    in a new order, whenever one runs out (MMT trains a fixed number of iterations per epoch)."""
    for pass_index in itertools.count():
        loader.sampler.set_epoch(epoch, pass_index)
        for step, batch in enumerate(loader, start=pass_index * len(loader)):
            if iterations and step == iterations:
                return
            yield batch
        if not iterations:
            return

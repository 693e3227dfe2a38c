"""BatchNorm statistics over groups of a batch: one device computing what several devices of one group each compute.

The published re-ID recipes (MMT, SpCL, CANU) trained batches of 64 on four GPUs under DataParallel, so each
BatchNorm layer normalised 16 images with their own mean and variance; the same batch on one device normalises all
64 together, and its users report results up to 20 mAP lower. With `group_batchnorm(model, 16)` a train-mode
forward of 64 images normalises each consecutive group of 16 with that group's statistics, as four devices would.

Running statistics (what eval mode normalises with) follow the first group only, one update per forward: what
four devices keep, since DataParallel's first replica shares the module's buffers and DistributedDataParallel
broadcasts rank 0's buffers at every forward (and the trainers broadcast rank 0's after every epoch). Groups are
consecutive images, as the ranks' shares of a P x K batch are (distributed.ShardedBatches): a group of 16 holds
four whole identities of 4 images, as a device's share would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GroupedNorm:
    """A BatchNorm whose train-mode forward normalises each `group_size` consecutive images on their own; eval mode
    and a batch of at most one group are exactly the plain BatchNorm."""

    group_size: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or len(x) <= self.group_size:
            return super().forward(x)
        first, *rest = split_in_groups(x, self.group_size)
        return torch.cat([super().forward(first), *(batch_statistics_norm(self, group) for group in rest)])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


class GroupedBatchNorm1d(GroupedNorm, nn.BatchNorm1d):
    pass


class GroupedBatchNorm2d(GroupedNorm, nn.BatchNorm2d):
    pass


GROUPED = {nn.BatchNorm1d: GroupedBatchNorm1d, nn.BatchNorm2d: GroupedBatchNorm2d}


def split_in_groups(x: torch.Tensor, group_size: int) -> tuple[torch.Tensor, ...]:
    if len(x) % group_size:
        raise ValueError(
            f"a batch of {len(x)} images does not split into BatchNorm groups of {group_size} (bn_group_size): "
            "choose batch_ids x instances (per process, under torchrun) divisible by it"
        )
    return x.split(group_size)


def batch_statistics_norm(norm: nn.BatchNorm1d | nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """`x` normalised as `norm` normalises it in train mode (per group when it has groups), with the same weight and
    bias, but without updating its running statistics."""
    size = getattr(norm, "group_size", 0)
    groups = split_in_groups(x, size) if 0 < size < len(x) else (x,)
    normalised = [F.batch_norm(g, None, None, norm.weight, norm.bias, training=True, eps=norm.eps) for g in groups]
    return normalised[0] if len(normalised) == 1 else torch.cat(normalised)


def group_batchnorm(module: nn.Module, group_size: int) -> nn.Module:
    """Every BatchNorm1d / BatchNorm2d of `module` (in place, and `module` itself if it is one) replaced by its
    grouped form over `group_size` images, holding the same parameters and buffers: state dicts, optimizers already
    built on the parameters and checkpoints are unchanged. group_size 0 returns `module` untouched."""
    if group_size < 0:
        raise ValueError(f"group_size must be >= 0 (0: the whole batch), got {group_size}")
    if not group_size:
        return module
    if type(module) in GROUPED:
        return _grouped(module, group_size)
    for name, child in module.named_children():
        module.add_module(name, group_batchnorm(child, group_size))
    return module


def _grouped(norm: nn.BatchNorm1d | nn.BatchNorm2d, group_size: int) -> GroupedNorm:
    grouped = GROUPED[type(norm)](norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
    grouped.group_size = group_size
    grouped.weight, grouped.bias = norm.weight, norm.bias
    for name, buffer in norm.named_buffers(recurse=False):
        setattr(grouped, name, buffer)
    return grouped.train(norm.training)

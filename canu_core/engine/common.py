"""Pieces every training loop shares: pseudo/true label relabelling, loaders, the LR schedule, divergence checks."""

from __future__ import annotations

import itertools
import math
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from .. import distributed
from ..config import Params
from ..data.image_dataset import ImageDataset
from ..data.records import ImageRecord
from ..data.samplers import RandomIdentitySampler
from ..data.transforms import build_train_transform
from ..models import ReidModel, group_batchnorm
from ..runs import DivergenceError


def relabel(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], dict[int, int]]:
    """Map the pids present to 0..C-1 in sorted order, as classifiers need; returns the records and the mapping."""
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records], mapping


def identity_loader(
    records: Sequence[ImageRecord],
    height: int,
    width: int,
    batch_ids: int,
    instances: int,
    seed: int,
    num_workers: int = 0,
) -> DataLoader:
    """P x K batches of augmented images, to be drawn through `batches` (which sets the sampler's epoch); under
    torchrun, this rank's share of each."""
    sampler = RandomIdentitySampler(records, batch_ids=batch_ids, instances=instances, seed=seed)
    sampler, batch_size = distributed.shard_batches(sampler, batch_ids * instances)  # under torchrun: its share
    dataset = ImageDataset(records, build_train_transform(height, width))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),  # page-locked batches reach a GPU faster (unused on the CPU)
    )


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class MixedPrecision:
    """How a trainer's forwards and steps treat precision: with `params.amp` on CUDA, forwards autocast to
    `params.amp_dtype`; float16's narrow range needs GradScaler's loss scaling, bfloat16 has float32's range and steps
    unscaled (the scaler is then a pass-through). Off elsewhere: the CPU trains in float32, as before mixed precision
    existed, so CPU runs repeat. `MixedPrecision(True, torch.bfloat16, "cpu")` runs CPU autocast (the tests use it)."""

    def __init__(self, enabled: bool, dtype: torch.dtype, device_type: str):
        self.enabled, self.dtype, self.device_type = enabled, dtype, device_type
        self.scaler = torch.amp.GradScaler(device_type, enabled=enabled and dtype == torch.float16)

    @classmethod
    def for_run(cls, params: Params, device: torch.device) -> MixedPrecision:
        enabled = params.amp and device.type == "cuda"
        dtype = AMP_DTYPES[params.amp_dtype]
        if enabled and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"amp_dtype bfloat16: {torch.cuda.get_device_name(device)} has no bfloat16 arithmetic (Ampere and "
                "newer GPUs have it): set amp_dtype float16, or amp false"
            )
        return cls(enabled, dtype, device.type)

    def autocast(self) -> torch.autocast:
        """The context of a training forward."""
        return torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.enabled)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimizer step on `loss` (scaled, unscaled and skipped on overflow with float16)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scaler.load_state_dict(state)


def prepare_model(model: ReidModel, params: Params, device: torch.device) -> ReidModel:
    """A model as the trainers train it: its BatchNorm synchronised across torchrun's processes with `sync_bn`, or
    over groups of `bn_group_size` images, on `device`, its convolutions in channels_last memory with
    `channels_last`."""
    model = distributed.synchronised_batchnorm(model, params.sync_bn, device)
    model = batchnorm_groups(model, params).to(device)
    return model.use_channels_last() if params.channels_last else model


def batchnorm_groups(module: nn.Module, params: Params) -> nn.Module:
    """`module` with BatchNorm statistics over groups of `params.bn_group_size` images (unchanged at 0): every
    module a trainer forwards in train mode goes through here (the re-ID models in prepare_model, the camera
    discriminators), so that no BatchNorm of a training step sees more images than a group."""
    size = params.bn_group_size
    share = params.batch_ids * params.instances // distributed.group().world_size
    if size and share % size:
        raise ValueError(
            f"bn_group_size {size} does not divide the {share} images of each process's batch (batch_ids x "
            "instances / processes): choose a size that does, e.g. a multiple of instances that divides it"
        )
    return group_batchnorm(module, size)


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    warmup_epochs: int,
    milestones: Sequence[int],
    gamma: float = 0.1,
    warmup_factor: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
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


class ShuffledSampler(Sampler[int]):
    """Every index of a dataset of `size` once per pass, in an order that depends only on (seed, epoch, pass), as
    RandomIdentitySampler's: call set_epoch(e, p) before each pass (`batches` and `endless_batches` do)."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.pass_index = 0

    def set_epoch(self, epoch: int, pass_index: int = 0) -> None:
        self.epoch = epoch
        self.pass_index = pass_index

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        yield from np.random.default_rng([self.seed, self.epoch, self.pass_index]).permutation(self.size).tolist()


def shuffled_loader(
    records: Sequence[ImageRecord], height: int, width: int, batch_size: int, seed: int, num_workers: int = 0
) -> DataLoader:
    """Shuffled batches of augmented images, no identity sampling, the last incomplete batch dropped (MMT's target
    loader of its source pretraining); to be drawn through `endless_batches`. Workers are not persistent: each pass
    starts its own, seeded from that pass's generator, so a resumed epoch repeats the augmentations."""
    sampler, batch_size = distributed.shard_batches(ShuffledSampler(len(records), seed), batch_size)
    dataset = ImageDataset(records, build_train_transform(height, width))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
    )


def endless_batches(loader: DataLoader, epoch: int, seed: int) -> Iterator:
    """The batches of `loader` for epoch `epoch`, pass after pass for as long as they are drawn, each pass in the
    order its sampler gives (epoch, pass). Their random augmentations (and their workers' seeds) come from a torch
    generator state of their own, started per (seed, epoch, pass), never from the global one: a training loop that
    also draws these batches draws exactly the same main batches as without them, and a resumed epoch repeats them."""
    if not len(loader):
        raise ValueError("the loader yields no batch (fewer samples than one batch, drop_last): nothing to cycle over")
    for pass_index in itertools.count():
        loader.sampler.set_epoch(epoch, pass_index)
        pass_seed = int(np.random.SeedSequence([seed, epoch, pass_index]).generate_state(1)[0])
        own_state = torch.Generator().manual_seed(pass_seed).get_state()
        iterator = None
        while True:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(own_state)
                if iterator is None:
                    iterator = iter(loader)
                batch = next(iterator, None)
                own_state = torch.get_rng_state()
            if batch is None:
                break
            yield batch


def check_finite(
    losses: Mapping[str, float],
    tensors: Mapping[str, torch.Tensor],
    epoch: int,
    iteration: int,
    loss_limit: float,
    lr_parameter: str,
) -> None:
    """Stop before the optimizer step when training has diverged, naming the epoch, iteration and term. No
    checkpoint of this epoch has been written then, so the last good one stays, and a resume with a smaller
    learning rate (`-p <lr_parameter> ... -p amend true`) continues from it."""
    problems = [f"{name} is not finite" for name, value in tensors.items() if not torch.isfinite(value).all()]
    for name, value in losses.items():
        if not math.isfinite(value) or abs(value) > loss_limit:
            problems.append(
                f"{name} = {value:.4g}" + ("" if not math.isfinite(value) else f", past loss_limit {loss_limit:g}")
            )
    if problems:
        raise DivergenceError(
            f"training diverged at epoch {epoch + 1}, iteration {iteration + 1}: {'; '.join(problems)}. The run "
            "stopped before this step; its checkpoints are those of its last finished epoch: run the same command "
            f"again with a smaller {lr_parameter} and -p amend true to continue from there"
        )


def check_weights(models: Mapping[str, nn.Module], epoch: int, lr_parameter: str) -> None:
    """Refuse to checkpoint non-finite weights (a step can produce them from finite losses)."""
    for name, model in models.items():
        bad = [
            weight
            for weight, value in model.state_dict().items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ]
        if bad:
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}: {name}'s {', '.join(bad[:3])} hold non-finite values. "
                "The run stopped before saving this epoch; its checkpoints are those of its last finished epoch: run "
                f"the same command again with a smaller {lr_parameter} and -p amend true to continue from there"
            )


def use_learning_rate(
    optimizer: torch.optim.Optimizer, lr: float, scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
) -> None:
    """Give a restored optimizer (and its schedule) the parameter's learning rate: a saved state would otherwise
    keep the rate it was saved with, whatever `amend` changed. With the rate it was saved with, nothing changes."""
    if scheduler is not None:
        scheduler.base_lrs = [lr] * len(optimizer.param_groups)
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):  # LambdaLR's own formula
            group["initial_lr"], group["lr"] = lr, lr * factor(scheduler.last_epoch)
        return
    for group in optimizer.param_groups:
        group["lr"] = lr

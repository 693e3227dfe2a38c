"""One run across processes (GPUs, or CPU processes): the process group that `torchrun` describes in its
environment, and the few collective steps the trainers need beside PyTorch's DistributedDataParallel, which
averages the students' gradients. Without torchrun every function here is the single-process identity, so the
trainers call them unconditionally.

What each rank does: it trains on its share of every P x K batch (`shard_batches`), extracts the features of its
share of the target training set (`gather_rows` puts them together on every rank), and receives the clustering that
rank 0 made (`broadcast_object`); rank 0 alone evaluates and writes the run folder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Group:
    """This process's place in the run: rank `rank` of `world_size` (local rank: its GPU on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that evaluates, prints and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> Group:
    """Join the process group torchrun describes (nccl on CUDA, gloo on the CPU); a single process without it."""
    if not launched_by_torchrun():
        return Group()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return group()


def group() -> Group:
    """The current process's group (a single process when none was started)."""
    if not dist.is_initialized():
        return Group()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, CUDA means this rank's own GPU (LOCAL_RANK); the CPU stays the CPU."""
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank (a clustering, a decision)."""
    if not dist.is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shard(count: int) -> range:
    """This rank's contiguous share of `count` items (the first ranks take one more when it does not divide)."""
    g = group()
    return _shard_of(count, g.rank, g.world_size)


def gather_rows(rows: torch.Tensor, count: int) -> torch.Tensor:
    """The rows of every rank's `shard(count)`, in order, on every rank (on the CPU)."""
    if not dist.is_initialized():
        return rows
    g = group()
    longest = -(-count // g.world_size)
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: len(rows)] = rows
    pieces = [torch.empty_like(padded) for _ in range(g.world_size)]
    dist.all_gather(pieces, padded)
    sizes = [len(_shard_of(count, r, g.world_size)) for r in range(g.world_size)]
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)]).cpu()


def _shard_of(count: int, rank: int, world_size: int) -> range:
    size, extra = divmod(count, world_size)
    begin = rank * size + min(rank, extra)
    return range(begin, begin + size + (rank < extra))


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of a module that DistributedDataParallel does not wrap (the camera discriminators,
    which step on their own optimizer) so that every rank takes the same step."""
    if not dist.is_initialized():
        return
    world_size = dist.get_world_size()
    for parameter in module.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world_size


def broadcast_state(modules: Iterable[nn.Module]) -> None:
    """Rank 0's parameters and buffers on every rank: BatchNorm statistics of models outside
    DistributedDataParallel (the mean teachers, the discriminators) follow each rank's own batches, and this keeps
    rank 0's, as DataParallel keeps its first replica's."""
    if not dist.is_initialized():
        return
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def check_same_on_every_rank(named: dict[str, nn.Module | torch.Tensor]) -> None:
    """Raise if any rank's weights and buffers (or tensor) differ from rank 0's by a single bit: the ranks of one
    run must stay one model. A digest per item is compared, so the check costs one small gather."""
    if not dist.is_initialized():
        return
    digests = {name: _digest(item) for name, item in named.items()}
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, digests)
    differ = sorted(
        {name for rank_digests in everyone[1:] for name, digest in rank_digests.items() if digest != everyone[0][name]}
    )
    if differ:
        raise RuntimeError(
            f"rank {dist.get_rank()}: {', '.join(differ)} differ between the processes of one run; they must stay "
            "identical (a step or a statistic that one rank took alone)"
        )


def _digest(item: nn.Module | torch.Tensor) -> str:
    tensors = [*item.state_dict().values()] if isinstance(item, nn.Module) else [item]
    hasher = hashlib.sha256()
    for tensor in tensors:
        hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Per-rank means of an epoch's losses and accuracies, averaged over the ranks (every rank saw as many
    batches)."""
    if not dist.is_initialized() or not values:
        return values
    names = sorted(values)
    summed = torch.tensor([float(values[name]) for name in names], dtype=torch.float64)
    dist.all_reduce(summed)
    return dict(zip(names, (summed / dist.get_world_size()).tolist()))


def wrap(model: nn.Module, device: torch.device, static_graph: bool = False) -> nn.Module:
    """`model` in DistributedDataParallel under torchrun (its gradients averaged over the ranks during backward;
    rank 0's weights broadcast now), else `model` itself. `static_graph`: the same parameters get gradients at every
    step, some of them from outside the model's forward or none at all (SSG: the global embedding is applied to the
    forward's output, the BN-necks only follow statistics): DDP then learns which after the first step."""
    if not dist.is_initialized():
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=static_graph
    )


def synchronised_batchnorm(model: nn.Module, enabled: bool, device: torch.device) -> nn.Module:
    """With `enabled` (sync_bn) under torchrun: every BatchNorm layer of `model` replaced by a SyncBatchNorm, whose
    statistics are those of the global batch, as one process would compute them, instead of this rank's share.
    torch's SyncBatchNorm normalises CUDA tensors only: a CPU run asking for it is refused here, before training."""
    if not enabled or not group().distributed:
        return model
    if device.type != "cuda":
        raise ValueError(
            f"sync_bn: torch's SyncBatchNorm normalises CUDA tensors only, and this run's processes are on "
            f"{device.type} (gloo): set sync_bn false (each process then normalises its own share of the batch)"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardedBatches(Sampler[int]):
    """A sampler's index stream cut into global batches of `batch_size`, of which this rank takes its contiguous
    share (`batch_size / world_size` indices, in order): the global batch stays P x K, each rank holds whole
    identity groups when K divides its share, and the last incomplete global batch is dropped (drop_last). Use
    with DataLoader(batch_size=batch_size // world_size). set_epoch is passed on."""

    def __init__(self, sampler: Sampler[int], batch_size: int, rank: int, world_size: int):
        if batch_size % world_size:
            raise ValueError(
                f"a batch of {batch_size} images cannot be split evenly over {world_size} processes: choose "
                "batch_ids x instances divisible by nproc"
            )
        self.sampler, self.batch_size, self.rank = sampler, batch_size, rank
        self.share = batch_size // world_size

    def set_epoch(self, epoch: int, pass_index: int = 0) -> None:
        self.sampler.set_epoch(epoch, pass_index)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size * self.share

    def __iter__(self) -> Iterator[int]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield from batch[self.rank * self.share : (self.rank + 1) * self.share]
                batch = []


def shard_batches(sampler: Sampler[int], batch_size: int) -> tuple[Sampler[int], int]:
    """The sampler and per-process batch size a DataLoader needs on this rank (unchanged without torchrun)."""
    g = group()
    if not g.distributed:
        return sampler, batch_size
    return ShardedBatches(sampler, batch_size, g.rank, g.world_size), batch_size // g.world_size

"""Source pretraining: supervised CE (label smoothing) + batch-hard triplet on the labelled source world.

MMT's recipe (its PreTrainer and scripts/pretrain.sh): the triplet has a soft margin, softplus(d_ap - d_an)
(`pretrain_triplet` "soft"; "hinge" is max(0, d_ap - d_an + triplet_margin)), and every iteration also forwards a
shuffled batch of target training images in train mode, without any loss (`pretrain_target_forward`): no gradient
comes from it, but the BatchNorm running statistics, which eval mode normalises with, see the target as well as the
source. Its augmentations draw from a random stream of their own, so the learned weights are those of the same run
without it; only the BatchNorm statistics differ.

Every epoch ends with an evaluation on the source test split and by direct transfer on the target (after the last
epoch only with `eval_every_epoch` off: two evaluations cost as much as a few dozen iterations, which `make demo`
cannot spare; the best checkpoint is then the last), a row in `history.csv` and an atomic checkpoint holding
everything needed to continue exactly (weights, optimizer, schedule, RNG states): a run interrupted at any point
resumes from its last finished epoch and, on the CPU with the same seed, ends with the same weights and metrics as a
run that was never interrupted.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from .. import distributed
from ..config import Params
from ..data.records import ReidDataset
from ..device import resolve_device
from ..evaluation import evaluate
from ..losses import CrossEntropyLabelSmooth, TripletLoss
from ..models import ReidModel, build_model
from ..reproducibility import seed_everything
from ..runs import RunFolder
from .checkpoints import model_tag, pretraining_checkpoints
from .common import (
    MixedPrecision,
    batches,
    check_weights,
    endless_batches,
    identity_loader,
    prepare_model,
    relabel,
    shuffled_loader,
    use_learning_rate,
    warmup_multistep,
)
from .loop import StepOutput, Trainer, fit, train_batches

HISTORY_KEY = ("model", "epoch")


def pretraining_triplet(params: Params) -> TripletLoss:
    """MMT pretrains with SoftTripletLoss(margin=0.0), i.e. softplus(d_ap - d_an) of the batch-hard pairs: our
    soft-margin TripletLoss; "hinge" is max(0, d_ap - d_an + triplet_margin), as SSG's triplets."""
    return TripletLoss(None if params.pretrain_triplet == "soft" else params.triplet_margin)


def target_forward_loader(target: ReidDataset, params: Params, seed: int) -> DataLoader:
    """MMT's target loader: shuffled, augmented batches as large as the source's (batch_ids x instances)."""
    batch_size = params.batch_ids * params.instances
    if len(target.train) < batch_size:
        raise ValueError(
            f"the target has {len(target.train)} training images, fewer than one batch of {batch_size} "
            "(batch_ids x instances) for MMT's target forward: pass -p pretrain_target_forward false, "
            "or smaller batches"
        )
    return shuffled_loader(target.train, params.height, params.width, batch_size, seed, params.num_workers)


def evaluate_transfer(model: ReidModel, source: ReidDataset, target: ReidDataset, params: Params) -> dict[str, float]:
    """Source test mAP/R1 (how well it learned) and target test mAP/R1 (direct transfer, before any adaptation)."""
    row = {}
    for role, dataset in (("source", source), ("target", target)):
        metrics = evaluate(
            model,
            dataset,
            params.height,
            params.width,
            batch_size=params.eval_batch_size,
            device=params.device,
            flip=params.flip_eval,
            num_workers=params.num_workers,
        )
        row[f"{role}_mAP"] = metrics["mAP"]
        row[f"{role}_R1"] = metrics["R1"]
    return row


class PretrainTrainer(Trainer):
    """Source model number `index` trained with `seed`: its state checkpoint `<tag>_last` (every epoch: the full
    training state, which also loads as a model) and `<tag>_best` (weights of the epoch with the best *source* mAP:
    target labels are never used to choose a model)."""

    history_key = HISTORY_KEY
    best_metric = "source_mAP"

    def __init__(self, params: Params, source: ReidDataset, target: ReidDataset, index: int, seed: int):
        self.params, self.source, self.target, self.seed = params, source, target, seed
        self.index = index
        self.label = model_tag(index)
        self.state_name, self.best_name, self.last_name = pretraining_checkpoints(index)
        self.device = distributed.local_device(resolve_device(params.device))
        seed_everything(seed)
        records, _ = relabel(source.train)
        self.num_classes = len({r.pid for r in records})
        self.model = prepare_model(
            build_model(
                params.arch,
                num_classes=self.num_classes,
                last_stride=params.last_stride,
                pretrained_path=params.pretrained_weights,
            ),
            params,
            self.device,
        )
        self.network = distributed.wrap(self.model, self.device)  # under torchrun: DistributedDataParallel
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        self.scheduler = warmup_multistep(self.optimizer, params.warmup_epochs, params.milestones)
        self.precision = MixedPrecision.for_run(params, self.device)
        self.loader = identity_loader(
            records, params.height, params.width, params.batch_ids, params.instances, seed, params.num_workers
        )
        self.ce = CrossEntropyLabelSmooth(self.num_classes, params.label_smoothing)
        self.triplet = pretraining_triplet(params)
        self.target_loader = target_forward_loader(target, params, seed) if params.pretrain_target_forward else None

    def run_epoch(self, epoch: int) -> dict:
        params = self.params
        lr = self.optimizer.param_groups[0]["lr"]
        losses = self.train_epoch(epoch)
        check_weights({self.label: self.model}, epoch, "lr")
        distributed.broadcast_state(self.synchronised().values())  # BatchNorm statistics followed each rank's: rank 0's
        self.scheduler.step()
        row = {"model": self.index, "seed": self.seed, "epoch": epoch, "lr": lr, **distributed.mean_over_ranks(losses)}
        if not distributed.group().main:
            return row  # rank 0 evaluates and writes
        if params.eval_every_epoch or epoch == params.epochs - 1:
            row.update(evaluate_transfer(self.model, self.source, self.target, params))
        print(
            f"{self.label} epoch {epoch + 1}: "
            + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k not in ("model", "seed", "epoch", "lr"))
        )
        return row

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """The epoch's params.iters_per_epoch steps (0: one pass of the sampler): the mean CE, triplet and training
        accuracy."""
        params = self.params
        target_batches = endless_batches(self.target_loader, epoch, self.seed) if self.target_loader else None
        self.network.train()
        means = train_batches(
            partial(self.step, target_batches),
            batches(self.loader, params.iters_per_epoch, epoch),
            self.optimizer,
            self.precision,
            epoch=epoch,
            total=params.iters_per_epoch or len(self.loader),
            desc=f"{self.label} epoch {epoch + 1}/{params.epochs}",
            loss_limit=params.loss_limit,
            lr_parameter="lr",
        )
        return {name: means.get(name, 0.0) for name in ("loss_ce", "loss_triplet", "train_acc")}

    def step(self, target_batches: Iterator | None, batch) -> StepOutput:
        """CE + triplet on a labelled source batch. With `target_batches` (an endless iterator), one target batch
        is also forwarded, without gradient or loss, in train mode: only the BatchNorm running statistics take it in
        (torch.no_grad leaves their update on; MMT's "target samples: only forward")."""
        images, labels, _, _ = batch
        images, labels = images.to(self.device), labels.to(self.device)
        with self.precision.autocast():
            features, logits = self.network(images)
            terms = {"loss_ce": self.ce(logits.float(), labels), "loss_triplet": self.triplet(features.float(), labels)}
            if target_batches is not None:
                with torch.no_grad():
                    self.network(next(target_batches)[0].to(self.device))
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        watched = {"features": features, "logits": logits}
        return StepOutput(terms["loss_ce"] + terms["loss_triplet"], terms, watched, {"train_acc": accuracy})

    def architecture(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "arch": self.params.arch,
            "last_stride": self.params.last_stride,
            "seed": self.seed,
        }

    def method_state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **self.architecture(),
        }

    def load_method_state(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        use_learning_rate(self.optimizer, self.params.lr, self.scheduler)  # an amended lr: from the next epoch

    def synchronised(self) -> dict:
        return {self.label: self.model}

    def model_checkpoint(self, row) -> dict:
        return {"model": self.model.state_dict(), "epoch": row["epoch"], "metrics": dict(row), **self.architecture()}


def pretrain_model(
    params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder, index: int, seed: int
) -> ReidModel:
    """Train (or resume, or just load if finished) source model number `index` with `seed`."""
    trainer = PretrainTrainer(params, source, target, index, seed)
    fit(trainer, run, params.epochs)
    return trainer.model

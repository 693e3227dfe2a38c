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

from typing import Iterator

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import distributed
from ..config import Params
from ..data.records import ReidDataset
from ..device import resolve_device
from ..evaluate import evaluate
from ..losses import CrossEntropyLabelSmooth, TripletLoss
from ..models import ReidModel, build_model
from ..reproducibility import rng_state, seed_everything, set_rng_state
from ..runs import RunFolder, UnfinishedRunError
from .common import (
    MixedPrecision,
    batches,
    check_finite,
    check_weights,
    endless_batches,
    identity_loader,
    prepare_model,
    relabel,
    shuffled_loader,
    use_learning_rate,
    warmup_multistep,
)
from .loop import Trainer, fit

HISTORY_KEY = ("model", "epoch")


def model_tag(index: int) -> str:
    return f"model{index}"


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


def train_epoch(
    model: ReidModel,
    loader,
    optimizer,
    ce: CrossEntropyLabelSmooth,
    triplet: TripletLoss,
    device: torch.device,
    precision: MixedPrecision,
    iterations: int,
    epoch: int,
    desc: str,
    loss_limit: float,
    target_batches: Iterator | None = None,
) -> dict[str, float]:
    """One epoch of CE + triplet; returns the mean losses and the classification accuracy on the training batches.
    With `target_batches` (an endless iterator), each step also forwards one target batch, without gradient or loss,
    in train mode: only the BatchNorm running statistics take it in (torch.no_grad leaves their update on).
    Stops with a DivergenceError before a step whose losses or features are not finite (or past loss_limit)."""
    model.train()
    totals = {"loss_ce": 0.0, "loss_triplet": 0.0, "train_acc": 0.0}
    steps = 0
    for images, labels, _, _ in tqdm(
        batches(loader, iterations, epoch), total=iterations or len(loader), desc=desc, leave=False
    ):
        images, labels = images.to(device), labels.to(device)
        with precision.autocast():
            features, logits = model(images)
            loss_ce = ce(logits.float(), labels)
            loss_triplet = triplet(features.float(), labels)
            if target_batches is not None:  # MMT: "target samples: only forward"
                with torch.no_grad():
                    model(next(target_batches)[0].to(device))
        values = {"loss_ce": loss_ce.item(), "loss_triplet": loss_triplet.item()}
        check_finite(values, {"features": features, "logits": logits}, epoch, steps, loss_limit, "lr")
        precision.step(loss_ce + loss_triplet, optimizer)
        totals["loss_ce"] += values["loss_ce"]
        totals["loss_triplet"] += values["loss_triplet"]
        totals["train_acc"] += (logits.argmax(1) == labels).float().mean().item()
        steps += 1
    return {name: value / max(steps, 1) for name, value in totals.items()}


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
        self.label = tag = model_tag(index)
        self.state_name, self.best_name = f"{tag}_last", f"{tag}_best"
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
        target_batches = endless_batches(self.target_loader, epoch, self.seed) if self.target_loader else None
        losses = train_epoch(
            self.network,
            self.loader,
            self.optimizer,
            self.ce,
            self.triplet,
            self.device,
            self.precision,
            params.iters_per_epoch,
            epoch,
            desc=f"{self.label} epoch {epoch + 1}/{params.epochs}",
            loss_limit=params.loss_limit,
            target_batches=target_batches,
        )
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

    def architecture(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "arch": self.params.arch,
            "last_stride": self.params.last_stride,
            "seed": self.seed,
        }

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.precision.state_dict(),
            "rng": rng_state(),
            **self.architecture(),
        }

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # an amended lr takes effect from the next epoch
        use_learning_rate(self.optimizer, self.params.lr, self.scheduler)
        self.precision.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])

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


def pretrain(params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder) -> list[ReidModel]:
    """Train `params.n_models` source models with seeds seed, seed+1, ... (MMT adapts two differently seeded ones);
    with `params.nproc` > 1, in that many processes (torchrun), the models then read from `run`."""
    if distributed.needs_launch(params):
        distributed.launch("01_pretrain", params, run)
        return [load_source_model(run, k + 1, "last") for k in range(params.n_models)]
    return [
        pretrain_model(params, source, target, run, index=k + 1, seed=params.seed + k) for k in range(params.n_models)
    ]


def pretraining_record(run: RunFolder, params: Params) -> dict:
    """The parameters pretraining run `run` recorded, once checked: it exists, it trained at the input size of
    `params` (a model trained at another size would be adapted and evaluated at the wrong one), and it finished
    every epoch of every model, unless `params.accept_unfinished_pretraining`."""
    if not run.params_path.is_file():
        raise FileNotFoundError(
            f"no pretraining run {run.path.name!r} in {run.path.parent}: run notebook 01 first "
            "(python -m canu_core notebook 01_pretrain -f ...), or pass -p pretrain_run "
            "<its run_name>"
        )
    trained = run.read_params()
    if (trained["height"], trained["width"]) != (params.height, params.width):
        raise ValueError(
            f"run {run.path.name!r} trained at {trained['height']}x{trained['width']}, not at "
            f"height x width = {params.height}x{params.width}: pass the same size"
        )
    unfinished = unfinished_models(run, trained)
    if unfinished and not params.accept_unfinished_pretraining:
        raise UnfinishedRunError(
            f"pretraining run {run.path.name!r} did not finish: {'; '.join(unfinished)}. Run notebook 01 again "
            f"with run_name {run.path.name!r} and its parameters (it resumes where it stopped), or pass "
            "-p accept_unfinished_pretraining true to adapt from it as it is"
        )
    return trained


def unfinished_models(run: RunFolder, trained: dict) -> list[str]:
    """For each source model of `run` short of its last epoch (its record's `epochs`), how far it got."""
    history = run.read_history()
    found = []
    for index in range(1, trained["n_models"] + 1):
        rows = history[history["model"] == index] if "model" in history else history
        done = int(rows["epoch"].max()) + 1 if len(rows) else 0
        if done < trained["epochs"]:
            found.append(f"model {index} trained {done} of {trained['epochs']} epochs")
    return found


def load_source_model(run: RunFolder, index: int = 1, which: str = "last") -> ReidModel:
    """A source model saved by `pretrain` (checkpoint `model<index>_<which>`, which = "last" or "best"), on the CPU."""
    name = f"{model_tag(index)}_{which}"
    state = run.load_checkpoint(name)
    if state is None:
        found = sorted(p.stem for p in run.checkpoint_path(name).parent.glob("*.pt"))
        raise FileNotFoundError(
            f"no checkpoint {run.checkpoint_path(name)}: run notebook 01 with run_name "
            f"{run.path.name!r} first (checkpoints found: {found or 'none'})"
        )
    model = build_model(state["arch"], num_classes=state["num_classes"], last_stride=state["last_stride"])
    model.load_state_dict(state["model"])
    return model

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

from ..config import Params
from ..data.records import ReidDataset
from ..device import resolve_device
from ..evaluate import evaluate
from ..losses import CrossEntropyLabelSmooth, TripletLoss
from ..models import ReidModel, build_model
from ..reproducibility import rng_state, seed_everything, set_rng_state
from ..runs import RunFolder
from .common import (
    batches,
    check_finite,
    check_weights,
    endless_batches,
    identity_loader,
    relabel,
    shuffled_loader,
    use_learning_rate,
    warmup_multistep,
)

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
    scaler: torch.amp.GradScaler,
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
        with torch.autocast(device_type=device.type, enabled=scaler.is_enabled()):
            features, logits = model(images)
            loss_ce = ce(logits.float(), labels)
            loss_triplet = triplet(features.float(), labels)
            if target_batches is not None:  # MMT: "target samples: only forward"
                with torch.no_grad():
                    model(next(target_batches)[0].to(device))
        values = {"loss_ce": loss_ce.item(), "loss_triplet": loss_triplet.item()}
        check_finite(values, {"features": features, "logits": logits}, epoch, steps, loss_limit, "lr")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss_ce + loss_triplet).backward()
        scaler.step(optimizer)
        scaler.update()
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


def pretrain_model(
    params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder, index: int, seed: int
) -> ReidModel:
    """Train (or resume, or just load if finished) source model number `index` with `seed`.

    Checkpoints: `<tag>_last.pt` (full training state, every epoch) and `<tag>_best.pt` (weights of the epoch with
    the best *source* mAP: target labels are never used to choose a model).
    """
    device = resolve_device(params.device)
    tag = model_tag(index)
    seed_everything(seed)
    records, _ = relabel(source.train)
    num_classes = len({r.pid for r in records})
    model = build_model(
        params.arch, num_classes=num_classes, last_stride=params.last_stride, pretrained_path=params.pretrained_weights
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    scheduler = warmup_multistep(optimizer, params.warmup_epochs, params.milestones)
    scaler = torch.amp.GradScaler(device.type, enabled=params.amp and device.type == "cuda")
    loader = identity_loader(
        records, params.height, params.width, params.batch_ids, params.instances, seed, params.num_workers
    )
    ce = CrossEntropyLabelSmooth(num_classes, params.label_smoothing)
    triplet = pretraining_triplet(params)
    target_loader = target_forward_loader(target, params, seed) if params.pretrain_target_forward else None

    start_epoch, best_map = 0, float("-inf")
    state = run.load_checkpoint(f"{tag}_last")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        use_learning_rate(optimizer, params.lr, scheduler)  # an amended lr takes effect from the next epoch
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, best_map = state["epoch"] + 1, state["best_source_mAP"]
        if start_epoch < params.epochs:
            print(f"{tag}: resuming after epoch {state['epoch']}")

    for epoch in range(start_epoch, params.epochs):
        lr = optimizer.param_groups[0]["lr"]
        target_batches = endless_batches(target_loader, epoch, seed) if target_loader is not None else None
        losses = train_epoch(
            model,
            loader,
            optimizer,
            ce,
            triplet,
            device,
            scaler,
            params.iters_per_epoch,
            epoch,
            desc=f"{tag} epoch {epoch + 1}/{params.epochs}",
            loss_limit=params.loss_limit,
            target_batches=target_batches,
        )
        check_weights({tag: model}, epoch, "lr")
        scheduler.step()
        row = {
            "model": index,
            "seed": seed,
            "epoch": epoch,
            "lr": lr,
            **losses,
        }
        evaluated = params.eval_every_epoch or epoch == params.epochs - 1
        if evaluated:
            row.update(evaluate_transfer(model, source, target, params))
        run.append_history(row, key=HISTORY_KEY)
        print(
            f"{tag} epoch {epoch + 1}: "
            + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k not in ("model", "seed", "epoch", "lr"))
        )
        if evaluated and row["source_mAP"] > best_map:
            best_map = row["source_mAP"]
            run.save_checkpoint(
                {
                    "model": model.state_dict(),
                    "epoch": epoch,
                    "metrics": row,
                    "num_classes": num_classes,
                    "arch": params.arch,
                    "last_stride": params.last_stride,
                    "seed": seed,
                },
                f"{tag}_best",
            )
        run.save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "epoch": epoch,
                "best_source_mAP": best_map,
                "num_classes": num_classes,
                "arch": params.arch,
                "last_stride": params.last_stride,
                "seed": seed,
            },
            f"{tag}_last",
        )
    return model


def pretrain(params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder) -> list[ReidModel]:
    """Train `params.n_models` source models with seeds seed, seed+1, ... (MMT adapts two differently seeded ones)."""
    return [
        pretrain_model(params, source, target, run, index=k + 1, seed=params.seed + k) for k in range(params.n_models)
    ]


def pretraining_record(run: RunFolder, params: Params) -> dict:
    """The parameters pretraining run `run` recorded, once checked: it exists, and it trained at the input size of
    `params` (a model trained at another size would be adapted and evaluated at the wrong one)."""
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
    return trained


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

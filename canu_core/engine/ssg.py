"""SSG, self-similarity grouping (Fu et al., ICCV 2019), and CANU-SSG: one camera adversary per part (Eq. 10).

The model pools three features from the backbone's map: full body, upper half, lower half. Every epoch each part's
flip-summed normalised features of the target training set are clustered on their own (each DBSCAN keeps its own
eps), an image that is an outlier in any part is dropped, and the network is trained with a batch-hard triplet loss
(margin P.triplet_margin, 0.5) per part under that part's pseudo-labels (the full-body one is SSG's "global" loss;
no cross-entropy), by SGD with momentum 0.9. An epoch is one pass of the P x K sampler over the full-body clusters
(each drawn once with K images, as SSG's sampler does). With an adversary, each part has its own discriminator,
every one of them conditioned ("canu") on the sample's FULL-body centroid. Test feature: the three flip-summed
normalised parts, concatenated.

Start: model `P.model_index` of the pretraining run, trained without parts. Its backbone and BN-neck are loaded;
the upper and lower BN-necks start as copies of the full-body one (no part was trained on the source, and the
full-body statistics are the closest estimate of theirs). The source model's last stride is kept (SSG's ResNet-50
uses 2; a stride changes no weight, but the source model was trained with its own).

Checkpoints: `ssg_state` (everything to resume exactly), `ssg_last` and `ssg_best_oracle` (the model of the last
epoch and of the epoch with the best target mAP: chosen with target labels, for reference only).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import Params
from ..data.records import ReidDataset
from ..device import resolve_device
from ..losses import TripletLoss
from ..models import ReidModel
from ..reproducibility import rng_state, seed_everything, set_rng_state
from ..runs import RunFolder
from .adaptation import (Averages, HISTORY_KEY, clustering_diagnostics, clustering_eps, discriminator_metrics,
                         epoch_summary, evaluate_epoch, forward_in_chunks, make_clustering, pseudo_labelled,
                         restore_eps, save_adapted_model, skipped_row, source_architecture, train_set_features,
                         unusable_reason)
from .adversary import CameraAdversary, centroids_for
from .common import batches, check_finite, check_weights, identity_loader, use_learning_rate
from .pretrain import load_source_model

METHOD = "ssg"
PARTS = ("full", "upper", "lower")
MOMENTUM = 0.9


def parts_model(source: ReidModel) -> ReidModel:
    """SSG's three-part model from a source model trained without parts: same backbone, the full-body BN-neck for
    all three parts, no classifier."""
    if source.parts:
        raise ValueError("the source model already has parts")
    model = copy.deepcopy(source)
    model.parts = True
    model.bn_necks = nn.ModuleList(copy.deepcopy(source.bn_necks[0]) for _ in PARTS)
    model.reset_classifier(0)
    return model


def part_triplet(triplet: TripletLoss, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The part's batch-hard triplet; zero when the batch holds a single label of that part (P x K batches are
    drawn by full-body cluster, and two of them may share an upper- or lower-body cluster): no negative exists."""
    if len(labels.unique()) < 2:
        return features.new_zeros(())
    return triplet(features, labels)


def train_epoch(model: ReidModel, adversaries: list[CameraAdversary], loader, part_labels: torch.Tensor,
                full_centroids: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                params: Params, device: torch.device, epoch: int) -> dict[str, float]:
    """One pass of SSG (+ camera adversaries); `part_labels` [3, N]: each training record's label per part (the
    loader's labels are the full-body ones). Returns the mean losses and discriminator losses / accuracies."""
    triplet = TripletLoss(params.triplet_margin)
    model.train()
    averages = Averages()
    for step, (images, full_labels, camids, indices) in enumerate(tqdm(batches(loader, 0, epoch), total=len(loader),
                                                                       desc=f"ssg epoch {epoch + 1}", leave=False)):
        images, camids = images.to(device), camids.to(device)
        labels = part_labels[:, indices].to(device)
        condition = centroids_for(full_labels.to(device), full_centroids)
        with torch.autocast(device_type=device.type, enabled=scaler.is_enabled()):
            features = [feature.float() for feature in forward_in_chunks(model, images, params.bn_chunk)]
        losses, metrics = {}, {}
        for part, adversary, feature, part_label in zip(PARTS, adversaries, features, labels):
            losses[f"loss_tri_{part}"] = part_triplet(triplet, feature, part_label)
            metrics |= discriminator_metrics(adversary.discriminator_step(feature, camids, condition), part)
            losses[f"loss_adv_{part}"] = adversary.generator_loss(feature, camids, condition)
        values = {name: value.item() for name, value in losses.items()}
        check_finite(values, dict(zip(PARTS, features)), epoch, step, params.loss_limit, "ssg_lr (or disc_lr)")
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        averages.add({"loss": loss.item(), **values, **metrics})
    return averages.means()


def train_ssg(params: Params, target: ReidDataset, run: RunFolder, source_run: RunFolder | None = None) -> ReidModel:
    """Adapt source model `params.model_index` of `source_run` (default: the run `params.pretrain_run`) to `target`
    with SSG (+ the camera adversary `params.adversary`); resumes from `run`'s `ssg_state` if there is one. Returns
    the model of the last epoch."""
    device = resolve_device(params.device)
    source_run = source_run or RunFolder.for_run(params.pretrain_run)
    seed_everything(params.seed)
    model = parts_model(load_source_model(source_run, params.model_index, params.source_checkpoint)).to(device)
    architecture = source_architecture(source_run, params.model_index, params.source_checkpoint)
    adversaries = [CameraAdversary(params.adversary, model.feature_dim, target.num_cams, params.mu, params.disc_lr,
                                   params.weight_decay, params.merge, device) for _ in PARTS]
    clusterings = [make_clustering(params) for _ in PARTS]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=params.ssg_lr,
                                momentum=MOMENTUM, weight_decay=params.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=params.amp and device.type == "cuda")

    start_epoch, best_map = 0, -math.inf
    state = run.load_checkpoint(f"{METHOD}_state")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        use_learning_rate(optimizer, params.ssg_lr)  # an amended ssg_lr takes effect from the next epoch
        for adversary, saved in zip(adversaries, state["adversaries"]):
            adversary.load_state_dict(saved)
            adversary.use_learning_rate(params.disc_lr)
        for clustering, eps in zip(clusterings, state["eps"]):
            restore_eps(clustering, eps)
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, best_map = state["epoch"] + 1, state["best_oracle_mAP"]
        if start_epoch < params.adapt_epochs:
            print(f"ssg: resuming after epoch {state['epoch']}")

    for epoch in range(start_epoch, params.adapt_epochs):
        features = train_set_features(model, target.train, params, flip=True).split(model.feature_dim, dim=1)
        pseudo = [clustering(part_features) for clustering, part_features in zip(clusterings, features)]
        labels = np.stack([p.labels for p in pseudo])
        # An image is kept only if every part clusters it; the full-body label is its identity for the sampler.
        kept_labels = np.where((labels >= 0).all(axis=0), labels[0], -1)
        row = {"method": METHOD, "epoch": epoch, "adversary": params.adversary, "mu": params.mu,
               **{f"eps_{part}": p.eps for part, p in zip(PARTS, pseudo)},
               **{f"num_clusters_{part}": p.num_clusters for part, p in zip(PARTS, pseudo)},
               **{f"num_outliers_{part}": int(p.outliers.sum()) for part, p in zip(PARTS, pseudo)},
               **clustering_diagnostics(kept_labels, features[0], target.train, params.seed)}
        records = pseudo_labelled(target.train, kept_labels)
        reason = unusable_reason(dict(zip(PARTS, pseudo)), len({r.pid for r in records}), params.batch_ids)
        message = "; ".join(f"{part}: {p.message}" for part, p in zip(PARTS, pseudo))
        if reason is not None:
            row |= skipped_row(epoch, reason)
        else:
            part_labels = torch.from_numpy(labels[:, kept_labels >= 0])
            loader = identity_loader(records, params.height, params.width, params.batch_ids, params.instances,
                                     params.seed, params.num_workers)
            full_centroids = torch.from_numpy(pseudo[0].centroids).to(device)
            row |= {"status": "trained", "message": message, "lr": optimizer.param_groups[0]["lr"],
                    **train_epoch(model, adversaries, loader, part_labels, full_centroids, optimizer, scaler,
                                  params, device, epoch)}
            check_weights({"model": model}, epoch, "ssg_lr")
            row |= evaluate_epoch(model, target, params, device, epoch, flip=True)
            print(f"ssg epoch {epoch + 1}: {message}; {epoch_summary(row)}")
            if row.get("target_mAP", -math.inf) > best_map:
                best_map = row["target_mAP"]
                save_adapted_model(run, f"{METHOD}_best_oracle", model, architecture, row)
        run.append_history(row, key=HISTORY_KEY)
        save_adapted_model(run, f"{METHOD}_last", model, architecture, row)
        run.save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "adversaries": [a.state_dict() for a in adversaries], "scaler": scaler.state_dict(),
            "eps": [clustering_eps(c) for c in clusterings], "rng": rng_state(), "epoch": epoch,
            "best_oracle_mAP": best_map,
        }, f"{METHOD}_state")
    return model

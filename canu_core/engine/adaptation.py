"""What the MMT and SSG adaptation loops share: each epoch's target features, clustering and pseudo-labelled set,
the diagnostics row of that clustering, the camera adversaries, and the checkpoints of the adapted model.

The pseudo-labelled set keeps each image's true camera id (the public SSG code sets it to 0; the camera adversary
needs it). The target's true ids are read for diagnostics only (cluster quality, lost ids, the label-chosen
model): no training step ever sees them.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import distributed
from ..cluster.diagnostics import clustering_diagnostics, clustering_report, feature_report
from ..cluster.pseudo_labels import (
    DBSCANClustering,
    KMeansClustering,
    PseudoLabels,
    TrueIdentities,
    cluster_centroids,
    clustering_eps,
    make_clustering,
    restore_eps,
)
from ..config import Params
from ..data.records import ImageRecord, ReidDataset, ids_and_cameras
from ..data.samplers import images_per_pass
from ..device import resolve_device
from ..evaluation import evaluate, train_set_features
from ..models import ReidModel
from .adversary import CameraAdversary
from .checkpoints import adaptation_checkpoints
from .common import batchnorm_groups, check_weights
from .loop import Trainer

HISTORY_KEY = ("method", "epoch")


def pseudo_labelled(records: Sequence[ImageRecord], labels: np.ndarray) -> list[ImageRecord]:
    """The records with a label >= 0, the label as pid and the true camera id kept (outliers dropped)."""
    return [record._replace(pid=int(label)) for record, label in zip(records, labels) if label >= 0]


def discriminator_conditions(
    labels: np.ndarray, centroids: np.ndarray, features: torch.Tensor, records: Sequence[ImageRecord], condition: str
) -> torch.Tensor:
    """[pseudo-labelled records x D], in pseudo_labelled's order: what conditions CANU's discriminator for each
    training record. "pseudo": its cluster's centroid (Eq. 8; `centroids` row `labels[i]`); "oracle", a diagnostic
    that reads the target's labels: the centroid of its TRUE identity's `features` (the clustering features; all
    of that identity's training images, outliers included)."""
    kept = labels >= 0
    if condition == "pseudo":
        return torch.from_numpy(centroids[labels[kept]])
    _, identity = np.unique([record.pid for record in records], return_inverse=True)
    return torch.from_numpy(cluster_centroids(features.cpu().numpy(), identity)[identity[kept]])


def unusable_reason(
    pseudo: dict[str, PseudoLabels], records: Sequence[ImageRecord], batch_ids: int, instances: int
) -> str | None:
    """Why this epoch's pseudo-labelled `records` cannot train, or None: a clustering (by name) that found no cluster
    or a single one, fewer clusters left in the training set than a P x K batch needs (SSG keeps an image only if
    every part clusters it), or too few images for one batch (the sampler draws one image of a single-image
    cluster)."""
    failed = [f"{name} clustering: {p.message}" for name, p in pseudo.items() if p.status != "ok"]
    if failed:
        return "; ".join(failed)
    sizes = Counter(record.pid for record in records)
    if len(sizes) < batch_ids:
        return f"{len(sizes)} clusters left, fewer than the {batch_ids} identities of a batch"
    drawn = images_per_pass(list(sizes.values()), instances)
    if drawn < batch_ids * instances:
        return (
            f"a pass of the sampler draws {drawn} images of the {len(sizes)} clusters left, fewer than one batch "
            f"of {batch_ids} x {instances}"
        )
    return None


class TwoViews:
    """Applies a random transform twice: MMT feeds each network its own augmentation of the same image."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


def discriminator_inputs(model: ReidModel, pooled: list[torch.Tensor], kind: str) -> list[torch.Tensor]:
    """What the camera discriminators read (params.adversary_features), for each pooled feature of `model`'s
    forward (MMT: one; SSG: its parts, in order): the pooled features themselves ("pooled") or their L2-normalised
    BN-neck outputs under the batch's statistics ("embedding")."""
    if kind == "embedding":
        return [model.embedding(feature, part) for part, feature in enumerate(pooled)]
    return pooled


def discriminator_metrics(stats: dict[str, float], suffix: str) -> dict[str, float]:
    """A discriminator step's loss and accuracy under their history names (NaN without a discriminator, so every
    run has the same columns)."""
    return {f"disc_loss_{suffix}": stats.get("loss", math.nan), f"disc_acc_{suffix}": stats.get("accuracy", math.nan)}


def evaluate_epoch(
    model: nn.Module, target: ReidDataset, params: Params, device: torch.device, epoch: int, flip: bool
) -> dict[str, float]:
    """This epoch's target test mAP and R1, or nothing when `params.eval_every_epoch` is off and it is not the
    last epoch (the sweeps of notebook 04 only use the last; evaluating costs seconds an epoch)."""
    if not params.eval_every_epoch and epoch != params.adapt_epochs - 1:
        return {}
    metrics = evaluate(
        model,
        target,
        params.height,
        params.width,
        batch_size=params.eval_batch_size,
        device=device,
        flip=flip,
        rerank=params.rerank,
        num_workers=params.num_workers,
    )
    return {"target_mAP": metrics["mAP"], "target_R1": metrics["R1"]}


def epoch_summary(row: dict) -> str:
    """The end of an epoch's printed line: its loss and, if evaluated, target mAP and R1."""
    scores = (
        f", target mAP {row['target_mAP']:.1f}, R1 {row['target_R1']:.1f}"
        if "target_mAP" in row
        else " (not evaluated)"
    )
    return f"loss {row['loss']:.3g}{scores}"


@dataclass
class Clusters:
    """One epoch's clustering of the target training set, as the adaptation loop uses it."""

    labels: np.ndarray  # each training image's identity for the sampler (-1: left out of training)
    centroids: np.ndarray  # the (full-body) clusters' centroids: CANU's condition
    features: torch.Tensor  # the (full-body) clustering features, for the diagnostics and the oracle condition
    clusterings: dict[str, PseudoLabels]  # each clustering by name, for unusable_reason
    columns: dict[str, Any]  # the method's own history columns (its radii, its parts' sizes)
    message: str
    part_labels: np.ndarray | None = None  # SSG: [parts x images], each part's own labels


class Adaptation(Trainer):
    """What SSG and MMT share (their epoch, from the clustering to the evaluation): cluster the target training set,
    write the diagnostics of that clustering, skip the epoch if its pseudo-labels cannot train, else train on them,
    check the weights and evaluate. A method supplies `cluster` and `train`, its models and its state."""

    history_key = HISTORY_KEY
    best_metric = "target_mAP"
    lr_parameter: str  # the parameter a diverged run lowers
    flip_eval: bool
    adversaries: list[CameraAdversary]  # one per network or part
    clusterings: list[DBSCANClustering | KMeansClustering | TrueIdentities]  # MMT: one; SSG: one per part

    def __init__(self, method: str, params: Params, target: ReidDataset, architecture: dict):
        self.label = self.method = method
        self.state_name, self.best_name, self.last_name = adaptation_checkpoints(method)
        self.params, self.target, self.architecture = params, target, architecture
        self.device = distributed.local_device(resolve_device(params.device))
        reads_embedding = params.adversary != "none" and params.adversary_features == "embedding"
        if params.sync_bn and reads_embedding and distributed.group().distributed:
            raise ValueError(
                "sync_bn with adversary_features embedding: the discriminators' embedding is normalised with each "
                "process's own batch statistics (ReidModel.embedding), not the synchronised ones; not written: use "
                "adversary_features pooled, or sync_bn false"
            )

    def make_adversaries(self, feature_dim: int, count: int) -> list[CameraAdversary]:
        """`count` camera adversaries (one per network or part) as the parameters set them, on this device, their
        discriminators' BatchNorm over groups of `bn_group_size` images."""
        params = self.params
        adversaries = [
            CameraAdversary(
                params.adversary,
                feature_dim,
                self.target.num_cameras,
                params.mu,
                params.disc_lr,
                params.weight_decay,
                params.merge,
                self.device,
                params.adversary_objective,
                params.disc_steps,
            )
            for _ in range(count)
        ]
        for adversary in adversaries:
            if adversary.active:
                batchnorm_groups(adversary.discriminator, params)
        return adversaries

    def method_state(self) -> dict[str, Any]:
        """The networks' state, the adversaries' and the radii the clusterings keep."""
        return {
            **self.networks_state(),
            "adversaries": [a.state_dict() for a in self.adversaries],
            "eps": [clustering_eps(c) for c in self.clusterings],
        }

    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.load_networks_state(state)
        for adversary, saved in zip(self.adversaries, state["adversaries"]):
            adversary.load_state_dict(saved)
            adversary.use_learning_rate(self.params.disc_lr)  # an amended disc_lr takes effect from the next epoch
        radii = state["eps"] if isinstance(state["eps"], list) else [state["eps"]]  # MMT's states before: one radius
        for clustering, eps in zip(self.clusterings, radii):
            restore_eps(clustering, eps)

    @abstractmethod
    def networks_state(self) -> dict[str, Any]:
        """The method's models (and optimizer, when it keeps one across epochs)."""

    @abstractmethod
    def load_networks_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `networks_state` saved."""

    @abstractmethod
    def cluster(self, epoch: int) -> Clusters:
        """This epoch's pseudo-labels of the target training set."""

    @abstractmethod
    def train(self, epoch: int, records: list[ImageRecord], clusters: Clusters, conditions: torch.Tensor) -> dict:
        """One epoch on the pseudo-labelled `records` (`conditions` row i: CANU's condition for record i); returns
        the epoch's learning rate and mean losses and accuracies."""

    @abstractmethod
    def trained_models(self) -> dict[str, nn.Module]:
        """The models whose weights must stay finite, by name."""

    @property
    @abstractmethod
    def evaluated_model(self) -> ReidModel:
        """The model the method delivers (and evaluates, and checkpoints)."""

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        params, train_records = self.params, self.target.train
        clusters = self.cluster(epoch)
        row = {
            "method": self.method,
            "epoch": epoch,
            "adversary": params.adversary,
            "mu": params.mu,
            **clusters.columns,
        }
        main = distributed.group().main
        if main:  # the clustering is the same on every rank; rank 0 writes its diagnostics
            row |= clustering_diagnostics(
                clusters.labels, clusters.features, *ids_and_cameras(train_records), params.seed
            )
        distributed.check_same_on_every_rank({"pseudo-labels": torch.from_numpy(clusters.labels)})
        records = pseudo_labelled(train_records, clusters.labels)
        reason = unusable_reason(clusters.clusterings, records, params.batch_ids, params.instances)
        if reason is not None:
            message = f"epoch skipped, the model is unchanged: {reason}"
            if main:
                print(f"epoch {epoch + 1}: {message}")
            return row | {"status": "skipped", "message": message}
        conditions = discriminator_conditions(
            clusters.labels, clusters.centroids, clusters.features, train_records, params.canu_condition
        ).to(self.device)
        trained = distributed.mean_over_ranks(self.train(epoch, records, clusters, conditions))
        row |= {"status": "trained", "message": clusters.message, **trained}
        check_weights(self.trained_models(), epoch, self.lr_parameter)
        distributed.broadcast_state(self.synchronised().values())  # rank 0's BatchNorm statistics on every rank
        if not main:
            return row
        row |= evaluate_epoch(self.evaluated_model, self.target, params, self.device, epoch, self.flip_eval)
        arm = self.method if params.adversary == "none" else f"{self.method}+{params.adversary}"
        print(f"{arm} epoch {epoch + 1}: {clusters.message}; {epoch_summary(row)}")
        return row

    def synchronised(self) -> dict[str, Any]:
        discriminators = {f"discriminator {k + 1}": a.discriminator for k, a in enumerate(self.adversaries) if a.active}
        return self.trained_models() | discriminators

    def model_checkpoint(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The evaluated model's weights with what `load_adapted_model` needs to rebuild it."""
        model = self.evaluated_model
        return {
            "model": model.state_dict(),
            **self.architecture,
            "parts": model.parts,
            "num_classes": model.classifier.out_features if model.classifier is not None else 0,
            "epoch": row["epoch"],
            "metrics": dict(row),
        }


SUMMARY_KEYS = (
    "epoch",
    "status",
    "target_mAP",
    "target_R1",
    "num_clusters",
    "num_outliers",
    "lost_ids",
    "mi_pseudo_camera",
    "mi_true_camera",
    "ami_pseudo_camera",
    "ami_true_camera",
)


def adaptation_metrics(history: pd.DataFrame, best_by_labels: dict | None, params: Params) -> dict:
    """notebook 03's metrics.json: the run's settings, how many epochs trained, the last epoch's summary and that of
    the epoch chosen with target labels (`best_by_labels`, its history row), and, when no epoch trained, `not_trained`
    saying why (each skipped epoch's reason), so that such a run ends cleanly and says so."""

    def summary(row: dict) -> dict:
        return {key: (row[key].item() if hasattr(row.get(key), "item") else row.get(key)) for key in SUMMARY_KEYS}

    last = history.sort_values("epoch").iloc[-1].to_dict()
    trained = int((history["status"] == "trained").sum())
    metrics = {
        "method": params.method,
        "adversary": params.adversary,
        "mu": params.mu,
        "pretrain_run": params.pretrain_run,
        "epochs_trained": trained,
        "epochs": len(history),
        "last": summary(last),
        "best_by_target_labels": summary(best_by_labels) if best_by_labels is not None else None,
    }
    if not trained:
        reasons = [f"epoch {int(row.epoch) + 1}: {row.message}" for row in history.sort_values("epoch").itertuples()]
        metrics["not_trained"] = "no epoch trained, the model is the source model: " + "; ".join(reasons)
    return metrics


def first_clustering_report(model: nn.Module, records: Sequence[ImageRecord], params: Params) -> dict:
    """Notebook 02's report of `model`'s first clustering of `records`: `clustering_report`, with the
    `feature_report` of the clustered features under "features"."""
    features = train_set_features(model, records, params)
    pids, camids = ids_and_cameras(records)
    pseudo = make_clustering(params, records)(features)
    return {
        **clustering_report(pseudo, pids, camids),
        "features": feature_report(features, pids, camids, seed=params.seed),
    }

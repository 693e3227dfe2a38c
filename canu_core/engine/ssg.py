"""SSG, self-similarity grouping (Fu et al., ICCV 2019), and CANU-SSG: one camera adversary per part (Eq. 10).

The model pools three features from the backbone's map: full body, upper half, lower half; the full-body one also
feeds a global embedding (Linear -> BatchNorm -> ReLU, SSG's resnet.py). Every epoch (SSG's "iteration") each
part's pooled features of the target training set (before any BN-neck, image and mirror image summed, normalised:
SSG's extract_features with for_eval=False) are clustered on their own, each DBSCAN keeping its own eps, on
(1 - w) Jaccard + w (s_i + s_j), where s_i is image i's distance to the source training set in that part's features
(SSG's re_ranking, w = P.ssg_source_weight, its lambda_value 0.1). An image that is an outlier in any part is
dropped. Then P.adapt_iters_per_epoch P x K iterations (passes of the sampler over the full-body clusters follow
one another, as in MMT) train four triplet losses of SSG's own form (losses.SSGTripletLoss, margin
P.triplet_margin, 0.5): one per pooled part under that part's pseudo-labels, and one on the global embedding under
the full-body ones; no cross-entropy. One SGD optimizer (momentum 0.9, rate P.ssg_lr, no schedule: SSG's code
defines adjust_lr but never calls it) is built once for the whole run. With an adversary, each part has its own
discriminator reading the pooled part feature or its normalised BN-neck output (P.adversary_features), every one
of them conditioned ("canu") on the sample's FULL-body centroid. Test feature: the three flip-summed normalised
BN-neck outputs, concatenated.

Start: model `P.model_index` of the pretraining run, trained without parts. Its backbone and BN-neck are loaded;
the upper and lower BN-necks start as copies of the full-body one (no part was trained on the source, and the
full-body statistics are the closest estimate of theirs); the global embedding starts from SSG's initialisation.
The source model's last stride is kept (SSG's ResNet-50 uses 2; a stride changes no weight, but the source model
was trained with its own).

Checkpoints: `ssg_state` (everything to resume exactly), `ssg_last` and `ssg_best_by_target_labels` (the model of
the last epoch and of the epoch with the best target mAP: chosen with target labels, for reference only).
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..cluster.jaccard import source_distance_vector
from ..cluster.pseudo_labels import DBSCANClustering, KMeansClustering, PseudoLabels, make_clustering
from ..config import Params
from ..data.records import ImageRecord, ReidDataset
from ..evaluation import train_set_features
from ..losses import SSGTripletLoss
from ..models import ReidModel
from ..models.reid import global_embedding
from ..reproducibility import seed_everything
from ..runs import RunFolder
from .adaptation import (
    Adaptation,
    Clusters,
    discriminator_inputs,
    discriminator_metrics,
)
from .checkpoints import load_source_model, source_architecture
from .common import MixedPrecision, batches, identity_loader, prepare_model, use_learning_rate
from .loop import StepOutput, fit, train_batches

METHOD = "ssg"
PARTS = ("full", "upper", "lower")
MOMENTUM = 0.9


def parts_model(source: ReidModel) -> ReidModel:
    """SSG's three-part model from a source model trained without parts: same backbone, the full-body BN-neck for
    all three parts, a fresh global embedding, no classifier."""
    if source.parts:
        raise ValueError("the source model already has parts")
    model = copy.deepcopy(source)
    model.parts = True
    model.bn_necks = nn.ModuleList(copy.deepcopy(source.bn_necks[0]) for _ in PARTS)
    model.global_embedding = global_embedding(model.feature_dim).to(source.bn_necks[0].weight.device)
    model.reset_classifier(0)
    return model


class PooledParts(nn.Module):
    """A parts model whose output is its pooled part features before the BN-necks: what SSG clusters."""

    def __init__(self, model: ReidModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.model.pooled_features(images)


def clustering_features(model: ReidModel, records: Sequence[ImageRecord], params: Params) -> list[torch.Tensor]:
    """Each part's clustering features of `records`, in their order: eval-mode pooled features, image and mirror
    image summed, L2-normalised (SSG's extract_features with for_eval=False)."""
    features = train_set_features(PooledParts(model), records, params, flip=True)
    return list(features.split(model.feature_dim, dim=1))


def cluster_parts(
    clusterings: list[DBSCANClustering | KMeansClustering],
    features: list[torch.Tensor],
    source_features: list[torch.Tensor] | None,
) -> list[PseudoLabels]:
    """Each part's pseudo-labels; with source features, each part's distance also reads its images' distances to
    the source set in the same part's features."""
    if source_features is None:
        return [clustering(part) for clustering, part in zip(clusterings, features)]
    return [
        clustering(part, source_distance=source_distance_vector(part, source_part))
        for clustering, part, source_part in zip(clusterings, features, source_features)
    ]


class SSGTrainer(Adaptation):
    """SSG's state (the three-part model, one adversary per part, one SGD optimizer for the run), its clustering
    and its epoch."""

    lr_parameter = "ssg_lr"

    def __init__(self, params: Params, target: ReidDataset, source_run: RunFolder, source: ReidDataset | None):
        super().__init__(
            METHOD, params, target, source_architecture(source_run, params.model_index, params.source_checkpoint)
        )
        self.source = source
        self.flip_eval = params.ssg_flip_eval  # SSG's test feature: image and mirror image summed (its default)
        seed_everything(params.seed)
        source_model = load_source_model(source_run, params.model_index, params.source_checkpoint)
        self.model = prepare_model(parts_model(source_model), params, self.device)
        self.adversaries = self.make_adversaries(self.model.feature_dim, len(PARTS))
        self.clusterings = [make_clustering(params, target.train, params.ssg_source_weight, self.device) for _ in PARTS]
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=params.ssg_lr,
            momentum=MOMENTUM,
            weight_decay=params.weight_decay,
        )
        self.precision = MixedPrecision.for_run(params, self.device)

    @property
    def evaluated_model(self) -> ReidModel:
        return self.model

    def trained_models(self) -> dict:
        return {"model": self.model}

    def cluster(self, epoch: int) -> Clusters:
        """Each part clustered on its own (with the source term); an image that is an outlier in any part is left
        out, and its full-body label is its identity for the sampler."""
        params = self.params
        features = clustering_features(self.model, self.target.train, params)
        source_features = (
            clustering_features(self.model, self.source.train, params) if params.ssg_source_weight > 0 else None
        )
        main = distributed.group().main
        pseudo = distributed.broadcast_object(
            cluster_parts(self.clusterings, features, source_features) if main else None
        )
        labels = np.stack([p.labels for p in pseudo])
        kept_labels = np.where((labels >= 0).all(axis=0), labels[0], -1)
        columns = {
            **{f"eps_{part}": p.eps for part, p in zip(PARTS, pseudo)},
            **{f"num_clusters_{part}": p.num_clusters for part, p in zip(PARTS, pseudo)},
            **{f"num_outliers_{part}": int(p.outliers.sum()) for part, p in zip(PARTS, pseudo)},
        }
        message = "; ".join(f"{part}: {p.message}" for part, p in zip(PARTS, pseudo))
        return Clusters(
            kept_labels, pseudo[0].centroids, features[0], dict(zip(PARTS, pseudo)), columns, message, labels
        )

    def train(self, epoch: int, records, clusters: Clusters, conditions: torch.Tensor) -> dict:
        """params.adapt_iters_per_epoch steps on the kept images: the loader's labels are the full-body ones (the
        sampler's identities), each part's come from `clusters.part_labels`; `conditions`: row i, CANU's condition
        for record i (its full-body centroid)."""
        params = self.params
        part_labels = torch.from_numpy(clusters.part_labels[:, clusters.labels >= 0])
        loader = identity_loader(
            records, params.height, params.width, params.batch_ids, params.instances, params.seed, params.num_workers
        )
        network = distributed.wrap(self.model, self.device, static_graph=True)
        self.model.train()
        triplet = SSGTripletLoss(params.triplet_margin)
        iterations = params.adapt_iters_per_epoch
        return {
            "lr": self.optimizer.param_groups[0]["lr"],
            **train_batches(
                partial(self.step, network, triplet, part_labels, conditions),
                batches(loader, iterations, epoch),
                self.optimizer,
                self.precision,
                epoch=epoch,
                total=iterations,
                desc=f"ssg epoch {epoch + 1}",
                loss_limit=params.loss_limit,
                lr_parameter="ssg_lr (or disc_lr)",
            ),
        }

    def step(
        self, network: nn.Module, triplet: SSGTripletLoss, part_labels: torch.Tensor, conditions: torch.Tensor, batch
    ) -> StepOutput:
        """One SSG step: a triplet loss per pooled part under that part's pseudo-labels and one on the global
        embedding under the full-body ones (Eq. 10's first term), and each part's camera adversary."""
        params, device, model = self.params, self.device, self.model
        images, full_labels, camids, indices = batch
        images, full_labels, camids = images.to(device), full_labels.to(device), camids.to(device)
        labels = part_labels[:, indices].to(device)
        condition = conditions[indices.to(device)]
        with self.precision.autocast():
            pooled = network(images)
            embedding = model.global_embedding(pooled[0])
        pooled, embedding = [feature.float() for feature in pooled], embedding.float()
        losses = {
            f"loss_tri_{part}": triplet(feature, part_label, groups=full_labels)
            for part, feature, part_label in zip(PARTS, pooled, labels)
        }
        losses["loss_tri_embedding"] = triplet(embedding, full_labels)
        metrics = {}
        seen = discriminator_inputs(model, pooled, params.adversary_features)
        for part, adversary, feature in zip(PARTS, self.adversaries, seen):
            metrics |= discriminator_metrics(adversary.discriminator_step(feature, camids, condition), part)
            losses[f"loss_adv_{part}"] = adversary.generator_loss(feature, camids, condition)
        watched = {**dict(zip(PARTS, pooled)), "embedding": embedding}
        return StepOutput(sum(losses.values()), losses, watched, metrics)

    def networks_state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_networks_state(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        use_learning_rate(self.optimizer, self.params.ssg_lr)  # an amended ssg_lr takes effect from the next epoch


def train_ssg(
    params: Params,
    target: ReidDataset,
    run: RunFolder,
    source_run: RunFolder | None = None,
    source: ReidDataset | None = None,
) -> ReidModel:
    """Adapt source model `params.model_index` of `source_run` (default: the run `params.pretrain_run`) to `target`
    with SSG (+ the camera adversary `params.adversary`); resumes from `run`'s `ssg_state` if there is one. `source`:
    the source dataset, whose training images the clustering distance reads when params.ssg_source_weight > 0.
    Returns the model of the last epoch."""
    if params.adapt_iters_per_epoch < 1:
        raise ValueError("SSG trains a fixed number of iterations per epoch: adapt_iters_per_epoch must be >= 1")
    if params.ssg_source_weight > 0 and source is None:
        raise ValueError(
            f"SSG's clustering distance reads each target image's distance to the source training set "
            f"(ssg_source_weight {params.ssg_source_weight:g} > 0): pass the source dataset, "
            "train_ssg(..., source=load_dataset(params.source, ...)), or set ssg_source_weight 0"
        )
    trainer = SSGTrainer(params, target, source_run or RunFolder.for_run(params.pretrain_run), source)
    fit(trainer, run, params.adapt_epochs)
    return trainer.model

"""MMT with DBSCAN pseudo-labels (Ge et al., ICLR 2020), and CANU-MMT: one camera adversary per student (Eq. 11).

Two students start from the two source models of the pretraining run; each has a mean teacher, the exponential
moving average of its parameters (buffers are the teacher's own: its BatchNorm statistics follow its own forwards).
Every epoch: both teachers' normalised features of the target training set are averaged and clustered, outliers
are dropped, every classifier (students and teachers) is re-initialised from the normalised centroids and the
optimizer is rebuilt. Then a fixed number of P x K iterations, each image seen as two augmentations (one per
network), with the loss of MMT's code (reference notes):
    (1 - w_ce)(CE1 + CE2) + (1 - w_tri)(Tri1 + Tri2) + w_ce SoftCE + w_tri SoftTri   (w_ce 0.5, w_tri 0.8)
plus, for each student, -mu times its discriminator's camera cross-entropy (adversary "adv" or "canu"; "canu" gives
the discriminator each sample's cluster centroid). The discriminator reads the student's pooled feature
(adversary_features "pooled", the default: phi(x) of Eq. 4 taken as the feature the triplet losses train; the paper
does not say which) or its normalised BN-neck embedding ("embedding": the space of the clustering, the centroids and
ranking; with bn_group_size, normalised over each group's statistics, as the BN-neck does). Teacher 1 is evaluated
on the target test split every epoch (or only after the last with eval_every_epoch off).

Checkpoints: `mmt_state` (everything to resume exactly), `mmt_last` and `mmt_best_by_target_labels` (teacher 1 of
the last epoch and of the epoch with the best target mAP: chosen with target labels, for reference only).
"""

from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn.functional as F

from .. import distributed
from ..cluster.pseudo_labels import make_clustering
from ..config import Params
from ..data.records import ReidDataset
from ..evaluation import train_set_features
from ..losses import CrossEntropyLabelSmooth, SoftEntropy, SoftTripletLoss, TripletLoss
from ..models import ReidModel
from ..reproducibility import seed_everything
from ..runs import RunFolder
from .adaptation import (
    Adaptation,
    Clusters,
    TwoViews,
    discriminator_inputs,
    discriminator_metrics,
)
from .checkpoints import load_source_model, source_architecture
from .common import MixedPrecision, batches, identity_loader, prepare_model
from .loop import StepOutput, fit, train_batches

METHOD = "mmt"
NETWORKS = (1, 2)


def update_teacher(teacher: ReidModel, student: ReidModel, step: int, max_alpha: float) -> None:
    """Mean teacher: teacher <- alpha teacher + (1 - alpha) student, alpha = min(1 - 1 / (step + 1), max_alpha),
    parameters only (MMT's _update_ema_variables)."""
    alpha = min(1 - 1 / (step + 1), max_alpha)
    with torch.no_grad():
        for teacher_param, student_param in zip(teacher.parameters(), student.parameters()):
            teacher_param.mul_(alpha).add_(student_param, alpha=1 - alpha)


def load_with_classifier(model: ReidModel, state: dict) -> None:
    """load_state_dict after resizing the classifier to the saved one (it changes with the number of clusters)."""
    model.reset_classifier(len(state["classifier.weight"]))
    model.load_state_dict(state)


def mmt_losses(
    outputs: list[tuple], teacher_outputs: list[tuple], labels: torch.Tensor, ce: CrossEntropyLabelSmooth
) -> dict[str, torch.Tensor]:
    """Each student's CE and (soft-margin) triplet on its own (pooled feature, logits), and the soft CE and soft
    triplet that each student gets from the other network's teacher, summed over the two students."""
    triplet, soft_ce, soft_triplet = TripletLoss(margin=None), SoftEntropy(), SoftTripletLoss()
    (features1, logits1), (features2, logits2) = outputs
    (teacher_features1, teacher_logits1), (teacher_features2, teacher_logits2) = teacher_outputs
    return {
        "loss_ce1": ce(logits1, labels),
        "loss_ce2": ce(logits2, labels),
        "loss_tri1": triplet(features1, labels),
        "loss_tri2": triplet(features2, labels),
        "loss_soft_ce": soft_ce(logits1, teacher_logits2) + soft_ce(logits2, teacher_logits1),
        "loss_soft_tri": (
            soft_triplet(features1, teacher_features2, labels) + soft_triplet(features2, teacher_features1, labels)
        ),
    }


def mmt_objective(losses: dict[str, torch.Tensor], params: Params) -> torch.Tensor:
    """MMT's weighted loss: each student's own CE and triplet, and the soft terms from the other network's teacher,
    mixed by soft_ce_weight and soft_tri_weight as MMT's code does."""
    w_ce, w_tri = params.soft_ce_weight, params.soft_tri_weight
    return (
        (1 - w_ce) * (losses["loss_ce1"] + losses["loss_ce2"])
        + (1 - w_tri) * (losses["loss_tri1"] + losses["loss_tri2"])
        + w_ce * losses["loss_soft_ce"]
        + w_tri * losses["loss_soft_tri"]
    )


def in_float32(outputs: list[tuple]) -> list[tuple]:
    """(features, logits) of each network in float32: the losses are computed outside mixed precision."""
    return [(features.float(), logits.float()) for features, logits in outputs]


def training_accuracies(outputs: list[tuple], labels: torch.Tensor) -> dict[str, float]:
    """Each student's classification accuracy on the batch's pseudo-labels."""
    return {
        f"train_acc{k}": (logits.argmax(1) == labels).float().mean().item() for k, (_, logits) in zip(NETWORKS, outputs)
    }


class MMTTrainer(Adaptation):
    """MMT's state (two students, their mean teachers, one adversary each), its clustering and its epoch."""

    lr_parameter = "mmt_lr"

    def __init__(self, params: Params, target: ReidDataset, source_run: RunFolder):
        seed_everything(params.seed)
        super().__init__(METHOD, params, target, source_architecture(source_run, 1, params.source_checkpoint))
        self.flip_eval = params.flip_eval
        self.students = [
            prepare_model(load_source_model(source_run, k, params.source_checkpoint), params, self.device)
            for k in NETWORKS
        ]
        self.teachers = [copy.deepcopy(student) for student in self.students]
        self.adversaries = self.make_adversaries(self.students[0].feature_dim, len(NETWORKS))
        self.clusterings = [make_clustering(params, target.train, device=self.device)]
        self.precision = MixedPrecision.for_run(params, self.device)

    @property
    def evaluated_model(self) -> ReidModel:
        return self.teachers[0]

    def trained_models(self) -> dict:
        return {
            **{f"student {k}": s for k, s in zip(NETWORKS, self.students)},
            **{f"teacher {k}": t for k, t in zip(NETWORKS, self.teachers)},
        }

    def cluster(self, epoch: int) -> Clusters:
        """Both teachers' features averaged, normalised and clustered."""
        train = self.target.train
        features = F.normalize(sum(train_set_features(t, train, self.params) for t in self.teachers) / 2, dim=1)
        pseudo = distributed.broadcast_object(self.clusterings[0](features) if distributed.group().main else None)
        return Clusters(
            pseudo.labels, pseudo.centroids, features, {"target": pseudo}, {"eps": pseudo.eps}, pseudo.message
        )

    def train(self, epoch: int, records, clusters: Clusters, conditions: torch.Tensor) -> dict:
        """Classifiers re-initialised from the centroids and a new optimizer (MMT's code), then the epoch's
        params.adapt_iters_per_epoch steps (`conditions`: row i, CANU's condition for the loader's record i)."""
        params = self.params
        centroids = torch.from_numpy(clusters.centroids).to(self.device)
        for model in (*self.students, *self.teachers):
            model.reset_classifier(len(centroids), init_weights=centroids)
            model.train()
        networks = [distributed.wrap(student, self.device) for student in self.students]  # new classifiers: new wrap
        optimizer = torch.optim.Adam(
            [p for s in self.students for p in s.parameters() if p.requires_grad],
            lr=params.mmt_lr,
            weight_decay=params.weight_decay,
        )
        loader = identity_loader(
            records, params.height, params.width, params.batch_ids, params.instances, params.seed, params.num_workers
        )
        loader.dataset.transform = TwoViews(loader.dataset.transform)
        ce = CrossEntropyLabelSmooth(len(centroids), params.label_smoothing)
        iterations = params.adapt_iters_per_epoch
        return {
            "lr": params.mmt_lr,
            **train_batches(
                partial(self.step, networks, ce, conditions),
                batches(loader, iterations, epoch),
                optimizer,
                self.precision,
                epoch=epoch,
                total=iterations,
                desc=f"mmt epoch {epoch + 1}",
                loss_limit=params.loss_limit,
                lr_parameter="mmt_lr (or disc_lr)",
                after_step=lambda step: self.update_teachers(epoch * iterations + step),
            ),
        }

    def step(self, networks: list, ce: CrossEntropyLabelSmooth, conditions: torch.Tensor, batch) -> StepOutput:
        """One MMT step on two augmentations of a P x K batch: each student's CE and triplet, the soft CE and soft
        triplet from the other network's teacher, weighted as MMT's code, and each student's camera adversary
        (-mu times its discriminator's loss, Eq. 11; the discriminator steps first, on the detached features)."""
        device = self.device
        views, labels, camids, indices = batch
        views, labels, camids = [view.to(device) for view in views], labels.to(device), camids.to(device)
        with self.precision.autocast():
            outputs = [network(view) for network, view in zip(networks, views)]
            with torch.no_grad():
                teacher_outputs = [teacher(view) for teacher, view in zip(self.teachers, views)]
        outputs, teacher_outputs = in_float32(outputs), in_float32(teacher_outputs)
        losses = mmt_losses(outputs, teacher_outputs, labels, ce)
        metrics = training_accuracies(outputs, labels)
        condition = conditions[indices.to(device)]  # each sample's cluster centroid (Eq. 8)
        for k, network, adversary, (features, _) in zip(NETWORKS, networks, self.adversaries, outputs):
            (seen,) = discriminator_inputs(distributed.unwrap(network), [features], self.params.adversary_features)
            metrics |= discriminator_metrics(adversary.discriminator_step(seen, camids, condition), str(k))
            losses[f"loss_adv{k}"] = adversary.generator_loss(seen, camids, condition)  # -mu x CE (Eq. 9)
        loss = mmt_objective(losses, self.params) + losses["loss_adv1"] + losses["loss_adv2"]  # Eq. 11
        watched = {f"features{k}": features for k, (features, _) in zip(NETWORKS, outputs)}
        return StepOutput(loss, losses, watched, metrics)

    def update_teachers(self, step: int) -> None:
        for teacher, student in zip(self.teachers, self.students):
            update_teacher(teacher, student, step, self.params.ema_alpha)

    def networks_state(self) -> dict:
        return {
            "students": [s.state_dict() for s in self.students],
            "teachers": [t.state_dict() for t in self.teachers],
        }

    def load_networks_state(self, state) -> None:
        for model, saved in zip((*self.students, *self.teachers), (*state["students"], *state["teachers"])):
            load_with_classifier(model, saved)


def train_mmt(params: Params, target: ReidDataset, run: RunFolder, source_run: RunFolder | None = None) -> ReidModel:
    """Adapt the two source models of `source_run` (default: the run `params.pretrain_run`) to `target` with MMT
    (+ the camera adversary `params.adversary`); resumes from `run`'s `mmt_state` if there is one. Returns teacher 1
    of the last epoch."""
    if params.adapt_iters_per_epoch < 1:
        raise ValueError("MMT trains a fixed number of iterations per epoch: adapt_iters_per_epoch must be >= 1")
    trainer = MMTTrainer(params, target, source_run or RunFolder.for_run(params.pretrain_run))
    fit(trainer, run, params.adapt_epochs)
    return trainer.evaluated_model

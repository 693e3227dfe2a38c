"""Identity losses shared by the source pretraining, MMT and SSG: label-smoothed CE and batch-hard triplet, MMT's
soft (teacher-supervised) cross-entropy and triplet, and SSG's own triplet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against (1 - epsilon) * one_hot + epsilon / num_classes (Szegedy et al.; MMT uses 0.1)."""

    def __init__(self, num_classes: int, epsilon: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes, the loss was built for {self.num_classes}")
        log_probs = F.log_softmax(logits, dim=1)
        smoothed = torch.full_like(log_probs, self.epsilon / self.num_classes)
        smoothed.scatter_add_(1, targets.unsqueeze(1), torch.full_like(log_probs[:, :1], 1 - self.epsilon))
        return -(smoothed * log_probs).sum(dim=1).mean()


def euclidean_distances(features: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances; squared distances are clamped at 1e-12 so sqrt has a finite gradient."""
    squared_norms = features.pow(2).sum(dim=1, keepdim=True)
    squared = squared_norms + squared_norms.t() - 2 * features @ features.t()
    return squared.clamp(min=1e-12).sqrt()


def _positives_and_negatives(distances: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distances with different-label pairs set to -inf, and with same-label pairs set to +inf."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    if same.all():
        raise ValueError("batch-hard triplet needs at least two labels in the batch")
    return distances.masked_fill(~same, float("-inf")), distances.masked_fill(same, float("inf"))


def hardest_pairs(distances: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: the largest distance to a same-label sample (itself included, as in MMT / torchreid) and the
    smallest distance to a different-label one."""
    positives, negatives = _positives_and_negatives(distances, labels)
    return positives.amax(dim=1), negatives.amin(dim=1)


def hardest_pair_indices(distances: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: the indices of the samples `hardest_pairs` picks (MMT's soft triplet reads the teacher's
    distances at the pairs the student finds hardest)."""
    positives, negatives = _positives_and_negatives(distances, labels)
    return positives.argmax(dim=1), negatives.argmin(dim=1)


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al.) on Euclidean distances of the given features.

    margin=m: mean of max(0, d_ap - d_an + m) (SSG, margin 0.5). margin=None: the soft margin
    mean of softplus(d_ap - d_an) (MMT's hard-label triplet).
    """

    def __init__(self, margin: float | None = 0.5):
        super().__init__()
        self.margin = margin

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hardest_positive, hardest_negative = hardest_pairs(euclidean_distances(features), labels)
        gap = hardest_positive - hardest_negative
        if self.margin is None:
            return F.softplus(gap).mean()
        return F.relu(gap + self.margin).mean()


class SSGTripletLoss(nn.Module):
    """SSG's triplet (its code's TripletLoss with use_semi=True): every pair (j, l), j < l, of samples of the same
    group (the sampler's identity, i.e. a P x K block) is a positive pair, set against the anchor j's nearest sample
    with another label (the loss's own labels: a part's pseudo-labels); the loss is the mean over pairs of
    max(0, d_jl - d_jn + margin), on Euclidean distances.

    A pair whose anchor has no sample of another label in the batch (the whole batch shares that label; SSG's code
    crashes there) is skipped; without any usable pair the loss is an exact 0 that still backpropagates.
    """

    def __init__(self, margin: float = 0.5):
        super().__init__()
        self.margin = margin

    def forward(self, features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """`groups`: the sampler's identity of each sample (default: the labels themselves)."""
        groups = labels if groups is None else groups
        distances = euclidean_distances(features)
        same_label = labels.unsqueeze(0) == labels.unsqueeze(1)
        nearest_negative = distances.masked_fill(same_label, float("inf")).amin(dim=1)
        same_group = groups.unsqueeze(0) == groups.unsqueeze(1)
        anchors, positives = torch.triu(same_group, diagonal=1).nonzero(as_tuple=True)
        usable = torch.isfinite(nearest_negative[anchors])
        anchors, positives = anchors[usable], positives[usable]
        hinge = F.relu(distances[anchors, positives] - nearest_negative[anchors] + self.margin)
        return hinge.sum() / max(len(hinge), 1)


class SoftEntropy(nn.Module):
    """MMT's soft cross-entropy: -sum_c softmax(teacher_logits)_c log softmax(logits)_c, averaged over the batch.
    The teacher's probabilities are a fixed target (detached)."""

    def forward(self, logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        targets = F.softmax(teacher_logits.detach(), dim=1)
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class SoftTripletLoss(nn.Module):
    """MMT's soft triplet loss: for each anchor, the student's hardest positive and negative (by its own distances
    and the labels) give p = softmax([d_ap, d_an]); the teacher's distances between the same samples give the
    fixed target q = softmax([d'_ap, d'_an]) (detached); the loss is the batch mean of -sum q log p."""

    def forward(self, features: torch.Tensor, teacher_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distances = euclidean_distances(features)
        positive, negative = hardest_pair_indices(distances.detach(), labels)
        anchors = torch.arange(len(labels), device=features.device)
        log_p = F.log_softmax(torch.stack([distances[anchors, positive], distances[anchors, negative]], dim=1), dim=1)
        teacher = euclidean_distances(teacher_features.detach())
        q = F.softmax(torch.stack([teacher[anchors, positive], teacher[anchors, negative]], dim=1), dim=1)
        return -(q * log_p).sum(dim=1).mean()

"""One CANU step by hand, for notebook 03: the pieces that a training step (`MMTTrainer.step`) calls, on one
real batch, each returned so that a cell can look at it. Nothing here trains a model that is kept."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch

from ..cluster.pseudo_labels import PseudoLabels
from ..config import Params
from ..data.records import ImageRecord
from ..models import ReidModel
from .adaptation import pseudo_labelled, unusable_reason
from .common import batches, batchnorm_groups, identity_loader


@dataclass
class Batch:
    """One P x K batch of pseudo-labelled target images through the network in training mode."""

    model: ReidModel  # a copy of the network the features come from (the caller's model is left untouched)
    features: torch.Tensor  # pooled features, part of the model's autograd graph [N x D]
    labels: torch.Tensor  # pseudo-labels (cluster indices) [N]
    camids: torch.Tensor  # true camera ids, 0-based [N]
    conditions: torch.Tensor  # CANU's condition of each sample: its cluster's centroid [N x D], no gradient


def one_batch(
    model: ReidModel, records: Sequence[ImageRecord], pseudo: PseudoLabels, conditions: torch.Tensor, params: Params
) -> Batch | None:
    """The first P x K batch that an adaptation epoch on `pseudo` would train on (same sampler, same seed), through
    a copy of `model` in training mode. `conditions`: one row per pseudo-labelled record, as
    `adaptation.discriminator_conditions` gives them. None, with the reason printed, when the clustering cannot
    fill a batch (the adaptation skips such an epoch too)."""
    kept = pseudo_labelled(records, pseudo.labels)
    reason = unusable_reason({"first": pseudo}, kept, params.batch_ids, params.instances)
    if reason is not None:
        print(f"no batch to show: {reason}")
        return None
    loader = identity_loader(kept, params.height, params.width, params.batch_ids, params.instances, params.seed)
    images, labels, camids, indices = next(iter(batches(loader, 1, epoch=0)))
    network = batchnorm_groups(copy.deepcopy(model), params).train()
    features, _ = network(images)
    return Batch(network, features, labels, camids, conditions[indices])


def gradient_reach(batch: Batch, loss: torch.Tensor, discriminator: torch.nn.Module) -> dict[str, bool]:
    """Back-propagate `loss` (the generator term of `batch`) and say where the gradient arrives: the network's
    weights, the discriminator's weights, the centroid condition."""
    batch.model.zero_grad(set_to_none=True)
    discriminator.zero_grad(set_to_none=True)
    loss.backward()

    def reached(parameters) -> bool:
        return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in parameters)

    return {
        "feature extractor": reached(batch.model.parameters()),
        "discriminator": reached(discriminator.parameters()),
        "centroid condition": batch.conditions.requires_grad,
    }

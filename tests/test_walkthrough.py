"""Notebook 03's CANU step by hand: one real batch of the first clustering, its conditions, and where the
generator term's gradient goes."""

import numpy as np
import torch

from canu_core.cluster.pseudo_labels import pseudo_labels_from
from canu_core.config import load_params, make_params
from canu_core.data.catalog import load_dataset
from canu_core.engine.adaptation import discriminator_conditions
from canu_core.engine.adversary import CameraAdversary
from canu_core.engine.walkthrough import gradient_reach, one_batch
from canu_core.evaluation import train_set_features
from canu_core.models import build_model
from canu_core.runs import project_root


def test_one_batch_and_where_the_generator_gradient_goes(tiny_data_root):
    params = load_params(
        project_root() / "params" / "smoke.yaml",
        overrides={"data_root": str(tiny_data_root), "device": "cpu", "batch_ids": 2, "height": 32, "width": 16},
    )
    target = load_dataset(params.target, params.data_root)
    torch.manual_seed(0)
    model = build_model("compact", num_classes=5)
    features = train_set_features(model, target.train, params)
    labels = torch.arange(len(target.train)).numpy() % 4  # four clusters, every image in one
    labels[:3] = -1  # three outliers, left out of the batch and of the conditions
    pseudo = pseudo_labels_from(features, labels)
    conditions = discriminator_conditions(pseudo.labels, pseudo.centroids, features, target.train, "pseudo")
    before = {name: value.clone() for name, value in model.state_dict().items()}

    batch = one_batch(model, target.train, pseudo, conditions, params)
    assert batch.features.shape == (8, model.feature_dim) and batch.features.requires_grad
    assert len(set(batch.labels.tolist())) == 2  # P = 2 clusters x K = 4 images
    for label, condition in zip(batch.labels, batch.conditions):
        assert torch.allclose(condition, torch.from_numpy(pseudo.centroids[label]))
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # a copy trained

    adversary = CameraAdversary("canu", model.feature_dim, target.num_cameras, mu=0.1, lr=0.001)
    adversary.discriminator_step(batch.features, batch.camids, batch.conditions)
    assert all(p.grad is None for p in batch.model.parameters())  # D's step reads detached features
    term = adversary.generator_loss(batch.features, batch.camids, batch.conditions)
    assert term.item() < 0
    assert gradient_reach(batch, term, adversary.discriminator) == {
        "feature extractor": True,
        "discriminator": False,
        "centroid condition": False,
    }


def test_one_batch_says_when_the_clusters_cannot_fill_a_batch(tiny_data_root, capsys):
    params = load_params(
        project_root() / "params" / "smoke.yaml",
        overrides={"data_root": str(tiny_data_root), "device": "cpu", "batch_ids": 2, "height": 32, "width": 16},
    )
    target = load_dataset(params.target, params.data_root)
    features = torch.randn(len(target.train), 8)
    labels = -torch.ones(len(target.train), dtype=torch.long).numpy()
    labels[:4] = 0  # one cluster: a batch needs 2
    pseudo = pseudo_labels_from(features, labels)
    conditions = discriminator_conditions(pseudo.labels, pseudo.centroids, features, target.train, "pseudo")
    assert one_batch(build_model("compact", num_classes=0), target.train, pseudo, conditions, params) is None
    assert capsys.readouterr().out.startswith("no batch to show: ")


def test_conditions_follow_the_clusters_exactly_in_a_batch_of_the_default_size(tiny_data_root):
    """The default P x K batch (16 x 4, with outliers left out): two rows share a condition, element for element,
    exactly when they share a cluster. Notebook 03 checks it on its batch; a distance threshold would not do from 26
    rows up (torch.cdist then goes through a matrix product, which leaves up to about 1e-3 between equal rows)."""
    params = load_params(
        project_root() / "params" / "smoke.yaml",
        overrides={"data_root": str(tiny_data_root), "device": "cpu", "height": 32, "width": 16},
    )
    params = make_params({"batch_ids": 16, "instances": 4}, base=params)  # the default world's batch
    target = load_dataset(params.target, params.data_root)
    torch.manual_seed(0)
    model = build_model("compact", num_classes=5)
    features = train_set_features(model, target.train, params)
    labels = np.arange(len(target.train)) % 17  # 17 clusters of about 3 images (the sampler repeats images)
    labels[::7] = -1  # outliers among them
    pseudo = pseudo_labels_from(features, labels)
    conditions = discriminator_conditions(pseudo.labels, pseudo.centroids, features, target.train, "pseudo")

    batch = one_batch(model, target.train, pseudo, conditions, params)
    assert len(batch.labels) == 64 and len(set(batch.labels.tolist())) == 16
    same_cluster = batch.labels[:, None] == batch.labels[None, :]
    same_condition = (batch.conditions[:, None, :] == batch.conditions[None, :, :]).all(dim=2)
    assert torch.equal(same_cluster, same_condition)
    for label, condition in zip(batch.labels, batch.conditions):
        assert torch.equal(condition, torch.from_numpy(pseudo.centroids[label]))

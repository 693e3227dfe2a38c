"""SSG adaptation on the tiny worlds: the parts model built from a source model, its clustering features, a short
run's history and pseudo-labelled set (cameras kept, an image dropped when any part calls it an outlier), the
source distance, the discriminators' input, exact resume, mu = 0 equal to the baseline, and a degenerate
clustering."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_mmt import Interrupted, adapt_params, assert_same, target_world

from canu_core.data.catalog import load_dataset
from canu_core.engine import ssg as ssg_module
from canu_core.engine.adversary import CameraAdversary
from canu_core.engine.checkpoints import load_adapted_model, load_source_model
from canu_core.evaluation import ordered_loader, train_set_features
from canu_core.models import build_model
from canu_core.runs import RunFolder
from canu_core.training import pretrain

HISTORY_COLUMNS = {
    "method",
    "epoch",
    "adversary",
    "mu",
    "status",
    "message",
    "num_clusters",
    "num_outliers",
    "lost_ids",
    "mi_pseudo_camera",
    "mi_true_camera",
    "camera_probe_accuracy",
    "camera_probe_chance",
    "iterations",
    "loss",
    "lr",
    "target_mAP",
    "target_R1",
    "loss_tri_embedding",
    *(
        f"{name}_{part}"
        for part in ssg_module.PARTS
        for name in ("eps", "num_clusters", "num_outliers", "loss_tri", "loss_adv", "disc_loss", "disc_acc")
    ),
}
# More than one pass of the sampler: the tiny target's 4 to 6 full-body clusters give passes of 1 to 3 batches.
ITERATIONS = 5


def ssg_params(data_root, **changes):
    return adapt_params(
        data_root, **{"method": "ssg", "n_models": 1, "mu": 0.05, "adapt_iters_per_epoch": ITERATIONS, **changes}
    )


def source_world(params):
    return load_dataset(params.source, params.data_root, params.world_seed)


@pytest.fixture(scope="module")
def source_run(tiny_data_root, tmp_path_factory):
    params = ssg_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("pretrain"))
    pretrain(params, source_world(params), target_world(params), run)
    return run


@pytest.fixture(scope="module")
def straight(tiny_data_root, source_run, tmp_path_factory):
    """An uninterrupted CANU-SSG run (source weight 0.1), with each epoch's training records and per-part labels,
    and each call of the source distance and of the part clusterings."""
    params = ssg_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("straight"))
    trained_on, source_distances, clustered = [], [], []
    real_train, real_train_batches = ssg_module.SSGTrainer.train, ssg_module.train_batches
    real_source_distance = ssg_module.source_distance_vector
    real_clustering_call = ssg_module.DBSCANClustering.__call__

    def train_spy(self, epoch, records, *args):
        trained_on.append([list(records)])
        return real_train(self, epoch, records, *args)

    def train_batches_spy(step, *args, **kwargs):
        _, _, part_labels, _ = step.args
        trained_on[-1].append(part_labels.clone())
        return real_train_batches(step, *args, **kwargs)

    def source_distance_spy(target_features, source_features):
        distance = real_source_distance(target_features, source_features)
        source_distances.append((target_features, source_features, distance))
        return distance

    def clustering_spy(self, features, **kwargs):
        clustered.append((features, kwargs))
        return real_clustering_call(self, features, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssg_module.SSGTrainer, "train", train_spy)
        patch.setattr(ssg_module, "train_batches", train_batches_spy)
        patch.setattr(ssg_module, "source_distance_vector", source_distance_spy)
        patch.setattr(ssg_module.DBSCANClustering, "__call__", clustering_spy)
        model = ssg_module.train_ssg(params, target_world(params), run, source_run, source=source_world(params))
    return run, model, trained_on, source_distances, clustered


def test_parts_model_starts_from_the_source_model():
    torch.manual_seed(0)
    source = build_model("compact", num_classes=5)
    with torch.no_grad():  # a trained-looking BN-neck
        source.bn_necks[0].weight.uniform_(0.5, 2.0)
        source.bn_necks[0].running_mean.normal_()
    model = ssg_module.parts_model(source)
    assert model.parts and model.classifier is None and len(model.bn_necks) == 3
    assert source.classifier is not None and not source.parts  # the source model is left as it was
    # a fresh global embedding with SSG's initialisation; the rebuilt model (load_adapted_model) has the same names
    linear, norm, _ = model.global_embedding
    assert linear.weight.std().item() == pytest.approx(0.001, rel=0.1) and torch.equal(norm.weight, torch.ones(256))
    assert model.state_dict().keys() == build_model("compact", num_classes=0, parts=True).state_dict().keys()
    images = torch.randn(4, 3, 32, 16)
    full, upper, lower = model.eval()(images)
    assert torch.allclose(full, source.eval()(images))
    assert not torch.allclose(upper, full) and not torch.allclose(lower, full)


def test_clustering_features_are_the_pooled_parts_flip_summed_and_normalised(tiny_data_root, source_run):
    params = ssg_params(tiny_data_root)
    records = target_world(params).train[:6]
    model = ssg_module.parts_model(load_source_model(source_run, 1, "best"))
    features = ssg_module.clustering_features(model, records, params)
    images, *_ = next(iter(ordered_loader(records, params.height, params.width, 6)))
    with torch.no_grad():
        summed = [
            a + b for a, b in zip(model.eval().pooled_features(images), model.pooled_features(images.flip(dims=[3])))
        ]
    assert len(features) == 3
    for part, expected in zip(features, summed):
        assert torch.allclose(part, F.normalize(expected, dim=1), atol=1e-6)
    # not the BN-neck outputs the test feature is made of
    necks = train_set_features(model, records, params, flip=True).split(model.feature_dim, dim=1)
    assert not torch.allclose(features[0], necks[0], atol=1e-3)


def test_discriminators_read_the_pooled_features_or_their_normalised_bn_neck_outputs():
    torch.manual_seed(0)
    model = build_model("compact", num_classes=0, parts=True, width=8).train()
    pooled = model(torch.randn(4, 3, 64, 32))
    assert ssg_module.discriminator_inputs(model, pooled, "pooled") is pooled
    embedded = ssg_module.discriminator_inputs(model, pooled, "embedding")
    for part, (feature, embedding) in enumerate(zip(pooled, embedded)):
        expected = F.normalize(
            F.batch_norm(feature, None, None, model.bn_necks[part].weight, model.bn_necks[part].bias, training=True),
            dim=1,
        )
        assert torch.allclose(embedding, expected, atol=1e-5)
        assert not torch.allclose(embedding, feature, atol=1e-3)


def test_run_writes_history_and_drops_images_outlying_in_any_part(tiny_data_root, straight):
    run, model, trained_on, _, _ = straight
    params = ssg_params(tiny_data_root)
    history = run.read_history()
    assert HISTORY_COLUMNS <= set(history.columns)
    assert history["epoch"].tolist() == [0, 1] and (history["status"] == "trained").all()
    assert history["iterations"].tolist() == [ITERATIONS] * 2
    assert (history["lr"] == params.ssg_lr).all()
    assert history[[c for c in history.columns if c.startswith(("loss", "disc_loss"))]].notna().all().all()
    eps = history[[f"eps_{part}" for part in ssg_module.PARTS]]
    assert (eps.nunique() == 1).all() and eps.iloc[0].nunique() == 3  # each part's own eps, kept after epoch 1
    true_camera = {r.path: r.camid for r in target_world(params).train}
    assert len(trained_on) == 2
    for (records, part_labels), (_, epoch) in zip(trained_on, history.iterrows()):
        assert [r.camid for r in records] == [true_camera[r.path] for r in records]
        assert len({r.camid for r in records}) > 1
        # Kept: the images every part clusters; the sampler's identity is the full-body label.
        assert (part_labels >= 0).all() and part_labels[0].tolist() == [r.pid for r in records]
        assert len(records) == epoch["num_points"] - epoch["num_outliers"]
        per_part = [epoch[f"num_outliers_{part}"] for part in ssg_module.PARTS]
        assert max(per_part) <= epoch["num_outliers"] <= sum(per_part)
    # the global embedding was trained (its BatchNorm scale started at 1): its triplet reached it
    assert not torch.equal(model.global_embedding[1].weight, torch.ones(model.feature_dim))
    last = load_adapted_model(run, "ssg", "last")
    assert last.parts
    assert model.state_dict().keys() == last.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))
    assert run.load_checkpoint("ssg_best_by_target_labels")["epoch"] == int(history["target_mAP"].idxmax())


def test_each_part_clusters_with_its_distance_to_the_source_set(tiny_data_root, straight):
    _, _, _, source_distances, clustered = straight
    num_source = len(source_world(ssg_params(tiny_data_root)).train)
    assert len(source_distances) == len(clustered) == 2 * 3  # every part, every epoch
    for (target_features, source_features, distance), (features, kwargs) in zip(source_distances, clustered):
        assert features is target_features and kwargs["source_distance"] is distance
        assert target_features.shape == (50, 256) and source_features.shape == (num_source, 256)
        # the same extraction on both sides: unit rows of non-negative pooled features
        assert torch.allclose(source_features.norm(dim=1), torch.ones(num_source), atol=1e-5)
        assert (source_features >= 0).all()
    first_epoch = [features for features, _ in clustered[:3]]
    assert not torch.equal(first_epoch[1], first_epoch[2])  # each part its own features and source distance


def test_source_dataset_is_required_only_with_a_source_term(tiny_data_root, source_run, tmp_path):
    params = ssg_params(tiny_data_root)
    with pytest.raises(ValueError, match="pass the source dataset"):
        ssg_module.train_ssg(params, target_world(params), RunFolder(tmp_path / "a"), source_run)
    kmeans = ssg_params(tiny_data_root, clustering="kmeans", n_clusters=5)
    with pytest.raises(ValueError, match="set ssg_source_weight 0"):
        ssg_module.train_ssg(
            kmeans, target_world(params), RunFolder(tmp_path / "b"), source_run, source=source_world(params)
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_interrupted_run_resumes_to_identical_state(tiny_data_root, source_run, straight, tmp_path, monkeypatch):
    params = ssg_params(tiny_data_root)
    straight_run, straight_model, *_ = straight
    run = RunFolder(tmp_path / "resumed")
    real_step = ssg_module.SSGTrainer.step
    calls = {"n": 0}

    def interrupting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > ITERATIONS:  # the second epoch's first iteration
            raise Interrupted
        return real_step(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ssg_module.SSGTrainer, "step", interrupting_step)
        with pytest.raises(Interrupted):
            ssg_module.train_ssg(params, target_world(params), run, source_run, source=source_world(params))
    assert run.read_history()["epoch"].tolist() == [0]
    resumed = ssg_module.train_ssg(params, target_world(params), run, source_run, source=source_world(params))

    expected, found = straight_run.load_checkpoint("ssg_state"), run.load_checkpoint("ssg_state")
    for name in ("model", "optimizer", "adversaries", "eps"):
        assert_same(expected[name], found[name], name)
    assert_same(straight_model.state_dict(), resumed.state_dict())
    assert straight_run.read_history().equals(run.read_history())


def test_mu_zero_adversary_equals_the_baseline_and_needs_no_source_at_weight_zero(
    tiny_data_root, source_run, straight, tmp_path
):
    histories, states = [], []
    for adversary, mu in (("canu", 0.0), ("none", 0.05)):
        params = ssg_params(tiny_data_root, adapt_epochs=1, adversary=adversary, mu=mu, ssg_source_weight=0.0)
        run = RunFolder(tmp_path / adversary)
        ssg_module.train_ssg(params, target_world(params), run, source_run)
        histories.append(run.read_history().drop(columns=["adversary", "mu"]))
        states.append(run.load_checkpoint("ssg_state"))
    assert histories[0].equals(histories[1])
    assert_same(states[0]["model"], states[1]["model"])
    assert histories[0]["disc_loss_full"].isna().all() and (histories[0]["loss_adv_full"] == 0).all()
    # The first clustering reads the same source model's features: only the source term (weight 0.1 in the
    # straight run, 0 here) moves the rho rule's eps.
    with_source = straight[0].read_history().iloc[0]
    for part in ssg_module.PARTS:
        assert histories[0][f"eps_{part}"][0] != with_source[f"eps_{part}"]


def test_embedding_adversary_features_reach_the_discriminators(tiny_data_root, source_run, tmp_path, monkeypatch):
    received = []
    real_step = CameraAdversary.discriminator_step

    def step_spy(self, features, *args):
        received.append(features.detach().clone())
        return real_step(self, features, *args)

    monkeypatch.setattr(CameraAdversary, "discriminator_step", step_spy)
    params = ssg_params(
        tiny_data_root, adapt_epochs=1, adapt_iters_per_epoch=1, adversary_features="embedding", ssg_source_weight=0.0
    )
    ssg_module.train_ssg(params, target_world(params), RunFolder(tmp_path / "run"), source_run)
    assert len(received) == 3  # one step per part
    for features in received:  # the normalised BN-neck outputs, not the (non-negative, unnormalised) pooled ones
        assert torch.allclose(features.norm(dim=1), torch.ones(len(features)), atol=1e-5)
        assert (features < 0).any()


def test_degenerate_clustering_skips_the_epoch(tiny_data_root, source_run, tmp_path):
    params = ssg_params(tiny_data_root, adapt_epochs=1, min_samples=51)
    run = RunFolder(tmp_path / "run")
    ssg_module.train_ssg(params, target_world(params), run, source_run, source=source_world(params))
    history = run.read_history()
    assert history["status"].tolist() == ["skipped"]
    for part in ssg_module.PARTS:
        assert f"{part} clustering: no cluster: all 50 points are outliers" in history["message"][0]

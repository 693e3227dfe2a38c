"""SSG adaptation on the tiny worlds: the parts model built from a source model, a short run's history and
pseudo-labelled set (cameras kept, an image dropped when any part calls it an outlier), exact resume, mu = 0 equal
to the baseline, and a degenerate clustering."""
from __future__ import annotations

import pytest
import torch

from canu_core.data.catalog import load_dataset
from canu_core.engine import ssg as ssg_module
from canu_core.engine.adaptation import load_adapted_model
from canu_core.engine.pretrain import pretrain
from canu_core.losses import TripletLoss
from canu_core.models import build_model
from canu_core.runs import RunFolder
from test_mmt import Interrupted, adapt_params, assert_same, target_world

HISTORY_COLUMNS = {
    "method", "epoch", "adversary", "mu", "status", "message", "num_clusters", "num_outliers", "lost_ids",
    "mi_pseudo_camera", "mi_true_camera", "camera_probe_acc", "camera_probe_chance", "iterations", "loss",
    "target_mAP", "target_R1",
    *(f"{name}_{part}" for part in ssg_module.PARTS
      for name in ("eps", "num_clusters", "num_outliers", "loss_tri", "loss_adv", "disc_loss", "disc_acc")),
}


def ssg_params(data_root, **changes):
    return adapt_params(data_root, **{"method": "ssg", "n_models": 1, "mu": 0.05, **changes})


@pytest.fixture(scope="module")
def source_run(tiny_data_root, tmp_path_factory):
    params = ssg_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("pretrain"))
    pretrain(params, load_dataset(params.source, params.data_root), target_world(params), run)
    return run


@pytest.fixture(scope="module")
def straight(tiny_data_root, source_run, tmp_path_factory):
    """An uninterrupted CANU-SSG run, with each epoch's training records and per-part labels."""
    params = ssg_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("straight"))
    trained_on = []
    real_train_epoch = ssg_module.train_epoch

    def spy(model, adversaries, loader, part_labels, *args, **kwargs):
        trained_on.append((list(loader.dataset.records), part_labels.clone()))
        return real_train_epoch(model, adversaries, loader, part_labels, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssg_module, "train_epoch", spy)
        model = ssg_module.train_ssg(params, target_world(params), run, source_run)
    return run, model, trained_on


def test_parts_model_starts_from_the_source_model():
    torch.manual_seed(0)
    source = build_model("compact", num_classes=5)
    with torch.no_grad():  # a trained-looking BN-neck
        source.bn_necks[0].weight.uniform_(0.5, 2.0)
        source.bn_necks[0].running_mean.normal_()
    model = ssg_module.parts_model(source)
    assert model.parts and model.classifier is None and len(model.bn_necks) == 3
    assert source.classifier is not None and not source.parts  # the source model is left as it was
    images = torch.randn(4, 3, 32, 16)
    full, upper, lower = model.eval()(images)
    assert torch.allclose(full, source.eval()(images))
    assert not torch.allclose(upper, full) and not torch.allclose(lower, full)


def test_part_triplet_is_zero_without_a_negative():
    features = torch.randn(4, 3, requires_grad=True)
    triplet = TripletLoss(0.5)
    assert ssg_module.part_triplet(triplet, features, torch.zeros(4, dtype=torch.long)).item() == 0.0
    labels = torch.tensor([0, 0, 1, 1])
    assert ssg_module.part_triplet(triplet, features, labels).item() == triplet(features, labels).item()


def test_run_writes_history_and_drops_images_outlying_in_any_part(tiny_data_root, straight):
    run, model, trained_on = straight
    history = run.read_history()
    assert HISTORY_COLUMNS <= set(history.columns)
    assert history["epoch"].tolist() == [0, 1] and (history["status"] == "trained").all()
    assert history[[c for c in history.columns if c.startswith(("loss", "disc_loss"))]].notna().all().all()
    eps = history[[f"eps_{part}" for part in ssg_module.PARTS]]
    assert (eps.nunique() == 1).all() and eps.iloc[0].nunique() == 3  # each part's own eps, kept after epoch 1
    true_camera = {r.path: r.camid for r in target_world(ssg_params(tiny_data_root)).train}
    assert len(trained_on) == 2
    for (records, part_labels), (_, epoch) in zip(trained_on, history.iterrows()):
        assert [r.camid for r in records] == [true_camera[r.path] for r in records]
        assert len({r.camid for r in records}) > 1
        # Kept: the images every part clusters; the sampler's identity is the full-body label.
        assert (part_labels >= 0).all() and part_labels[0].tolist() == [r.pid for r in records]
        assert len(records) == epoch["num_points"] - epoch["num_outliers"]
        per_part = [epoch[f"num_outliers_{part}"] for part in ssg_module.PARTS]
        assert max(per_part) <= epoch["num_outliers"] <= sum(per_part)
    last = load_adapted_model(run, "ssg", "last")
    assert last.parts
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))
    assert run.load_checkpoint("ssg_best_oracle")["epoch"] == int(history["target_mAP"].idxmax())


def test_interrupted_run_resumes_to_identical_state(tiny_data_root, source_run, straight, tmp_path, monkeypatch):
    params = ssg_params(tiny_data_root)
    straight_run, straight_model, _ = straight
    first_epoch_iterations = int(straight_run.read_history()["iterations"][0])
    run = RunFolder(tmp_path / "resumed")
    real_forward = ssg_module.forward_in_chunks
    calls = {"n": 0}

    def interrupting_forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > first_epoch_iterations:  # one forward per iteration: the second epoch's first one
            raise Interrupted
        return real_forward(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ssg_module, "forward_in_chunks", interrupting_forward)
        with pytest.raises(Interrupted):
            ssg_module.train_ssg(params, target_world(params), run, source_run)
    assert run.read_history()["epoch"].tolist() == [0]
    resumed = ssg_module.train_ssg(params, target_world(params), run, source_run)

    expected, found = straight_run.load_checkpoint("ssg_state"), run.load_checkpoint("ssg_state")
    for name in ("model", "optimizer", "adversaries", "eps"):
        assert_same(expected[name], found[name], name)
    assert_same(straight_model.state_dict(), resumed.state_dict())
    assert straight_run.read_history().equals(run.read_history())


def test_mu_zero_adversary_equals_the_baseline(tiny_data_root, source_run, tmp_path):
    histories, states = [], []
    for adversary, mu in (("canu", 0.0), ("none", 0.05)):
        params = ssg_params(tiny_data_root, adapt_epochs=1, adversary=adversary, mu=mu)
        run = RunFolder(tmp_path / adversary)
        ssg_module.train_ssg(params, target_world(params), run, source_run)
        histories.append(run.read_history().drop(columns=["adversary", "mu"]))
        states.append(run.load_checkpoint("ssg_state"))
    assert histories[0].equals(histories[1])
    assert_same(states[0]["model"], states[1]["model"])
    assert histories[0]["disc_loss_full"].isna().all() and (histories[0]["loss_adv_full"] == 0).all()


def test_degenerate_clustering_skips_the_epoch(tiny_data_root, source_run, tmp_path):
    params = ssg_params(tiny_data_root, adapt_epochs=1, min_samples=51)
    run = RunFolder(tmp_path / "run")
    ssg_module.train_ssg(params, target_world(params), run, source_run)
    history = run.read_history()
    assert history["status"].tolist() == ["skipped"]
    for part in ssg_module.PARTS:
        assert f"{part} clustering: no cluster: all 50 points are outliers" in history["message"][0]

"""MMT adaptation on the tiny worlds: MMT's soft losses by hand, the mean teacher, grouped BatchNorm, a short run's
history and pseudo-labelled set, exact resume, mu = 0 equal to the baseline, and degenerate clusterings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from canu_core.cluster import pseudo_labels
from canu_core.cluster.pseudo_labels import pseudo_labels_from
from canu_core.config import ConfigError, load_params
from canu_core.data.catalog import load_dataset
from canu_core.data.records import ImageRecord
from canu_core.engine import CameraAdversary
from canu_core.engine import mmt as mmt_module
from canu_core.engine.adaptation import discriminator_conditions, unusable_reason
from canu_core.engine.checkpoints import load_adapted_model, load_source_model
from canu_core.losses import SoftEntropy, SoftTripletLoss
from canu_core.runs import RunFolder, project_root
from canu_core.training import pretrain

# Diagnostics, losses, discriminator metrics and test metrics every epoch row must have.
HISTORY_COLUMNS = {
    "method",
    "epoch",
    "adversary",
    "mu",
    "status",
    "message",
    "eps",
    "num_clusters",
    "num_outliers",
    "lost_ids",
    "mi_pseudo_camera",
    "mi_true_camera",
    "ami_pseudo_camera",
    "ami_true_camera",
    "camera_probe_accuracy",
    "camera_probe_chance",
    "iterations",
    "loss",
    "loss_ce1",
    "loss_ce2",
    "loss_tri1",
    "loss_tri2",
    "loss_soft_ce",
    "loss_soft_tri",
    "loss_adv1",
    "loss_adv2",
    "disc_loss_1",
    "disc_acc_1",
    "disc_loss_2",
    "disc_acc_2",
    "train_acc1",
    "train_acc2",
    "target_mAP",
    "target_R1",
}


def adapt_params(data_root, **changes):
    """Smoke parameters for adaptation at 32 x 16 pixels: 2 epochs of 2 iterations, batches of 2 pseudo-ids x 4
    images. k1 = 10 and rho = 0.2 (eps about 0.3) give the tiny target's 50 images 4 to 6 clusters (the paper's
    rho, 1.6e-3, is made for ~10^4 images: here it would average the two smallest distances)."""
    return load_params(
        project_root() / "params" / "smoke.yaml",
        overrides={
            "data_root": str(data_root),
            "device": "cpu",
            "epochs": 1,
            "adapt_epochs": 2,
            "adapt_iters_per_epoch": 2,
            "batch_ids": 2,
            "k1": 10,
            "rho": 0.2,
            "adversary": "canu",
            "mu": 0.1,
            "height": 32,
            "width": 16,
            **changes,
        },
    )


def target_world(params):
    return load_dataset(params.target, params.data_root, params.world_seed)


@pytest.fixture(scope="module")
def source_run(tiny_data_root, tmp_path_factory):
    """Two source models pretrained for one epoch of 2 iterations."""
    params = adapt_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("pretrain"))
    pretrain(params, load_dataset(params.source, params.data_root), target_world(params), run)
    return run


@pytest.fixture(scope="module")
def straight(tiny_data_root, source_run, tmp_path_factory):
    """An uninterrupted CANU-MMT run, with the pseudo-labelled record lists its epochs trained on."""
    params = adapt_params(tiny_data_root)
    run = RunFolder(tmp_path_factory.mktemp("straight"))
    trained_on = []
    real_loader = mmt_module.identity_loader

    def spy(records, *args, **kwargs):
        trained_on.append(list(records))
        return real_loader(records, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mmt_module, "identity_loader", spy)
        teacher = mmt_module.train_mmt(params, target_world(params), run, source_run)
    return run, teacher, trained_on


def assert_same(a, b, where="state"):
    """Nested checkpoint contents equal: tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


def networks(run):
    state = run.load_checkpoint("mmt_state")
    return {name: state[name] for name in ("students", "teachers", "adversaries", "eps")}


# ---------------------------------------------------------------- losses and pieces


def test_soft_entropy_by_hand():
    # student p = (1/4, 3/4) and (1/2, 1/2); teacher q = (1/2, 1/2) and (1/5, 4/5)
    logits = torch.log(torch.tensor([[1.0, 3.0], [1.0, 1.0]])).requires_grad_()
    teacher = torch.log(torch.tensor([[1.0, 1.0], [1.0, 4.0]])).requires_grad_()
    expected = (-(0.5 * math.log(1 / 4) + 0.5 * math.log(3 / 4)) - (0.2 * math.log(0.5) + 0.8 * math.log(0.5))) / 2
    loss = SoftEntropy()(logits, teacher)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert logits.grad is not None and teacher.grad is None  # the teacher is a fixed target


def test_soft_triplet_by_hand():
    # Student on a line at 0, 1, 3, 7, labels 0 0 1 1: hardest (positive, negative) per anchor are samples
    # (1, 2), (0, 2), (3, 1), (2, 1) at distances (1, 3), (1, 2), (4, 2), (4, 6).
    student = torch.tensor([[0.0], [1.0], [3.0], [7.0]], requires_grad=True)
    # Teacher at 0, 2, 9, 5: read at the student's pairs, (2, 9), (2, 7), (4, 7), (4, 3). Its own hardest negative
    # of anchor 0 would be sample 3 (distance 5): the student's choice is what counts.
    teacher = torch.tensor([[0.0], [2.0], [9.0], [5.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])

    def softmax2(a, b):
        return math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))

    terms = []
    for (s_ap, s_an), (t_ap, t_an) in zip([(1, 3), (1, 2), (4, 2), (4, 6)], [(2, 9), (2, 7), (4, 7), (4, 3)]):
        p, q = softmax2(s_ap, s_an), softmax2(t_ap, t_an)
        terms.append(-(q[0] * math.log(p[0]) + q[1] * math.log(p[1])))
    loss = SoftTripletLoss()(student, teacher, labels)
    assert loss.item() == pytest.approx(sum(terms) / 4, abs=1e-5)
    loss.backward()
    assert student.grad is not None and teacher.grad is None


def test_mean_teacher_update():
    student, teacher = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        for p in student.parameters():
            p.fill_(1.0)
        for p in teacher.parameters():
            p.fill_(0.0)
    mmt_module.update_teacher(teacher, student, step=0, max_alpha=0.999)  # alpha 0: a copy of the student
    assert all(torch.equal(p, torch.ones_like(p)) for p in teacher.parameters())
    with torch.no_grad():
        for p in teacher.parameters():
            p.fill_(0.0)
    mmt_module.update_teacher(teacher, student, step=9, max_alpha=0.999)  # alpha = 1 - 1/10
    assert teacher.weight[0, 0].item() == pytest.approx(0.1)
    mmt_module.update_teacher(teacher, student, step=10**6, max_alpha=0.5)  # capped: 0.5 * 0.1 + 0.5
    assert teacher.weight[0, 0].item() == pytest.approx(0.55)


def test_bn_group_size_groups_the_students_teachers_and_discriminators(tiny_data_root, source_run):
    """Every module an MMT step forwards in train mode normalises over groups of bn_group_size images (here one
    pseudo-identity of 4 images each), the discriminators' embedding input included, and an epoch trains."""
    params = adapt_params(tiny_data_root, bn_group_size=4, adversary_features="embedding", eval_every_epoch=False)
    trainer = mmt_module.MMTTrainer(params, target_world(params), source_run)
    modules = [*trainer.students, *trainer.teachers, *(a.discriminator for a in trainer.adversaries)]
    norms = [m for module in modules for m in module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert norms and all(norm.group_size == 4 for norm in norms)
    row = trainer.run_epoch(0)
    assert row["status"] == "trained" and row["iterations"] == 2 and math.isfinite(row["loss"])


# ---------------------------------------------------------------- training runs


def test_run_writes_history_checkpoints_and_keeps_cameras(tiny_data_root, straight):
    run, teacher, trained_on = straight
    history = run.read_history()
    assert HISTORY_COLUMNS <= set(history.columns)
    assert history["epoch"].tolist() == [0, 1] and (history["status"] == "trained").all()
    assert history["iterations"].tolist() == [2, 2]
    losses = history[[c for c in history.columns if c.startswith(("loss", "disc_loss"))]]
    assert losses.notna().all().all() and (history["loss_adv1"] < 0).all()  # -mu * camera CE
    assert history["disc_acc_1"].between(0, 1).all()
    assert history["eps"].notna().all() and history["eps"].nunique() == 1  # the rho rule's eps, then kept
    # The pseudo-labelled sets keep every image's true camera (and drop the outliers).
    true_camera = {r.path: r.camid for r in target_world(adapt_params(tiny_data_root)).train}
    assert len(trained_on) == 2
    for records, (_, epoch) in zip(trained_on, history.iterrows()):
        assert [r.camid for r in records] == [true_camera[r.path] for r in records]
        assert len({r.camid for r in records}) > 1
        assert {r.pid for r in records} == set(range(epoch["num_clusters"]))
        assert len(records) == epoch["num_points"] - epoch["num_outliers"]
    # Last and best-oracle models reload; the last one is teacher 1.
    last = load_adapted_model(run, "mmt", "last")
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), last.state_dict().values()))
    best = run.load_checkpoint("mmt_best_by_target_labels")
    assert best["epoch"] == int(history["target_mAP"].idxmax())
    load_adapted_model(run, "mmt", "best_by_target_labels")


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_to_identical_state(tiny_data_root, source_run, straight, tmp_path, monkeypatch):
    params = adapt_params(tiny_data_root)
    run = RunFolder(tmp_path / "resumed")
    real_step = mmt_module.MMTTrainer.step
    calls = {"n": 0}

    def interrupting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # 2 iterations per epoch: the second epoch's first
            raise Interrupted
        return real_step(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(mmt_module.MMTTrainer, "step", interrupting_step)
        with pytest.raises(Interrupted):
            mmt_module.train_mmt(params, target_world(params), run, source_run)
    assert run.read_history()["epoch"].tolist() == [0]
    resumed = mmt_module.train_mmt(params, target_world(params), run, source_run)

    straight_run, straight_teacher, _ = straight
    assert_same(networks(straight_run), networks(run))
    assert_same(straight_teacher.state_dict(), resumed.state_dict())
    assert straight_run.read_history().equals(run.read_history())


def test_mu_zero_adversary_equals_the_baseline(tiny_data_root, source_run, tmp_path):
    histories, states = [], []
    for adversary, mu in (("canu", 0.0), ("none", 0.1)):
        params = adapt_params(tiny_data_root, adapt_epochs=1, adversary=adversary, mu=mu)
        run = RunFolder(tmp_path / adversary)
        mmt_module.train_mmt(params, target_world(params), run, source_run)
        histories.append(run.read_history().drop(columns=["adversary", "mu"]))
        states.append(run.load_checkpoint("mmt_state"))
    assert histories[0].equals(histories[1])
    for name in ("students", "teachers"):
        assert_same(states[0][name], states[1][name], name)
    assert histories[0]["disc_loss_1"].isna().all() and (histories[0]["loss_adv1"] == 0).all()


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"min_samples": 51}, "target clustering: no cluster: all 50 points are outliers"),
        ({"batch_ids": 16}, "fewer than the 16 identities of a batch"),
    ],
)
def test_degenerate_clustering_skips_the_epoch(tiny_data_root, source_run, tmp_path, changes, reason):
    params = adapt_params(tiny_data_root, **changes)
    run = RunFolder(tmp_path / "run")
    teacher = mmt_module.train_mmt(params, target_world(params), run, source_run)
    history = run.read_history()
    assert (history["status"] == "skipped").all() and len(history) == 2
    assert history["message"].str.contains(reason, regex=False).all()
    source = load_source_model(source_run, 1, params.source_checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), teacher.state_dict().values()))


def test_kmeans_pseudo_labels(tiny_data_root, source_run, tmp_path):
    params = adapt_params(tiny_data_root, clustering="kmeans", n_clusters=6, adapt_epochs=1)
    run = RunFolder(tmp_path / "run")
    mmt_module.train_mmt(params, target_world(params), run, source_run)
    history = run.read_history()
    assert history["status"].tolist() == ["trained"]
    assert history["num_clusters"].tolist() == [6] and history["num_outliers"].tolist() == [0]


def test_evaluating_the_last_epoch_only_changes_nothing_else(tiny_data_root, source_run, straight, tmp_path):
    params = adapt_params(tiny_data_root, eval_every_epoch=False)
    run = RunFolder(tmp_path / "last_only")
    mmt_module.train_mmt(params, target_world(params), run, source_run)
    history, reference = run.read_history(), straight[0].read_history()
    assert math.isnan(history.loc[0, "target_mAP"]) and math.isnan(history.loc[0, "target_R1"])
    scores = ["target_mAP", "target_R1"]
    assert history.loc[1, scores].tolist() == reference.loc[1, scores].tolist()
    assert history.drop(columns=["target_mAP", "target_R1"]).equals(reference.drop(columns=["target_mAP", "target_R1"]))
    for name in ("students", "teachers"):
        assert_same(run.load_checkpoint("mmt_state")[name], straight[0].load_checkpoint("mmt_state")[name], name)


@pytest.mark.parametrize("features", ["pooled", "embedding"])
def test_discriminators_read_the_chosen_features(tiny_data_root, source_run, tmp_path, monkeypatch, features):
    """adversary_features: the pooled feature (not normalised) or the normalised BN-neck embedding of the student."""
    seen = []
    real_step = CameraAdversary.discriminator_step

    def spy(self, inputs, camids, centroids=None):
        seen.append(inputs.detach().clone())
        return real_step(self, inputs, camids, centroids)

    monkeypatch.setattr(CameraAdversary, "discriminator_step", spy)
    params = adapt_params(tiny_data_root, adapt_epochs=1, adversary_features=features)
    mmt_module.train_mmt(params, target_world(params), RunFolder(tmp_path / "run"), source_run)
    assert len(seen) == 2 * params.adapt_iters_per_epoch  # one discriminator per student, every iteration
    norms = torch.cat([batch.norm(dim=1) for batch in seen])
    unit = torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert unit == (features == "embedding")


def test_an_epoch_whose_clusters_cannot_fill_one_batch_is_unusable():
    """Five clusters for P = 4, but single-image clusters give one image a pass (MMT's sampler): 2 x 4 + 3 = 11
    images, fewer than one batch of 4 x 4, where counting clusters alone would have let the sampler fail."""
    labels = [0, 0, 1, 1, 2, 3, 4]
    records = [ImageRecord(f"{i}.jpg", label, i % 2) for i, label in enumerate(labels)]
    pseudo = {"target": pseudo_labels_from(np.eye(7, dtype=np.float32), np.array(labels))}
    assert unusable_reason(pseudo, records, batch_ids=4, instances=4) == (
        "a pass of the sampler draws 11 images of the 5 clusters left, fewer than one batch of 4 x 4"
    )
    assert unusable_reason(pseudo, records, batch_ids=2, instances=4) is None
    assert unusable_reason(pseudo, records, batch_ids=6, instances=4) == (
        "5 clusters left, fewer than the 6 identities of a batch"
    )


def test_discriminator_conditions_pseudo_and_oracle():
    """Pseudo: each kept record's cluster centroid. Oracle: the normalised mean of its true identity's features,
    over all of that identity's records (outliers included)."""
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 4.0]])
    records = [ImageRecord(f"{i}.jpg", pid, 0) for i, pid in enumerate([7, 7, 9, 9])]
    labels = np.array([1, -1, 0, 0])
    centroids = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    pseudo = discriminator_conditions(labels, centroids, features, records, "pseudo")
    assert torch.equal(pseudo, torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]]))
    oracle = discriminator_conditions(labels, centroids, features, records, "oracle")
    id7 = torch.tensor([1.0, 1.0]) / math.sqrt(2)  # records 0 and 1 (1 is an outlier, its feature still counts)
    id9 = torch.tensor([4.0, 5.0]) / math.sqrt(41)
    torch.testing.assert_close(oracle, torch.stack([id7, id9, id9]))


def test_the_oracle_condition_is_the_true_identitys_centroid(tiny_data_root, source_run, tmp_path, monkeypatch):
    """In an oracle run every batch's conditions are rows of the true-id centroid table: two samples of one true id
    always get the same row, whatever their pseudo-labels; the run trains and records its setting."""
    seen = []
    real_step = CameraAdversary.discriminator_step

    def spy(self, inputs, camids, centroids=None):
        seen.append(centroids.clone())
        return real_step(self, inputs, camids, centroids)

    monkeypatch.setattr(CameraAdversary, "discriminator_step", spy)
    conditions = {}
    for condition in ("pseudo", "oracle"):
        seen.clear()
        params = adapt_params(tiny_data_root, adapt_epochs=1, canu_condition=condition)
        run = RunFolder(tmp_path / condition)
        mmt_module.train_mmt(params, target_world(params), run, source_run)
        assert run.read_history()["status"].tolist() == ["trained"]
        conditions[condition] = torch.cat(seen)
    assert not torch.equal(conditions["pseudo"], conditions["oracle"])
    world = target_world(params)
    features = mmt_module.F.normalize(
        sum(
            mmt_module.train_set_features(
                load_source_model(source_run, k, params.source_checkpoint), world.train, params
            )
            for k in (1, 2)
        )
        / 2,
        dim=1,
    )
    everyone = discriminator_conditions(
        np.zeros(len(world.train), dtype=int), np.zeros((1, 1), np.float32), features, world.train, "oracle"
    )
    table = torch.unique(everyone, dim=0)
    assert len(table) == len({r.pid for r in world.train})
    gaps = (conditions["oracle"][:, None, :] - table[None, :, :]).abs().amax(dim=2)  # [conditions x identities]
    assert (gaps.min(dim=1).values < 1e-6).all()


def test_the_oracle_condition_needs_the_conditional_adversary(tiny_data_root):
    with pytest.raises(ConfigError, match="set adversary canu"):
        adapt_params(tiny_data_root, adversary="adv", canu_condition="oracle")


def test_camera_aware_pseudo_labels_warm_up_at_the_first_epoch(tiny_data_root, source_run, tmp_path, monkeypatch):
    """jaccard ca: each epoch clusters with the target images' cameras, the first with CA-Jaccard's warm-up."""
    # lists of 3 and 6 on the tiny target's 50 images (with train_caj.py's 5 and 20 the first epoch finds one cluster)
    params = adapt_params(tiny_data_root, jaccard="ca", k1_intra=3, k1_inter=6, k2_intra=2, k2_inter=4)
    seen = []
    real_distance = pseudo_labels.upper_camera_jaccard_distance

    def spy(features, cameras, k1, k2, settings, progress=False):
        seen.append((list(cameras), settings.k2_intra, settings.k2_inter))
        return real_distance(features, cameras, k1, k2, settings, progress)

    monkeypatch.setattr(pseudo_labels, "upper_camera_jaccard_distance", spy)
    run = RunFolder(tmp_path / "run")
    target = target_world(params)
    mmt_module.train_mmt(params, target, run, source_run)
    history = run.read_history()
    assert history["status"].tolist() == ["trained", "trained"] and (history["num_clusters"] >= 2).all()
    assert [(k2_intra, k2_inter) for _, k2_intra, k2_inter in seen] == [(3, 3), (2, 4)]
    assert all(cameras == [record.camid for record in target.train] for cameras, _, _ in seen)

"""Source pretraining: an interrupted run resumes and ends exactly where an uninterrupted one ends (CPU, same seed);
MMT's recipe: the soft-margin triplet, and a target batch forwarded each step that only BatchNorm statistics see."""

import copy
import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from canu_core import load_source_model
from canu_core.config import Params, load_params
from canu_core.data.catalog import load_dataset
from canu_core.engine import pretrain as pretrain_module
from canu_core.engine.common import ShuffledSampler, endless_batches, relabel, warmup_multistep
from canu_core.evaluation import ordered_loader
from canu_core.runs import RunFolder, project_root


def smoke_params(data_root, **changes):
    return load_params(
        project_root() / "params" / "smoke.yaml",
        overrides={
            "data_root": str(data_root),
            "device": "cpu",
            "n_models": 1,
            "epochs": 3,
            "iters_per_epoch": 3,
            **changes,
        },
    )


def worlds(params):
    return (
        load_dataset(params.source, params.data_root, params.world_seed),
        load_dataset(params.target, params.data_root, params.world_seed),
    )


class Interrupted(Exception):
    pass


def interrupting_build_model(after_training_steps):
    """build_model whose model raises once it has run `after_training_steps` training forwards of source batches
    (those with gradient: the target batches are forwarded without)."""
    real_build = pretrain_module.build_model
    calls = {"n": 0}

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)

        def hook(module, inputs):
            if module.training and torch.is_grad_enabled():
                calls["n"] += 1
                if calls["n"] > after_training_steps:
                    raise Interrupted

        model.register_forward_pre_hook(hook)
        return model

    return build


@pytest.mark.parametrize("target_forward", [True, False])
def test_interrupted_run_resumes_to_identical_weights_and_metrics(
    tiny_data_root, tmp_path, monkeypatch, target_forward
):
    params = smoke_params(tiny_data_root, pretrain_target_forward=target_forward)
    source, target = worlds(params)

    straight = RunFolder(tmp_path / "straight")
    expected = pretrain_module.pretrain_model(params, source, target, straight, index=1, seed=params.seed)

    resumed_run = RunFolder(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        # 3 steps per epoch: stop in the middle of the second epoch (after 4 training forwards).
        patch.setattr(pretrain_module, "build_model", interrupting_build_model(after_training_steps=4))
        with pytest.raises(Interrupted):
            pretrain_module.pretrain_model(params, source, target, resumed_run, index=1, seed=params.seed)
    assert resumed_run.read_history()["epoch"].tolist() == [0]  # only the first epoch finished
    resumed = pretrain_module.pretrain_model(params, source, target, resumed_run, index=1, seed=params.seed)

    for (name, a), (_, b) in zip(expected.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.read_history().equals(resumed_run.read_history())
    assert resumed_run.checkpoint_path("model1_best").is_file()


def test_finished_run_loads_without_training(tiny_data_root, tmp_path, monkeypatch):
    params = smoke_params(tiny_data_root, epochs=1)
    source, target = worlds(params)
    run = RunFolder(tmp_path / "run")
    first = pretrain_module.pretrain_model(params, source, target, run, index=1, seed=params.seed)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(pretrain_module.PretrainTrainer, "train_epoch", no_training)
    again = pretrain_module.pretrain_model(params, source, target, run, index=1, seed=params.seed)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_without_per_epoch_evaluation_only_the_last_epoch_is_evaluated_and_it_is_the_best(
    tiny_data_root, tmp_path, monkeypatch
):
    params = smoke_params(tiny_data_root, eval_every_epoch=False)
    source, target = worlds(params)
    evaluated_after = []
    real_evaluate = pretrain_module.evaluate_transfer

    def counting_evaluate(model, *args):
        evaluated_after.append(len(run.read_history()))
        return real_evaluate(model, *args)

    monkeypatch.setattr(pretrain_module, "evaluate_transfer", counting_evaluate)
    run = RunFolder(tmp_path / "run")
    pretrain_module.pretrain_model(params, source, target, run, index=1, seed=params.seed)

    history = run.read_history()
    assert evaluated_after == [2]  # once, after the rows of epochs 0 and 1 were written
    assert history["source_mAP"].isna().tolist() == [True, True, False]
    best = run.load_checkpoint("model1_best")
    assert best["epoch"] == 2 and best["metrics"]["source_mAP"] == history["source_mAP"].iloc[2]


def test_relabel_is_sorted_and_contiguous():
    from canu_core.data.records import ImageRecord

    records = [ImageRecord("a", 7, 0), ImageRecord("b", 3, 1), ImageRecord("c", 7, 2)]
    relabelled, mapping = relabel(records)
    assert mapping == {3: 0, 7: 1}
    assert [r.pid for r in relabelled] == [1, 0, 1]


def test_warmup_multistep_factors():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = warmup_multistep(optimizer, warmup_epochs=2, milestones=[3, 4], gamma=0.1, warmup_factor=0.01)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01, 0.505, 1.0, 0.1, 0.01])


def test_fixed_iterations_take_new_sampler_passes_in_a_new_order():
    from torch.utils.data import DataLoader

    from canu_core.data.records import ImageRecord
    from canu_core.data.samplers import RandomIdentitySampler
    from canu_core.engine.common import batches

    records = [ImageRecord(str(i), pid=i // 2, camid=i % 2) for i in range(16)]  # 8 ids x 2 images
    sampler = RandomIdentitySampler(records, batch_ids=2, instances=2, seed=0)
    loader = DataLoader(list(range(16)), batch_size=4, sampler=sampler)  # one pass = 4 batches
    drawn = [batch.tolist() for batch in batches(loader, iterations=8, epoch=0)]
    assert len(drawn) == 8
    assert drawn[:4] != drawn[4:]  # the second pass is not a replay of the first
    assert [batch.tolist() for batch in batches(loader, iterations=0, epoch=0)] == drawn[:4]
    assert drawn == [batch.tolist() for batch in batches(loader, iterations=8, epoch=0)]


def test_load_source_model_round_trip_and_clear_error(tiny_data_root, tmp_path):
    params = smoke_params(tiny_data_root, epochs=1, iters_per_epoch=1)
    source, target = worlds(params)
    run = RunFolder(tmp_path / "run")
    trained = pretrain_module.pretrain_model(params, source, target, run, index=1, seed=params.seed)
    for which in ("last", "best"):
        loaded = load_source_model(run, index=1, which=which)
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(FileNotFoundError, match=r"model2_last\.pt: run notebook 01 .*model1_best"):
        load_source_model(run, index=2)


# --- MMT's recipe: soft-margin triplet, target batches forwarded for the BatchNorm statistics only


def test_soft_pretraining_triplet_is_mmts_soft_triplet_with_margin_zero():
    """MMT's SoftTripletLoss(margin=0.0) is -log softmax([d_ap, d_an])[1] = log(e^d_ap + e^d_an) - d_an per anchor,
    i.e. softplus(d_ap - d_an); the hinge is max(0, d_ap - d_an + triplet_margin). Points on a line: labels 0, 0, 1,
    1 at 0, 1, 3, 7 give (d_ap, d_an) = (1, 3), (1, 2), (4, 2), (4, 6) (the anchor itself counts as a positive)."""
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    labels = torch.tensor([0, 0, 1, 1])
    pairs = [(1, 3), (1, 2), (4, 2), (4, 6)]
    mmt = sum(math.log(math.exp(ap) + math.exp(an)) - an for ap, an in pairs) / 4
    soft = pretrain_module.pretraining_triplet(Params())  # the default
    assert soft(points, labels).item() == pytest.approx(mmt, abs=1e-5)
    assert mmt == pytest.approx((2 * math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + math.log1p(math.exp(2))) / 4)
    hinge = pretrain_module.pretraining_triplet(Params(pretrain_triplet="hinge", triplet_margin=0.5))
    assert hinge(points, labels).item() == pytest.approx((2 + 0.5) / 4, abs=1e-5)  # only (4, 2) violates
    wider = pretrain_module.pretraining_triplet(Params(pretrain_triplet="hinge", triplet_margin=1.5))
    assert wider(points, labels).item() == pytest.approx((0.5 + 3.5) / 4, abs=1e-5)  # (1, 2) and (4, 2)


def test_no_grad_forward_in_train_mode_updates_batchnorm_statistics():
    """What the target forward relies on: torch.no_grad turns off gradients, not the running-statistics update."""
    norm = torch.nn.BatchNorm1d(3).train()
    with torch.no_grad():
        norm(torch.full((4, 3), 5.0) + torch.arange(4.0)[:, None])
    assert norm.running_mean.tolist() == pytest.approx([0.65] * 3)  # 0.9 * 0 + 0.1 * 6.5


class RandomDraws(Dataset):
    """Item i is (i, a number from torch's global generator): stands for a random augmentation."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return index, torch.rand(())


def test_endless_batches_cycle_passes_in_a_seeded_order_with_a_random_stream_of_their_own():
    loader = DataLoader(RandomDraws(), batch_size=4, sampler=ShuffledSampler(10, seed=3), drop_last=True)  # 2 a pass

    def draw(epoch, count, seed=3):
        batches = endless_batches(loader, epoch, seed)
        return [(indices.tolist(), values.tolist()) for (indices, values), _ in zip(batches, range(count))]

    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    drawn = draw(epoch=0, count=5)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global stream is left as it was
    torch.manual_seed(1)
    assert draw(epoch=0, count=5) == drawn  # whatever the global stream: order and draws set by (seed, epoch, pass)
    passes = [sum((indices for indices, _ in drawn[start : start + 2]), []) for start in (0, 2)]
    assert all(len(set(indices)) == 8 for indices in passes)  # each pass: 8 distinct of the 10 (drop_last)
    assert passes[0] != passes[1] and drawn[4][0] != drawn[0][0]  # a new pass, a new order
    assert draw(epoch=1, count=2) != drawn[:2] and draw(epoch=0, count=2, seed=4) != drawn[:2]
    assert draw(epoch=0, count=2) == drawn[:2]  # a resumed epoch starts over the same way
    empty = DataLoader(RandomDraws(), batch_size=11, sampler=ShuffledSampler(10), drop_last=True)
    with pytest.raises(ValueError, match="yields no batch"):
        next(endless_batches(empty, 0, 0))


def test_target_smaller_than_a_batch_is_refused_with_the_way_out(tiny_data_root):
    params = smoke_params(tiny_data_root, batch_ids=13)  # 13 x 4 = 52 images, the tiny target has 50
    _, target = worlds(params)
    with pytest.raises(
        ValueError,
        match=r"50 training images, fewer than one batch of 52 .*pretrain_target_forward "
        r"false",
    ):
        pretrain_module.target_forward_loader(target, params, seed=0)
    assert len(pretrain_module.target_forward_loader(target, smoke_params(tiny_data_root), seed=0)) == 50 // 16


def batchnorms(model):
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.BatchNorm1d) or isinstance(module, torch.nn.BatchNorm2d)
    }


@pytest.fixture(scope="module")
def runs_with_and_without_target_forward(tiny_data_root, tmp_path_factory):
    """The same pretraining with and without target forward. Every BatchNorm keeps a plain average of the batches
    it saw (momentum None) rather than an average biased towards its zero start, which more updates would shrink."""
    real_build = pretrain_module.build_model

    def build_averaging(*args, **kwargs):
        model = real_build(*args, **kwargs)
        for norm in batchnorms(model).values():
            norm.momentum = None
        return model

    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "build_model", build_averaging)
        for target_forward in (True, False):
            params = smoke_params(tiny_data_root, epochs=2, iters_per_epoch=2, pretrain_target_forward=target_forward)
            run = RunFolder(tmp_path_factory.mktemp(f"target_forward_{target_forward}"))
            model = pretrain_module.pretrain_model(params, *worlds(params), run, index=1, seed=params.seed)
            out[target_forward] = (model, run.read_history())
    return out


def test_target_batches_give_no_gradient_only_batchnorm_statistics(runs_with_and_without_target_forward):
    (with_target, history_with), (source_only, history_without) = (
        runs_with_and_without_target_forward[flag] for flag in (True, False)
    )
    learned = dict(source_only.named_parameters())
    for name, weight in with_target.named_parameters():  # the very same weights: the target gave no gradient
        assert torch.equal(weight, learned[name]), name
    losses = ["loss_ce", "loss_triplet", "train_acc"]
    assert history_with[losses].equals(history_without[losses])  # the same source batches, the same losses
    source_norms = batchnorms(source_only)
    for name, norm in batchnorms(with_target).items():  # each BatchNorm took in one target batch per source batch
        assert norm.num_batches_tracked.item() == 2 * source_norms[name].num_batches_tracked.item() == 2 * 4, name
        assert not torch.equal(norm.running_mean, source_norms[name].running_mean), name


def test_target_forward_moves_batchnorm_statistics_towards_the_target(
    runs_with_and_without_target_forward, tiny_data_root
):
    """The first BatchNorm normalises the first convolution's output: its running mean, placed on the segment from
    the source images' mean output (0) to the target images' (1), stays at the source without target forward and
    moves towards the target with it (not all the way: half the batches are the source's, and the augmentation's
    padding and erasing look alike in both worlds)."""
    with_target, source_only = (runs_with_and_without_target_forward[flag][0] for flag in (True, False))
    conv1 = source_only.backbone.conv1  # the same weights in both models
    source, target = worlds(smoke_params(tiny_data_root))

    def mean_output(records):
        with torch.no_grad():
            return torch.cat(
                [conv1(images).mean(dim=(2, 3)) for images, *_ in ordered_loader(records, 64, 32, batch_size=64)]
            ).mean(dim=0)

    source_mean, target_mean = mean_output(source.train), mean_output(target.train)
    gap = target_mean - source_mean

    def position(model):
        return float((model.backbone.bn1.running_mean - source_mean) @ gap / (gap @ gap))

    assert abs(position(source_only)) < 0.15
    assert 0.2 < position(with_target) < 1.0
    distances = [float((model.backbone.bn1.running_mean - target_mean).norm()) for model in (with_target, source_only)]
    assert distances[0] < distances[1]


def test_a_seed_repeats_a_target_forward_run_exactly(tiny_data_root, tmp_path):
    params = smoke_params(tiny_data_root, epochs=2, iters_per_epoch=2)
    assert params.pretrain_target_forward and params.pretrain_triplet == "soft"  # MMT's recipe is the default
    runs = [RunFolder(tmp_path / name) for name in ("first", "second")]
    models = [pretrain_module.pretrain_model(params, *worlds(params), run, index=1, seed=params.seed) for run in runs]
    for (name, a), (_, b) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        assert torch.equal(a, b), name
    assert runs[0].read_history().equals(runs[1].read_history())


def test_bn_group_size_zero_trains_todays_model_bit_for_bit_and_groups_reach_both_forwards(tiny_data_root):
    """bn_group_size 0 (the default) leaves prepare_model's model as it was: the same outputs and gradients, bit for
    bit, as the model without it. With groups, every BatchNorm of the trained model normalises per group, and each
    forward (the source batch, then the target batch) updates its running statistics once."""
    params = smoke_params(tiny_data_root, iters_per_epoch=1)
    torch.manual_seed(0)
    model = pretrain_module.build_model("compact", num_classes=4, width=4).train()
    reference = copy.deepcopy(model)
    prepared = pretrain_module.prepare_model(model, params, torch.device("cpu"))
    images = torch.randn(16, 3, 32, 16)
    results = []
    for network in (reference, prepared):
        features, logits = network(images)
        (features.square().mean() + logits.square().mean()).backward()
        results.append([features, logits, *(p.grad for p in network.parameters() if p.grad is not None)])
    assert len(results[0]) == len(results[1]) and all(map(torch.equal, *results))

    grouped = pretrain_module.PretrainTrainer(
        smoke_params(tiny_data_root, iters_per_epoch=1, bn_group_size=8), *worlds(params), index=1, seed=0
    )
    norms = batchnorms(grouped.model)
    assert norms and all(norm.group_size == 8 for norm in norms.values())
    grouped.train_epoch(0)
    assert {norm.num_batches_tracked.item() for norm in norms.values()} == {2}  # source + target forward, one each
    with pytest.raises(ValueError, match="bn_group_size 6 does not divide the 16 images"):
        pretrain_module.PretrainTrainer(smoke_params(tiny_data_root, bn_group_size=6), *worlds(params), index=1, seed=0)

"""Source pretraining: an interrupted run resumes and ends exactly where an uninterrupted one ends (CPU, same seed)."""
import pytest
import torch

from canu_core.config import load_params
from canu_core.data.catalog import load_dataset
from canu_core.engine import pretrain as pretrain_module
from canu_core.engine.common import relabel, warmup_multistep
from canu_core.runs import RunFolder, project_root


def smoke_params(data_root, **changes):
    return load_params(project_root() / "params" / "smoke.yaml", overrides={"data_root": str(data_root), "device": "cpu",
                                                       "n_models": 1, "epochs": 3, "iters_per_epoch": 3, **changes})


def worlds(params):
    return (load_dataset(params.source, params.data_root, params.world_seed),
            load_dataset(params.target, params.data_root, params.world_seed))


class Interrupted(Exception):
    pass


def interrupting_build_model(after_training_steps):
    """build_model whose model raises once it has run `after_training_steps` training forwards."""
    real_build = pretrain_module.build_model
    calls = {"n": 0}

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)

        def hook(module, inputs):
            if module.training:
                calls["n"] += 1
                if calls["n"] > after_training_steps:
                    raise Interrupted

        model.register_forward_pre_hook(hook)
        return model

    return build


def test_interrupted_run_resumes_to_identical_weights_and_metrics(tiny_data_root, tmp_path, monkeypatch):
    params = smoke_params(tiny_data_root)
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

    monkeypatch.setattr(pretrain_module, "train_epoch", no_training)
    again = pretrain_module.pretrain_model(params, source, target, run, index=1, seed=params.seed)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


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
        loaded = pretrain_module.load_source_model(run, index=1, which=which)
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(FileNotFoundError, match=r"model2_last\.pt: run notebook 01 .*model1_best"):
        pretrain_module.load_source_model(run, index=2)

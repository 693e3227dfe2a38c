"""The GPU-ready switches, on the CPU where they can run there: mixed precision's rule and a bfloat16 autocast
epoch, channels_last models and trainers, SyncBatchNorm's conversion and its refusals, and the kNN search that a
GPU runs (torch.topk on blocks) against the CPU's faiss heaps. tests/test_gpu.py runs the same switches on CUDA."""

import numpy as np
import pytest
import torch
from test_pretrain import worlds
from torch import nn

from canu_core import distributed
from canu_core.cluster.kreciprocal import nearest_neighbour_lists, neighbours_by_topk
from canu_core.config import ConfigError, load_params, make_params
from canu_core.engine import pretrain as pretrain_module
from canu_core.engine.adaptation import Adaptation
from canu_core.engine.common import MixedPrecision, prepare_model
from canu_core.models import build_model
from canu_core.runs import project_root


def smoke(data_root, **changes):
    overrides = {"data_root": str(data_root), "device": "cpu", "n_models": 1, "iters_per_epoch": 2, **changes}
    return load_params(project_root() / "params" / "smoke.yaml", overrides=overrides)


def test_mixed_precision_is_off_on_the_cpu_whatever_the_parameters_say():
    for dtype in ("float16", "bfloat16"):
        precision = MixedPrecision.for_run(make_params({"amp": True, "amp_dtype": dtype}), torch.device("cpu"))
        assert not precision.enabled and not precision.scaler.is_enabled()
        with precision.autocast():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_float16_scales_the_loss_and_bfloat16_does_not():
    assert MixedPrecision(True, torch.float16, "cpu").scaler.is_enabled()
    assert not MixedPrecision(True, torch.bfloat16, "cpu").scaler.is_enabled()
    assert not MixedPrecision(False, torch.float16, "cpu").scaler.is_enabled()


def test_bfloat16_on_a_gpu_without_it_is_refused_naming_the_way_out(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    with pytest.raises(ValueError, match=r"Tesla V100 has no bfloat16.*set amp_dtype float16"):
        MixedPrecision.for_run(make_params({"amp_dtype": "bfloat16"}), torch.device("cuda"))


def test_amp_dtype_is_one_of_two_names():
    with pytest.raises(ConfigError, match=r"'amp_dtype': expected one of 'float16', 'bfloat16', found 'half'"):
        make_params({"amp_dtype": "half"})


def test_a_bfloat16_autocast_epoch_trains_in_bfloat16_and_keeps_float32_weights(tiny_data_root):
    """The pretraining epoch with autocast on (bfloat16, which CPU autocast runs): the convolutions compute in
    bfloat16, the losses stay finite, every weight moves and stays float32, and no loss scale is kept."""
    params = smoke(tiny_data_root, pretrain_target_forward=False)
    source, target = worlds(params)
    trainer = pretrain_module.PretrainTrainer(params, source, target, index=1, seed=0)
    seen = []
    trainer.model.backbone.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    before = {name: value.clone() for name, value in trainer.model.named_parameters()}
    trainer.precision = MixedPrecision(True, torch.bfloat16, "cpu")
    losses = trainer.train_epoch(0)
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert np.isfinite([losses["loss_ce"], losses["loss_triplet"]]).all() and losses["loss_ce"] > 0
    for name, value in trainer.model.named_parameters():
        assert value.dtype == torch.float32
        if value.requires_grad:
            assert not torch.equal(value, before[name]), name
    assert trainer.precision.state_dict() == {}


def test_channels_last_model_computes_the_same_function():
    torch.manual_seed(0)
    model = build_model("compact_ibn", num_classes=5).eval()
    images = torch.randn(4, 3, 64, 32)
    expected = model(images)
    model.use_channels_last()
    convolutions = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    assert torch.allclose(model(images), expected, atol=1e-5)
    model.use_channels_last(False)
    assert all(w.is_contiguous() for w in convolutions)


def test_a_trainer_with_channels_last_trains_as_without_it_within_rounding(tiny_data_root):
    """Same seed, same batches: the first epoch's losses agree to rounding (the layout changes the order of the
    convolutions' sums, nothing else), and the trained weights are held channels_last."""
    losses = {}
    for channels_last in (False, True):
        params = smoke(tiny_data_root, channels_last=channels_last, eval_every_epoch=False, epochs=2)
        source, target = worlds(params)
        trainer = pretrain_module.PretrainTrainer(params, source, target, index=1, seed=0)
        losses[channels_last] = trainer.run_epoch(0)
        weight = trainer.model.backbone.conv1.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    for name in ("loss_ce", "loss_triplet"):
        assert losses[True][name] == pytest.approx(losses[False][name], rel=1e-4)


def distributed_group(monkeypatch):
    monkeypatch.setattr(distributed, "group", lambda: distributed.Group(rank=0, world_size=2))


def test_sync_bn_changes_nothing_in_one_process():
    model = build_model("compact_ibn", num_classes=5)
    assert prepare_model(model, make_params({"sync_bn": True}), torch.device("cpu")) is model
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


def test_sync_bn_under_torchrun_makes_every_batchnorm_a_syncbatchnorm_with_the_same_state(monkeypatch):
    """The conversion itself (no GPU is touched by it): BatchNorm layers become SyncBatchNorm, IBN's instance
    normalisation stays, and the weights and statistics are the model's own."""
    distributed_group(monkeypatch)
    model = build_model("compact_ibn", num_classes=5)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    batchnorms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    instancenorms = sum(isinstance(m, nn.InstanceNorm2d) for m in model.modules())
    converted = distributed.synchronised_batchnorm(model, True, torch.device("cuda"))
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in converted.modules()) == batchnorms > 0
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in converted.modules()) == instancenorms > 0
    assert converted.state_dict().keys() == state.keys()
    assert all(torch.equal(converted.state_dict()[name], value) for name, value in state.items())


def test_sync_bn_on_cpu_processes_is_refused_before_training(monkeypatch):
    distributed_group(monkeypatch)
    model = build_model("compact", num_classes=5)
    with pytest.raises(ValueError, match=r"sync_bn: torch's SyncBatchNorm normalises CUDA tensors only.*cpu"):
        prepare_model(model, make_params({"sync_bn": True}), torch.device("cpu"))


class NoMethod(Adaptation):
    """Adaptation's checks alone (its abstract steps are never called here)."""

    cluster = train = trained_models = evaluated_model = networks_state = load_networks_state = None


def test_sync_bn_with_the_embedding_adversary_input_is_refused_under_torchrun(monkeypatch, tiny_data_root):
    distributed_group(monkeypatch)
    params = make_params({"sync_bn": True, "adversary": "canu", "adversary_features": "embedding", "device": "cpu"})
    with pytest.raises(ValueError, match="sync_bn with adversary_features embedding"):
        NoMethod("mmt", params, None, {})
    NoMethod("mmt", make_params({**vars(params), "adversary_features": "pooled"}), None, {})  # accepted


def test_the_gpu_neighbour_search_finds_the_cpu_search_lists():
    """neighbours_by_topk (what a GPU runs) on the CPU against faiss's heaps: every row's k neighbours have the
    same similarities in the same order (equal similarities may swap places), and the same lowest similarity."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2500, 32, generator=generator)  # more than two search blocks of 1024 rows
    k = 21
    heaps, topk = nearest_neighbour_lists(features, k), neighbours_by_topk(features, k)
    unit = torch.nn.functional.normalize(features.double(), dim=1)
    similarity = unit @ unit.T
    for found in (heaps, topk):
        assert found.indices.shape == (2500, k) and (found.indices[:, 0] == np.arange(2500)).all()
    rows = torch.arange(2500)[:, None]
    heap_values = similarity[rows, torch.from_numpy(heaps.indices)]
    topk_values = similarity[rows, torch.from_numpy(topk.indices)]
    assert torch.allclose(topk_values, heap_values, atol=1e-6)
    assert (heaps.indices == topk.indices).mean() > 0.999
    np.testing.assert_allclose(topk.lowest_similarity, heaps.lowest_similarity, atol=1e-6)

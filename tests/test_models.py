"""Backbones, the re-ID head, BatchNorm statistics over groups of a batch and local weight loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from canu_core.models import (
    BACKBONES,
    IBN,
    build_backbone,
    build_discriminator,
    build_model,
    group_batchnorm,
    load_backbone_weights,
)

OFFICIAL_IBN_A = Path("/work/shared/notes/ibn_resnet50_a_state_dict.json")
FEATURE_DIMS = {"resnet50": 2048, "ibn_resnet50a": 2048, "compact": 256, "compact_ibn": 256}
TOTAL_STRIDE = {"resnet50": 32, "ibn_resnet50a": 32, "compact": 16, "compact_ibn": 16}  # with last_stride=2


@pytest.fixture(scope="module")
def official_entries() -> list[tuple[str, list[int]]]:
    return [(name, list(shape)) for name, shape in json.loads(OFFICIAL_IBN_A.read_text())["state_dict"]]


@pytest.fixture(scope="module")
def ibn_backbone():
    return build_backbone("ibn_resnet50a")


def fake_state_dict(entries) -> dict[str, torch.Tensor]:
    """Random tensors with the given names and shapes; BN counters are integers, as in a real checkpoint."""
    torch.manual_seed(0)
    return {
        name: torch.tensor(7) if name.endswith("num_batches_tracked") else torch.randn(shape) for name, shape in entries
    }


def test_ibn_resnet50a_names_and_shapes_equal_the_official_release(ibn_backbone, official_entries):
    ours = [(name, list(t.shape)) for name, t in ibn_backbone.state_dict().items()]
    classifier = [("fc.weight", [1000, 2048]), ("fc.bias", [1000])]
    assert len(official_entries) == 346
    assert ours + classifier == official_entries
    assert isinstance(ibn_backbone.layer3[5].bn1, IBN) and not isinstance(ibn_backbone.layer4[0].bn1, IBN)


def test_official_state_dict_loads_unchanged(ibn_backbone, official_entries, tmp_path):
    state = fake_state_dict(official_entries)
    torch.save(state, tmp_path / "resnet50_ibn_a.pth")
    load_backbone_weights(ibn_backbone, tmp_path / "resnet50_ibn_a.pth")
    loaded = ibn_backbone.state_dict()
    assert torch.equal(loaded["layer1.0.bn1.IN.weight"], state["layer1.0.bn1.IN.weight"])
    assert torch.equal(loaded["layer4.2.bn3.running_var"], state["layer4.2.bn3.running_var"])


def test_wrapped_and_prefixed_state_dict_loads(tmp_path):
    source, target = build_backbone("compact"), build_backbone("compact")
    prefixed = {"module." + name: t for name, t in source.state_dict().items()}
    torch.save({"state_dict": prefixed, "epoch": 3}, tmp_path / "checkpoint.pth")
    load_backbone_weights(target, tmp_path / "checkpoint.pth")
    assert all(torch.equal(t, source.state_dict()[name]) for name, t in target.state_dict().items())


def test_mismatched_file_lists_every_bad_name(ibn_backbone, official_entries, tmp_path):
    state = fake_state_dict(official_entries)
    state["layer1.0.bn1.weight"] = state.pop("layer1.0.bn1.IN.weight")  # a plain-ResNet name
    state["layer2.0.conv1.weight"] = torch.randn(128, 256, 3, 3)
    state["extra.weight"] = torch.randn(3)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError) as error:
        load_backbone_weights(ibn_backbone, tmp_path / "wrong.pth")
    message = str(error.value)
    assert "1 missing: layer1.0.bn1.IN.weight" in message
    assert "2 unexpected: layer1.0.bn1.weight, extra.weight" in message
    assert "1 wrong shape: layer2.0.conv1.weight (128, 256, 3, 3) != (128, 256, 1, 1)" in message


def test_missing_weights_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_backbone_weights(build_backbone("compact"), tmp_path / "nowhere.pth")


def test_pretrained_path_reaches_the_backbone(tmp_path):
    source = build_backbone("compact", width=8)
    torch.save(source.state_dict(), tmp_path / "compact.pth")
    model = build_model("compact", num_classes=3, pretrained_path=tmp_path / "compact.pth", width=8)
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_feature_map_size_follows_last_stride(arch):
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        stride_one = build_backbone(arch, last_stride=1).eval()(images)
        stride_two = build_backbone(arch, last_stride=2).eval()(images)
    rows, cols = 64 // TOTAL_STRIDE[arch], 32 // TOTAL_STRIDE[arch]
    assert stride_two.shape == (2, FEATURE_DIMS[arch], rows, cols)
    assert stride_one.shape == (2, FEATURE_DIMS[arch], 2 * rows, 2 * cols)


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_train_and_eval_outputs(arch):
    model = build_model(arch, num_classes=5)
    assert model.feature_dim == FEATURE_DIMS[arch]
    images = torch.randn(4, 3, 64, 32)
    features, logits = model.train()(images)
    assert features.shape == (4, model.feature_dim) and logits.shape == (4, 5)
    with torch.no_grad():
        embeddings = model.eval()(images)
    assert embeddings.shape == (4, model.feature_dim)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(4), atol=1e-5)


def test_bn_neck_bias_stays_zero_through_training():
    model = build_model("compact", num_classes=3, width=8).train()
    neck = model.bn_necks[0]
    assert not neck.bias.requires_grad and torch.equal(neck.bias, torch.zeros(64))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _, logits = model(torch.randn(4, 3, 64, 32))
    logits.sum().backward()
    optimizer.step()
    assert torch.equal(neck.bias, torch.zeros(64))
    assert neck.weight.grad is not None


def test_reset_classifier_copies_given_rows_and_checks_shape():
    model = build_model("compact", num_classes=3, width=8)
    centroids = torch.nn.functional.normalize(torch.randn(7, 64), dim=1)
    model.reset_classifier(7, init_weights=centroids)
    assert model.classifier.bias is None and torch.equal(model.classifier.weight, centroids)
    with pytest.raises(ValueError, match=r"\(7, 64\)"):
        model.reset_classifier(7, init_weights=torch.randn(7, 32))
    model.reset_classifier(0)
    features, logits = model.train()(torch.randn(2, 3, 64, 32))
    assert features.shape == (2, 64) and logits is None


def test_part_outputs_and_halves():
    torch.manual_seed(0)
    model = build_model("compact", num_classes=0, parts=True, width=8)
    images = torch.randn(3, 3, 64, 32)
    full, upper, lower = model.train()(images)
    assert full.shape == upper.shape == lower.shape == (3, 64)
    # the 4-row map splits into two 2-row halves, so the full-map mean is the mean of the two half means
    assert torch.allclose(full, (upper + lower) / 2, atol=1e-6)
    assert len(model.bn_necks) == 3
    with torch.no_grad():
        assert [torch.equal(a, b) for a, b in zip(model.pooled_features(images), (full, upper, lower))] == [True] * 3
    # SSG's global embedding of a full-body feature: ReLU(BN(W full)), in train mode with the batch's statistics
    embedding = model.global_embedding(full)
    projected = full @ model.global_embedding[0].weight.T
    expected = ((projected - projected.mean(0)) / (projected.var(0, unbiased=False) + 1e-5).sqrt()).clamp(min=0)
    assert embedding.shape == (3, 64) and torch.allclose(embedding, expected, atol=1e-4)
    with torch.no_grad():
        parts = model.eval()(images)
    assert [p.shape for p in parts] == [(3, 64)] * 3
    assert all(torch.allclose(p.norm(dim=1), torch.ones(3), atol=1e-5) for p in parts)


def test_global_embedding_only_in_the_parts_model_with_ssg_initialisation():
    torch.manual_seed(0)
    plain = build_model("compact", num_classes=3, width=8)
    assert not hasattr(plain, "global_embedding")
    assert not any("global_embedding" in name for name in plain.state_dict())
    linear, norm, relu = build_model("compact", num_classes=0, parts=True, width=8).global_embedding
    assert linear.bias is None and linear.weight.shape == (64, 64)
    assert linear.weight.std().item() == pytest.approx(0.001, rel=0.05)  # N(0, 0.001^2), 4096 draws
    assert torch.equal(norm.weight, torch.ones(64)) and torch.equal(norm.bias, torch.zeros(64))
    assert isinstance(relu, torch.nn.ReLU)


def test_invalid_configurations_raise_clear_errors():
    with pytest.raises(ValueError, match="valid: compact, compact_ibn, ibn_resnet50a, resnet50"):
        build_model("resnet18", num_classes=3)
    with pytest.raises(ValueError, match="last_stride"):
        build_backbone("compact", last_stride=3)
    with pytest.raises(ValueError, match="num_classes=0"):
        build_model("compact", num_classes=5, parts=True)
    with pytest.raises(ValueError, match="2 rows"):
        build_model("compact", num_classes=0, parts=True, last_stride=2).eval()(torch.randn(1, 3, 16, 16))


# ---------------------------------------------------------------- BatchNorm over groups of a batch


def tiny_model(parts: bool = False):
    torch.manual_seed(0)
    return build_model("compact_ibn", num_classes=0 if parts else 5, parts=parts, width=4).train()


def forward_and_gradients(model, images):
    """The train-mode outputs, the embedding the discriminators read, every gradient of a loss on all of them and
    the buffers after the forward."""
    model.zero_grad(set_to_none=True)
    features, logits = model(images)
    embedding = model.embedding(features)
    (features.square().mean() + logits.square().mean() + embedding[:, 0].sum()).backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return [features, logits, embedding], gradients, {name: b.clone() for name, b in model.named_buffers()}


def assert_identical(first, second):
    (outputs, gradients, buffers), (outputs2, gradients2, buffers2) = first, second
    assert all(torch.equal(a, b) for a, b in zip(outputs, outputs2))
    assert gradients.keys() == gradients2.keys() and all(torch.equal(gradients[n], gradients2[n]) for n in gradients)
    assert buffers.keys() == buffers2.keys() and all(torch.equal(buffers[n], buffers2[n]) for n in buffers)


def test_group_size_zero_leaves_the_model_untouched_and_one_group_is_plain_batchnorm_bit_for_bit():
    model = tiny_model()
    assert group_batchnorm(model, 0) is model  # size 0: today's modules, so today's numbers
    images = torch.randn(8, 3, 32, 16)
    expected = forward_and_gradients(copy.deepcopy(model), images)
    for size in (8, 16):  # one group holding the whole batch, or more than it
        grouped = group_batchnorm(copy.deepcopy(model), size)
        assert sum(type(m).__name__.startswith("Grouped") for m in grouped.modules()) > 5
        assert_identical(forward_and_gradients(grouped, images), expected)
    with pytest.raises(ValueError, match=">= 0"):
        group_batchnorm(model, -1)


@pytest.mark.parametrize("parts", [False, True])
def test_each_group_is_normalised_as_its_own_batch_and_only_the_first_updates_the_running_statistics(parts):
    plain = tiny_model(parts)
    grouped = group_batchnorm(copy.deepcopy(plain), 4)
    images = torch.randn(12, 3, 32, 16)
    devices = [copy.deepcopy(plain) for _ in range(3)]  # three devices of 4 images
    outputs = grouped(images)
    alone = [device(share) for device, share in zip(devices, images.split(4))]
    outputs = outputs if parts else [outputs[0], outputs[1]]
    alone = [device_outputs if parts else device_outputs[:2] for device_outputs in alone]
    for output, *per_device in zip(outputs, *alone):
        assert torch.allclose(output, torch.cat(per_device), atol=1e-6)
    assert not torch.allclose(outputs[0], copy.deepcopy(plain)(images)[0], atol=1e-3)  # the whole batch's differ
    # the embedding the discriminators read: each group's BN-neck statistics, as the forward's
    embedding = grouped.embedding(outputs[0])
    per_device = torch.cat([device.embedding(output[0]) for device, output in zip(devices, alone)])
    assert torch.allclose(embedding, per_device, atol=1e-6)
    # running statistics and counters: the first device's, one update per forward (what rank 0 keeps)
    for (name, buffer), first in zip(grouped.named_buffers(), devices[0].buffers()):
        assert torch.equal(buffer, first), name
    assert grouped.bn_necks[0].num_batches_tracked.item() == 1
    # the same weights and buffers under the same names: checkpoints load both ways; eval mode ignores the groups
    assert list(grouped.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(grouped.state_dict())
    with torch.no_grad():
        assert torch.equal(grouped.eval()(images)[0], plain.eval()(images)[0])


def test_grouped_discriminator_and_a_batch_that_does_not_split():
    torch.manual_seed(0)
    discriminator = build_discriminator("canu", feature_dim=8, num_cameras=3)
    grouped = group_batchnorm(copy.deepcopy(discriminator), 4)
    features, centroids = torch.randn(8, 8), torch.randn(8, 8)
    expected = torch.cat([copy.deepcopy(discriminator)(f, c) for f, c in zip(features.split(4), centroids.split(4))])
    assert torch.allclose(grouped(features, centroids), expected, atol=1e-6)
    # a functional call (the adversary's generator term) reads the weights it is given, group by group as well
    weights = {name: p.detach() for name, p in grouped.named_parameters()}
    weights |= {name: b.clone() for name, b in grouped.named_buffers()}
    called = torch.func.functional_call(grouped, weights, (features, centroids))
    assert torch.allclose(called, expected, atol=1e-6)
    with pytest.raises(ValueError, match="6 images does not split into BatchNorm groups of 4"):
        grouped(features[:6], centroids[:6])

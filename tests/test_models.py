"""Backbones, the re-ID head and local weight loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from canu_core.models import BACKBONES, IBN, build_backbone, build_model, load_backbone_weights

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

"""Label-smoothed CE, batch-hard triplet and SSG's triplet against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from canu_core.losses import CrossEntropyLabelSmooth, SSGTripletLoss, TripletLoss

# Four points in 2-D, labels 0, 0, 1, 1. Pairwise distances:
#   d01 = 4, d02 = 3, d03 = sqrt(9 + 64) = sqrt(73), d12 = 5, d13 = 5, d23 = 8.
# hardest positive / hardest negative per anchor:
#   0: 4 / min(3, sqrt73) = 3     1: 4 / min(5, 5) = 5     2: 8 / min(3, 5) = 3     3: 8 / min(sqrt73, 5) = 5
# so d_ap - d_an = 1, -1, 5, 3.
POINTS = torch.tensor([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0], [3.0, 8.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_triplet_with_margin_by_hand():
    # relu(gap + 0.5) = 1.5, 0, 5.5, 3.5 -> mean 10.5 / 4
    assert TripletLoss(margin=0.5)(POINTS, LABELS).item() == pytest.approx(2.625, abs=1e-5)


def test_triplet_soft_margin_by_hand():
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = (softplus(1) + softplus(-1) + softplus(5) + softplus(3)) / 4
    assert TripletLoss(margin=None)(POINTS, LABELS).item() == pytest.approx(expected, abs=1e-5)


def test_triplet_is_zero_once_negatives_are_margin_farther():
    # two tight pairs 10 apart: d_ap = 1, d_an >= 10, so relu(1 - 10 + 0.5) = 0 for every anchor
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    assert TripletLoss(margin=0.5)(points, LABELS).item() == 0.0


def test_triplet_gradient_is_finite_with_a_singleton_label():
    features = torch.randn(5, 3, requires_grad=True)
    TripletLoss(margin=None)(features, torch.tensor([0, 1, 1, 2, 2])).backward()
    assert torch.isfinite(features.grad).all()


def test_triplet_needs_two_labels():
    with pytest.raises(ValueError, match="two labels"):
        TripletLoss()(POINTS, torch.zeros(4, dtype=torch.long))


# SSG's triplet on five points on a line, in groups (the sampler's identities) 0, 0, 0, 1, 1 with part labels
# 5, 5, 6, 6, 7: image 2 is in group 0 but shares image 3's part label.
SSG_POINTS = torch.tensor([[0.0], [1.0], [3.0], [4.0], [8.0]])
SSG_GROUPS = torch.tensor([0, 0, 0, 1, 1])
SSG_PART_LABELS = torch.tensor([5, 5, 6, 6, 7])


def test_ssg_triplet_by_hand():
    # Positive pairs (same group, j < l): (0, 1) d 1, (0, 2) d 3, (1, 2) d 2, (3, 4) d 4.
    # Anchor j's nearest other-part-label sample: 0 -> image 2 (3), 1 -> image 2 (2), 3 -> image 1 (3; image 2
    # shares its label). relu(d_jl - d_jn + 0.5) = 0, 0.5, 0.5, 1.5 -> mean 2.5 / 4.
    loss = SSGTripletLoss(margin=0.5)(SSG_POINTS, SSG_PART_LABELS, groups=SSG_GROUPS)
    assert loss.item() == pytest.approx(0.625, abs=1e-5)


def test_ssg_triplet_labels_are_the_groups_by_default():
    # Same pairs; negatives by group: 0 -> image 3 (4), 1 -> image 3 (3), 3 -> image 2 (1).
    # relu(1 - 4 + 0.5), relu(3 - 4 + 0.5), relu(2 - 3 + 0.5), relu(4 - 1 + 0.5) = 0, 0, 0, 3.5 -> mean 3.5 / 4.
    assert SSGTripletLoss(margin=0.5)(SSG_POINTS, SSG_GROUPS).item() == pytest.approx(0.875, abs=1e-5)


def test_ssg_triplet_skips_anchors_without_a_negative():
    # A batch sharing one part label has no negative for any anchor: every pair is skipped, the loss is an exact 0
    # that still backpropagates (zero gradient), where SSG's code would fail on an empty min.
    features = SSG_POINTS.clone().requires_grad_()
    loss = SSGTripletLoss(margin=0.5)(features, torch.full((5,), 5), groups=SSG_GROUPS)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(features.grad, torch.zeros_like(features))
    # groups of one image give no positive pair either
    assert SSGTripletLoss(margin=0.5)(SSG_POINTS, SSG_PART_LABELS, groups=torch.arange(5)).item() == 0.0


def test_label_smoothing_by_hand():
    # logits log(1), log(2), log(1): probabilities 1/4, 1/2, 1/4; target 1, epsilon 0.1, 3 classes:
    # q = (0.1/3, 0.9 + 0.1/3, 0.1/3); loss = -sum q log p = 2 * (0.1/3) * ln 4 + (0.9 + 0.1/3) * ln 2
    #   = ln 2 * (0.4/3 + 0.9 + 0.1/3) = ln 2 * 16/15
    logits = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))
    loss = CrossEntropyLabelSmooth(num_classes=3, epsilon=0.1)(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(2) * 16 / 15, abs=1e-6)


def test_label_smoothing_zero_epsilon_is_cross_entropy_and_batch_is_averaged():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    targets = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(logits, targets)
    assert CrossEntropyLabelSmooth(3, epsilon=0.0)(logits, targets).item() == pytest.approx(expected.item())


def test_label_smoothing_checks_class_count():
    with pytest.raises(ValueError, match="4 classes"):
        CrossEntropyLabelSmooth(num_classes=3)(torch.zeros(2, 4), torch.tensor([0, 1]))

import numpy as np
import pytest

from canu_core.cluster.diagnostics import neighbour_agreement


def test_neighbour_agreement_by_hand():
    # Two tight pairs far apart: each point's nearest neighbour is its pair partner.
    features = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    pair = np.array([0, 0, 1, 1])
    mixed = np.array([0, 1, 0, 1])
    by_pair = neighbour_agreement(features, pair, k=1)
    assert by_pair["same_label_rate"] == 1.0
    assert by_pair["chance_rate"] == pytest.approx(4 / 12)  # 2 labels x 2 points: (2*1 + 2*1) / (4*3)
    assert by_pair["lift"] == pytest.approx(3.0)
    assert neighbour_agreement(features, mixed, k=1)["same_label_rate"] == 0.0
    # k=2: the partner plus the nearer point of the other pair (1 of 2 neighbours shares the pair label).
    assert neighbour_agreement(features, pair, k=2)["same_label_rate"] == 0.5

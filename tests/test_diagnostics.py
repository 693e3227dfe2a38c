import math

import numpy as np
import pytest

from canu_core.cluster.diagnostics import (
    camera_adjusted_mutual_information,
    camera_information,
    camera_mutual_information,
    camera_probe_accuracy,
    cluster_summary,
    clustering_quality,
    lost_identities,
    neighbour_agreement,
    same_camera_neighbours,
)


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
    # Each label has 2 points: at most 1 neighbour can share it; with k=2 that caps the rate at 1/2.
    assert neighbour_agreement(features, pair, k=1)["attainable_rate"] == 1.0
    assert neighbour_agreement(features, pair, k=2)["attainable_rate"] == 0.5
    assert neighbour_agreement(features, pair, k=2)["attained"] == 1.0


def test_same_camera_neighbours_by_hand():
    # Five images, cameras 0, 0, 0, 1, 1: another image shares one's camera with chance (3*2 + 2*1) / (5*4) = 0.4.
    camids = np.array([0, 0, 0, 1, 1])
    # By camera: camera 0's images near (1, 0), camera 1's near (0, 1); each image's nearest is in its camera.
    by_camera = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.2], [0.0, 1.0], [0.1, 1.0]])
    # Crossed: each camera-1 image sits on a camera-0 image; the third camera-0 image, at (-0.2, 1), is nearer to
    # camera 0's (0, 1) than to camera 1's (0.01, 1): nearest-neighbour shares by image are 0, 0, 1, 0, 0.
    crossed = np.array([[1.0, 0.0], [0.0, 1.0], [-0.2, 1.0], [1.0, 0.01], [0.01, 1.0]])
    table = same_camera_neighbours({"source": by_camera, "adapted": crossed}, camids, k=1)
    assert table.index.tolist() == ["source", "adapted"] and table.index.name == "model"
    assert table["same_camera"].tolist() == [1.0, pytest.approx(1 / 5)]
    assert table["chance"].tolist() == [pytest.approx(0.4)] * 2
    # k = 4: every other image is a neighbour, so the share is chance itself, whatever the features
    assert same_camera_neighbours({"any": crossed}, camids, k=4)["same_camera"].iloc[0] == pytest.approx(0.4)


def test_cluster_summary():
    summary = cluster_summary([0, 0, 1, -1, -1, 2, 2, 2])
    assert summary == {
        "num_points": 8,
        "num_clusters": 3,
        "num_outliers": 2,
        "outlier_fraction": 0.25,
        "largest_cluster": 3,
    }
    assert cluster_summary([-1, -1])["num_clusters"] == 0


def test_clustering_quality_by_hand():
    true_ids = [0, 0, 1, 1]
    # Pairs in one cluster: (0,1) (0,2) (1,2), one of them same-id; same-id pairs: (0,1) (2,3).
    quality = clustering_quality([0, 0, 0, 1], true_ids)
    assert quality["pairwise_precision"] == pytest.approx(1 / 3)
    assert quality["pairwise_recall"] == pytest.approx(1 / 2)
    assert quality["ari"] == pytest.approx(0.0)  # index 1 = its expectation 3 * 2 / 6, max (3 + 2) / 2
    mutual = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    entropy_true, entropy_pseudo = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert quality["nmi"] == pytest.approx(mutual / ((entropy_true + entropy_pseudo) / 2))
    perfect = clustering_quality([7, 7, 3, 3], true_ids)  # label values do not matter
    assert perfect == pytest.approx({"nmi": 1.0, "ari": 1.0, "pairwise_precision": 1.0, "pairwise_recall": 1.0})


def test_outliers_count_as_singletons():
    quality = clustering_quality([0, 0, -1, -1], [0, 0, 1, 1])
    assert quality["pairwise_precision"] == 1.0 and quality["pairwise_recall"] == 0.5
    assert quality["ari"] == pytest.approx(clustering_quality([0, 0, 1, 2], [0, 0, 1, 1])["ari"])
    assert math.isnan(clustering_quality([-1, -1, -1, -1], [0, 0, 1, 1])["pairwise_precision"])


def test_camera_mutual_information():
    # Outlier left out: the two clusters sit on two cameras, equally often: MI = ln 2.
    assert camera_mutual_information([0, 0, 1, 1, -1], [0, 0, 1, 1, 0]) == pytest.approx(math.log(2))
    assert camera_mutual_information([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # 3 ids on 2 cameras: id 0 on camera 0, id 1 on camera 1, id 2 on both. MI = H(cam) - H(cam | id).
    expected = math.log(2) - (2 / 6) * math.log(2)
    assert camera_mutual_information([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 0, 1]) == pytest.approx(expected)
    assert camera_mutual_information([-1, -1], [0, 1]) == 0.0


def test_camera_adjusted_mutual_information_subtracts_the_permutation_expectation():
    """By hand. Two clusters of 2 on two cameras of 2 images (n = 4): a random permutation puts n11 = 0, 1 or 2
    camera-0 images in cluster 0 with probabilities 1/6, 4/6, 1/6 (hypergeometric); MI is ln 2 at 0 or 2 and 0 at
    1, so E[MI] = ln 2 / 3 and the perfectly camera-aligned clusters score ln 2 - ln 2 / 3."""
    assert camera_adjusted_mutual_information([0, 0, 1, 1, -1], [0, 0, 1, 1, 1]) == pytest.approx(2 / 3 * math.log(2))
    # Three clusters of 2, each on both cameras (MI 0). Of the C(6, 3) = 20 placements of the 3 camera-0 images,
    # 8 give (1, 1, 1) per cluster (MI 0) and 12 give (2, 1, 0) in some order (two pure cells: MI = 2/3 ln 2):
    # E[MI] = 12/20 * 2/3 ln 2 = 0.4 ln 2, and the adjusted MI is below 0, where the plug-in one says 0.
    labels, cameras = [0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1]
    assert camera_mutual_information(labels, cameras) == pytest.approx(0.0)
    assert camera_adjusted_mutual_information(labels, cameras) == pytest.approx(-0.4 * math.log(2))
    assert camera_adjusted_mutual_information([-1, -1], [0, 1]) == 0.0


def test_adjusted_mutual_information_of_labels_that_ignore_the_camera_is_near_zero_where_the_plug_in_is_not():
    """The issue's case: 142 random clusters over 1,524 images and 8 cameras."""
    rng = np.random.default_rng(0)
    labels, cameras = rng.integers(0, 142, 1524), rng.integers(0, 8, 1524)
    assert camera_mutual_information(labels, cameras) > 0.3
    assert abs(camera_adjusted_mutual_information(labels, cameras)) < 0.03


def test_pseudo_labels_and_true_ids_are_measured_on_the_same_images():
    # true ids 0 and 1 each span both cameras; the clustering keeps only images 0, 1, 4, 5 (one camera per id):
    # over those, the true ids tell the camera exactly (ln 2), where over all six they would tell it less
    pseudo = [0, 0, -1, -1, 1, 1]
    true = [0, 0, 0, 1, 1, 1]
    cameras = [0, 0, 1, 0, 1, 1]
    information = camera_information(pseudo, true, cameras)
    assert information["mi_true_camera"] == pytest.approx(math.log(2))
    assert information["mi_pseudo_camera"] == pytest.approx(math.log(2))
    assert camera_mutual_information(true, cameras) < 0.3  # all six images: not the clustering's points
    assert information["ami_true_camera"] == pytest.approx(
        camera_adjusted_mutual_information([0, 0, 1, 1], [0, 0, 1, 1])
    )


def test_lost_identities():
    lost = lost_identities([0, -1, -1, 1, -1, -1], [1, 1, 2, 3, 3, 4])
    np.testing.assert_array_equal(lost, [2, 4])
    assert len(lost_identities([0, 1], [5, 6])) == 0


def test_camera_probe_accuracy():
    camids = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    separable = np.stack([camids * 2.0 - 1.0, np.arange(9) % 3], axis=1)
    result = camera_probe_accuracy(separable, camids, folds=3)
    assert result["accuracy"] == 1.0 and result["chance"] == pytest.approx(6 / 9)
    # No information: the probe can only answer the majority camera, right 2 times in each fold of 3.
    blind = camera_probe_accuracy(np.zeros((9, 4)), camids, folds=3)
    assert blind["accuracy"] == pytest.approx(2 / 3) and blind["accuracy_std"] == pytest.approx(0.0)

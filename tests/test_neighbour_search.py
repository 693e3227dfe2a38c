"""The approximate (inverted-file) neighbour search of the Jaccard distance: exact where it compares everything,
a true upper bound on each point's lowest similarity, deterministic, its errors clear, wired from the parameters."""

import numpy as np
import pytest
import torch

import canu_core.cluster.jaccard as jaccard
from canu_core.cluster import DBSCANClustering, NeighbourSearch, ivf_neighbour_lists, make_clustering
from canu_core.cluster.jaccard import ivf_cell_count, nearest_neighbour_lists
from canu_core.config import ConfigError, make_params
from canu_core.data.records import ImageRecord


def clustered_features(seed: int = 4, num_ids: int = 25, dim: int = 48, num_noise: int = 30) -> np.ndarray:
    """5 to 12 points around each of num_ids centres plus random points, shuffled."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 13, num_ids)
    centres = rng.normal(size=(num_ids, dim))
    points = np.repeat(centres, sizes, axis=0) + 0.6 * rng.normal(size=(sizes.sum(), dim))
    points = np.concatenate([points, rng.normal(size=(num_noise, dim))])
    return rng.permutation(points).astype(np.float32)


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    return torch.from_numpy(clustered_features())


def test_cell_count_is_the_power_of_two_nearest_sqrt_n():
    assert [ivf_cell_count(n) for n in (1, 3, 100, 12936, 32621, 100000, 400000)] == [1, 2, 8, 128, 128, 256, 512]


def test_probing_every_cell_gives_the_exact_lists(features):
    exact = nearest_neighbour_lists(features, 21)
    found = ivf_neighbour_lists(features, 21, lists=16, probes=16)
    np.testing.assert_array_equal(found.indices, exact.indices)  # no ties in these features: same order too


def test_each_point_finds_itself_first_and_most_lists_with_few_probes(features):
    exact = nearest_neighbour_lists(features, 11)
    found = ivf_neighbour_lists(features, 11, lists=16, probes=2)
    np.testing.assert_array_equal(found.indices[:, 0], np.arange(len(features)))
    recall = np.mean([len(np.intersect1d(a, b)) / 11 for a, b in zip(found.indices, exact.indices)])
    assert 0.5 < recall < 1.0  # an approximation, not a copy: 2 of 16 cells miss some neighbours


def test_lowest_similarity_is_an_upper_bound_exact_when_every_cell_is_read(features, monkeypatch):
    exact = nearest_neighbour_lists(features, 5).lowest_similarity
    bound = ivf_neighbour_lists(features, 5, lists=16, probes=2).lowest_similarity
    assert (bound >= exact - 1e-6).all() and (bound > exact + 1e-6).any()
    monkeypatch.setattr(jaccard, "FARTHEST_PROBES", 16)
    np.testing.assert_allclose(ivf_neighbour_lists(features, 5, lists=16, probes=2).lowest_similarity, exact, atol=1e-6)
    assert np.isnan(ivf_neighbour_lists(features, 5, lists=16, probes=2, lowest=False).lowest_similarity).all()


def test_deterministic_for_a_seed(features):
    first = ivf_neighbour_lists(features, 7, lists=8, probes=2, seed=3)
    again = ivf_neighbour_lists(features, 7, lists=8, probes=2, seed=3)
    np.testing.assert_array_equal(first.indices, again.indices)
    np.testing.assert_array_equal(first.lowest_similarity, again.lowest_similarity)


def test_small_query_blocks_give_the_same_lists(features, monkeypatch):
    whole = ivf_neighbour_lists(features, 9, lists=8, probes=3)
    monkeypatch.setattr(jaccard, "BLOCK_ELEMENTS", 64)  # a few queries per block
    blocked = ivf_neighbour_lists(features, 9, lists=8, probes=3)
    np.testing.assert_array_equal(blocked.indices, whole.indices)


@pytest.mark.parametrize("variant", ["mmt", "spcl"])
def test_pseudo_labels_with_every_cell_probed_equal_the_exact_ones(features, variant, monkeypatch):
    monkeypatch.setattr(jaccard, "FARTHEST_PROBES", 8)  # the exact lowest similarity, which "mmt" scales by
    exact = DBSCANClustering(jaccard=variant, k1=10, k2=4, rho=0.025)(features)
    search = NeighbourSearch("ivf", lists=8, probes=8)
    approximate = DBSCANClustering(jaccard=variant, k1=10, k2=4, rho=0.025, search=search)(features)
    assert exact.num_clusters > 10
    np.testing.assert_array_equal(approximate.labels, exact.labels)
    assert approximate.eps == exact.eps


def test_clear_errors(features):
    with pytest.raises(ValueError, match="unknown neighbour search 'hnsw'"):
        NeighbourSearch("hnsw")
    with pytest.raises(ValueError, match="probes >= 1"):
        NeighbourSearch("ivf", probes=0)
    with pytest.raises(ValueError, match="need 1 <= k"):
        ivf_neighbour_lists(features, len(features) + 1)
    with pytest.raises(ValueError, match="fewer than k=40 neighbours"):
        ivf_neighbour_lists(features, 40, lists=32, probes=1)  # cells of about 8 points


def test_parameters_choose_the_search():
    params = make_params({"neighbour_search": "ivf", "ivf_lists": 64, "ivf_probes": 4})
    records = [ImageRecord(path=f"{i}.jpg", pid=i, camid=0) for i in range(3)]
    assert make_clustering(params, records).search == NeighbourSearch("ivf", 64, 4)
    assert make_clustering(make_params({}), records).search == NeighbourSearch("exact")
    with pytest.raises(ConfigError, match="neighbour_search"):
        make_params({"neighbour_search": "hnsw"})
    with pytest.raises(ConfigError, match="ivf_probes"):
        make_params({"ivf_probes": 0})

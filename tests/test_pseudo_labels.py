"""Pseudo-labels: the rho rule on sparse distances, relabelling, centroids, degenerate clusterings, k-means."""
import numpy as np
import pytest
import scipy.sparse as sp

from canu_core.cluster.jaccard import symmetric_distance
from canu_core.cluster.pseudo_labels import (DBSCANClustering, KMeansClustering, cluster_centroids,
                                             pseudo_labels_from, relabel_by_first_member, rho_eps)


def upper(num_points: int, entries: dict) -> sp.csr_matrix:
    rows, cols = zip(*entries)
    return sp.csr_matrix((list(entries.values()), (rows, cols)), shape=(num_points, num_points))


def test_rho_eps_by_hand():
    # 5 points: n = 10 upper-triangle distances; rho = 0.3 takes the smallest 3, a zero included.
    distance = upper(5, {(0, 1): 0.2, (0, 2): 0.0, (1, 3): 0.5, (2, 4): 0.9})
    assert rho_eps(distance, rho=0.3) == pytest.approx((0.0 + 0.2 + 0.5) / 3)
    assert rho_eps(symmetric_distance(distance), rho=0.3) == pytest.approx(0.7 / 3)  # the lower half is ignored
    # Fewer stored distances than taken: missing entries are 1s.
    assert rho_eps(upper(5, {(0, 1): 0.2}), rho=0.3) == pytest.approx((0.2 + 1 + 1) / 3)
    # round(rho * n) = 0 would average nothing: one distance is taken.
    assert rho_eps(distance, rho=0.01) == 0.0


def test_relabel_by_first_member():
    labels = np.array([5, 5, -1, 2, 7, 2, -3])
    np.testing.assert_array_equal(relabel_by_first_member(labels), [0, 0, -1, 1, 2, 1, -1])


def test_centroids_are_normalised_cluster_means():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [3.0, 4.0]])
    centroids = cluster_centroids(features, np.array([0, 0, -1, 1]))
    np.testing.assert_allclose(centroids, [[2 ** -0.5, 2 ** -0.5], [0.6, 0.8]], rtol=1e-6)
    assert centroids.dtype == np.float32


def test_pseudo_labels_statuses():
    features = np.eye(4, dtype=np.float32)
    result = pseudo_labels_from(features, np.array([3, 3, -1, 1]))
    np.testing.assert_array_equal(result.labels, [0, 0, -1, 1])
    np.testing.assert_array_equal(result.outliers, [False, False, True, False])
    assert (result.status, result.num_clusters) == ("ok", 2)
    assert result.message == "2 clusters, 1 outliers among 4 points"

    single = pseudo_labels_from(features, np.array([-1, 4, 4, 4]))
    assert (single.status, single.num_clusters) == ("single_cluster", 1)

    none = pseudo_labels_from(features, np.full(4, -1), eps=0.25)
    assert (none.status, none.num_clusters, none.centroids.shape) == ("no_clusters", 0, (0, 4))
    assert none.message == "no cluster: all 4 points are outliers (eps=0.25)"


def blobs(seed: int = 0, per_blob: int = 20, dim: int = 16):
    """Three tight blobs around orthogonal directions, shuffled; returns (features, blob of each point)."""
    rng = np.random.default_rng(seed)
    blob = rng.permutation(np.repeat(np.arange(3), per_blob))
    features = np.eye(dim)[blob] + 0.05 * rng.normal(size=(len(blob), dim))
    return features.astype(np.float32), blob


def test_dbscan_clustering_finds_blobs_and_keeps_its_eps():
    features, blob = blobs()
    clustering = DBSCANClustering(rho=0.1)  # 1.6e-3 is made for ~10^4 points: here it would average 3 distances
    first = clustering(features)
    assert (first.status, first.num_clusters) == ("ok", 3) and clustering.eps == first.eps
    assert (first.labels >= 0).sum() > 30
    for cluster in range(3):  # one blob each
        assert len(np.unique(blob[first.labels == cluster])) == 1
    eps = clustering.eps
    other, _ = blobs(seed=1)
    assert clustering(other).eps == eps  # fixed after the first clustering
    assert DBSCANClustering(rho=0.1)(other).eps != pytest.approx(eps, rel=0.01)  # though the rule moves it


def test_degenerate_dbscan_results_do_not_raise():
    features, _ = blobs()
    nothing = DBSCANClustering(eps=1e-12)(features)
    assert (nothing.status, nothing.num_clusters) == ("no_clusters", 0)
    assert nothing.outliers.all()
    everything = DBSCANClustering(eps=0.999, k1=30)(features)
    assert (everything.status, everything.num_clusters) == ("single_cluster", 1)


def test_kmeans_clustering():
    features, blob = blobs()
    result = KMeansClustering(n_clusters=3, seed=0)(features)
    assert result.status == "ok" and not result.outliers.any()
    np.testing.assert_array_equal(result.labels, relabel_by_first_member(blob))  # the blobs, numbered in order
    np.testing.assert_array_equal(KMeansClustering(n_clusters=3, seed=0)(features).labels, result.labels)
    directions = np.eye(16)[blob[np.unique(result.labels, return_index=True)[1]]]
    np.testing.assert_allclose(result.centroids, directions, atol=0.05)
    assert KMeansClustering(n_clusters=1)(features).status == "single_cluster"
    with pytest.raises(ValueError, match="at least as many points"):
        KMeansClustering(n_clusters=61)(features)


def test_rho_rule_giving_zero_still_clusters_exact_duplicates():
    import numpy as np

    from canu_core.cluster.pseudo_labels import DBSCANClustering

    rng = np.random.default_rng(0)
    base = rng.standard_normal((12, 8)).astype(np.float32)
    features = np.repeat(base, 5, axis=0)  # 12 groups of 5 identical points: many Jaccard distances are exactly 0
    clustering = DBSCANClustering(rho=0.001, k1=6, k2=1)
    result = clustering(features)
    assert 0 < clustering.eps < 1e-30
    assert result.status == "ok" and result.num_clusters >= 2
    # Only distance-0 pairs are neighbours: every cluster lies inside one group of duplicates.
    group_of = np.repeat(np.arange(12), 5)
    for cluster in range(result.num_clusters):
        assert len(set(group_of[result.labels == cluster])) == 1

"""Pseudo-labels: the rho rule on sparse distances (missing entries valued exactly, with or without SSG's source
term), relabelling, centroids, degenerate clusterings, the blended distance, k-means."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

import canu_core.cluster.pseudo_labels as pseudo_labels
from canu_core.cluster.jaccard import compute_jaccard_distance, symmetric_distance, upper_jaccard_distance
from canu_core.cluster.pseudo_labels import (
    DBSCANClustering,
    KMeansClustering,
    SourceTerm,
    TrueIdentities,
    cluster_centroids,
    neighbourhood_graph,
    pseudo_labels_from,
    relabel_by_first_member,
    rho_eps,
)


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
    np.testing.assert_allclose(centroids, [[2**-0.5, 2**-0.5], [0.6, 0.8]], rtol=1e-6)
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


@pytest.mark.parametrize("variant", ["mmt", "spcl"])
def test_dbscan_clustering_finds_blobs_and_keeps_its_eps(variant):
    features, blob = blobs()
    clustering = DBSCANClustering(rho=0.1, jaccard=variant)  # 1.6e-3 is made for ~10^4 points: 3 distances here
    first = clustering(features)
    assert (first.status, first.num_clusters) == ("ok", 3) and clustering.eps == first.eps
    assert (first.labels >= 0).sum() > 20
    for cluster in range(3):  # one blob each
        assert len(np.unique(blob[first.labels == cluster])) == 1
    eps = clustering.eps
    other, _ = blobs(seed=1)
    assert clustering(other).eps == eps  # fixed after the first clustering
    assert DBSCANClustering(rho=0.1, jaccard=variant)(other).eps != pytest.approx(eps, rel=0.01)  # the rule moves


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


def test_true_identities_are_the_labels_with_their_centroids():
    features = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    result = TrueIdentities([7, 3, 7, 3])(features, source_distance=np.zeros(4))  # SSG's distance plays no part
    assert result.status == "ok" and not result.outliers.any()
    np.testing.assert_array_equal(result.labels, [0, 1, 0, 1])  # numbered by first image, every image kept
    np.testing.assert_allclose(result.centroids, [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="3 feature rows for 4 true identities"):
        TrueIdentities([7, 3, 7, 3])(features[:3])


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


def dense_rho_eps(distance: np.ndarray, rho: float) -> float:
    """The rho rule on a dense matrix, every upper-triangle entry counted."""
    upper = np.sort(distance[np.triu_indices(len(distance), 1)])
    return float(upper[: max(1, round(rho * upper.size))].mean())


def blended_dense(jaccard: sp.spmatrix, source: np.ndarray, weight: float) -> np.ndarray:
    """(1 - w) J + w (s_i + s_j) over the whole matrix, missing Jaccard entries 1, the diagonal included."""
    coo = sp.csr_matrix(jaccard).tocoo()
    dense = np.ones(jaccard.shape)
    dense[coo.row, coo.col] = coo.data
    np.fill_diagonal(dense, 0.0)
    return (1 - weight) * dense + weight * (source[:, None] + source[None, :])


def test_rho_eps_counts_missing_entries_with_their_blended_value():
    # 4 points, w = 0.5, s = (0, 0.2, 0, 1). Stored Jaccard (0, 1) 0.5 and (2, 3) 0.9 become 0.25 + 0.1 = 0.35 and
    # 0.45 + 0.5 = 0.95; the missing ones (Jaccard 1) are worth 0.5 + 0.5 (s_i + s_j): (0, 2) 0.5, (0, 3) 1.0,
    # (1, 2) 0.6, (1, 3) 1.1. All six sorted: 0.35, 0.5, 0.6, 0.95, 1.0, 1.1.
    source = SourceTerm(np.array([0.0, 0.2, 0.0, 1.0]), 0.5)
    blended = source.combine(upper(4, {(0, 1): 0.5, (2, 3): 0.9}))
    assert upper_dict(blended) == pytest.approx({(0, 1): 0.35, (2, 3): 0.95})
    assert rho_eps(blended, rho=0.1, source=source) == pytest.approx(0.35)  # round(0.6) = 1
    assert rho_eps(blended, rho=0.5, source=source) == pytest.approx((0.35 + 0.5 + 0.6) / 3)  # not 0.95 and 1
    assert rho_eps(blended, rho=0.7, source=source) == pytest.approx((0.35 + 0.5 + 0.6 + 0.95) / 4)
    assert rho_eps(blended, rho=1.0, source=source) == pytest.approx(4.5 / 6)
    assert rho_eps(blended, rho=0.5) == pytest.approx((0.35 + 0.95 + 1) / 3)  # missing entries as 1s


def upper_dict(distance: sp.spmatrix) -> dict:
    coo = distance.tocoo()
    return dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist()))


@pytest.mark.parametrize("weight", [0.1, 0.5])
@pytest.mark.parametrize("rho", [0.001, 0.02, 0.1, 0.3, 0.9, 1.0])
def test_rho_eps_with_source_term_equals_brute_force(weight, rho):
    rng = np.random.default_rng(7)
    num_points = 40
    jaccard = sp.triu(sp.random(num_points, num_points, density=0.15, random_state=3), k=1).tocsr()
    source = SourceTerm(rng.uniform(size=num_points), weight)
    expected = dense_rho_eps(blended_dense(jaccard, source.vector, weight), rho)
    assert rho_eps(source.combine(jaccard), rho, source) == pytest.approx(expected, abs=1e-12)


def test_source_term_diagonal_decides_whether_a_point_is_its_own_neighbour():
    # 5 points, w = 0.1, s = (1, 0, 0, 0, 0): point 0 is at Jaccard 0 from 1, 2, 3 (blended 0.1 * (1 + 0) = 0.1)
    # and at 0.1 * 2 * 1 = 0.2 from itself; 1, 2, 3 are at 0.9 from each other, 4 far from all.
    source = SourceTerm(np.array([1.0, 0.0, 0.0, 0.0, 0.0]), 0.1)
    blended = source.combine(upper(5, {(0, 1): 0.0, (0, 2): 0.0, (0, 3): 0.0}))
    dense = blended_dense(upper(5, {(0, 1): 0.0, (0, 2): 0.0, (0, 3): 0.0}), source.vector, 0.1)
    for eps, expected in [
        (0.15, [-1, -1, -1, -1, -1]),  # 0 has 3 neighbours, itself not among them: no core
        (0.2, [0, 0, 0, 0, -1]),
    ]:  # now 0 counts itself: 4, a core point
        graph = neighbourhood_graph(blended, eps, source)
        np.testing.assert_allclose(graph.diagonal(), [0.2, 0, 0, 0, 0])  # stored even above eps
        labels = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(graph)
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_array_equal(DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(dense), expected)


@pytest.mark.parametrize("variant", ["mmt", "spcl"])
@pytest.mark.parametrize("rho", [0.05, 0.5])  # 0.5: the rule reaches pairs the Jaccard distance does not store
def test_dbscan_on_blended_distance_equals_dense(variant, rho):
    features, _ = blobs()
    source = np.random.default_rng(4).uniform(size=len(features))
    dense = blended_dense(compute_jaccard_distance(features, variant=variant), source, 0.1)
    expected_eps = dense_rho_eps(dense, rho)
    clustering = DBSCANClustering(rho=rho, jaccard=variant, source_weight=0.1)
    result = clustering(features, source_distance=source)
    assert clustering.eps == pytest.approx(expected_eps, abs=1e-6)  # float32 Jaccard distances
    expected = DBSCAN(eps=clustering.eps, min_samples=4, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(result.labels, relabel_by_first_member(expected))
    assert result.num_clusters >= 1


def test_eps_reaching_unstored_pairs_is_exact():
    features, blob = blobs()
    upper = upper_jaccard_distance(features, k1=10)
    assert upper.nnz == 3 * 190  # k1 = 10 < 20 points per blob: every pair within a blob is stored, none across
    everything = DBSCANClustering(eps=1.0, k1=10)(features)  # every Jaccard distance is at most 1: all neighbours
    assert (everything.status, everything.outliers.sum()) == ("single_cluster", 0)
    assert DBSCANClustering(eps=0.999, k1=10)(features).num_clusters == 3
    # Blended, w = 0.1: an unstored pair is worth 0.9 + 0.1 (s_i + s_j). With s 0.1 on blobs 0 and 1, 0.4 on blob 2,
    # at eps 0.93 the pairs across blobs 0 and 1 (0.92) are neighbours, those with blob 2 (0.95) are not.
    source = SourceTerm(np.where(blob == 2, 0.4, 0.1), 0.1)
    clustering = DBSCANClustering(eps=0.93, k1=10, source_weight=0.1)
    labels = clustering(features, source_distance=source.vector).labels
    np.testing.assert_array_equal(labels, relabel_by_first_member(np.where(blob == 2, 1, 0)))
    dense = blended_dense(symmetric_distance(upper), source.vector, 0.1)
    np.testing.assert_array_equal(
        labels, relabel_by_first_member(DBSCAN(eps=0.93, min_samples=4, metric="precomputed").fit_predict(dense))
    )


def test_eps_making_the_matrix_dense_is_refused(monkeypatch):
    features, _ = blobs()
    monkeypatch.setattr(pseudo_labels, "MAX_MISSING_NEIGHBOURS", 1000)
    with pytest.raises(ValueError, match="use a smaller eps"):
        DBSCANClustering(eps=1.0)(features)


def test_source_distance_errors():
    features, _ = blobs()
    with pytest.raises(ValueError, match="needs source_distance"):
        DBSCANClustering(source_weight=0.1)(features)
    with pytest.raises(ValueError, match="60 finite values"):
        DBSCANClustering(source_weight=0.1)(features, source_distance=np.zeros(59))
    with pytest.raises(ValueError, match="60 finite values"):
        DBSCANClustering(source_weight=0.1)(features, source_distance=np.full(60, np.nan))
    with pytest.raises(ValueError, match="would ignore it"):
        DBSCANClustering()(features, source_distance=np.zeros(60))
    with pytest.raises(ValueError, match=r"source_weight must be in \[0, 1\)"):
        DBSCANClustering(source_weight=1.0)


def test_float32_distances_meet_eps_as_in_the_dense_matrix():
    # float32(0.1) is 0.10000000149 > 0.1; sklearn compares a float32 matrix with eps in float32, where they are
    # equal: the 4 points are neighbours in the public codes' dense float32 matrix, and must be here too.
    jaccard = upper(4, {pair: np.float32(0.1) for pair in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]})
    jaccard = jaccard.astype(np.float32)
    graph = neighbourhood_graph(jaccard, 0.1)
    assert graph.dtype == np.float32
    dense = np.full((4, 4), np.float32(0.1))
    np.fill_diagonal(dense, 0)
    for distance in (graph, dense):
        np.testing.assert_array_equal(
            DBSCAN(eps=0.1, min_samples=4, metric="precomputed").fit_predict(distance), [0, 0, 0, 0]
        )


def test_a_rho_that_takes_more_pairs_than_share_a_neighbour_is_named_with_its_cost():
    """200 points with k1 5: rho 0.2 takes 3,980 pairs, more than the pairs below 1 (those sharing a k-reciprocal
    neighbour); the rest enter eps's mean at 1, and the clustering's message says so."""
    features = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    stored = upper_jaccard_distance(features, k1=5, k2=2)
    take = round(0.2 * 200 * 199 / 2)
    assert take == 3980 and stored.nnz < take
    pseudo = DBSCANClustering(rho=0.2, k1=5, k2=2)(features)
    assert pseudo.eps == pytest.approx((stored.data.astype(np.float64).sum() + take - stored.nnz) / take, rel=1e-9)
    assert f"more than the {stored.nnz} that share a k-reciprocal neighbour" in pseudo.message
    assert f"the other {take - stored.nnz} count at distance 1" in pseudo.message
    assert "share a k-reciprocal" not in DBSCANClustering(rho=0.001, k1=5, k2=2)(features).message

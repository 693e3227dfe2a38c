"""The sparse k-reciprocal Jaccard distance against the dense SpCL-style reference (benchmarks/dense_reference.py),
on clustered random features free of near-ties, and on an encoding worked out by hand."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import canu_core.cluster.jaccard as jaccard
from canu_core.cluster.jaccard import (compute_jaccard_distance, nearest_neighbour_lists, symmetric_distance,
                                       upper_jaccard_distance, upper_jaccard_from_encoding)
from canu_core.cluster.pseudo_labels import DBSCANClustering, relabel_by_first_member


def load_dense_reference():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "dense_reference.py"
    spec = importlib.util.spec_from_file_location("dense_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_dense_reference()


def clustered_features(seed: int = 2, num_ids: int = 30, dim: int = 64, num_noise: int = 40) -> np.ndarray:
    """6 to 15 points around each of num_ids centres plus random points, shuffled (353 points for seed 2)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(6, 16, num_ids)
    centres = rng.normal(size=(num_ids, dim))
    points = np.repeat(centres, sizes, axis=0) + 0.5 * rng.normal(size=(sizes.sum(), dim))
    points = np.concatenate([points, rng.normal(size=(num_noise, dim))])
    return rng.permutation(points).astype(np.float32)


def smallest_boundary_gap(features: np.ndarray, list_lengths) -> float:
    """Smallest similarity gap, over all points, between the last member of a neighbour list and the next point:
    a gap near float32 rounding would let faiss and torch pick different lists."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    ranked = -np.sort(-(unit.astype(np.float64) @ unit.T), axis=1)
    return min(float((ranked[:, m - 1] - ranked[:, m]).min()) for m in list_lengths)


def as_dense(distance: sp.spmatrix) -> np.ndarray:
    """Missing entries are 1."""
    coo = distance.tocoo()
    dense = np.ones(distance.shape)
    dense[coo.row, coo.col] = coo.data
    return dense


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return clustered_features()


@pytest.mark.parametrize("k1, k2", [(20, 6), (10, 3), (20, 1)])
def test_same_distances_as_dense_reference(features, k1, k2):
    assert smallest_boundary_gap(features, [k2, round(k1 / 2) + 1, k1 + 1]) > 1e-5  # tie-free data
    expected = reference.compute_jaccard_distance(torch.from_numpy(features), k1, k2)
    distance = compute_jaccard_distance(features, k1, k2)
    assert distance.dtype == np.float32 and distance.format == "csr"
    coo = distance.tocoo()
    stored = np.zeros(distance.shape, dtype=bool)
    stored[coo.row, coo.col] = True
    np.testing.assert_array_equal(stored, expected < 1)  # exactly the pairs below 1 are stored
    assert np.abs(as_dense(distance) - expected).max() < 1e-5
    assert 3 * len(features) < (expected < 1).sum() < 0.9 * expected.size  # many pairs on both sides
    assert (distance != distance.T).nnz == 0
    np.testing.assert_array_equal(distance.diagonal(), 0)
    assert np.all(np.diff(distance.indptr) >= 1)  # the diagonal zeros are stored, not missing


def test_upper_triangle_is_the_strict_upper_part(features):
    upper = upper_jaccard_distance(features)
    full = compute_jaccard_distance(features)
    assert upper.nnz == (full.nnz - len(features)) // 2
    assert (sp.triu(full, k=1) != upper).nnz == 0
    assert sp.tril(upper).nnz == 0


@pytest.mark.parametrize("eps", [0.3, 0.5])
def test_dbscan_labels_identical_to_dense(features, eps):
    dense = reference.compute_jaccard_distance(torch.from_numpy(features))
    expected = relabel_by_first_member(reference.dbscan_labels(dense, eps))
    result = DBSCANClustering(eps=eps)(features)
    assert result.num_clusters >= 25  # the 30 identities are mostly found: a meaningful comparison
    np.testing.assert_array_equal(result.labels, expected)


def test_whole_step_with_rho_rule_matches_reference(features):
    expected_labels, expected_eps = reference.pseudo_labels(torch.from_numpy(features))
    clustering = DBSCANClustering()
    result = clustering(features)
    assert clustering.eps == pytest.approx(expected_eps, abs=1e-6)  # float32 distances in the reference
    np.testing.assert_array_equal(result.labels, relabel_by_first_member(expected_labels))


def test_jaccard_of_an_encoding_by_hand():
    # Rows sum to 1. m = sum of element-wise minima; distance = 1 - m / (2 - m).
    encoding = sp.csr_matrix(np.array([[0.50, 0.50, 0.00, 0.00],
                                       [0.25, 0.50, 0.25, 0.00],
                                       [0.00, 0.00, 1.00, 0.00],
                                       [0.50, 0.50, 0.00, 0.00]]))
    upper = upper_jaccard_from_encoding(encoding)
    expected = {(0, 1): 1 - 0.75 / 1.25,  # m = 0.25 + 0.50
                (0, 3): 0.0,  # identical rows: m = 1, stored as an explicit zero
                (1, 2): 1 - 0.25 / 1.75,  # m = 0.25
                (1, 3): 1 - 0.75 / 1.25}
    coo = upper.tocoo()  # (0, 2) and (2, 3) share nothing: distance 1, not stored
    assert dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist())) == pytest.approx(expected)
    full = symmetric_distance(upper)
    assert full.nnz == 2 * 4 + 4  # both triangles and the diagonal, zeros included
    assert full[3, 0] == 0 and full[2, 1] == pytest.approx(6 / 7)


def test_nearest_neighbour_lists_across_blocks(features, monkeypatch):
    monkeypatch.setattr(jaccard, "SEARCH_BLOCK", 64)  # 6 row blocks, the last one partial
    unit = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    lists = nearest_neighbour_lists(unit, 21)
    similarity = unit.double() @ unit.double().T
    expected = torch.argsort(similarity, dim=1, descending=True)[:, :21].numpy()
    np.testing.assert_array_equal(lists, expected)


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="more than k1=20 points"):
        compute_jaccard_distance(np.random.default_rng(0).normal(size=(20, 8)))

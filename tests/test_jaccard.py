"""The sparse k-reciprocal Jaccard distances ("mmt" and "spcl") against dense step-by-step renderings of each public
algorithm, against the dense SpCL reference of the benchmark, on cases worked out by hand, and SSG's source term."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import canu_core.cluster.jaccard as jaccard
import canu_core.cluster.kreciprocal as kreciprocal
from canu_core.cluster.jaccard import (
    compute_jaccard_distance,
    source_distance_vector,
    symmetric_distance,
    upper_jaccard_distance,
    upper_jaccard_from_encoding,
)
from canu_core.cluster.kreciprocal import nearest_neighbour_lists
from canu_core.cluster.pseudo_labels import DBSCANClustering, relabel_by_first_member


def load_dense_reference():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "dense_reference.py"
    spec = importlib.util.spec_from_file_location("dense_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_dense_reference()


def dense_jaccard(
    unit: np.ndarray, ranking: np.ndarray, weight_distance: np.ndarray, list_length: int, half_list_length: int, k2: int
) -> np.ndarray:
    """Zhong's k-reciprocal Jaccard distance, dense float64, one point at a time: `ranking` each point's neighbours
    nearest first, `weight_distance` the distance whose exp(-d) weighs the expanded set."""
    num_points = len(unit)

    def reciprocal(point: int, length: int) -> set:
        return {other for other in ranking[point, :length] if point in ranking[other, :length]}

    encoding = np.zeros((num_points, num_points))
    for point in range(num_points):
        own = reciprocal(point, list_length)
        expanded = set(own)
        for candidate in own:
            half = reciprocal(candidate, half_list_length)
            if len(half & own) > 2 / 3 * len(half):
                expanded |= half
        members = sorted(expanded)
        weights = np.exp(-weight_distance[point, members])
        encoding[point, members] = weights / weights.sum()
    encoding = np.stack([encoding[ranking[point, :k2]].mean(axis=0) for point in range(num_points)])
    distance = np.empty((num_points, num_points))
    for point in range(num_points):
        overlap = np.minimum(encoding[point], encoding).sum(axis=1)
        distance[point] = 1 - overlap / (2 - overlap)
    return np.clip(distance, 0, None)


def dense_mmt(features: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """MMT's compute_jaccard_dist: d = 2 - 2 x.y, each row divided by its largest value, ranked by it in full;
    lists of k1 + 1 and round(k1 / 2) + 1; weights exp(-scaled d)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = 2 - 2 * unit.astype(np.float64) @ unit.T
    scaled = distance / distance.max(axis=1, keepdims=True)
    ranking = np.argsort(scaled, axis=1, kind="stable")
    return dense_jaccard(unit, ranking, scaled, k1 + 1, round(k1 / 2) + 1, k2)


def dense_spcl(features: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """SpCL's compute_jaccard_distance: only the k1 nearest are searched, so the lists hold k1 and round(k1 / 2) + 1
    points; weights softmax(-(2 - 2 x.y)), unscaled; query expansion over the first k2 of the k1."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = 2 - 2 * unit.astype(np.float64) @ unit.T
    ranking = np.argsort(distance, axis=1, kind="stable")[:, :k1]
    return dense_jaccard(unit, ranking, distance, k1, round(k1 / 2) + 1, k2)


DENSE = {"mmt": dense_mmt, "spcl": dense_spcl}


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


@pytest.fixture(scope="module")
def small_features() -> np.ndarray:
    return clustered_features(seed=9, num_ids=12, num_noise=15)  # 161 points


def on_circle(*degrees: float) -> np.ndarray:
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees], dtype=np.float32)


def chord(degrees: float) -> float:
    """2 - 2 cos: the distance of two unit vectors this far apart."""
    return 2 - 2 * math.cos(math.radians(degrees))


def jaccard_of(first: np.ndarray, second: np.ndarray) -> float:
    overlap = np.minimum(first, second).sum()
    return 1 - overlap / (2 - overlap)


def upper_dict(distance: sp.spmatrix) -> dict:
    coo = sp.triu(distance, k=1).tocoo()
    return dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist()))


# Four points on the unit circle, A, B, C, D at 0, 20, 50, 110 degrees; k1 = 2 (half: round(1) = 1).
# Nearest first: A: A B C D; B: B A C D; C: C B A D; D: D C B A.
# The half step (2 points each, both variants): A, B mutual; C's nearest B and D's nearest C are not: H(A) = H(B) =
# {A, B}, H(C) = {C}, H(D) = {D}.
FOUR = (0, 20, 50, 110)


def test_mmt_by_hand_lists_of_k1_plus_one_and_row_scaled_weights():
    # Lists of 3: A, B, C list each other, D lists C and B, neither lists D: R(A) = R(B) = R(C) = {A, B, C},
    # R(D) = {D}; every H(c) lies inside, nothing is added. Weights exp(-d / row max) over {A, B, C}: the farthest
    # points are D for A (110 deg), for B (90 deg) and for C (60 deg; A is at 50).
    scaled = {
        "A": np.array([0, chord(20), chord(50)]) / chord(110),
        "B": np.array([chord(20), 0, chord(30)]) / chord(90),
        "C": np.array([chord(50), chord(30), 0]) / chord(60),
    }
    rows = {name: np.exp(-value) / np.exp(-value).sum() for name, value in scaled.items()}
    expected = {
        (0, 1): jaccard_of(rows["A"], rows["B"]),
        (0, 2): jaccard_of(rows["A"], rows["C"]),
        (1, 2): jaccard_of(rows["B"], rows["C"]),
    }  # D shares nothing: 1, not stored
    got = upper_dict(compute_jaccard_distance(on_circle(*FOUR), k1=2, k2=1, variant="mmt"))
    assert got == pytest.approx(expected, abs=1e-6)
    # Without the row scaling (the weights of SpCL with MMT's lists: the former formula) A-B would be farther.
    unscaled_a = np.exp(-scaled["A"] * chord(110)) / np.exp(-scaled["A"] * chord(110)).sum()
    unscaled_b = np.exp(-scaled["B"] * chord(90)) / np.exp(-scaled["B"] * chord(90)).sum()
    assert jaccard_of(unscaled_a, unscaled_b) > expected[0, 1] + 0.05


def test_spcl_by_hand_lists_of_k1():
    # Lists of 2: R(A) = R(B) = {A, B}, R(C) = {C}, R(D) = {D} (C's nearest is B, B's is A). V[A] = (1, e) / (1 + e)
    # on (A, B), e = exp(-chord(20)); V[B] its mirror: m = 2e / (1 + e), Jaccard = 1 - m / (2 - m) = 1 - e.
    got = upper_dict(compute_jaccard_distance(on_circle(*FOUR), k1=2, k2=1, variant="spcl"))
    assert got == pytest.approx({(0, 1): 1 - math.exp(-chord(20))}, abs=1e-6)
    # k2 = 2 averages each V with its nearest's: A and B both (1/2, 1/2) on (A, B): distance 0; C gets
    # (V[C] + V[B]) / 2, which meets A's and B's in 1/2 (distance 1 - (1/2) / (3/2) = 2/3), D (V[D] + V[C]) / 2,
    # which meets C's in 1/2.
    got = upper_dict(compute_jaccard_distance(on_circle(*FOUR), k1=2, k2=2, variant="spcl"))
    assert got == pytest.approx({(0, 1): 0.0, (0, 2): 2 / 3, (1, 2): 2 / 3, (2, 3): 2 / 3}, abs=1e-6)


@pytest.mark.parametrize("variant", ["mmt", "spcl"])
@pytest.mark.parametrize("k1, k2", [(20, 6), (15, 4), (5, 3), (20, 1)])  # halves 10, 7.5 -> 8, 2.5 -> 2
def test_same_distances_as_dense_public_algorithm(small_features, variant, k1, k2):
    assert smallest_boundary_gap(small_features, [k2, round(k1 / 2) + 1, k1, k1 + 1]) > 1e-5  # tie-free data
    expected = DENSE[variant](small_features, k1, k2)
    distance = compute_jaccard_distance(small_features, k1, k2, variant=variant)
    assert distance.dtype == np.float32 and distance.format == "csr"
    np.testing.assert_allclose(as_dense(distance), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(as_dense(distance) < 1, expected < 1 - 1e-6)  # exactly the pairs below 1 stored
    assert 3 * len(small_features) < (expected < 1).sum() < 0.9 * expected.size  # many pairs on both sides
    assert (distance != distance.T).nnz == 0
    np.testing.assert_array_equal(distance.diagonal(), 0)
    assert np.all(np.diff(distance.indptr) >= 1)  # the diagonal zeros are stored, not missing


def test_the_variants_differ(small_features):
    mmt = as_dense(compute_jaccard_distance(small_features, variant="mmt"))
    spcl = as_dense(compute_jaccard_distance(small_features, variant="spcl"))
    assert np.abs(mmt - spcl).max() > 0.1


@pytest.mark.parametrize("k1, k2", [(20, 6), (10, 3), (20, 1)])
def test_spcl_equals_the_benchmark_dense_reference(features, k1, k2):
    assert smallest_boundary_gap(features, [k2, round(k1 / 2) + 1, k1]) > 1e-5
    expected = reference.compute_jaccard_distance(torch.from_numpy(features), k1, k2)
    distance = compute_jaccard_distance(features, k1, k2, variant="spcl")
    assert np.abs(as_dense(distance) - expected).max() < 1e-5  # float32 arithmetic in the reference


def test_upper_triangle_is_the_strict_upper_part(features):
    upper = upper_jaccard_distance(features)
    full = compute_jaccard_distance(features)
    assert upper.nnz == (full.nnz - len(features)) // 2
    assert (sp.triu(full, k=1) != upper).nnz == 0
    assert sp.tril(upper).nnz == 0


@pytest.mark.parametrize("variant", ["mmt", "spcl"])
@pytest.mark.parametrize("eps", [0.3, 0.5])
def test_dbscan_labels_identical_to_dense(small_features, variant, eps):
    expected = relabel_by_first_member(reference.dbscan_labels(DENSE[variant](small_features, 20, 6), eps))
    result = DBSCANClustering(eps=eps, jaccard=variant)(small_features)
    assert result.num_clusters >= 9  # the 12 identities are mostly found: a meaningful comparison
    np.testing.assert_array_equal(result.labels, expected)


def test_whole_spcl_step_with_rho_rule_matches_reference(features):
    expected_labels, expected_eps = reference.pseudo_labels(torch.from_numpy(features))
    clustering = DBSCANClustering(jaccard="spcl")
    result = clustering(features)
    assert clustering.eps == pytest.approx(expected_eps, abs=1e-6)  # float32 distances in the reference
    np.testing.assert_array_equal(result.labels, relabel_by_first_member(expected_labels))


def test_jaccard_of_an_encoding_by_hand():
    # Rows sum to 1. m = sum of element-wise minima; distance = 1 - m / (2 - m).
    encoding = sp.csr_matrix(
        np.array(
            [[0.50, 0.50, 0.00, 0.00], [0.25, 0.50, 0.25, 0.00], [0.00, 0.00, 1.00, 0.00], [0.50, 0.50, 0.00, 0.00]]
        )
    )
    upper = upper_jaccard_from_encoding(encoding)
    expected = {
        (0, 1): 1 - 0.75 / 1.25,  # m = 0.25 + 0.50
        (0, 3): 0.0,  # identical rows: m = 1, stored as an explicit zero
        (1, 2): 1 - 0.25 / 1.75,  # m = 0.25
        (1, 3): 1 - 0.75 / 1.25,
    }
    coo = upper.tocoo()  # (0, 2) and (2, 3) share nothing: distance 1, not stored
    assert dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist())) == pytest.approx(expected)
    full = symmetric_distance(upper)
    assert full.nnz == 2 * 4 + 4  # both triangles and the diagonal, zeros included
    assert full[3, 0] == 0 and full[2, 1] == pytest.approx(6 / 7)
    with_diagonal = symmetric_distance(upper, diagonal=np.array([0.5, 0.0, 0.25, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(with_diagonal.diagonal(), [0.5, 0.0, 0.25, 1.0])


def test_nearest_neighbour_lists_and_lowest_similarity_across_blocks(features, monkeypatch):
    monkeypatch.setattr(kreciprocal, "SEARCH_BLOCK", 64)  # 6 row blocks, the last one partial
    unit = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    neighbours = nearest_neighbour_lists(unit, 21)
    similarity = unit.double() @ unit.double().T
    expected = torch.argsort(similarity, dim=1, descending=True)[:, :21].numpy()
    np.testing.assert_array_equal(neighbours.indices, expected)
    np.testing.assert_allclose(neighbours.lowest_similarity, similarity.min(dim=1).values.numpy(), atol=1e-6)


def test_source_distance_vector_by_hand():
    # Target points at 0, 90 and 180 degrees, one source point at 0 degrees: squared distances 0, 2, 4, so
    # s = 1 - exp(-(0, 2, 4)), divided by the largest.
    target, source = on_circle(0, 90, 180), on_circle(0)
    expected = np.array([0.0, 1 - math.exp(-2), 1 - math.exp(-4)]) / (1 - math.exp(-4))
    np.testing.assert_allclose(source_distance_vector(target, source), expected, atol=1e-6)
    # A second source point at 180 degrees: each target point takes its nearest (0, 2, 0).
    np.testing.assert_allclose(
        source_distance_vector(torch.from_numpy(target), on_circle(0, 180)), [0.0, 1.0, 0.0], atol=1e-6
    )
    np.testing.assert_array_equal(source_distance_vector(on_circle(0, 0), on_circle(0)), [0.0, 0.0])  # all at 0


def test_source_distance_vector_in_blocks_equals_dense(monkeypatch):
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 8)).astype(np.float32)
    source = rng.normal(size=(30, 8)).astype(np.float32)
    monkeypatch.setattr(jaccard, "BLOCK_ELEMENTS", 7 * 30)  # blocks of 7 target rows
    nearest = ((target[:, None].astype(np.float64) - source[None]) ** 2).sum(axis=2).min(axis=1)
    expected = (1 - np.exp(-nearest)) / (1 - np.exp(-nearest)).max()
    np.testing.assert_allclose(source_distance_vector(target, source), expected, atol=1e-5)


def test_clear_errors():
    points = np.random.default_rng(0).normal(size=(30, 8))
    with pytest.raises(ValueError, match="more than k1=30 points"):
        compute_jaccard_distance(points, k1=30)
    with pytest.raises(ValueError, match="expected one of 'mmt', 'spcl'"):
        compute_jaccard_distance(points, k1=5, variant="zhong")
    with pytest.raises(ValueError, match="expected one of 'mmt', 'spcl'"):
        DBSCANClustering(jaccard="SpCL")
    with pytest.raises(ValueError, match="k2 <= k1"):
        compute_jaccard_distance(points, k1=5, k2=6, variant="spcl")
    assert compute_jaccard_distance(points, k1=5, k2=6, variant="mmt").shape == (30, 30)  # MMT ranks all points
    with pytest.raises(ValueError, match=r"\[N, D\] target"):
        source_distance_vector(points, points[:, :4])

"""Sparse k-reciprocal re-ranking against a dense, step-by-step rendering of Zhong et al.'s algorithm, and on a
four-point case worked out by hand."""

import math

import numpy as np
import pytest
import torch

from canu_core.cluster import kreciprocal
from canu_core.cluster.kreciprocal import (
    jaccard_distance_to,
    k_reciprocal_encoding,
    nearest_neighbour_lists,
    re_ranking,
    re_ranking_rows,
    reciprocal_mask,
)


def dense_zhong_re_ranking(
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lambda_value: float
) -> np.ndarray:
    """Zhong et al. (CVPR 2017) as their public code runs it: dense (q+g)^2 matrices, one point at a time."""
    original = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    original = (original / original.max(axis=0)).T  # each column divided by its maximum, then transposed
    num_query, num_all = len(q_g), len(original)
    initial_rank = np.argsort(original, axis=1)

    def k_reciprocal(i: int, k: int) -> np.ndarray:
        return np.array([j for j in initial_rank[i, : k + 1] if i in initial_rank[j, : k + 1]])

    encoding = np.zeros_like(original)
    for i in range(num_all):
        reciprocal = k_reciprocal(i, k1)
        expanded = list(reciprocal)
        for candidate in reciprocal:
            candidate_set = k_reciprocal(candidate, int(np.around(k1 / 2.0)))
            if len(np.intersect1d(candidate_set, reciprocal)) > 2.0 / 3 * len(candidate_set):
                expanded.extend(candidate_set)
        expanded = np.unique(expanded)
        weight = np.exp(-original[i, expanded])
        encoding[i, expanded] = weight / weight.sum()
    if k2 != 1:
        encoding = np.stack([encoding[initial_rank[i, :k2]].mean(axis=0) for i in range(num_all)])
    jaccard = np.empty((num_query, num_all), dtype=np.float32)
    for i in range(num_query):
        overlap = np.minimum(encoding[i], encoding).sum(axis=1)
        jaccard[i] = 1 - overlap / (2 - overlap)
    final = (1 - lambda_value) * jaccard + lambda_value * original[:num_query]
    return final[:, num_query:]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1 - a @ b.T


def clustered_features(seed: int, num_ids: int = 16, per_id: int = 5, dim: int = 32) -> np.ndarray:
    """Points around id centres, shuffled, so that k-reciprocal sets and their expansions are non-trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    points = np.repeat(centres, per_id, axis=0) + 0.6 * rng.normal(size=(num_ids * per_id, dim))
    return rng.permutation(points).astype(np.float32)


@pytest.mark.parametrize(
    "k1, k2, lambda_value",
    [
        (20, 6, 0.3),  # the paper's setting
        (5, 3, 0.5),  # k1 / 2 = 2.5 rounds (half to even) to 2
        (7, 1, 0.3),  # 3.5 rounds to 4; k2 = 1: no query expansion
        (3, 6, 0.3),  # query expansion wider than the k-reciprocal lists
    ],
)
@pytest.mark.parametrize("seed", range(4))
def test_re_ranking_equals_dense_reference(k1, k2, lambda_value, seed):
    points = clustered_features(seed)
    query, gallery = points[:30], points[30:]
    expected = dense_zhong_re_ranking(
        cosine_distance(query, gallery),
        cosine_distance(query, query),
        cosine_distance(gallery, gallery),
        k1,
        k2,
        lambda_value,
    )
    got = re_ranking(torch.from_numpy(query), torch.from_numpy(gallery), k1=k1, k2=k2, lambda_value=lambda_value)
    assert got.shape == (30, 50) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


def test_re_ranking_rows_in_blocks_equal_the_whole_matrix(monkeypatch):
    points = torch.from_numpy(clustered_features(seed=1))
    query, gallery = points[:30], points[30:]
    whole = re_ranking(query, gallery).numpy()
    monkeypatch.setattr(kreciprocal, "BLOCK_ELEMENTS", 3 * 50)  # Jaccard work in pieces of about 2 rows
    rows = re_ranking_rows(query, gallery)
    blocks = np.concatenate([rows(start, min(start + 7, 30)) for start in range(0, 30, 7)])
    assert (blocks < 0.99).sum() > 100  # encodings overlap: the Jaccard part is not all 1s
    # Within float32 rounding of the blended original distance: BLAS may sum a row's products in another order for
    # another block shape. The Jaccard part is exact (next test).
    np.testing.assert_allclose(blocks, whole, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="query rows 28:31 out of range: there are 30 queries"):
        rows(28, 31)


def test_jaccard_rows_are_the_same_whatever_block_they_come_in(monkeypatch):
    features = torch.from_numpy(clustered_features(seed=2))
    neighbours = nearest_neighbour_lists(features, k=11)
    encoding = k_reciprocal_encoding(neighbours.indices, k1=10, k2=3, pair_distance=lambda rows, cols: 0.1 * cols)
    cols = np.arange(30, 80)
    whole = jaccard_distance_to(encoding, cols)(np.arange(30))
    monkeypatch.setattr(kreciprocal, "BLOCK_ELEMENTS", 3 * 50)
    distance = jaccard_distance_to(encoding, cols)
    blocks = np.concatenate([distance(np.arange(start, min(start + 4, 30))) for start in range(0, 30, 4)])
    assert whole.shape == (30, 50) and (whole < 0.99).sum() > 100
    np.testing.assert_array_equal(blocks, whole)


def four_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Queries A = 0 deg, B = 180 deg; gallery A' = 60 deg, B' = 240 deg on the unit circle.

    Cosine distances from A: A' 1/2, B' 3/2, B 2; squared and divided by the row maximum 4: 1/16, 9/16, 1.
    B, B' mirror A, A'.
    """

    def unit(degrees: float) -> list[float]:
        return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]

    return torch.tensor([unit(0), unit(180)]), torch.tensor([unit(60), unit(240)])


def test_re_ranking_by_hand_without_query_expansion():
    # k1 = 1: each point's 2 nearest are itself and its partner, mutually, so R(A, 1) = {A, A'}; k1/2 rounds to 0,
    # R(c, 0) = {c}, adding nothing. V[A] = (1, w) / (1 + w) on (A, A'), w = exp(-1/16); V[A'] mirrors it.
    # Min-sum m(A, A') = 2w / (1 + w), so Jaccard = 1 - m / (2 - m) = 1 - w; A and B' share nothing: Jaccard 1.
    query, gallery = four_points()
    w = math.exp(-1 / 16)
    near = 0.7 * (1 - w) + 0.3 * (1 / 16)
    far = 0.7 * 1 + 0.3 * (9 / 16)
    got = re_ranking(query, gallery, k1=1, k2=1, lambda_value=0.3)
    np.testing.assert_allclose(got.numpy(), [[near, far], [far, near]], atol=1e-6)


def test_re_ranking_by_hand_with_query_expansion():
    # k2 = 2 averages V[A] and V[A']: both become (1/2, 1/2), so m = 1 and the Jaccard distance of A, A' is 0.
    query, gallery = four_points()
    near, far = 0.3 * (1 / 16), 0.7 + 0.3 * (9 / 16)
    got = re_ranking(query, gallery, k1=1, k2=2, lambda_value=0.3)
    np.testing.assert_allclose(got.numpy(), [[near, far], [far, near]], atol=1e-6)


def test_reciprocal_mask_by_hand():
    # Hand-made 2-nearest lists (self first): 0 -> 0,1 ; 1 -> 1,0 ; 2 -> 2,1 ; 3 -> 3,2.
    neighbours = np.array([[0, 1], [1, 0], [2, 1], [3, 2]])
    # 0 and 1 are mutual; 2 lists 1 but 1 does not list 2; 3 lists 2 but 2 does not list 3.
    np.testing.assert_array_equal(
        reciprocal_mask(neighbours, 1), [[True, True], [True, True], [True, False], [True, False]]
    )


def test_encoding_rows_sum_to_one_and_nearest_neighbour_lists_start_with_self():
    features = torch.from_numpy(clustered_features(seed=3))
    neighbours = nearest_neighbour_lists(features, k=7)
    np.testing.assert_array_equal(neighbours.indices[:, 0], np.arange(len(features)))
    encoding = k_reciprocal_encoding(neighbours.indices, k1=6, k2=3, pair_distance=lambda rows, cols: 0 * rows)
    np.testing.assert_allclose(np.asarray(encoding.sum(axis=1)).ravel(), 1.0, atol=1e-12)


def test_re_ranking_needs_more_points_than_k1():
    with pytest.raises(ValueError, match="more than k1"):
        re_ranking(torch.randn(3, 4), torch.randn(5, 4), k1=20)

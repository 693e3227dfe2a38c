"""CA-Jaccard's camera-aware Jaccard distance as its public code computes it, dense: the baseline that the sparse
version (canu_core/cluster/camera_jaccard.py) must match, used by tests/test_ca_jaccard.py and bench_ca_jaccard.py.

Written in our own words from `compute_jaccard_distance` in caj/utils/caj_rerank.py (github.com/chenyiyuu/CA-Jaccard
at commit 979a1f0; its README clones github.com/chen960/CA-Jaccard), step by step, with its dense float32 N x N
arrays and per-point loops:
- d = 2 - 2 * x.y in float32 (features L2-normalised, as Cluster Contrast's extractor returns them);
- rankings by np.argpartition over range(k + 2): intra-camera with 999 added to the other cameras' d, inter-camera
  with 999 added to the own camera's (self included), global on d; numpy promotes d + 999 * mask to float64, so
  the order among the shifted points is d's own;
- k-reciprocal sets (lists of k + 1, checked both ways), CKRNNs as the union of the intra and inter sets, or the
  global set with the 2/3 expansion (half lists of round(k1 / 2) + 1);
- V[i] = softmax(-d) over the set, float32; CLQE (mean of V over the first k2_intra intra and k2_inter inter
  points) or LQE (the first k2 global), skipped when k2 is 1; epoch 0 sets k2_intra = k2_inter = 3;
- Jaccard from min-sums over an inverted index, negatives clipped to 0.
One departure: the softmax of each row is numpy's, in float32, not a torch call per point (torch's tiny calls cost
milliseconds each on a busy 2-core machine); it only makes the reference faster.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN


def reciprocal_neighbours(ranking: np.ndarray, point: int, k: int) -> np.ndarray:
    """The public `k_reciprocal_neigh`: the points among `point`'s first k + 1 that list it among their first k + 1."""
    forward = ranking[point, : k + 1]
    backward = ranking[forward, : k + 1]
    return forward[np.where(backward == point)[0]]


def compute_ca_jaccard_distance(
    features: np.ndarray,
    cameras: np.ndarray,
    k1: int = 30,
    k2: int = 6,
    ckrnns: bool = True,
    clqe: bool = True,
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 3,
    k2_inter: int = 3,
    epoch: int = 1,
) -> np.ndarray:
    """[N, N] float32 CA-Jaccard distance of L2-normalised float32 `features` with `cameras` [N]."""
    num_points = len(features)
    original = 2 - 2 * np.matmul(features, features.T)
    same_camera = cameras.reshape(-1, 1) == cameras.reshape(1, -1)
    if ckrnns or clqe:
        inter_rank = np.argpartition(original + 999.0 * same_camera, range(k1_inter + 2))
        intra_rank = np.argpartition(original + 999.0 * (~same_camera), range(k1_intra + 2))
    global_rank = np.argpartition(original, range(k1 + 2))

    if ckrnns:
        inter = [reciprocal_neighbours(inter_rank, i, k1_inter) for i in range(num_points)]
        intra = [reciprocal_neighbours(intra_rank, i, k1_intra) for i in range(num_points)]
        sets = [np.union1d(intra[i], inter[i]) for i in range(num_points)]
    else:
        sets = [reciprocal_neighbours(global_rank, i, k1) for i in range(num_points)]
        half_sets = [reciprocal_neighbours(global_rank, i, int(np.around(k1 / 2))) for i in range(num_points)]

    encoding = np.zeros((num_points, num_points), dtype=np.float32)
    for i in range(num_points):
        expanded = sets[i]
        if not ckrnns:
            for candidate in sets[i]:
                half = half_sets[candidate]
                if len(np.intersect1d(half, sets[i])) > 2 / 3 * len(half):
                    expanded = np.append(expanded, half)
        expanded = np.unique(expanded)
        logits = -original[i][expanded]
        weights = np.exp(logits - logits.max())
        encoding[i, expanded] = weights / weights.sum()

    if epoch == 0:
        k2_intra, k2_inter = 3, 3
    if k2 != 1:
        expanded_encoding = np.zeros_like(encoding)
        for i in range(num_points):
            if clqe:
                averaged = np.append(intra_rank[i, :k2_intra], inter_rank[i, :k2_inter])
            else:
                averaged = global_rank[i, :k2]
            expanded_encoding[i, :] = np.mean(encoding[averaged, :], axis=0)
        encoding = expanded_encoding
    return jaccard_from_encoding(encoding)


def jaccard_from_encoding(encoding: np.ndarray) -> np.ndarray:
    """The public `v2jaccard`: per point, min-sums with every other point through the inverted index, float32."""
    num_points = len(encoding)
    users = [np.where(encoding[:, column] != 0)[0] for column in range(num_points)]
    distance = np.zeros((num_points, num_points), dtype=np.float32)
    for i in range(num_points):
        overlap = np.zeros((1, num_points), dtype=np.float32)
        columns = np.where(encoding[i, :] != 0)[0]
        for column in columns:
            sharing = users[column]
            overlap[0, sharing] = overlap[0, sharing] + np.minimum(encoding[i, column], encoding[sharing, column])
        distance[i] = 1 - overlap / (2 - overlap)
    distance[distance < 0] = 0.0
    return distance


def dbscan_labels(distance: np.ndarray, eps: float, min_samples: int = 4, n_jobs: int = 2) -> np.ndarray:
    """train_caj.py's DBSCAN on the dense matrix (n_jobs capped: -1 there)."""
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs).fit_predict(distance)

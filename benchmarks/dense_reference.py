"""The pseudo-label step of SpCL / MMT as their public code runs it, dense: the baseline that the sparse version in
canu_core.cluster (jaccard.py, pseudo_labels.py) must match, used by tests/test_jaccard.py and bench_cluster.py.

Written from SpCL's `compute_jaccard_distance` (spcl/utils/faiss_rerank.py, CPU path) and its training script:
- k nearest neighbours from a faiss exact index (IndexFlatIP on L2-normalised features); the lists hold k1 + 1
  points (the point itself first), as in Zhong et al.'s definition. (SpCL's public code asks faiss for k1 only,
  so its lists are one point shorter; MMT's dense version argsorts the full matrix, i.e. k1 + 1.)
- k1 and round(k1 / 2) k-reciprocal lists, the 2/3 expansion rule, V[i] = softmax(-(2 - 2 * similarity)) over the
  expanded set, query expansion by the mean of the k2 nearest rows, all in dense float32 N x N arrays;
- Jaccard = 1 - m / (2 - m) with m the sum of element-wise minima, negatives clipped to 0;
- eps = mean of the smallest round(rho * n) of the n = N (N - 1) / 2 upper-triangle distances, then
  DBSCAN(eps, min_samples, metric="precomputed") on the dense matrix. n_jobs is capped (n_jobs=-1 in SpCL).
Nothing here is optimised: its loops and N x N arrays are what is measured. Two departures from SpCL's code:
- SpCL takes the upper triangle as `np.triu(d, 1)[np.nonzero(...)]`, which also drops off-diagonal distances
  that are exactly 0. Those come from pairs with identical encodings (same k2 nearest neighbours, e.g. an identity
  with 6 images), where rounding gives 0, 6e-8 or a clipped negative at random: on the benchmark data at N=3000,
  110 pairs are exactly 0 in float32 (69 in float64), and dropping them raises eps by 2% (0.0870 to 0.0889).
  Here (and in canu_core) every upper-triangle distance counts, so eps does not hang on rounding.
- Each row's similarities to its expanded set come from numpy, not torch.mm on tensor[numpy index]: on 2 shared
  cores those tiny torch calls cost 0.5 to 12 ms each (thread-pool waits; indexing a tensor with a numpy array is
  slow too), which would measure the machine, not the algorithm. This only makes the reference faster.
"""
from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import DBSCAN
from tqdm import tqdm


def k_reciprocal_neigh(initial_rank: np.ndarray, i: int, k1: int) -> np.ndarray:
    forward_k_neigh_index = initial_rank[i, :k1 + 1]
    backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
    fi = np.where(backward_k_neigh_index == i)[0]
    return forward_k_neigh_index[fi]


def compute_jaccard_distance(features: torch.Tensor, k1: int = 20, k2: int = 6,
                             progress: bool = False) -> np.ndarray:
    """Dense [N, N] float32 Jaccard distance of L2-normalised features."""
    features = F.normalize(features.float(), dim=1)
    array = features.numpy()
    num_points = features.size(0)
    index = faiss.IndexFlatIP(features.size(1))
    index.add(array)
    _, initial_rank = index.search(array, k1 + 1)

    nn_k1 = []
    nn_k1_half = []
    for i in range(num_points):
        nn_k1.append(k_reciprocal_neigh(initial_rank, i, k1))
        nn_k1_half.append(k_reciprocal_neigh(initial_rank, i, int(np.around(k1 / 2))))

    V = np.zeros((num_points, num_points), dtype=np.float32)
    for i in tqdm(range(num_points), desc="reference V", disable=not progress):
        k_reciprocal_index = nn_k1[i]
        k_reciprocal_expansion_index = k_reciprocal_index
        for candidate in k_reciprocal_index:
            candidate_k_reciprocal_index = nn_k1_half[candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        dist = 2 - 2 * array[i] @ array[k_reciprocal_expansion_index].T
        V[i, k_reciprocal_expansion_index] = F.softmax(torch.from_numpy(-dist), dim=0).numpy()
    del nn_k1, nn_k1_half

    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(num_points):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank

    invIndex = []
    for i in range(num_points):
        invIndex.append(np.where(V[:, i] != 0)[0])

    jaccard_dist = np.zeros((num_points, num_points), dtype=np.float32)
    for i in tqdm(range(num_points), desc="reference Jaccard", disable=not progress):
        temp_min = np.zeros((1, num_points), dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(V[i, indNonZero[j]],
                                                                               V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
    del invIndex, V

    jaccard_dist[jaccard_dist < 0] = 0.0
    return jaccard_dist


def rho_eps(distance: np.ndarray, rho: float = 1.6e-3) -> float:
    """eps: the mean of the smallest rho fraction of the upper-triangle distances (see the module docstring)."""
    tri_mat = distance[np.triu_indices(len(distance), 1)]
    tri_mat = np.sort(tri_mat, axis=None)
    top_num = np.round(rho * tri_mat.size).astype(int)
    return float(tri_mat[:top_num].mean())


def dbscan_labels(distance: np.ndarray, eps: float, min_samples: int = 4, n_jobs: int = 2) -> np.ndarray:
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs).fit_predict(distance)


def pseudo_labels(features: torch.Tensor, k1: int = 20, k2: int = 6, rho: float = 1.6e-3,
                  min_samples: int = 4, progress: bool = False) -> tuple[np.ndarray, float]:
    """The whole step: Jaccard distance, eps by the rho rule, DBSCAN. Returns (labels with -1 outliers, eps)."""
    distance = compute_jaccard_distance(features, k1, k2, progress)
    eps = rho_eps(distance, rho)
    return dbscan_labels(distance, eps, min_samples), eps

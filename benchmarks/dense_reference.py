"""SpCL's pseudo-label step as its public code runs it, dense: the baseline that the sparse version in
canu_core.cluster (jaccard.py variant "spcl", pseudo_labels.py) must match, used by tests/test_jaccard.py and
bench_cluster.py.

Written in our own words from SpCL's `compute_jaccard_distance` (spcl/utils/faiss_rerank.py, CPU path:
search_option=3, an exact faiss IndexFlatL2) and its training script, step by step:
- each point's k1 nearest (itself first) from the L2 index on L2-normalised features. SpCL's k-reciprocal lists
  slice `[:k1 + 1]` of these k1 columns, so R(i, k1) reads k1 points (Zhong's and MMT's read k1 + 1); the half
  step reads round(k1 / 2) + 1 of them (numpy's around: half to even);
- the 2/3 expansion rule, V[i] = softmax(-(2 - 2 * similarity)) over the expanded set, query expansion by the mean
  of the rows of V of the first k2 of the k1 nearest, all in dense float32 N x N arrays;
- Jaccard = 1 - m / (2 - m) with m the sum of element-wise minima of two rows of V, accumulated per point over an
  inverted index (which points use each column), negatives clipped to 0;
- eps = mean of the smallest round(rho * n) of the n = N (N - 1) / 2 upper-triangle distances, then
  DBSCAN(eps, min_samples, metric="precomputed") on the dense matrix. n_jobs is capped (n_jobs=-1 in SpCL).
Nothing here is optimised: its loops and N x N arrays are what is measured. Two departures from SpCL's code:
- SpCL takes the upper triangle as `np.triu(d, 1)[np.nonzero(...)]`, which also drops off-diagonal distances
  that are exactly 0. Those come from pairs with identical encodings (same k2 nearest neighbours, e.g. an identity
  with 6 images), where rounding gives 0, 6e-8 or a clipped negative at random: on the benchmark data at N=3000,
  99 pairs are exactly 0 here in float32 (87 in canu_core, which sums in float64), and dropping them raises eps by
  1.9% (0.0807 to 0.0822).
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


def reciprocal_neighbours(ranking: np.ndarray, point: int, length: int) -> np.ndarray:
    """The points among `point`'s first `length` neighbours that have `point` among their first `length`."""
    candidates = ranking[point, :length]
    return candidates[(ranking[candidates, :length] == point).any(axis=1)]


def compute_jaccard_distance(features: torch.Tensor, k1: int = 20, k2: int = 6, progress: bool = False) -> np.ndarray:
    """Dense [N, N] float32 Jaccard distance of the features (L2-normalised first), SpCL's algorithm."""
    unit = F.normalize(features.float(), dim=1).numpy()
    num_points = len(unit)
    index = faiss.IndexFlatL2(unit.shape[1])
    index.add(unit)
    _, ranking = index.search(unit, k1)  # k1 columns, as SpCL asks faiss

    # SpCL's [:k1 + 1] slices of k1 columns read k1 points; its half step reads round(k1 / 2) + 1.
    full_sets = [reciprocal_neighbours(ranking, point, k1) for point in range(num_points)]
    half_sets = [reciprocal_neighbours(ranking, point, int(np.around(k1 / 2)) + 1) for point in range(num_points)]

    encoding = np.zeros((num_points, num_points), dtype=np.float32)
    for point in tqdm(range(num_points), desc="reference V", disable=not progress):
        own = full_sets[point]
        expanded = own
        for candidate in own:
            half = half_sets[candidate]
            if len(np.intersect1d(half, own)) > 2 / 3 * len(half):
                expanded = np.append(expanded, half)
        expanded = np.unique(expanded)
        distance = 2 - 2 * unit[point] @ unit[expanded].T
        encoding[point, expanded] = F.softmax(torch.from_numpy(-distance), dim=0).numpy()
    del full_sets, half_sets

    if k2 != 1:
        expanded_queries = np.zeros_like(encoding)
        for point in range(num_points):
            expanded_queries[point] = encoding[ranking[point, :k2]].mean(axis=0)
        encoding = expanded_queries
        del expanded_queries
    del ranking

    users = [np.flatnonzero(encoding[:, column]) for column in range(num_points)]  # points whose V uses the column
    jaccard = np.zeros((num_points, num_points), dtype=np.float32)
    for point in tqdm(range(num_points), desc="reference Jaccard", disable=not progress):
        overlap = np.zeros(num_points, dtype=np.float32)
        for column in np.flatnonzero(encoding[point]):
            others = users[column]
            overlap[others] += np.minimum(encoding[point, column], encoding[others, column])
        jaccard[point] = 1 - overlap / (2 - overlap)
    del users, encoding

    jaccard[jaccard < 0] = 0.0
    return jaccard


def rho_eps(distance: np.ndarray, rho: float = 1.6e-3) -> float:
    """eps: the mean of the smallest rho fraction of the upper-triangle distances (see the module docstring)."""
    upper = np.sort(distance[np.triu_indices(len(distance), 1)], axis=None)
    return float(upper[: np.round(rho * upper.size).astype(int)].mean())


def dbscan_labels(distance: np.ndarray, eps: float, min_samples: int = 4, n_jobs: int = 2) -> np.ndarray:
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs).fit_predict(distance)


def pseudo_labels(
    features: torch.Tensor, k1: int = 20, k2: int = 6, rho: float = 1.6e-3, min_samples: int = 4, progress: bool = False
) -> tuple[np.ndarray, float]:
    """The whole step: Jaccard distance, eps by the rho rule, DBSCAN. Returns (labels with -1 outliers, eps)."""
    distance = compute_jaccard_distance(features, k1, k2, progress)
    eps = rho_eps(distance, rho)
    return dbscan_labels(distance, eps, min_samples), eps

"""Pseudo-labels from clustering features: DBSCAN on the sparse k-reciprocal Jaccard distance (MMT-DBSCAN, SpCL,
SSG; eps by the rho rule, fixed after the first clustering), or k-means (MMT's original).

Both return a `PseudoLabels`: labels 0..C-1 numbered by the order of each cluster's first image (-1 for DBSCAN's
outliers), and each cluster's centroid (mean of its clustering features, L2-normalised), which initialises the
classifier rows and conditions CANU's camera discriminator. A clustering that yields no cluster or a single one is
not an error: it comes back with a status saying so, and the training loop decides what to do.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN, KMeans

from .jaccard import symmetric_distance, upper_jaccard_distance

# DBSCAN's worker count: n_jobs=-1 has got processes killed for memory (reference notes).
DBSCAN_JOBS = 2


@dataclass(frozen=True)
class PseudoLabels:
    """labels [N] int64 (-1: outlier), centroids [C, D] float32 (row c: cluster c), status "ok", "no_clusters"
    or "single_cluster" with a message saying what happened; eps: the DBSCAN radius used (None for k-means)."""

    labels: np.ndarray
    centroids: np.ndarray
    status: str
    message: str
    eps: float | None = None

    @property
    def num_clusters(self) -> int:
        return len(self.centroids)

    @property
    def outliers(self) -> np.ndarray:
        return self.labels < 0


def rho_eps(distance: sp.spmatrix, rho: float = 1.6e-3) -> float:
    """eps by the rho rule from a sparse distance whose missing entries are 1 (the whole matrix or its upper
    triangle, only the strict upper triangle is read): the mean of the smallest round(rho * n) of the
    n = N (N - 1) / 2 upper-triangle distances, stored or missing. When fewer than that many are stored, the rest
    of the smallest are missing entries, i.e. 1s. At least one distance is taken (below 26 points,
    round(rho * n) is 0). Zero distances count: SpCL's code drops them (np.nonzero), which makes its eps hang on
    float32 rounding (benchmarks/dense_reference.py says more)."""
    distance = distance.tocsr()
    num_points = distance.shape[0]
    rows = np.repeat(np.arange(num_points, dtype=distance.indices.dtype), np.diff(distance.indptr))
    upper = distance.data[distance.indices > rows]
    take = max(1, int(np.round(rho * (num_points * (num_points - 1) // 2))))
    if take < len(upper):
        upper.partition(take - 1)
    smallest = np.sort(upper[:take])
    return float(np.concatenate([smallest, np.ones(take - len(smallest))]).mean())


def rho_rule_note(rho: float, num_points: int, eps: float) -> str:
    """What to know about an eps the rho rule gave: empty when it is sound. The rule averages the smallest
    round(rho * pairs) distances; on few points that is less than one pair (the smallest one is used), and when the
    smallest distances are ties at zero (points with the same k-reciprocal neighbours) DBSCAN joins nothing else."""
    pairs = num_points * (num_points - 1) // 2
    notes = []
    if rho * pairs < 0.5:
        notes.append(f"rho {rho:g} takes {rho * pairs:.2g} of the {pairs} pairs of {num_points} points, fewer than "
                     "one: the smallest distance was used")
    if eps < 1e-6:
        notes.append(f"the rho rule's eps ({eps:.2g}) is zero: the smallest Jaccard distances are ties at 0, so "
                     "DBSCAN joins only those; raise rho or set eps")
    return "; ".join(notes)


class DBSCANClustering:
    """DBSCAN on the Jaccard distance with min_samples=4; eps from the rho rule at the first call, then kept
    (MMT / SpCL compute it once, at the first epoch), unless given. DBSCAN gets only the pairs within eps (the
    others are no neighbours at any distance above eps), which gives the same labels as the whole matrix."""

    def __init__(self, eps: float | None = None, rho: float = 1.6e-3, min_samples: int = 4, k1: int = 20,
                 k2: int = 6, n_jobs: int = DBSCAN_JOBS, progress: bool = False):
        self.eps, self.rho, self.min_samples = eps, rho, min_samples
        self.eps_by_rule = eps is None  # a resumed run restores eps, never this
        self.k1, self.k2, self.n_jobs, self.progress = k1, k2, n_jobs, progress

    def __call__(self, features: torch.Tensor | np.ndarray) -> PseudoLabels:
        upper = upper_jaccard_distance(features, self.k1, self.k2, self.progress)
        if self.eps is None:
            # sklearn needs eps > 0; a rule that gives 0 (the smallest distances are exact duplicates, as on tiny
            # data) keeps its meaning with the smallest positive float: only distance-0 pairs are neighbours.
            self.eps = max(rho_eps(upper, self.rho), float(np.finfo(np.float32).tiny))
        neighbourhoods = symmetric_distance(_entries_at_most(upper, self.eps))
        labels = DBSCAN(eps=self.eps, min_samples=self.min_samples, metric="precomputed",
                        n_jobs=self.n_jobs).fit_predict(neighbourhoods)
        pseudo = pseudo_labels_from(features, labels, eps=self.eps)
        note = rho_rule_note(self.rho, upper.shape[0], self.eps) if self.eps_by_rule else ""
        return dataclasses.replace(pseudo, message=f"{pseudo.message}; {note}") if note else pseudo


class KMeansClustering:
    """k-means into n_clusters (MMT's original pseudo-labels: sklearn KMeans on the clustering features)."""

    def __init__(self, n_clusters: int, seed: int = 0, n_init: int = 1):
        self.n_clusters, self.seed, self.n_init = n_clusters, seed, n_init

    def __call__(self, features: torch.Tensor | np.ndarray) -> PseudoLabels:
        features = _as_array(features)
        if not 1 <= self.n_clusters <= len(features):
            raise ValueError(f"k-means into {self.n_clusters} clusters needs at least as many points, "
                             f"got {len(features)}")
        labels = KMeans(self.n_clusters, random_state=self.seed, n_init=self.n_init).fit_predict(features)
        return pseudo_labels_from(features, labels)


def pseudo_labels_from(features: torch.Tensor | np.ndarray, labels: np.ndarray,
                       eps: float | None = None) -> PseudoLabels:
    """Relabel a clustering (clusters numbered by their first image, outliers -1), with centroids and status."""
    features = _as_array(features)
    labels = relabel_by_first_member(labels)
    centroids = cluster_centroids(features, labels)
    num_points, num_outliers = len(labels), int((labels < 0).sum())
    summary = f"{len(centroids)} clusters, {num_outliers} outliers among {num_points} points"
    if len(centroids) == 0:
        status, message = "no_clusters", f"no cluster: all {num_points} points are outliers"
    elif len(centroids) == 1:
        status, message = "single_cluster", f"a single cluster: {summary}"
    else:
        status, message = "ok", summary
    if eps is not None:
        message += f" (eps={eps:.6g})"
    return PseudoLabels(labels, centroids, status, message, eps)


def relabel_by_first_member(labels: np.ndarray) -> np.ndarray:
    """Labels 0..C-1 in the order of each cluster's first (lowest-index) point; negative labels become -1."""
    labels = np.asarray(labels)
    clustered = labels >= 0
    _, first, inverse = np.unique(labels[clustered], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    out = np.full(len(labels), -1, dtype=np.int64)
    out[clustered] = rank[inverse]
    return out


def cluster_centroids(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[C, D] float32: mean feature of each cluster 0..C-1 (outliers ignored), L2-normalised."""
    clustered = np.nonzero(labels >= 0)[0]
    num_clusters = int(labels.max()) + 1 if len(clustered) else 0
    membership = sp.csr_matrix((np.ones(len(clustered), dtype=features.dtype), (labels[clustered], clustered)),
                               shape=(num_clusters, len(labels)))
    sums = np.asarray(membership @ features, dtype=np.float64)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, np.finfo(np.float64).tiny)).astype(np.float32)


def _entries_at_most(distance: sp.spmatrix, limit: float) -> sp.coo_matrix:
    coo = distance.tocoo()
    keep = coo.data <= limit
    return sp.coo_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=coo.shape)


def _as_array(features: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    return np.asarray(features, dtype=np.float32)

"""Pseudo-labels from clustering features: DBSCAN on the sparse k-reciprocal Jaccard distance (MMT-DBSCAN, SpCL,
SSG) or CA-Jaccard's camera-aware one (eps by the rho rule, fixed after the first clustering), optionally blended
with SSG's source-distance term, or k-means (MMT's original).

Both return a `PseudoLabels`: labels 0..C-1 numbered by the order of each cluster's first image (-1 for DBSCAN's
outliers), and each cluster's centroid (mean of its clustering features, L2-normalised), which initialises the
classifier rows and conditions CANU's camera discriminator. A clustering that yields no cluster or a single one is
not an error: it comes back with a status saying so, and the training loop decides what to do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN, KMeans

from ..config import Params
from ..device import resolve_device

if TYPE_CHECKING:  # data imports cluster (its worlds' readout): the records' type only
    from ..data.records import ImageRecord

from .camera_jaccard import CameraAware, check_camera_aware, check_cameras, upper_camera_jaccard_distance
from .jaccard import EXACT_SEARCH, VARIANTS, NeighbourSearch, symmetric_distance, upper_jaccard_distance
from .kreciprocal import _blocks_by_cost

# The distances DBSCAN may cluster on: the k-reciprocal variants (jaccard.py), and "ca", CA-Jaccard's
# camera-aware one (camera_jaccard.py).
DISTANCES = (*VARIANTS, "ca")
# DBSCAN's worker count: n_jobs=-1 has got processes killed for memory (reference notes).
DBSCAN_JOBS = 2
# Pairs examined per block when enumerating entries a sparse distance does not store.
MISSING_BLOCK = 2**22
# Most unstored pairs DBSCAN may be given as neighbours (eps >= 1 - source weight): beyond, the sparse matrix would
# be as large as a dense one (2^26 pairs: about 2 GB inside sklearn).
MAX_MISSING_NEIGHBOURS = 2**26


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


@dataclass(frozen=True)
class SourceTerm:
    """SSG's blend of the Jaccard distance J with its source term: (1 - weight) * J(i, j) + weight * (s_i + s_j),
    s = `jaccard.source_distance_vector` (SSG's `re_ranking`, MMT's `compute_jaccard_dist` with source features,
    whose lambda_value is the weight). An entry the sparse Jaccard distance does not store (J = 1) is worth
    (1 - weight) + weight * (s_i + s_j), and the diagonal (J = 0) weight * 2 * s_i."""

    vector: np.ndarray  # [N] float64
    weight: float

    def pair_values(self, jaccard: np.ndarray | float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.blend(jaccard, self.vector[rows], self.vector[cols])

    def blend(self, jaccard: np.ndarray | float, source_row: np.ndarray, source_col: np.ndarray) -> np.ndarray:
        """The one formula of every value (stored, missing, bounds), so that they round alike."""
        return (1.0 - self.weight) * jaccard + self.weight * (source_row + source_col)

    def combine(self, upper: sp.spmatrix) -> sp.csr_matrix:
        """The blended distance on the stored entries of a sparse Jaccard distance (float64; missing: see above)."""
        coo = upper.tocoo()
        return sp.csr_matrix((self.pair_values(coo.data, coo.row, coo.col), (coo.row, coo.col)), shape=upper.shape)

    def lowest_missing(self) -> float:
        """No pair of distinct points is worth less than this when not stored."""
        two_smallest = np.partition(self.vector, 1)[:2] if len(self.vector) > 1 else np.zeros(2)
        return float(self.blend(1.0, two_smallest[0], two_smallest[1]))


def rho_pair_count(rho: float, num_points: int) -> int:
    """How many of the N (N - 1) / 2 pairs the rho rule averages: round(rho * pairs), at least one."""
    return max(1, int(np.round(rho * (num_points * (num_points - 1) // 2))))


def rho_eps(distance: sp.spmatrix, rho: float = 1.6e-3, source: SourceTerm | None = None) -> float:
    """eps by the rho rule from a sparse distance (the whole matrix or its upper triangle, only the strict upper
    triangle is read): the mean of the smallest round(rho * n) of the n = N (N - 1) / 2 upper-triangle distances,
    stored or missing. A missing entry is 1 (the Jaccard distance alone), or worth what `source` says it is (the
    blended distance); those are counted with their true value whenever they could be among the smallest. At
    least one distance is taken (below 26 points, round(rho * n) is 0). Zero distances count: SpCL's and MMT's code
    drop them (np.nonzero), which makes their eps hang on float32 rounding (benchmarks/dense_reference.py says
    more)."""
    distance = distance.tocsr()
    num_points = distance.shape[0]
    rows = np.repeat(np.arange(num_points, dtype=distance.indices.dtype), np.diff(distance.indptr))
    in_upper = distance.indices > rows
    values = distance.data[in_upper]
    take = rho_pair_count(rho, num_points)
    smallest_stored = _smallest(values, take)
    if source is None or source.weight == 0:  # every missing entry is 1, above every stored one
        return float(np.concatenate([smallest_stored, np.ones(take - len(smallest_stored))]).mean())
    limit = smallest_stored[-1] if len(smallest_stored) == take else np.inf
    limit = min(limit, _missing_bound(source, take, stored=len(values)))
    if limit < source.lowest_missing():
        return float(smallest_stored.mean())
    missing = [
        found for _, _, found in _missing_entries_at_most(rows[in_upper], distance.indices[in_upper], source, limit)
    ]
    return float(_smallest(np.concatenate([values[values <= limit], *missing]), take).mean())


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """The `count` smallest values (all if fewer), sorted, float64 (for the mean: float32 sums drift). Reorders
    `values` in place (no copy of millions of distances)."""
    if count < len(values):
        values.partition(count - 1)
    return np.sort(values[:count]).astype(np.float64)


def _missing_bound(source: SourceTerm, wanted: int, stored: int) -> float:
    """A value that at least `wanted` missing entries do not exceed when `stored` pairs are stored: the pairs among
    the m points of smallest s, m (m - 1) / 2 >= wanted + stored, are worth at most the blend of their two largest
    s when missing, and at most `stored` of them are not. inf if there are fewer than m points."""
    count = wanted + stored
    smallest_points = int(np.ceil((1 + np.sqrt(1 + 8.0 * count)) / 2))
    while smallest_points * (smallest_points - 1) // 2 < count:  # float rounding of the square root
        smallest_points += 1
    if smallest_points > len(source.vector):
        return np.inf
    largest_two = np.sort(np.partition(source.vector, smallest_points - 1)[:smallest_points])[-2:]
    return float(source.blend(1.0, largest_two[0], largest_two[1]))


def _missing_entries_at_most(stored_rows: np.ndarray, stored_cols: np.ndarray, source: SourceTerm, limit: float):
    """Yields (rows, cols, values), rows < cols, of the upper-triangle entries not among the stored ones whose
    value (`source`'s missing-entry value) is at most `limit`, in blocks: points taken in order of s, each paired
    with the later ones whose s keeps the pair within reach (never N x N at once)."""
    num_points = len(source.vector)
    stored_keys = np.sort(stored_rows.astype(np.int64) * num_points + stored_cols)
    order = np.argsort(source.vector, kind="stable")
    ordered = source.vector[order]
    counts = _candidate_counts(ordered, source.weight, limit)
    for start, stop in _blocks_by_cost(counts[: np.count_nonzero(counts)], MISSING_BLOCK):
        block_counts = counts[start:stop]
        first = np.repeat(np.arange(start, stop), block_counts)
        second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(block_counts) - block_counts, block_counts)
        rows, cols = np.minimum(order[first], order[second]), np.maximum(order[first], order[second])
        keys = rows.astype(np.int64) * num_points + cols
        position = np.minimum(np.searchsorted(stored_keys, keys), max(len(stored_keys) - 1, 0))
        stored = stored_keys[position] == keys if len(stored_keys) else np.zeros(len(keys), dtype=bool)
        values = source.pair_values(1.0, rows, cols)
        keep = ~stored & (values <= limit)
        yield rows[keep], cols[keep], values[keep]


def _candidate_counts(ordered: np.ndarray, weight: float, limit: float) -> np.ndarray:
    """For each position p of the ascending s, how many later positions q may pair with it within `limit`: those
    with s_p + s_q within the bound the blend implies, widened against rounding (the values are checked exactly
    after). Non-increasing in p."""
    if weight == 0:
        bound = np.inf if limit >= 1.0 else -np.inf
    else:
        bound = (limit - (1.0 - weight)) / weight + 1e-9 * (1.0 + 1.0 / weight)
    ends = np.searchsorted(ordered, bound - ordered, side="right")
    return np.maximum(ends - np.arange(len(ordered)) - 1, 0)


def rho_rule_note(rho: float, num_points: int, eps: float, stored_pairs: int | None = None) -> str:
    """What to know about an eps the rho rule gave: empty when it is sound. The rule averages the smallest
    round(rho * pairs) distances; on few points that is less than one pair (the smallest one is used); when the
    smallest distances are ties at zero (points with the same k-reciprocal neighbours) DBSCAN joins nothing else;
    and when it takes more pairs than the `stored_pairs` below 1 of a Jaccard distance alone (those sharing a
    k-reciprocal neighbour), the rest count at 1 and pull eps towards it. The rule takes a share of all N^2 / 2 pairs
    while each point has a bounded number of neighbours, so a rho set for one size is too large for a much larger
    target: rho * (N - 1) / 2 pairs per point is what to keep (MSMT17's 32,621 images at the paper's 1.6e-3: 26)."""
    pairs = num_points * (num_points - 1) // 2
    take = rho_pair_count(rho, num_points)
    notes = []
    if rho * pairs < 0.5:
        notes.append(
            f"rho {rho:g} takes {rho * pairs:.2g} of the {pairs} pairs of {num_points} points, fewer than "
            "one: the smallest distance was used"
        )
    if stored_pairs is not None and take > stored_pairs:
        notes.append(
            f"rho {rho:g} takes {take} pairs of {num_points} points ({rho * (num_points - 1) / 2:.0f} per point), "
            f"more than the {stored_pairs} that share a k-reciprocal neighbour: the other {take - stored_pairs} count "
            f"at distance 1 and pull eps ({eps:.4g}) towards it; lower rho"
        )
    if eps < 1e-6:
        notes.append(
            f"the rho rule's eps ({eps:.2g}) is zero: the smallest Jaccard distances are ties at 0, so "
            "DBSCAN joins only those; raise rho or set eps"
        )
    return "; ".join(notes)


class DBSCANClustering:
    """DBSCAN with min_samples=4 on the Jaccard distance of variant `jaccard` ("mmt" or "spcl", jaccard.py; "ca",
    camera_jaccard.py, with each point's camera in `cameras` and CA-Jaccard's settings in `camera_aware`), blended
    with SSG's source term when source_weight w > 0: (1 - w) * Jaccard + w * (s_i + s_j), s given at each call.
    eps from the rho rule at the first call, then kept (MMT / SpCL / SSG compute it once, at the first epoch),
    unless given. DBSCAN gets only the pairs within eps (the others are no neighbours at any distance above eps),
    which gives the same labels as the whole matrix. `search`: how the Jaccard distance's neighbour lists are found
    (exact by default; jaccard.NeighbourSearch; "ca" searches exactly only). With "ca" and `clqe_warmup`, the first
    clustering (CA-Jaccard's epoch 0) averages 3 intra- and 3 inter-camera neighbours whatever k2_intra and k2_inter
    say, as train_caj.py does; a clustering restored on resume (`restore_eps`) is past it."""

    def __init__(
        self,
        eps: float | None = None,
        rho: float = 1.6e-3,
        min_samples: int = 4,
        k1: int = 20,
        k2: int = 6,
        jaccard: str = "mmt",
        source_weight: float = 0.0,
        n_jobs: int = DBSCAN_JOBS,
        progress: bool = False,
        device: str | torch.device = "cpu",
        search: NeighbourSearch = EXACT_SEARCH,
        cameras: Sequence[int] | np.ndarray | None = None,
        camera_aware: CameraAware | None = None,
        clqe_warmup: bool = True,
    ):
        if jaccard not in DISTANCES:
            raise ValueError(f"unknown Jaccard variant {jaccard!r}: expected one of {', '.join(map(repr, DISTANCES))}")
        if jaccard == "ca":
            if cameras is None:
                raise ValueError("the camera-aware Jaccard distance (jaccard 'ca') needs each point's camera: cameras")
            self.cameras = check_cameras(cameras, len(cameras))
            self.camera_aware = camera_aware or CameraAware()
            check_camera_aware(self.camera_aware, k1, k2)
            if search.method != "exact":
                raise ValueError(
                    f"the camera-aware Jaccard distance searches exactly: neighbour search {search.method!r}"
                    " is for jaccard 'mmt' and 'spcl'"
                )
        elif cameras is not None or camera_aware is not None:
            raise ValueError(f"cameras and camera_aware serve jaccard 'ca' only; jaccard {jaccard!r} would ignore them")
        self.clqe_warmup = clqe_warmup
        self.first_clustering_done = False  # CA-Jaccard's warm-up is its epoch 0
        if not 0 <= source_weight < 1:
            raise ValueError(f"source_weight must be in [0, 1), got {source_weight}")
        self.eps, self.rho, self.min_samples = eps, rho, min_samples
        self.eps_by_rule = eps is None  # a resumed run restores eps, never this
        self.k1, self.k2, self.jaccard, self.source_weight = k1, k2, jaccard, source_weight
        self.n_jobs, self.progress = n_jobs, progress
        self.device = torch.device(device)  # where the exact search runs (a GPU: kreciprocal.neighbours_by_topk)
        self.search = search

    def __call__(
        self, features: torch.Tensor | np.ndarray, source_distance: np.ndarray | torch.Tensor | None = None
    ) -> PseudoLabels:
        """`source_distance`: s of every point (`jaccard.source_distance_vector`), required when source_weight > 0
        and refused otherwise (it would be ignored)."""
        source = self._source_term(source_distance, len(features))
        searched = torch.as_tensor(features).to(self.device)
        upper = self._jaccard(searched)
        if source is not None:
            upper = source.combine(upper)
        if self.eps is None:
            # sklearn needs eps > 0; a rule that gives 0 (the smallest distances are exact duplicates, as on tiny
            # data) keeps its meaning with the smallest positive float: only distance-0 pairs are neighbours.
            self.eps = max(rho_eps(upper, self.rho, source), float(np.finfo(np.float32).tiny))
        labels = DBSCAN(
            eps=self.eps, min_samples=self.min_samples, metric="precomputed", n_jobs=self.n_jobs
        ).fit_predict(neighbourhood_graph(upper, self.eps, source))
        pseudo = pseudo_labels_from(features, labels, eps=self.eps)
        stored = upper.nnz if source is None else None  # with the source term, a missing pair is not 1
        note = rho_rule_note(self.rho, upper.shape[0], self.eps, stored) if self.eps_by_rule else ""
        return dataclasses.replace(pseudo, message=f"{pseudo.message}; {note}") if note else pseudo

    def _jaccard(self, features: torch.Tensor) -> sp.csr_matrix:
        """The upper triangle of this clustering's Jaccard distance; the first call of a "ca" clustering is its
        warm-up."""
        if self.jaccard != "ca":
            return upper_jaccard_distance(features, self.k1, self.k2, self.jaccard, self.progress, self.search)
        if len(features) != len(self.cameras):
            raise ValueError(f"{len(features)} feature rows for {len(self.cameras)} camera labels: not the same images")
        warm_up = self.clqe_warmup and not self.first_clustering_done
        settings = self.camera_aware.warmed_up() if warm_up else self.camera_aware
        upper = upper_camera_jaccard_distance(features, self.cameras, self.k1, self.k2, settings, self.progress)
        self.first_clustering_done = True
        return upper

    def _source_term(self, source_distance, num_points: int) -> SourceTerm | None:
        if self.source_weight == 0:
            if source_distance is not None:
                raise ValueError(
                    "source_distance given to a clustering with source_weight 0, which would ignore "
                    "it: set source_weight > 0 or do not pass it"
                )
            return None
        if source_distance is None:
            raise ValueError(
                f"source_weight is {self.source_weight}: the clustering needs source_distance (each "
                "point's source distance, jaccard.source_distance_vector)"
            )
        vector = np.asarray(torch.as_tensor(source_distance).detach().cpu().double().numpy())
        if vector.shape != (num_points,) or not np.isfinite(vector).all():
            raise ValueError(
                f"source_distance must be {num_points} finite values (one per point), got shape {vector.shape}"
            )
        return SourceTerm(vector, self.source_weight)


def neighbourhood_graph(upper: sp.spmatrix, eps: float, source: SourceTerm | None = None) -> sp.csr_matrix:
    """What DBSCAN(eps, metric="precomputed") needs of a sparse upper-triangle distance (missing entries: 1, or
    their `source` value): the pairs within eps, both ways, and every point's distance to itself, stored even above
    eps (0, or 2 w s_i with the source term: above eps, the point is not its own neighbour, as in the dense matrix;
    sklearn would read a missing diagonal entry as 0). The missing entries within eps come too, when eps reaches
    them (eps >= 1 - w), unless there are so many that the matrix would be dense: that is refused. The values keep
    the dtype of `upper`: sklearn then compares float32 Jaccard distances with eps in float32, as it does on the
    public codes' dense float32 matrices."""
    source = source or SourceTerm(np.zeros(upper.shape[0]), 0.0)
    within = _entries_at_most(upper, eps)
    rows, cols, values = [within.row], [within.col], [within.data]
    if eps >= source.lowest_missing():
        ordered = np.sort(source.vector)
        candidates = int(_candidate_counts(ordered, source.weight, eps).sum())
        if candidates > MAX_MISSING_NEIGHBOURS:
            raise ValueError(
                f"eps={eps:.6g} reaches the pairs whose k-reciprocal encodings share nothing (worth "
                f"{source.lowest_missing():.6g} or more): up to {candidates} of them would be "
                "neighbours, a dense matrix; use a smaller eps"
            )
        stored = upper.tocoo()
        for found in _missing_entries_at_most(stored.row, stored.col, source, eps):
            for pieces, piece in zip((rows, cols, values), found):
                pieces.append(piece)
    values = np.concatenate(values).astype(upper.dtype)  # missing entries: exact in float32 without source term
    pairs = sp.coo_matrix((values, (np.concatenate(rows), np.concatenate(cols))), shape=upper.shape)
    points = np.arange(upper.shape[0])
    return symmetric_distance(pairs, diagonal=source.pair_values(0.0, points, points).astype(upper.dtype))


class KMeansClustering:
    """k-means into n_clusters (MMT's original pseudo-labels: sklearn KMeans on the clustering features)."""

    def __init__(self, n_clusters: int, seed: int = 0, n_init: int = 1):
        self.n_clusters, self.seed, self.n_init = n_clusters, seed, n_init

    def __call__(self, features: torch.Tensor | np.ndarray) -> PseudoLabels:
        features = _as_array(features)
        if not 1 <= self.n_clusters <= len(features):
            raise ValueError(
                f"k-means into {self.n_clusters} clusters needs at least as many points, got {len(features)}"
            )
        labels = KMeans(self.n_clusters, random_state=self.seed, n_init=self.n_init).fit_predict(features)
        return pseudo_labels_from(features, labels)


class TrueIdentities:
    """Not a clustering: the target's true identities as the pseudo-labels (every image kept), so that a method's
    recipe trains with the labels an unsupervised method never has: the target-supervised upper bound of a table,
    never a method."""

    def __init__(self, pids: Sequence[int] | np.ndarray):
        self.pids = np.asarray(pids)

    def __call__(self, features: torch.Tensor | np.ndarray, source_distance: np.ndarray | None = None) -> PseudoLabels:
        """The true identities with their centroids in `features`; `source_distance` (SSG's) plays no part."""
        if len(features) != len(self.pids):
            raise ValueError(f"{len(features)} feature rows for {len(self.pids)} true identities: not the same images")
        return pseudo_labels_from(features, self.pids)


def pseudo_labels_from(
    features: torch.Tensor | np.ndarray, labels: np.ndarray, eps: float | None = None
) -> PseudoLabels:
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
    membership = sp.csr_matrix(
        (np.ones(len(clustered), dtype=features.dtype), (labels[clustered], clustered)),
        shape=(num_clusters, len(labels)),
    )
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


def make_clustering(
    params: Params, records: Sequence[ImageRecord], source_weight: float = 0.0, device: torch.device | None = None
) -> DBSCANClustering | KMeansClustering | TrueIdentities:
    """The pseudo-labeller of `records` (the images whose features it will be given): DBSCAN on the Jaccard distance
    params.jaccard (eps by the rho rule at the first epoch, then kept; "ca" reads the records' cameras), plus
    `source_weight` times the images' distances to the source set (SSG), or k-means (no distance: no source term),
    or "true_ids": their true identities (the target-supervised upper bound). `device`: where DBSCAN's neighbour
    search runs (default: params.device's)."""
    if params.clustering == "true_ids":
        return TrueIdentities([record.pid for record in records])
    if params.clustering == "kmeans":
        if source_weight > 0:
            raise ValueError(
                "k-means clusters the features, not a distance, so it has no source term: set "
                "ssg_source_weight 0 to run SSG with k-means"
            )
        return KMeansClustering(params.n_clusters, seed=params.seed)
    return DBSCANClustering(
        eps=params.eps,
        rho=params.rho,
        min_samples=params.min_samples,
        k1=params.k1,
        k2=params.k2,
        jaccard=params.jaccard,
        source_weight=source_weight,
        device=device or resolve_device(params.device),
        search=NeighbourSearch(params.neighbour_search, params.ivf_lists, params.ivf_probes),
        **(camera_aware_arguments(params, records) if params.jaccard == "ca" else {}),
    )


def camera_aware_arguments(params: Params, records: Sequence[ImageRecord]) -> dict:
    """DBSCANClustering's "ca" arguments: the records' cameras and CA-Jaccard's settings from params."""
    settings = CameraAware(
        params.ckrnns, params.clqe, params.k1_intra, params.k1_inter, params.k2_intra, params.k2_inter
    )
    return {
        "cameras": [record.camid for record in records],
        "camera_aware": settings,
        "clqe_warmup": params.clqe_warmup,
    }


def clustering_eps(clustering: DBSCANClustering | KMeansClustering) -> float | None:
    """The radius a DBSCAN clustering keeps between epochs (None for k-means): part of the resumable state."""
    return clustering.eps if isinstance(clustering, DBSCANClustering) else None


def restore_eps(clustering: DBSCANClustering | KMeansClustering, eps: float | None) -> None:
    """Give a resumed DBSCAN clustering the radius it had kept; it has clustered before (a checkpoint follows an
    epoch), so CA-Jaccard's warm-up is behind it."""
    if isinstance(clustering, DBSCANClustering):
        clustering.eps = eps
        clustering.first_clustering_done = True

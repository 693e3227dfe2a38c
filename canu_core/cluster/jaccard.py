"""The k-reciprocal Jaccard distances that MMT and SpCL cluster with, sparse, and SSG's source-distance term.

Two variants, each the exact algorithm of its public code (MMT's `compute_jaccard_dist` in mmt/utils/rerank.py,
SpCL's `compute_jaccard_distance` in spcl/utils/faiss_rerank.py; SSG's `re_ranking` computes MMT's):
- "mmt": d(i, j) = 2 - 2 * cosine similarity, each row divided by its maximum (its farthest point); neighbour lists
  of k1 + 1 points (the point itself first) for R(i, k1), round(k1 / 2) + 1 for the half step; V[i] = exp(-scaled
  d) over the expanded set, normalised to sum 1.
- "spcl": faiss asks for k1 neighbours, so SpCL's `[:k1 + 1]` slices read k1 points for R(i, k1) (one fewer than
  Zhong's definition), and round(k1 / 2) + 1 of them for the half step; V[i] = softmax(-d), d not scaled.
Both: the 2/3 expansion rule, query expansion by the mean of the rows of V of the k2 nearest points (of the k1
in SpCL's lists), Jaccard = 1 - m / (2 - m) with m the sum of element-wise minima of two rows of V, negatives
clipped to 0. benchmarks/dense_reference.py renders SpCL's step by step; tests/test_jaccard.py renders both.

The public codes keep V and the distance as dense N x N arrays; here V is the sparse encoding of kreciprocal.py,
and the distance keeps only the pairs below 1 (pairs whose encodings overlap): every missing entry is 1. sklearn's
DBSCAN(metric="precomputed") reads a missing entry of a sparse matrix as "not a neighbour", which is what a
distance of 1 is for any eps < 1 (pseudo_labels.neighbourhood_graph adds them for larger eps). The distance is
symmetric, so it is computed for pairs j > i only (`upper_jaccard_distance`); clustering needs no more (eps from
the upper triangle, then the pairs within eps, mirrored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .kreciprocal import (
    BLOCK_ELEMENTS,
    Neighbours,
    _blocks_by_cost,
    k_reciprocal_encoding,
    nearest_neighbour_lists,
    pair_similarity,
)

VARIANTS = ("mmt", "spcl")
# Cells an approximate search reads for each point's lowest similarity (ivf_neighbour_lists).
FARTHEST_PROBES = 1
# Work per block of rows of the Jaccard distance (min terms + dense accumulator entries): tens of MB of temporaries.
JACCARD_BLOCK = 2**21
# The approximate search's cells read per image: chosen from bench_cluster.py --scaling (benchmarks/README.md)
IVF_PROBES = 16


@dataclass(frozen=True)
class NeighbourSearch:
    """How the k-nearest-neighbour lists of the Jaccard distance are found. "exact": every pair of points compared
    (`nearest_neighbour_lists`), the default and the public codes' way. "ivf": an approximate inverted-file search
    (`ivf_neighbour_lists`): k-means cells, each point compared only with the points of its `probes` most similar
    cells; `lists` cells, 0 for `ivf_cell_count(N)`. Approximate lists change the pseudo-labels slightly: an option
    for targets where the exact search costs too much (benchmarks/README.md measures recall and label agreement)."""

    method: Literal["exact", "ivf"] = "exact"
    lists: int = 0
    probes: int = IVF_PROBES

    def __post_init__(self):
        if self.method not in ("exact", "ivf"):
            raise ValueError(f"unknown neighbour search {self.method!r}: expected 'exact' or 'ivf'")
        if self.lists < 0 or self.probes < 1:
            raise ValueError(f"need lists >= 0 (0: automatic) and probes >= 1, got {self.lists} and {self.probes}")


EXACT_SEARCH = NeighbourSearch()


def check_variant(variant: str) -> None:
    """A misspelt variant (a string from Params.jaccard or a notebook) fails here, before any work."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Jaccard variant {variant!r}: expected one of {', '.join(map(repr, VARIANTS))}")


def reciprocal_list_lengths(k1: int, variant: str) -> tuple[int, int]:
    """Neighbours (self included) read by the k1 step and the half step of the expansion, as each public code
    slices its neighbour lists: MMT's full ranking gives k1 + 1; SpCL's faiss search returns only k1."""
    check_variant(variant)
    return k1 + 1 if variant == "mmt" else k1, round(k1 / 2) + 1


def compute_jaccard_distance(
    features: torch.Tensor | np.ndarray, k1: int = 20, k2: int = 6, variant: str = "mmt", progress: bool = False
) -> sp.csr_matrix:
    """[N, N] Jaccard distance of the features (compared by cosine similarity), `variant` "mmt" or "spcl": a
    symmetric float32 CSR matrix holding every pair with a distance below 1 and the diagonal (explicit zeros);
    missing entries are 1."""
    return symmetric_distance(upper_jaccard_distance(features, k1, k2, variant, progress))


def upper_jaccard_distance(
    features: torch.Tensor | np.ndarray,
    k1: int = 20,
    k2: int = 6,
    variant: str = "mmt",
    progress: bool = False,
    search: NeighbourSearch = EXACT_SEARCH,
) -> sp.csr_matrix:
    """The strict upper triangle (j > i) of the Jaccard distance, pairs below 1 only, float32 CSR; the neighbour
    lists found by `search`."""
    list_lengths = reciprocal_list_lengths(k1, variant)
    features = torch.as_tensor(features)
    if len(features) <= k1:
        raise ValueError(f"the Jaccard distance needs more than k1={k1} points, got {len(features)}")
    if variant == "spcl" and k2 > k1:
        raise ValueError(
            f"SpCL's query expansion reads its k1={k1} neighbour lists: k2={k2} would average only "
            f"{k1} rows there; use k2 <= k1"
        )
    k = max(list_lengths[0], k2)
    if search.method == "ivf":
        neighbours = ivf_neighbour_lists(features, k, search.lists, search.probes, variant == "mmt", progress)
    else:
        neighbours = nearest_neighbour_lists(features, k, progress)
    # MMT divides each row by its largest distance, 2 - 2 * its lowest similarity (0 only if all points coincide).
    row_max = np.maximum(2.0 - 2.0 * neighbours.lowest_similarity, np.finfo(np.float64).tiny)

    def distance(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        unscaled = 2.0 - 2.0 * pair_similarity(features, rows, cols)  # normalises block by block
        return unscaled / row_max[rows] if variant == "mmt" else unscaled

    encoding = k_reciprocal_encoding(neighbours.indices, k1, k2, distance, list_lengths)
    return upper_jaccard_from_encoding(encoding, progress)


def ivf_cell_count(num_points: int) -> int:
    """The automatic number of k-means cells: the power of two nearest sqrt(N), at least 1 (about 320 points a
    cell at N = 100,000, 630 at 400,000: the cells' k-means stays a few seconds and the scans stay matrix products
    of hundreds of rows)."""
    return max(1, 2 ** round(np.log2(np.sqrt(num_points))))


def ivf_neighbour_lists(
    features: torch.Tensor | np.ndarray,
    k: int,
    lists: int = 0,
    probes: int = IVF_PROBES,
    lowest: bool = True,
    progress: bool = False,
    seed: int = 0,
) -> Neighbours:
    """Approximate k-nearest-neighbour lists by cosine similarity, most similar first (an inverted file over faiss's
    k-means cells). Every point belongs to the cell of its most similar centroid and is compared with the points of
    its `probes` most similar cells (its own first, so it finds itself); the lists are exact within what it
    compares. The work runs cell by cell: the points that probe a cell against the points in it, in blocks, one
    matrix product and one top-k merge each (faiss's IndexIVFFlat compares one query at a time: several times
    slower on the CPU). With `lowest`, each point's lowest similarity is searched in its FARTHEST_PROBES least
    similar cells: an upper bound on the true lowest, which MMT's variant divides by (benchmarks/README.md: 0.02
    above the true one on average, and the same labels); without, it is NaN. Deterministic for a seed. Runs on the
    CPU, on an L2-normalised copy of the features."""
    unit = F.normalize(torch.as_tensor(features).float().cpu(), dim=1)
    num_points = len(unit)
    if not 1 <= k <= num_points:
        raise ValueError(f"need 1 <= k <= number of points, got k={k} for {num_points} points")
    cells = min(lists or ivf_cell_count(num_points), num_points)
    probes = min(probes, cells)
    centroids = _cell_centroids(unit.numpy(), cells, seed)
    nearest_cells, farthest_cells = _probed_cells(unit, centroids, probes, lowest)
    members, probing = _points_by_cell(nearest_cells[:, :1], cells), _points_by_cell(nearest_cells, cells)
    probing_far = _points_by_cell(farthest_cells, cells) if lowest else [torch.empty(0, dtype=torch.int64)] * cells
    best_similarity = torch.full((num_points, k), -torch.inf)
    best_index = torch.full((num_points, k), -1, dtype=torch.int64)
    least = torch.full((num_points,), torch.inf)
    for cell in tqdm(range(cells), desc="neighbours (ivf)", disable=not progress):
        inside = members[cell]
        if not len(inside):
            continue
        cell_points = unit[inside].T
        block = max(1, BLOCK_ELEMENTS // len(inside))
        for queries in probing[cell].split(block):
            similarity = torch.cat([best_similarity[queries], unit[queries] @ cell_points], dim=1)
            index = torch.cat([best_index[queries], inside.expand(len(queries), -1)], dim=1)
            kept = similarity.topk(k, dim=1)
            best_similarity[queries], best_index[queries] = kept.values, index.gather(1, kept.indices)
        for queries in probing_far[cell].split(block):
            least[queries] = torch.minimum(least[queries], (unit[queries] @ cell_points).amin(dim=1))
    if torch.isinf(best_similarity).any():
        raise ValueError(f"the ivf search found fewer than k={k} neighbours for some points: raise probes or lists")
    return Neighbours(best_index.numpy(), least.double().numpy() if lowest else np.full(num_points, np.nan))


def _cell_centroids(unit: np.ndarray, cells: int, seed: int) -> np.ndarray:
    """faiss k-means centroids (L2-normalised) from a fixed sample of at most 40 points a cell (faiss's
    recommended minimum is 39)."""
    rng = np.random.default_rng(seed)
    sample = unit[np.sort(rng.choice(len(unit), min(len(unit), 40 * cells), replace=False))]
    kmeans = faiss.Kmeans(unit.shape[1], cells, niter=20, seed=seed, spherical=True, max_points_per_centroid=40)
    kmeans.train(sample)
    return kmeans.centroids


def _probed_cells(
    unit: torch.Tensor, centroids: np.ndarray, probes: int, farthest: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each point's `probes` most similar cells, most similar first, and (if `farthest`) its FARTHEST_PROBES least
    similar ones: from blocks of the point x centroid similarity."""
    nearest, least = [], []
    block = max(1, BLOCK_ELEMENTS // len(centroids))
    centroid_tensor = torch.from_numpy(centroids)
    for start in range(0, len(unit), block):
        similarity = unit[start : start + block] @ centroid_tensor.T
        nearest.append(similarity.topk(probes, dim=1).indices)
        if farthest:
            least.append(similarity.topk(FARTHEST_PROBES, dim=1, largest=False).indices)
    return torch.cat(nearest), torch.cat(least) if farthest else None


def _points_by_cell(cells_of_points: torch.Tensor, cells: int) -> list[torch.Tensor]:
    """For each cell, the points (ascending) whose row of `cells_of_points` [N, p] names it."""
    width = cells_of_points.shape[1]
    order = torch.argsort(cells_of_points.reshape(-1), stable=True)
    bounds = torch.searchsorted(cells_of_points.reshape(-1)[order], torch.arange(cells + 1)).tolist()
    points = order // width
    return [points[bounds[c] : bounds[c + 1]] for c in range(cells)]


def source_distance_vector(
    target_features: torch.Tensor | np.ndarray, source_features: torch.Tensor | np.ndarray
) -> np.ndarray:
    """SSG's source term (its `re_ranking`, also MMT's `compute_jaccard_dist` with source features): for each
    target point, s_i = min over source points j of 1 - exp(-||t_i - s_j||^2), divided by the largest s_i (all 0s
    stay 0s). A point close to the source set (likely a known kind of image) gets a small s_i. Features are used as
    given (SSG's are L2-normalised); [N] float64, from float32 blocks of target x source on the target's device
    (never N x M at once)."""
    target = torch.as_tensor(target_features).float()
    source = torch.as_tensor(source_features).float().to(target.device)
    if target.ndim != 2 or source.ndim != 2 or target.shape[1] != source.shape[1] or not len(source):
        raise ValueError(
            f"need [N, D] target and non-empty [M, D] source features, got {tuple(target.shape)} "
            f"and {tuple(source.shape)}"
        )
    source_norms = source.square().sum(dim=1)
    block_rows = max(1, BLOCK_ELEMENTS // len(source))
    nearest = []
    for start in range(0, len(target), block_rows):
        block = target[start : start + block_rows]
        squared = block.square().sum(dim=1, keepdim=True) + source_norms - 2.0 * block @ source.T
        nearest.append(squared.min(dim=1).values.clamp_min(0.0).double().cpu())
    # 1 - exp(-x) increases with x: the minimum over j is taken on the squared distance.
    distance = -np.expm1(-torch.cat(nearest).numpy())
    largest = distance.max(initial=0.0)
    return distance / largest if largest > 0 else distance


def upper_jaccard_from_encoding(encoding: sp.csr_matrix, progress: bool = False) -> sp.csr_matrix:
    """Jaccard distance 1 - m / (2 - m) between rows i < j of V, m the sum of element-wise minima, for the pairs
    with m > 0 (distance < 1 in float32), negative rounding residues clipped to 0.

    Each non-zero V[i, c] meets the points j > i with V[j, c] > 0 (a column of V, sorted); a block of rows
    accumulates its min terms densely over the columns j >= its first row, then keeps the non-zero sums."""
    num_points = encoding.shape[0]
    encoding = encoding.tocsr(copy=True)
    encoding.sort_indices()
    by_column = encoding.T.tocsr()  # row c: the points j with V[j, c] > 0, ascending
    by_column.sort_indices()
    entry_row = np.repeat(np.arange(num_points), np.diff(encoding.indptr))
    column_keys = np.repeat(np.arange(num_points, dtype=np.int64), np.diff(by_column.indptr)) * num_points
    column_keys += by_column.indices
    # For the entry V[i, c]: where the points j > i start in column c, and how many there are.
    first_partner = np.searchsorted(column_keys, encoding.indices.astype(np.int64) * num_points + entry_row, "right")
    partner_counts = by_column.indptr[encoding.indices + 1] - first_partner
    cost = np.bincount(entry_row, weights=partner_counts, minlength=num_points) + num_points - np.arange(num_points)

    values, columns, row_counts = [], [], []
    blocks = list(_blocks_by_cost(cost, JACCARD_BLOCK))
    for start, stop in tqdm(blocks, desc="Jaccard", disable=not progress):
        entries = slice(encoding.indptr[start], encoding.indptr[stop])
        counts = partner_counts[entries]
        entry = np.repeat(np.arange(len(counts)), counts)
        offset = np.arange(len(entry)) - np.repeat(np.cumsum(counts) - counts, counts)
        position = first_partner[entries][entry] + offset
        minima = np.minimum(encoding.data[entries][entry], by_column.data[position])
        width = num_points - start
        flat = (entry_row[entries][entry] - start) * width + (by_column.indices[position] - start)
        sums = np.bincount(flat, weights=minima, minlength=(stop - start) * width)
        found = np.flatnonzero(sums)
        shared = sums[found]
        distance = np.clip(1.0 - shared / (2.0 - shared), 0.0, None).astype(np.float32)
        below_one = distance < 1.0
        values.append(distance[below_one])
        columns.append((found[below_one] % width + start).astype(np.int32))
        row_counts.append(np.bincount(found[below_one] // width, minlength=stop - start))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(row_counts))])
    values = np.concatenate(values)  # one list of pieces at a time: a lower peak
    columns = np.concatenate(columns)
    return sp.csr_matrix((values, columns, indptr), shape=(num_points, num_points))


def symmetric_distance(upper: sp.spmatrix, diagonal: np.ndarray | None = None) -> sp.csr_matrix:
    """The symmetric matrix from its strict upper triangle, with the diagonal stored explicitly (zeros by default;
    built through COO: sparse addition would drop zero distances, turning them into missing entries, i.e. 1s)."""
    upper = upper.tocoo()
    num_points = upper.shape[0]
    if diagonal is None:
        diagonal = np.zeros(num_points, dtype=upper.data.dtype)
    points = np.arange(num_points)
    rows = np.concatenate([upper.row, upper.col, points])
    cols = np.concatenate([upper.col, upper.row, points])
    data = np.concatenate([upper.data, upper.data, diagonal])
    return sp.csr_matrix((data, (rows, cols)), shape=upper.shape)

"""k-reciprocal encoding (Zhong et al., CVPR 2017) on sparse rows, and the Jaccard distance between encodings.

Zhong's code and its descendants (torchreid, MMT, SpCL) keep the encoding V and the Jaccard matrix as dense N x N
arrays (1.5 GB each in float32 at Market's 19,281 images, 4.3 GB at MSMT17's 32,621). Every row of V is non-zero
only on a few dozen points (a k-reciprocal set, widened by query expansion), and a Jaccard distance is 1 wherever
two rows share none of them. Here V is a scipy CSR matrix built from k-nearest-neighbour lists, and Jaccard
distances come block by block from min-sums over shared non-zeros: memory grows with N, not N^2.

The pieces are shared by re-ranking and by the clustering distances, which differ in parameters:
- re-ranking (Zhong; torchreid's `re_ranking`), `re_ranking` below: the distance is squared and divided by each
  row's maximum, neighbour lists hold k1 + 1 points, queries are compared with the gallery, and the Jaccard
  distance is blended with the original one;
- the clustering distances of MMT and SpCL (jaccard.py): the distance is 2 - 2 * similarity (divided by each row's
  maximum in MMT's), every point is compared with every other, and the Jaccard distance is used alone; SpCL's
  neighbour lists hold k1 points where Zhong's and MMT's hold k1 + 1 (`k_reciprocal_encoding`'s list_lengths).
Features are compared by cosine similarity (they are L2-normalised here), so both are functions of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import faiss
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm import tqdm

# Elements (floats) that one block of work may hold: bounds the memory of every chunked step below.
BLOCK_ELEMENTS = 2**22
# Rows (and columns) of one block of the similarity matrix in the neighbour search: 4 MB of float32 (as fast as
# larger blocks here, and lighter).
SEARCH_BLOCK = 1024


@dataclass(frozen=True)
class Neighbours:
    """Each point's nearest points, most similar first (the point itself normally first), and its lowest
    similarity to any point (what Zhong's per-row normalisation divides by)."""

    indices: np.ndarray  # [N, k] int64
    lowest_similarity: np.ndarray  # [N] float64


def similarity_blocks(
    features: torch.Tensor, order: np.ndarray | None = None, desc: str = "neighbours", progress: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every block of the cosine similarity matrix of `features` (CPU) in both orientations, as (row ids, column
    ids, block): the points taken in `order` (None: as they are), blocks of SEARCH_BLOCK of them, each pair of
    blocks computed once since the matrix is symmetric (half the work of a plain search), the pair's transposed
    block yielded too. Blocks of features are L2-normalised on the way (bit for bit as a whole normalised copy,
    which would take 100 MB at Market's size)."""
    num_points = len(features)
    ids = np.arange(num_points) if order is None else order

    def unit(start: int) -> torch.Tensor:
        if order is None:
            return F.normalize(features[start : start + SEARCH_BLOCK].float(), dim=1)
        return F.normalize(features[torch.from_numpy(order[start : start + SEARCH_BLOCK])].float(), dim=1)

    starts = range(0, num_points, SEARCH_BLOCK)
    pairs = [(row, col) for i, row in enumerate(starts) for col in starts[i:]]
    for row, col in tqdm(pairs, desc=desc, disable=not progress):
        row_ids, col_ids = ids[row : row + SEARCH_BLOCK], ids[col : col + SEARCH_BLOCK]
        if col == row:  # the first pair of each row of blocks
            row_block = unit(row)
        similarity = row_block @ unit(col).T
        yield row_ids, col_ids, similarity.numpy()
        if row != col:
            yield col_ids, row_ids, similarity.T.contiguous().numpy()


def nearest_neighbour_lists(features: torch.Tensor, k: int, progress: bool = False) -> Neighbours:
    """Each row's k most similar rows by cosine similarity, most similar first, and its lowest similarity to any
    row: exact, from the blocks of the similarity matrix (`similarity_blocks`), each pushed on the CPU into faiss's
    per-row heaps (faster than torch.topk there; ties broken as the heaps break them). Features on a GPU are
    searched there (`neighbours_by_topk`)."""
    num_points = len(features)
    if not 1 <= k <= num_points:
        raise ValueError(f"need 1 <= k <= number of points, got k={k} for {num_points} points")
    if features.device.type != "cpu":
        return neighbours_by_topk(features, k, progress)
    best = faiss.ResultHeap(num_points, k, keep_max=True)
    lowest = faiss.ResultHeap(num_points, 1, keep_max=False)
    for rows, cols, block in similarity_blocks(features, progress=progress):
        for heap in (best, lowest):
            heap.add_result_subset(rows, block, cols)
    best.finalize()
    lowest.finalize()
    return Neighbours(best.I, lowest.D[:, 0].astype(np.float64))


def neighbours_by_topk(features: torch.Tensor, k: int, progress: bool = False) -> Neighbours:
    """The same lists as `nearest_neighbour_lists`, computed where the features are: each block of rows against
    every row, then torch.topk and min on that device, only the lists copied back (faiss's heaps are CPU code: on a
    GPU, copying every block of the matrix to them would cost more than computing it). Equal similarities may come
    in another order than the heaps give them."""
    unit = F.normalize(features.float(), dim=1)
    indices, lowest = [], []
    for start in tqdm(range(0, len(unit), SEARCH_BLOCK), desc="neighbours", disable=not progress):
        similarity = unit[start : start + SEARCH_BLOCK] @ unit.T
        indices.append(similarity.topk(k, dim=1).indices.cpu())
        lowest.append(similarity.min(dim=1).values.cpu())
    return Neighbours(torch.cat(indices).numpy(), torch.cat(lowest).double().numpy())


def pair_similarity(features: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Cosine similarity of the given (row, col) point pairs, in blocks of pairs, each block's rows divided by their
    norms on the way (bit for bit a normalised copy of the features, which would take 770 MB at 93,820 points).

    numpy, single-threaded: on these small blocks torch's thread synchronisation costs more than the arithmetic
    (up to 10x slower on a busy machine); blocks of a few MB stay in cache (4x faster than large ones)."""
    features = features.float().cpu()
    norms = features.norm(dim=1, keepdim=True).clamp_(min=1e-12).numpy()  # F.normalize's divisor
    features = features.numpy()
    block_pairs = max(1, 2**20 // features.shape[1])
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), block_pairs):
        left, right = rows[start : start + block_pairs], cols[start : start + block_pairs]
        out[start : start + block_pairs] = np.einsum(
            "ij,ij->i", features[left] / norms[left], features[right] / norms[right]
        )
    return out


def reciprocal_mask(neighbours: np.ndarray, k: int) -> np.ndarray:
    """[N, k+1] mask over each point's first k+1 neighbours: True where the point is among that neighbour's first
    k+1 too. On the k+1 nearest (the point itself first), the k-reciprocal set R(i, k) of Zhong et al."""
    forward = neighbours[:, : k + 1]
    backward = neighbours[forward, : k + 1]  # [N, k+1, k+1]
    return (backward == np.arange(len(neighbours))[:, None, None]).any(axis=2)


def zhong_list_lengths(k1: int) -> tuple[int, int]:
    """Neighbours (self included) that Zhong's k1 step and half step read: k1 + 1 and round(k1 / 2) + 1, k1 / 2
    rounded half to even (Python's round, numpy's around), as in the reference code."""
    return k1 + 1, round(k1 / 2) + 1


def expanded_reciprocal_pairs(
    neighbours: np.ndarray, list_length: int, half_list_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j) pairs, sorted and unique, of Zhong's expanded set R*(i): R(i), the points among i's first
    `list_length` neighbours that list i among their first `list_length`, plus the half set H(c) (the same with
    `half_list_length`) of every c in R(i) that has more than 2/3 of its H(c) inside R(i).

    With Zhong's lengths (`zhong_list_lengths`), R(i) = R(i, k1) and H(c) = R(c, k1 / 2); SpCL's code reads k1
    neighbours for R(i), one fewer.
    """
    longest = max(list_length, half_list_length)
    if neighbours.shape[1] < longest:
        raise ValueError(f"need at least {longest} neighbours per point, got {neighbours.shape[1]}")
    num_points = len(neighbours)
    forward, is_reciprocal = neighbours[:, :list_length], reciprocal_mask(neighbours, list_length - 1)
    half_forward = neighbours[:, :half_list_length]
    half_reciprocal = reciprocal_mask(neighbours, half_list_length - 1)
    half_size = half_reciprocal.sum(axis=1)

    rows = [np.nonzero(is_reciprocal)[0]]
    cols = [forward[is_reciprocal]]
    block_rows = max(1, BLOCK_ELEMENTS // (list_length**2 * half_list_length))
    for start in range(0, num_points, block_rows):
        stop = min(start + block_rows, num_points)
        own, own_mask = forward[start:stop], is_reciprocal[start:stop]
        candidate_sets = half_forward[own]  # [b, list_length, half_list_length]: H(c) candidates of each c in i's list
        candidate_masks = half_reciprocal[own]
        inside = ((candidate_sets[..., None] == own[:, None, None, :]) & own_mask[:, None, None, :]).any(axis=3)
        shared = (inside & candidate_masks).sum(axis=2)
        accepted = own_mask & (shared > 2.0 / 3 * half_size[own])
        added = accepted[..., None] & candidate_masks
        rows.append(start + np.nonzero(added)[0])
        cols.append(candidate_sets[added])
    keys = np.unique(np.concatenate(rows) * num_points + np.concatenate(cols))
    return keys // num_points, keys % num_points


def k_reciprocal_encoding(
    neighbours: np.ndarray,
    k1: int,
    k2: int,
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    list_lengths: tuple[int, int] | None = None,
) -> sp.csr_matrix:
    """Zhong's V: row i holds exp(-d(i, j)) over j in R*(i), normalised to sum 1, then (k2 > 1) is replaced by
    the mean of the rows of its k2 nearest points (local query expansion).

    `pair_distance(rows, cols)` gives d for point pairs; `list_lengths`: the neighbours read by the k1 step and the
    half step of R* (`expanded_reciprocal_pairs`), Zhong's by default (`zhong_list_lengths(k1)`).
    """
    if not 1 <= k2 <= neighbours.shape[1]:
        raise ValueError(f"need 1 <= k2 <= {neighbours.shape[1]} (neighbours per point), got k2={k2}")
    rows, cols = expanded_reciprocal_pairs(neighbours, *(list_lengths or zhong_list_lengths(k1)))
    encoding = softmax_encoding(rows, cols, pair_distance, len(neighbours))
    return encoding if k2 == 1 else query_expansion(encoding, neighbours[:, :k2])


def softmax_encoding(
    rows: np.ndarray, cols: np.ndarray, pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray], num_points: int
) -> sp.csr_matrix:
    """V from the (i, j) pairs of each point's set, unique: row i holds exp(-d(i, j)) over its pairs, normalised
    to sum 1 (softmax(-d), d at most 4 here, so no shift is needed)."""
    weights = np.exp(-pair_distance(rows, cols))
    weights /= np.bincount(rows, weights=weights, minlength=num_points)[rows]
    return sp.csr_matrix((weights, (rows, cols)), shape=(num_points, num_points))


def query_expansion(encoding: sp.csr_matrix, averaged: np.ndarray) -> sp.csr_matrix:
    """Local query expansion: row i of V replaced by the mean of the rows averaged[i] ([N, m] point indices; a
    point listed twice counts twice, as numpy's mean over V[list] counts it)."""
    num_points, width = averaged.shape
    averaging = sp.csr_matrix(  # duplicate (i, j) entries are summed
        (np.full(num_points * width, 1.0 / width), (np.repeat(np.arange(num_points), width), averaged.ravel())),
        shape=(num_points, encoding.shape[0]),
    )
    return (averaging @ encoding).tocsr()


def jaccard_distance_to(encoding: sp.csr_matrix, cols: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The function giving, for encoding rows `rows`, the dense [len(rows), len(cols)] float32 Jaccard distance
    to the `cols`: 1 - m / (2 - m), m the sum of element-wise minima (Zhong's eq. 10-11 with rows summing to 1).
    Pairs sharing no non-zero get 1. The columns' side is prepared once, for the many blocks of rows of a large
    evaluation; each row's distances are the same whatever block it comes in."""
    by_column = encoding[cols].T.tocsr()  # row k: the `cols` points j with V[j, k] > 0
    column_counts = np.diff(by_column.indptr)

    def distance(rows: np.ndarray) -> np.ndarray:
        probes = encoding[rows]
        probe_row = np.repeat(np.arange(len(rows)), np.diff(probes.indptr))
        # Work per probe row: the min terms it generates, plus its dense output row.
        cost = np.bincount(probe_row, weights=column_counts[probes.indices], minlength=len(rows)) + len(cols)
        out = np.empty((len(rows), len(cols)), dtype=np.float32)
        for start, stop in _blocks_by_cost(cost, BLOCK_ELEMENTS):
            overlap = _min_sums(probes[start:stop], by_column)
            out[start:stop] = 1.0 - overlap / (2.0 - overlap)
        return out

    return distance


def _min_sums(probes: sp.csr_matrix, by_column: sp.csr_matrix) -> np.ndarray:
    """[len(probes), by_column.shape[1]] sums over k of min(probe[k], V[j, k]): each probe non-zero (i, k) meets
    every j listed in row k of `by_column`."""
    probes = probes.tocoo()
    starts = by_column.indptr[probes.col]
    counts = by_column.indptr[probes.col + 1] - starts
    entry = np.repeat(np.arange(probes.nnz), counts)
    position = starts[entry] + np.arange(len(entry)) - np.repeat(np.cumsum(counts) - counts, counts)
    minima = np.minimum(probes.data[entry], by_column.data[position])
    num_cols = by_column.shape[1]
    flat = probes.row[entry].astype(np.int64) * num_cols + by_column.indices[position]
    return np.bincount(flat, weights=minima, minlength=probes.shape[0] * num_cols).reshape(probes.shape[0], num_cols)


def _blocks_by_cost(cost: np.ndarray, budget: float) -> Iterator[tuple[int, int]]:
    """Consecutive [start, stop) row ranges whose summed cost stays within budget (a costlier row stands alone)."""
    cumulative = np.cumsum(cost)
    start = 0
    while start < len(cost):
        spent = cumulative[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(cumulative, spent + budget, side="right")))
        yield start, stop
        start = stop


def _zhong_distance(similarity: np.ndarray) -> np.ndarray:
    """Zhong's working distance from a cosine similarity: the cosine distance, squared (his code squares whatever
    distance it is given; torchreid passes the evaluation metric's)."""
    distance = 1.0 - similarity
    np.clip(distance, 0.0, None, out=distance)
    return np.square(distance, out=distance)


def re_ranking(
    query_features: torch.Tensor, gallery_features: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> torch.Tensor:
    """k-reciprocal re-ranking (Zhong et al. 2017): the [num_query, num_gallery] distance
    (1 - lambda) * Jaccard + lambda * original, where original is the squared cosine distance divided by the
    largest one in its row (over queries and gallery), as torchreid's `re_ranking` computes it from cosine
    distance matrices, but on sparse encodings. All rows of `re_ranking_rows` at once."""
    return torch.from_numpy(
        re_ranking_rows(query_features, gallery_features, k1, k2, lambda_value)(0, len(query_features))
    )


def re_ranking_rows(
    query_features: torch.Tensor, gallery_features: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> Callable[[int, int], np.ndarray]:
    """The function giving rows [start, stop) of `re_ranking`'s distance (float32 numpy). The neighbour lists and
    the sparse encoding of all Q + G points are built here (memory linear in Q + G); each call computes its block
    of Jaccard rows and of the blended original distance, so a large split (MSMT17's 11,659 x 82,161: 3.8 GB per
    dense matrix) is re-ranked block by block as it is ranked."""
    num_query = len(query_features)
    features = torch.cat([query_features, gallery_features]).float()
    if len(features) <= k1:
        raise ValueError(f"re-ranking needs more than k1={k1} images in query + gallery, got {len(features)}")
    # Normalised in place (bit for bit F.normalize): one copy of the features, 770 MB at MSMT17's 93,820 images.
    features /= features.norm(dim=1, keepdim=True).clamp_(min=1e-12)
    neighbours = nearest_neighbour_lists(features, k=max(k1 + 1, k2))
    row_max = np.maximum(_zhong_distance(neighbours.lowest_similarity), np.finfo(np.float64).tiny)

    def normalised_distance(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return _zhong_distance(pair_similarity(features, rows, cols)) / row_max[rows]

    encoding = k_reciprocal_encoding(neighbours.indices, k1, k2, normalised_distance)
    jaccard = jaccard_distance_to(encoding, np.arange(num_query, len(features)))
    gallery = features[num_query:]
    lambda_over_row_max = (lambda_value / row_max[:num_query]).astype(np.float32)

    def rows(start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= num_query:  # rows past the queries are the gallery's own encodings
            raise ValueError(f"query rows {start}:{stop} out of range: there are {num_query} queries")
        distance = jaccard(np.arange(start, stop))
        original = _zhong_distance((features[start:stop] @ gallery.T).cpu().numpy())  # float32
        original *= lambda_over_row_max[start:stop, None]
        distance *= 1.0 - lambda_value
        distance += original
        return distance

    return rows

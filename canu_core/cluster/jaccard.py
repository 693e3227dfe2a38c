"""The k-reciprocal Jaccard distance that MMT and SpCL cluster with (SpCL's `compute_jaccard_distance`), sparse.

Same algorithm as SpCL's (benchmarks/dense_reference.py renders it step by step): neighbour lists of k1 + 1 points,
k1 and round(k1 / 2) reciprocal lists with the 2/3 expansion rule, V[i] = softmax of -(2 - 2 * cosine similarity)
over the expanded set, query expansion by the mean of the k2 nearest rows of V, Jaccard = 1 - m / (2 - m) with m
the sum of element-wise minima of two rows of V. SpCL keeps V and the distance as dense N x N arrays; here V is the
sparse encoding of kreciprocal.py, and the distance keeps only the pairs below 1 (pairs whose encodings overlap):
every missing entry is 1. sklearn's DBSCAN(metric="precomputed") reads a missing entry of a sparse matrix as "not
a neighbour", which is what a distance of 1 is for any eps < 1.

The distance is symmetric, so it is computed for pairs j > i only (`upper_jaccard_distance`); clustering needs
no more (eps from the upper triangle, then the pairs within eps, mirrored).
"""
from __future__ import annotations

import faiss
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .kreciprocal import _blocks_by_cost, k_reciprocal_encoding, pair_similarity

# Rows (and columns) of one block of the similarity matrix in the neighbour search: 4 MB of float32 (as fast as
# larger blocks here, and lighter).
SEARCH_BLOCK = 1024
# Work per block of rows of the Jaccard distance (min terms + dense accumulator entries): tens of MB of temporaries.
JACCARD_BLOCK = 2 ** 21


def compute_jaccard_distance(features: torch.Tensor | np.ndarray, k1: int = 20, k2: int = 6,
                             progress: bool = False) -> sp.csr_matrix:
    """[N, N] Jaccard distance of the features (compared by cosine similarity): a symmetric float32 CSR matrix
    holding every pair with a distance below 1 and the diagonal (explicit zeros); missing entries are 1."""
    return symmetric_distance(upper_jaccard_distance(features, k1, k2, progress))


def upper_jaccard_distance(features: torch.Tensor | np.ndarray, k1: int = 20, k2: int = 6,
                           progress: bool = False) -> sp.csr_matrix:
    """The strict upper triangle (j > i) of the Jaccard distance, pairs below 1 only, float32 CSR."""
    features = torch.as_tensor(features)
    if len(features) <= k1:
        raise ValueError(f"the Jaccard distance needs more than k1={k1} points, got {len(features)}")
    neighbours = nearest_neighbour_lists(F.normalize(features.float(), dim=1), k1 + 1, progress)

    def distance(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return 2.0 - 2.0 * pair_similarity(features, rows, cols)  # normalises its own copy: one at a time

    encoding = k_reciprocal_encoding(neighbours, k1, k2, distance)
    return upper_jaccard_from_encoding(encoding, progress)


def nearest_neighbour_lists(features: torch.Tensor, k: int, progress: bool = False) -> np.ndarray:
    """[N, k] indices of each row's k most similar rows (by dot product), most similar first: exact, from blocks
    of the similarity matrix, each block pair computed once since the matrix is symmetric (half the work of a
    plain search), each block pushed into faiss's per-row heaps (faster than torch.topk; ties broken as the heaps
    break them). The blocks are computed on the features' device."""
    num_points = len(features)
    if not 1 <= k <= num_points:
        raise ValueError(f"need 1 <= k <= number of points, got k={k} for {num_points} points")
    best = faiss.ResultHeap(num_points, k, keep_max=True)
    starts = range(0, num_points, SEARCH_BLOCK)
    pairs = [(row, col) for i, row in enumerate(starts) for col in starts[i:]]
    for row, col in tqdm(pairs, desc="neighbours", disable=not progress):
        row_ids = np.arange(row, min(row + SEARCH_BLOCK, num_points))
        col_ids = np.arange(col, min(col + SEARCH_BLOCK, num_points))
        similarity = features[row:row + SEARCH_BLOCK] @ features[col:col + SEARCH_BLOCK].T
        best.add_result_subset(row_ids, similarity.cpu().numpy(), col_ids)
        if row != col:
            best.add_result_subset(col_ids, similarity.T.contiguous().cpu().numpy(), row_ids)
    best.finalize()
    return best.I


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


def symmetric_distance(upper: sp.spmatrix) -> sp.csr_matrix:
    """The symmetric matrix from its strict upper triangle, with the diagonal as explicit zeros (built through
    COO: sparse addition would drop zero distances, turning them into missing entries, i.e. 1s)."""
    upper = upper.tocoo()
    num_points = upper.shape[0]
    diagonal = np.arange(num_points)
    rows = np.concatenate([upper.row, upper.col, diagonal])
    cols = np.concatenate([upper.col, upper.row, diagonal])
    data = np.concatenate([upper.data, upper.data, np.zeros(num_points, dtype=upper.data.dtype)])
    return sp.csr_matrix((data, (rows, cols)), shape=upper.shape)

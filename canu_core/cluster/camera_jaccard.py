"""The camera-aware Jaccard distance of CA-Jaccard (Chen et al., CVPR 2024), sparse: the exact algorithm of its
public code (`compute_jaccard_distance` in caj/utils/caj_rerank.py, defaults from train_caj.py).

What that code computes, with d = 2 - 2 * cosine similarity (unscaled, as SpCL's):
- two rankings per point: the intra-camera one (its own camera's points by d, itself normally first) and the
  inter-camera one (the other cameras' points by d). The code adds 999 to the excluded points' d and ranks all N,
  so a ranking that runs out of its own points goes on into the excluded ones, nearest first: the intra ranking of
  a camera with fewer images than a list reads (k1_intra + 1, k2_intra) spills into the other cameras (the head
  of the inter ranking), and an inter ranking into the point's own camera (itself included) when the other
  cameras hold too few points;
- CKRNNs (`ckrnns`): the k-reciprocal set of the k1_intra intra ranking (lists of k1_intra + 1 points, checked
  both ways in that ranking) united with that of the k1_inter inter ranking; no 2/3 expansion. Without ckrnns:
  the plain k-reciprocal set of the global ranking with k1 (k1 + 1 points, as Zhong's and MMT's), widened by the
  2/3 rule with round(k1 / 2);
- V[i] = softmax(-d(i, j)) over that set;
- CLQE (`clqe`): row i of V replaced by the mean of the rows of the first k2_intra points of its intra ranking and
  the first k2_inter of its inter ranking (a point in both counts twice); without clqe, the rows of the first k2
  of the global ranking (LQE). The code does neither when k2 is 1 (its `if k2 != 1` guards CLQE too): that is
  refused here with clqe on, so that clqe never silently does nothing;
- Jaccard = 1 - m / (2 - m), m the sum of element-wise minima of two rows of V, negatives clipped to 0.
train_caj.py's first epoch (epoch 0) runs CLQE with k2_intra = k2_inter = 3 whatever was asked (its warm-up):
`WARMUP_K2`, applied by pseudo_labels.DBSCANClustering to its first clustering when the warm-up is on.

Here the rankings are lists of each point's nearest within and outside its camera, from one pass over blocks of
the similarity matrix (never N x N), V and the distance are the sparse pieces of kreciprocal.py and jaccard.py.
Ties: the public code orders equal distances as numpy's argpartition does (no promised order); here the search
ranks by similarity and breaks ties as faiss's heaps (CPU) or torch.topk (GPU) do. The two agree whenever no two
points tie at a list's boundary (equal features, or distances equal in float32), which tests/test_ca_jaccard.py
checks on its data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import faiss
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .jaccard import symmetric_distance, upper_jaccard_from_encoding
from .kreciprocal import (
    SEARCH_BLOCK,
    expanded_reciprocal_pairs,
    pair_similarity,
    query_expansion,
    reciprocal_mask,
    similarity_blocks,
    softmax_encoding,
    zhong_list_lengths,
)

# train_caj.py's warm-up: at epoch 0, CLQE averages the first 3 intra-camera and 3 inter-camera neighbours.
WARMUP_K2 = 3


@dataclass(frozen=True)
class CameraAware:
    """CA-Jaccard's own settings, named and defaulted as in train_caj.py, except ckrnns and clqe: flags there (off
    by default, which is plain Jaccard), on here, since choosing the camera-aware distance means CKRNNs + CLQE as
    the paper and its README's training commands run it (those commands also set k2_intra 2, k2_inter 4)."""

    ckrnns: bool = True
    clqe: bool = True
    k1_intra: int = 5
    k1_inter: int = 20
    k2_intra: int = 3
    k2_inter: int = 3

    def warmed_up(self) -> CameraAware:
        """The settings of train_caj.py's first epoch."""
        return replace(self, k2_intra=WARMUP_K2, k2_inter=WARMUP_K2)


def check_camera_aware(settings: CameraAware, k1: int, k2: int) -> None:
    """What the public code leaves undefined, refused before any work: it orders only the first k + 2 points of a
    ranking (argpartition), so query expansion may read no further; and with k2 = 1 it skips CLQE."""
    for name in ("k1_intra", "k1_inter", "k2_intra", "k2_inter"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(settings, name)}")
    if settings.k2_intra > settings.k1_intra + 2 or settings.k2_inter > settings.k1_inter + 2:
        raise ValueError(
            f"CA-Jaccard ranks only the k1_intra + 2 and k1_inter + 2 nearest: need k2_intra <= {settings.k1_intra + 2}"
            f" and k2_inter <= {settings.k1_inter + 2}, got {settings.k2_intra} and {settings.k2_inter}"
        )
    if not settings.clqe and k2 > k1 + 2:
        raise ValueError(f"CA-Jaccard ranks only the k1 + 2 nearest: need k2 <= {k1 + 2}, got k2={k2}")
    if settings.clqe and k2 == 1:
        raise ValueError(
            "CA-Jaccard's code runs no query expansion at all when k2 is 1, CLQE included: with clqe on, set k2 > 1 "
            "(its value is not used then); for no query expansion, set clqe off and k2 1"
        )


def check_cameras(cameras: np.ndarray | torch.Tensor | list, num_points: int) -> np.ndarray:
    """One integer camera label per point, as an int64 array."""
    cameras = np.asarray(cameras.cpu() if isinstance(cameras, torch.Tensor) else cameras)
    if cameras.shape != (num_points,) or not np.issubdtype(cameras.dtype, np.integer):
        raise ValueError(
            f"need one integer camera label per point ({num_points}), got an array of shape {cameras.shape} "
            f"and dtype {cameras.dtype}"
        )
    return cameras.astype(np.int64)


@dataclass(frozen=True)
class CameraNeighbours:
    """Each point's `length` most similar points within its camera (intra) and outside it (inter), most similar
    first, with their similarities; -1 where the camera, or the other cameras, hold fewer (with a similarity of
    -inf from torch.topk, the lowest float32 from faiss's heaps: the -1 is what counts)."""

    intra: np.ndarray  # [N, length] int64
    intra_similarity: np.ndarray  # [N, length] float32
    inter: np.ndarray
    inter_similarity: np.ndarray

    def intra_ranking(self, length: int) -> np.ndarray:
        """The first `length` of the public intra ranking: the camera's points, then the other cameras'."""
        return _spilled(self.intra, self.inter, length)

    def inter_ranking(self, length: int) -> np.ndarray:
        """The first `length` of the public inter ranking: the other cameras' points, then the camera's own."""
        return _spilled(self.inter, self.intra, length)

    def global_ranking(self, length: int) -> np.ndarray:
        """The first `length` of the ranking over all points: the nearest `length` are among the nearest `length`
        within the camera and the nearest `length` outside it."""
        similarity = np.concatenate([self.intra_similarity, self.inter_similarity], axis=1)
        similarity[np.concatenate([self.intra, self.inter], axis=1) < 0] = -np.inf
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :length]
        return np.take_along_axis(np.concatenate([self.intra, self.inter], axis=1), order, axis=1)


def _spilled(first: np.ndarray, then: np.ndarray, length: int) -> np.ndarray:
    """Per row, the listed points of `first` followed by those of `then` (each list's found points come first,
    -1s after), the first `length` of them."""
    both = np.concatenate([first, then], axis=1)
    order = np.argsort(both < 0, axis=1, kind="stable")[:, :length]
    ranking = np.take_along_axis(both, order, axis=1)
    if (ranking < 0).any():  # both lists hold `length` points or all there are: only N < length gets here
        raise ValueError(f"rankings of {length} points asked of {len(first)} points")
    return ranking


def camera_neighbours(
    features: torch.Tensor, cameras: np.ndarray, length: int, progress: bool = False
) -> CameraNeighbours:
    """Each point's `length` nearest within and outside its camera by cosine similarity, exact. On the CPU one pass
    over the blocks of the similarity matrix (kreciprocal.similarity_blocks, each block pair computed once), with
    the points taken camera by camera: a block whose cameras differ throughout (most of them) goes whole into
    faiss's per-row heaps of the inter lists; one that shares a camera goes in twice, masked: the other cameras'
    entries out for the intra lists, its own camera's for the inter lists.
    Features on a GPU are searched there (`camera_neighbours_by_topk`)."""
    num_points = len(features)
    if not 1 <= length <= num_points:
        raise ValueError(f"need 1 <= list length <= number of points, got {length} for {num_points} points")
    if features.device.type != "cpu":
        return camera_neighbours_by_topk(features, cameras, length, progress)
    intra = faiss.ResultHeap(num_points, length, keep_max=True)
    inter = faiss.ResultHeap(num_points, length, keep_max=True)
    by_camera = np.argsort(cameras, kind="stable")  # each block's points hold one camera or a few, ascending
    blocks = similarity_blocks(features, by_camera, desc="camera neighbours", progress=progress)
    for rows, cols, block in blocks:
        row_cameras, col_cameras = cameras[rows], cameras[cols]
        if row_cameras[-1] < col_cameras[0] or col_cameras[-1] < row_cameras[0]:  # no camera in common
            inter.add_result_subset(rows, block, cols)
            continue
        same_camera = row_cameras[:, None] == col_cameras[None, :]
        intra.add_result_subset(rows, np.where(same_camera, block, -np.inf), cols)  # -inf never enters a heap
        inter.add_result_subset(rows, np.where(same_camera, -np.inf, block), cols)
    intra.finalize()
    inter.finalize()
    return CameraNeighbours(intra.I, intra.D, inter.I, inter.D)


def camera_neighbours_by_topk(
    features: torch.Tensor, cameras: np.ndarray, length: int, progress: bool = False
) -> CameraNeighbours:
    """The same lists computed where the features are: each block of rows against every row, masked by camera,
    torch.topk on that device, only the lists copied back (equal similarities may come in another order)."""
    unit = F.normalize(features.float(), dim=1)
    camera_labels = torch.from_numpy(cameras).to(unit.device)
    found: dict[str, list[torch.Tensor]] = {name: [] for name in ("intra", "intra_sim", "inter", "inter_sim")}
    for start in tqdm(range(0, len(unit), SEARCH_BLOCK), desc="camera neighbours", disable=not progress):
        similarity = unit[start : start + SEARCH_BLOCK] @ unit.T
        same = camera_labels[start : start + SEARCH_BLOCK, None] == camera_labels[None, :]
        for name, excluded in (("intra", ~same), ("inter", same)):
            best = similarity.masked_fill(excluded, -torch.inf).topk(length, dim=1)
            found[name].append(torch.where(torch.isinf(best.values), -1, best.indices).cpu())
            found[f"{name}_sim"].append(best.values.cpu())
    lists = {name: torch.cat(pieces).numpy() for name, pieces in found.items()}
    return CameraNeighbours(
        lists["intra"].astype(np.int64), lists["intra_sim"], lists["inter"].astype(np.int64), lists["inter_sim"]
    )


def compute_camera_jaccard_distance(
    features: torch.Tensor | np.ndarray,
    cameras: np.ndarray | torch.Tensor | list,
    k1: int = 30,
    k2: int = 6,
    settings: CameraAware = CameraAware(),
    progress: bool = False,
) -> sp.csr_matrix:
    """[N, N] CA-Jaccard distance: a symmetric float32 CSR matrix holding every pair below 1 and the diagonal
    (explicit zeros); missing entries are 1. k1 and k2 (train_caj.py's defaults: 30, 6) serve the global
    ranking (without ckrnns / clqe) and k2's switch."""
    return symmetric_distance(upper_camera_jaccard_distance(features, cameras, k1, k2, settings, progress))


def upper_camera_jaccard_distance(
    features: torch.Tensor | np.ndarray,
    cameras: np.ndarray | torch.Tensor | list,
    k1: int = 30,
    k2: int = 6,
    settings: CameraAware = CameraAware(),
    progress: bool = False,
) -> sp.csr_matrix:
    """The strict upper triangle (j > i) of the CA-Jaccard distance, pairs below 1 only, float32 CSR."""
    features = torch.as_tensor(features)
    cameras = check_cameras(cameras, len(features))
    check_camera_aware(settings, k1, k2)
    intra_length = max(settings.k1_intra + 1 if settings.ckrnns else 0, settings.k2_intra if settings.clqe else 0)
    inter_length = max(settings.k1_inter + 1 if settings.ckrnns else 0, settings.k2_inter if settings.clqe else 0)
    global_length = max(0 if settings.ckrnns else k1 + 1, 0 if settings.clqe else k2)
    length = max(intra_length, inter_length, global_length)
    if len(features) < length:
        raise ValueError(
            f"the CA-Jaccard distance with these settings needs at least {length} points, got {len(features)}"
        )
    neighbours = camera_neighbours(features, cameras, length, progress)

    if settings.ckrnns:
        pieces = []
        for ranking, k in (
            (neighbours.intra_ranking, settings.k1_intra),
            (neighbours.inter_ranking, settings.k1_inter),
        ):
            lists = ranking(k + 1)
            mask = reciprocal_mask(lists, k)
            pieces.append(np.nonzero(mask)[0] * len(lists) + lists[mask])
        keys = np.unique(np.concatenate(pieces))  # the union of both sets, each pair once
        rows, cols = keys // len(features), keys % len(features)
    else:
        rows, cols = expanded_reciprocal_pairs(neighbours.global_ranking(k1 + 1), *zhong_list_lengths(k1))

    def distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return 2.0 - 2.0 * pair_similarity(features, first, second)

    encoding = softmax_encoding(rows, cols, distance, len(features))
    if k2 != 1:
        if settings.clqe:
            averaged = np.concatenate(
                [neighbours.intra_ranking(settings.k2_intra), neighbours.inter_ranking(settings.k2_inter)], axis=1
            )
        else:
            averaged = neighbours.global_ranking(k2)
        encoding = query_expansion(encoding, averaged)
    return upper_jaccard_from_encoding(encoding, progress)

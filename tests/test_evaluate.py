"""Evaluation: ranking protocol on cases worked out by hand, distances, feature extraction, and the end-to-end
`evaluate` on a few written images."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from canu_core import evaluation
from canu_core.cluster import re_ranking
from canu_core.data.records import ImageRecord, ReidDataset
from canu_core.device import resolve_device
from canu_core.evaluation import (
    distance_rows,
    evaluate,
    evaluate_features,
    evaluate_rank,
    extract_features,
    pairwise_distance,
    rank_distance_rows,
)


def rank(distances, q_pids, q_camids, g_pids, g_camids, max_rank=5):
    return evaluate_rank(np.array(distances, dtype=np.float32), q_pids, g_pids, q_camids, g_camids, max_rank)


# ---------------------------------------------------------------- ranking protocol, by hand


def test_two_queries_cmc_and_ap_by_hand():
    g_pids, g_camids = [1, 2, 1, 3, 2], [1, 1, 1, 1, 1]
    distances = [
        [0.1, 0.2, 0.3, 0.4, 0.5],  # pid 1: order g0 g1 g2 g3 g4, matches g0, g2 at ranks 1, 3
        [0.3, 0.2, 0.1, 0.4, 0.5],
    ]  # pid 2: order g2 g1 g0 g3 g4, matches g1, g4 at ranks 2, 5
    result = rank(distances, [1, 2], [0, 0], g_pids, g_camids, max_rank=10)
    ap = [(1 / 1 + 2 / 3) / 2, (1 / 2 + 2 / 5) / 2]
    assert result.mAP == pytest.approx(np.mean(ap), abs=1e-12)
    # First matches at ranks 1 and 2; beyond the 5 gallery images the curve stays at 1.
    np.testing.assert_allclose(result.cmc, [0.5] + [1.0] * 9)
    assert (result.num_valid_queries, result.num_skipped_queries) == (2, 0)
    assert result.as_dict() == pytest.approx(
        {"R1": 50.0, "R5": 100.0, "R10": 100.0, "mAP": 100 * np.mean(ap), "skipped": 0}
    )


def test_same_pid_same_camera_removed_other_pids_of_that_camera_kept():
    # g0: same pid, same camera (removed); g2: another pid on the query's camera (a non-match that stays).
    result = rank([[0.1, 0.2, 0.25, 0.3]], [1], [0], g_pids=[1, 2, 2, 1], g_camids=[0, 1, 0, 1])
    assert result.mAP == pytest.approx(1 / 3)  # kept order g1 g2 g3: the match g3 is third
    np.testing.assert_allclose(result.cmc, [0, 0, 1, 1, 1])


def test_junk_removed_distractors_kept_as_non_matches():
    # g0 junk (-1) at 0.1 is dropped; g1 distractor (0) at 0.2 ranks before the match g2.
    result = rank([[0.1, 0.2, 0.3]], [1], [0], g_pids=[-1, 0, 1], g_camids=[1, 1, 1])
    assert result.mAP == pytest.approx(1 / 2)
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1, 1])


def test_queries_without_match_are_skipped_and_counted():
    # q1's only pid-2 image is on its own camera; q2's pid is absent from the gallery.
    result = rank(
        [[0.2, 0.1, 0.3], [0.2, 0.1, 0.3], [0.2, 0.1, 0.3]], [1, 2, 9], [0, 0, 0], g_pids=[1, 2, 3], g_camids=[1, 0, 1]
    )
    assert (result.num_valid_queries, result.num_skipped_queries) == (1, 2)
    assert result.mAP == pytest.approx(1 / 2)  # q0 alone: g1 (pid 2) then its match g0
    assert result.as_dict()["skipped"] == 2


def test_no_valid_query_is_an_error():
    with pytest.raises(ValueError, match="no query has a true match"):
        rank([[0.1, 0.2]], [1], [0], g_pids=[1, 2], g_camids=[0, 1])


@pytest.mark.parametrize("gallery_order", [[0, 1, 2], [2, 1, 0]])
def test_tie_between_match_and_non_match_ranks_the_non_match_first(gallery_order):
    distances = np.array([0.5, 0.5, 0.2])  # match g0 tied with non-match g1; g2 nearer
    g_pids, g_camids = np.array([1, 2, 3]), np.array([1, 1, 1])
    result = rank([distances[gallery_order]], [1], [0], g_pids[gallery_order], g_camids[gallery_order])
    assert result.mAP == pytest.approx(1 / 3)  # g2, g1, then the match: whatever the gallery order
    np.testing.assert_allclose(result.cmc, [0, 0, 1, 1, 1])


def test_tied_matches_and_non_match():
    result = rank([[0.5, 0.5, 0.5]], [1], [0], g_pids=[1, 1, 2], g_camids=[1, 2, 1])
    assert result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)  # non-match first, matches second and third
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1, 1])


def protocol_one_query_at_a_time(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """The protocol spelled out per query, with a full sort (valid where distances have no ties)."""
    first_ranks, aps = [], []
    for q in range(len(q_pids)):
        order = np.argsort(distmat[q], kind="stable")
        kept = order[(g_pids[order] != -1) & ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))]
        hits = g_pids[kept] == q_pids[q]
        if not hits.any():
            continue
        match_ranks = np.flatnonzero(hits) + 1
        first_ranks.append(match_ranks[0])
        aps.append(np.mean(np.arange(1, len(match_ranks) + 1) / match_ranks))
    cmc = (np.array(first_ranks)[:, None] <= np.arange(1, max_rank + 1)).mean(axis=0)
    return cmc, np.mean(aps), len(q_pids) - len(first_ranks)


@pytest.mark.parametrize("block_rows", [None, 1, 7])  # None: all 60 queries in one block
def test_random_market_like_case_equals_per_query_protocol(monkeypatch, block_rows):
    rng = np.random.default_rng(0)
    q_pids, q_camids = rng.integers(1, 30, 60), rng.integers(0, 6, 60)
    g_pids, g_camids = rng.integers(-1, 30, 400), rng.integers(0, 6, 400)  # includes junk -1, distractors 0
    distmat = rng.random((60, 400)).astype(np.float32)
    if block_rows:
        monkeypatch.setattr(evaluation, "BLOCK_ELEMENTS", block_rows * int((g_pids != -1).sum()))
    cmc, mAP, skipped = protocol_one_query_at_a_time(distmat, q_pids, g_pids, q_camids, g_camids, 20)
    result = evaluate_rank(torch.from_numpy(distmat), q_pids, g_pids, q_camids, g_camids, max_rank=20)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(mAP, abs=1e-12)
    assert result.num_skipped_queries == skipped


def test_as_dict_reports_only_ranks_within_max_rank():
    result = rank([[0.2, 0.1]], [1], [0], g_pids=[1, 2], g_camids=[1, 1], max_rank=1)
    assert result.as_dict() == {"R1": 0.0, "mAP": 50.0, "skipped": 0}


def test_rank_input_errors():
    with pytest.raises(ValueError, match="does not match"):
        rank([[0.1, 0.2]], [1], [0], g_pids=[1, 2, 3], g_camids=[1, 1, 1])
    with pytest.raises(ValueError, match="differ in length: 1 and 1 in the query, 2 and 3 in the gallery"):
        rank([[0.1, 0.2]], [1], [0], g_pids=[1, 2], g_camids=[1, 1, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        rank([[np.nan, 0.2]], [1], [0], g_pids=[1, 2], g_camids=[1, 1])
    with pytest.raises(ValueError, match="no query has a true match"):
        rank([[0.1, 0.2]], [1], [0], g_pids=[-1, -1], g_camids=[1, 1])  # all junk


def test_rank_distance_rows_checks_each_block():
    pids, camids = [1, 2, 1], [0, 0, 1]

    def wrong_width(start, stop):
        return np.zeros((stop - start, 2), dtype=np.float32)

    with pytest.raises(ValueError, match=r"distance rows 0:2 have shape \(2, 2\), expected \(2, 3\)"):
        rank_distance_rows(wrong_width, pids[:2], pids, camids[:2], camids)

    def not_finite(start, stop):
        return np.full((stop - start, 3), np.inf, dtype=np.float32)

    with pytest.raises(ValueError, match="NaN or infinite"):
        rank_distance_rows(not_finite, pids[:2], pids, camids[:2], camids)


# ---------------------------------------------------------------- evaluating from features, block by block


def split_features(seed: int = 0, num_query: int = 40, num_gallery: int = 160, dim: int = 16):
    """Features around id centres, shifted by camera, noisy enough that rankings are far from perfect; the gallery
    holds junk (-1) and distractors (0)."""
    rng = np.random.default_rng(seed)
    q_pids, q_camids = rng.integers(1, 12, num_query), rng.integers(0, 4, num_query)
    g_pids, g_camids = rng.integers(-1, 12, num_gallery), rng.integers(0, 4, num_gallery)
    centres, shifts = rng.normal(size=(12, dim)), rng.normal(size=(4, dim))

    def features(pids, camids):
        noise = rng.normal(size=(len(pids), dim))
        return torch.from_numpy((centres[pids] + 0.5 * shifts[camids] + 1.2 * noise).astype(np.float32))

    return features(q_pids, q_camids), features(g_pids, g_camids), q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize("rerank", [False, True])
def test_evaluate_features_in_blocks_equals_ranking_the_whole_matrix(monkeypatch, rerank):
    query, gallery, q_pids, g_pids, q_camids, g_camids = split_features()
    whole = (re_ranking if rerank else pairwise_distance)(query, gallery)
    expected = evaluate_rank(whole, q_pids, g_pids, q_camids, g_camids)

    blocks = []
    rows_of = evaluation.re_ranking_rows if rerank else evaluation.distance_rows

    def recording_rows(*args):
        rows = rows_of(*args)

        def block(start, stop):
            blocks.append((start, stop))
            return rows(start, stop)

        return block

    monkeypatch.setattr(evaluation, "re_ranking_rows" if rerank else "distance_rows", recording_rows)
    monkeypatch.setattr(evaluation, "BLOCK_ELEMENTS", 7 * int((g_pids != -1).sum()))  # blocks of 7 queries
    got = evaluate_features(query, gallery, q_pids, g_pids, q_camids, g_camids, rerank=rerank)
    assert blocks == [(start, min(start + 7, 40)) for start in range(0, 40, 7)]
    assert 0.2 < expected.mAP < 0.9 and expected.num_valid_queries > 30  # far from trivial rankings
    np.testing.assert_array_equal(got.cmc, expected.cmc)
    assert got.mAP == expected.mAP
    assert (got.num_valid_queries, got.num_skipped_queries) == (
        expected.num_valid_queries,
        expected.num_skipped_queries,
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_distance_rows_in_blocks_equal_the_whole_matrix(metric):
    query, gallery, *_ = split_features()
    rows = distance_rows(query, gallery, metric)
    blocks = torch.cat([rows(start, min(start + 7, 40)) for start in range(0, 40, 7)])
    # Within float32 rounding: BLAS may sum a row's products in another order for another block shape.
    np.testing.assert_allclose(blocks.numpy(), pairwise_distance(query, gallery, metric).numpy(), atol=2e-6, rtol=0)


# ---------------------------------------------------------------- distances and devices


def test_pairwise_distance_by_hand():
    query, gallery = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    np.testing.assert_allclose(pairwise_distance(query, gallery).numpy(), [[1.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(pairwise_distance(query, gallery, "euclidean").numpy(), [[5.0, 4.0]], atol=1e-6)
    with pytest.raises(ValueError, match="unknown metric"):
        pairwise_distance(query, gallery, "manhattan")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu")


# ---------------------------------------------------------------- feature extraction


class LinearParts(nn.Module):
    """A linear map of the flattened image (mirror-sensitive), with dropout to tell train mode from eval mode;
    with `parts`, returns its first 3 and last 2 outputs as two parts."""

    def __init__(self, parts: bool = False):
        super().__init__()
        self.parts = parts
        self.linear = nn.Linear(3 * 4 * 2, 5)
        self.dropout = nn.Dropout(0.5)

    def forward(self, images):
        out = self.dropout(self.linear(images.flatten(1)))
        return (out[:, :3], out[:, 3:]) if self.parts else out


def image_batches(count=5, batch_size=2):
    torch.manual_seed(0)
    samples = [(torch.randn(3, 4, 2), 10 + i, i % 3, i) for i in range(count)]
    return samples, DataLoader(samples, batch_size=batch_size)


@pytest.mark.parametrize("flip", [False, True])
def test_extract_features_single_output(flip):
    model = LinearParts()
    samples, loader = image_batches()
    model.train()
    features, pids, camids = extract_features(model, loader, device="cpu", flip=flip)
    assert model.training  # mode restored
    with torch.no_grad():
        expected = []
        for image, *_ in samples:
            raw = model.linear(image.flatten())
            if flip:
                raw = raw + model.linear(image.flip(-1).flatten())
            expected.append(raw / raw.norm())
    assert features.dtype == torch.float32 and features.device.type == "cpu" and not features.requires_grad
    np.testing.assert_allclose(features.numpy(), torch.stack(expected).numpy(), atol=1e-6)
    np.testing.assert_array_equal(pids, [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(camids, [0, 1, 2, 0, 1])


def test_extract_features_parts_normalised_separately_then_concatenated():
    model = LinearParts(parts=True)
    samples, loader = image_batches()
    features, _, _ = extract_features(model, loader, device="cpu", flip=True)
    with torch.no_grad():
        raw = torch.stack(
            [model.linear(image.flatten()) + model.linear(image.flip(-1).flatten()) for image, *_ in samples]
        )
    expected = torch.cat([F.normalize(raw[:, :3], dim=1), F.normalize(raw[:, 3:], dim=1)], dim=1)
    np.testing.assert_allclose(features.numpy(), expected.numpy(), atol=1e-6)


def test_extract_features_empty_loader_is_an_error():
    with pytest.raises(ValueError, match="no batch"):
        extract_features(LinearParts(), DataLoader([], batch_size=2), device="cpu")


# ---------------------------------------------------------------- end to end


class MeanColour(nn.Module):
    def forward(self, images):
        return images.mean(dim=(2, 3))


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def colour_world(tmp_path) -> ReidDataset:
    """One query (camera 0) and four gallery images (cameras 1-4, slightly different shades) per colour = pid."""

    def record(pid: int, camid: int) -> ImageRecord:
        shade = tuple(max(0, value - 12 * camid) for value in COLOURS[pid - 1])
        path = tmp_path / f"{pid:04d}_c{camid}.png"
        Image.new("RGB", (4, 8), shade).save(path)
        return ImageRecord(str(path), pid, camid)

    pids = range(1, len(COLOURS) + 1)
    return ReidDataset(
        name="colours",
        train=[],
        query=[record(pid, 0) for pid in pids],
        gallery=[record(pid, camid) for pid in pids for camid in range(1, 5)],
        num_cameras=5,
    )


@pytest.mark.parametrize("rerank", [False, True])
def test_evaluate_end_to_end(tmp_path, rerank):
    dataset = colour_world(tmp_path)
    metrics = evaluate(MeanColour(), dataset, height=8, width=4, batch_size=4, device="cpu", rerank=rerank)
    assert metrics == pytest.approx({"R1": 100.0, "R5": 100.0, "R10": 100.0, "mAP": 100.0, "skipped": 0})


def test_evaluation_leaves_the_global_random_stream_alone(tmp_path):
    dataset = colour_world(tmp_path)
    torch.manual_seed(3)
    expected = torch.rand(5)
    torch.manual_seed(3)
    evaluate(MeanColour(), dataset, height=8, width=4, batch_size=4, device="cpu")
    assert torch.equal(torch.rand(5), expected)

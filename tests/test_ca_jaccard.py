"""The sparse camera-aware Jaccard distance ("ca", cluster/camera_jaccard.py) against a dense step-by-step rendering
of CA-Jaccard's public code (benchmarks/dense_ca_reference.py), in every mode, with cameras too small for their
rankings; DBSCAN labels, the warm-up, the clustering's plumbing and its errors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import canu_core.cluster.camera_jaccard as camera_jaccard
from canu_core.cluster.camera_jaccard import (
    CameraAware,
    camera_neighbours,
    camera_neighbours_by_topk,
    compute_camera_jaccard_distance,
)
from canu_core.cluster.jaccard import NeighbourSearch
from canu_core.cluster.pseudo_labels import DBSCANClustering, make_clustering, relabel_by_first_member, restore_eps
from canu_core.config import make_params
from canu_core.data.records import ImageRecord


def load_reference():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "dense_ca_reference.py"
    spec = importlib.util.spec_from_file_location("dense_ca_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference()
TINY_CAMERA = 5


def camera_features(seed: int = 24, num_ids: int = 50, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Unit float32 features of 6 to 12 images per identity (450 images by default), each image seen by one of 5
    cameras that shifts its feature (a camera bias, what the camera-aware distance is for), plus 3 images from a
    sixth camera: fewer than k1_intra + 2, so their intra-camera rankings spill into the other cameras."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(6, 13, num_ids)
    ids = np.repeat(np.arange(num_ids), sizes)
    cameras = rng.integers(0, 5, len(ids))
    cameras[rng.choice(len(ids), 3, replace=False)] = TINY_CAMERA
    centres = rng.normal(size=(num_ids, dim))
    shifts = 0.6 * rng.normal(size=(TINY_CAMERA + 1, dim))
    points = centres[ids] + shifts[cameras] + 0.55 * rng.normal(size=(len(ids), dim))
    order = rng.permutation(len(ids))
    points = points[order] / np.linalg.norm(points[order], axis=1, keepdims=True)
    return points.astype(np.float32), cameras[order]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return camera_features()


def public_rankings(features: np.ndarray, cameras: np.ndarray) -> dict[str, np.ndarray]:
    """The public code's three full rankings in float64 (stable): intra-camera, inter-camera and global."""
    distance = 2 - 2 * features.astype(np.float64) @ features.T
    same = cameras[:, None] == cameras[None, :]
    return {
        "intra": distance + 999.0 * ~same,
        "inter": distance + 999.0 * same,
        "global": distance,
    }


def smallest_boundary_gap(features: np.ndarray, cameras: np.ndarray, lengths: dict[str, list[int]]) -> float:
    """Smallest distance gap, over all points, between the last member of a list and the next point in its ranking:
    a gap near float32 rounding would let argpartition and our search pick different lists."""
    gaps = []
    for name, shifted in public_rankings(features, cameras).items():
        ordered = np.sort(shifted, axis=1)
        gaps += [float((ordered[:, m] - ordered[:, m - 1]).min()) for m in lengths[name]]
    return min(gaps)


def boundaries(k1: int, k2: int, settings: CameraAware) -> dict[str, list[int]]:
    return {
        "intra": [settings.k1_intra + 1, settings.k2_intra, 3],
        "inter": [settings.k1_inter + 1, settings.k2_inter, 3],
        "global": [k1 + 1, round(k1 / 2) + 1, k2],
    }


def as_dense(distance) -> np.ndarray:
    """Missing entries are 1."""
    coo = distance.tocoo()
    dense = np.ones(distance.shape)
    dense[coo.row, coo.col] = coo.data
    return dense


def dense_public(features, cameras, k1, k2, settings: CameraAware, epoch: int = 1) -> np.ndarray:
    return reference.compute_ca_jaccard_distance(
        features,
        cameras,
        k1,
        k2,
        settings.ckrnns,
        settings.clqe,
        settings.k1_intra,
        settings.k1_inter,
        settings.k2_intra,
        settings.k2_inter,
        epoch=epoch,
    )


MODES = [(True, True), (True, False), (False, True), (False, False)]
# (k1, k2, k1_intra, k1_inter, k2_intra, k2_inter): train_caj.py's defaults, its README's commands, CLQE over 5
# intra-camera points (more than the tiny camera's 3: its expansion reads spilled points), small lists with k2 = 1
# (no query expansion: clqe refused, see test_clear_errors)
SETTINGS = [(30, 6, 5, 20, 3, 3), (20, 4, 5, 20, 2, 4), (30, 6, 5, 20, 5, 2), (12, 1, 3, 8, 1, 1)]
CASES = [(*mode, *setting) for mode in MODES for setting in SETTINGS if not (mode[1] and setting[1] == 1)]


@pytest.mark.parametrize("ckrnns, clqe, k1, k2, k1_intra, k1_inter, k2_intra, k2_inter", CASES)
def test_same_distances_as_dense_public_code(data, ckrnns, clqe, k1, k2, k1_intra, k1_inter, k2_intra, k2_inter):
    features, cameras = data
    settings = CameraAware(ckrnns, clqe, k1_intra, k1_inter, k2_intra, k2_inter)
    assert smallest_boundary_gap(features, cameras, boundaries(k1, k2, settings)) > 1e-5  # tie-free data
    expected = dense_public(features, cameras, k1, k2, settings)
    distance = compute_camera_jaccard_distance(features, cameras, k1, k2, settings)
    assert distance.dtype == np.float32 and distance.format == "csr"
    assert np.abs(as_dense(distance) - expected).max() < 1e-5  # float32 arithmetic in the reference
    np.testing.assert_array_equal(as_dense(distance) < 1, expected < 1 - 1e-6)  # exactly the pairs below 1 stored
    # pairs on both sides (with lists of 20 to 30 points most of the 450 overlap; the lists of 8 and 12, few)
    assert min((expected < 1).sum(), (expected == 1).sum()) > 20
    assert (distance != distance.T).nnz == 0
    np.testing.assert_array_equal(distance.diagonal(), 0)


def test_the_modes_and_the_camera_change_the_distance(data):
    features, cameras = data
    distances = {
        mode: as_dense(compute_camera_jaccard_distance(features, cameras, settings=CameraAware(*mode)))
        for mode in MODES
    }
    for mode in MODES[1:]:
        assert np.abs(distances[mode] - distances[MODES[0]]).max() > 0.1
    shuffled = np.random.default_rng(0).permutation(cameras)
    assert np.abs(as_dense(compute_camera_jaccard_distance(features, shuffled)) - distances[True, True]).max() > 0.1


def test_rankings_spill_as_the_public_code_ranks(data):
    """A camera of 3 images: its intra ranking goes on into the other cameras, nearest first, as the public code's
    +999 ranking does; every list is the public one (as sets: the order within a list plays no part)."""
    features, cameras = data
    neighbours = camera_neighbours(torch.from_numpy(features), cameras, 22)
    public = {
        name: np.argsort(shifted, axis=1, kind="stable") for name, shifted in public_rankings(features, cameras).items()
    }
    ours = {"intra": neighbours.intra_ranking, "inter": neighbours.inter_ranking, "global": neighbours.global_ranking}
    for name, ranking in ours.items():
        for length in (1, 3, 6, 11, 21, 22):
            assert [set(row) for row in ranking(length)] == [set(row) for row in public[name][:, :length]], name
    tiny = np.flatnonzero(cameras == TINY_CAMERA)
    intra = neighbours.intra_ranking(6)[tiny]
    assert (cameras[intra[:, :3]] == TINY_CAMERA).all() and (cameras[intra[:, 3:]] != TINY_CAMERA).all()
    assert (neighbours.intra[tiny, 3:] == -1).all()  # the search itself found only the camera's 3 images


@pytest.mark.parametrize("ckrnns, clqe", MODES)
def test_inter_rankings_spill_into_the_own_camera(ckrnns, clqe):
    """One camera holds all but 8 images: its images have 8 points outside it, fewer than k1_inter + 1, so their
    inter rankings go on into their own camera, themselves included."""
    features, _ = camera_features(seed=3, num_ids=14)
    cameras = np.zeros(len(features), dtype=np.int64)
    cameras[np.random.default_rng(1).choice(len(features), 8, replace=False)] = 1
    settings = CameraAware(ckrnns, clqe, k2_intra=2, k2_inter=4)
    assert smallest_boundary_gap(features, cameras, boundaries(30, 6, settings)) > 1e-5
    expected = dense_public(features, cameras, 30, 6, settings)
    distance = compute_camera_jaccard_distance(features, cameras, 30, 6, settings)
    assert np.abs(as_dense(distance) - expected).max() < 1e-5
    assert (expected < 1).sum() > 3 * len(features)


def test_search_across_blocks_and_by_topk_gives_the_same_lists(data, monkeypatch):
    features, cameras = data
    unit = torch.from_numpy(features)
    whole = camera_neighbours(unit, cameras, 22)
    monkeypatch.setattr(camera_jaccard, "SEARCH_BLOCK", 37)  # 6 row blocks, the last one partial
    for neighbours in (camera_neighbours(unit, cameras, 22), camera_neighbours_by_topk(unit, cameras, 22)):
        for name in ("intra", "inter"):
            np.testing.assert_array_equal(getattr(neighbours, name), getattr(whole, name))
            found = getattr(whole, name) >= 0
            np.testing.assert_allclose(
                getattr(neighbours, f"{name}_similarity")[found], getattr(whole, f"{name}_similarity")[found], atol=1e-6
            )
    same = cameras[:, None] == cameras[None, :]
    similarity = features.astype(np.float64) @ features.T
    np.testing.assert_allclose(whole.intra_similarity[:, 0], similarity.diagonal(), atol=1e-6)  # self first
    assert same[np.arange(len(cameras))[:, None], np.where(whole.intra >= 0, whole.intra, 0)][whole.intra >= 0].all()
    assert not same[np.arange(len(cameras))[:, None], whole.inter].any()


@pytest.mark.parametrize("eps", [0.4, 0.6])  # 0.6: train_caj.py's default
def test_dbscan_labels_identical_to_dense(data, eps):
    features, cameras = data
    settings = CameraAware(k2_intra=2, k2_inter=4)
    expected = relabel_by_first_member(reference.dbscan_labels(dense_public(features, cameras, 30, 6, settings), eps))
    clustering = DBSCANClustering(
        eps=eps, k1=30, jaccard="ca", cameras=cameras, camera_aware=settings, clqe_warmup=False
    )
    result = clustering(features)
    assert result.num_clusters >= 35  # most of the 50 identities are found: a meaningful comparison
    np.testing.assert_array_equal(result.labels, expected)


def test_the_first_clustering_is_the_warm_up_and_a_restored_one_is_past_it(data):
    features, cameras = data
    settings = CameraAware(k2_intra=2, k2_inter=4)
    epoch_0, epoch_1 = (dense_public(features, cameras, 30, 6, settings, epoch=epoch) for epoch in (0, 1))
    assert np.abs(epoch_0 - epoch_1).max() > 0.05  # the warm-up changes the distance
    np.testing.assert_allclose(epoch_0, dense_public(features, cameras, 30, 6, settings.warmed_up()), atol=0)
    eps = 0.5
    labels = [relabel_by_first_member(reference.dbscan_labels(d, eps)) for d in (epoch_0, epoch_1)]
    assert not np.array_equal(*labels)
    clustering = DBSCANClustering(eps=eps, k1=30, jaccard="ca", cameras=cameras, camera_aware=settings)
    np.testing.assert_array_equal(clustering(features).labels, labels[0])
    np.testing.assert_array_equal(clustering(features).labels, labels[1])
    resumed = DBSCANClustering(k1=30, jaccard="ca", cameras=cameras, camera_aware=settings)
    restore_eps(resumed, eps)
    np.testing.assert_array_equal(resumed(features).labels, labels[1])
    off = DBSCANClustering(eps=eps, k1=30, jaccard="ca", cameras=cameras, camera_aware=settings, clqe_warmup=False)
    np.testing.assert_array_equal(off(features).labels, labels[1])


def test_make_clustering_reads_the_records_cameras_and_the_params(data):
    features, cameras = data
    records = [ImageRecord(f"{i}.jpg", 0, int(camera)) for i, camera in enumerate(cameras)]
    params = make_params({"jaccard": "ca", "k1": 30, "eps": 0.5, "k2_intra": 2, "k2_inter": 4, "clqe_warmup": False})
    clustering = make_clustering(params, records)
    assert clustering.camera_aware == CameraAware(True, True, 5, 20, 2, 4) and not clustering.clqe_warmup
    np.testing.assert_array_equal(clustering.cameras, cameras)
    expected = reference.dbscan_labels(dense_public(features, cameras, 30, 6, CameraAware(k2_intra=2, k2_inter=4)), 0.5)
    np.testing.assert_array_equal(clustering(features).labels, relabel_by_first_member(expected))
    assert not hasattr(make_clustering(make_params({}), records), "cameras")  # mmt reads no camera


def test_clear_errors(data):
    features, cameras = data
    with pytest.raises(ValueError, match=r"one integer camera label per point \(300\), got an array of shape \(299,\)"):
        compute_camera_jaccard_distance(features[:300], cameras[:299])
    with pytest.raises(ValueError, match="dtype float64"):
        compute_camera_jaccard_distance(features, cameras.astype(np.float64))
    with pytest.raises(ValueError, match="need k2_intra <= 7 and k2_inter <= 22, got 8 and 3"):
        compute_camera_jaccard_distance(features, cameras, settings=CameraAware(k2_intra=8))
    with pytest.raises(ValueError, match="no query expansion at all when k2 is 1"):
        compute_camera_jaccard_distance(features, cameras, k2=1)
    with pytest.raises(ValueError, match="need k2 <= 32"):
        compute_camera_jaccard_distance(features, cameras, k2=33, settings=CameraAware(clqe=False))
    with pytest.raises(ValueError, match="needs at least 31 points, got 20"):
        compute_camera_jaccard_distance(features[:20], cameras[:20], settings=CameraAware(ckrnns=False))
    with pytest.raises(ValueError, match="needs each point's camera"):
        DBSCANClustering(jaccard="ca")
    with pytest.raises(ValueError, match="searches exactly: neighbour search 'ivf'"):
        DBSCANClustering(jaccard="ca", cameras=cameras, search=NeighbourSearch("ivf"))
    with pytest.raises(ValueError, match="would ignore them"):
        DBSCANClustering(jaccard="mmt", cameras=cameras)
    with pytest.raises(ValueError, match="expected one of 'mmt', 'spcl', 'ca'"):
        DBSCANClustering(jaccard="CA")
    with pytest.raises(ValueError, match="100 feature rows for 450 camera labels"):
        DBSCANClustering(jaccard="ca", cameras=cameras)(features[:100])

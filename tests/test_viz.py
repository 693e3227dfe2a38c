"""Figures, tables and widgets of notebook 02 on tiny synthetic data: every figure function saves a PNG and returns
the Figure; the tables are checked by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from canu_core.cluster.diagnostics import (
    camera_adjusted_mutual_information,
    clustering_report,
    feature_report,
    group_table,
)
from canu_core.cluster.jaccard import upper_jaccard_distance
from canu_core.cluster.pseudo_labels import pseudo_labels_from, rho_eps
from canu_core.data.records import ImageRecord
from canu_core.viz.clusters import (
    camera_bias_narrative,
    diagnostics_table,
    pick_clusters,
    plot_camera_composition,
    plot_cluster_samples,
)
from canu_core.viz.common import CATEGORY_COLOURS
from canu_core.viz.embedding import cache_umap_compilation, plot_umap, umap_embedding
from canu_core.viz.neighbours import plot_same_camera_neighbours
from canu_core.widgets import cluster_browser, recluster_widget

# Six images: cluster 0 = id 1 in cameras 0 and 1 (one person across cameras), cluster 1 = ids 2 and 3, both in
# camera 2 (a camera cluster), one outlier (id 3, camera 1).
LABELS = np.array([0, 0, 0, 1, 1, -1])
CAMIDS = np.array([0, 1, 1, 2, 2, 1])
PIDS = np.array([1, 1, 1, 2, 3, 3])


def assert_saved(fig, path):
    assert isinstance(fig, Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def records(tmp_path):
    """Image files for LABELS / CAMIDS / PIDS, one colour per camera."""
    out = []
    for index, (pid, camid) in enumerate(zip(PIDS, CAMIDS)):
        path = tmp_path / "images" / f"{index}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (16, 32), color=(80 * camid, 40 * pid, 100)).save(path)
        out.append(ImageRecord(str(path), int(pid), int(camid)))
    return out


def blobs(num_per_blob=10, dim=8, seed=0):
    """Three tight, well separated groups of points: ids 0, 1, 2; cameras alternate 0 / 1 inside each."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 10
    features = np.concatenate([c + rng.normal(scale=0.1, size=(num_per_blob, dim)) for c in centres])
    pids = np.repeat(np.arange(3), num_per_blob)
    camids = np.tile([0, 1], 3 * num_per_blob // 2)
    return features.astype(np.float32), pids, camids


def test_group_table_by_hand():
    table = group_table(LABELS, CAMIDS, PIDS)
    assert table.index.tolist() == [0, 1]  # largest first, the outlier left out
    assert table.loc[0].to_dict() == {
        "size": 3,
        "cameras": 2,
        "ids": 1,
        "camera_purity": pytest.approx(2 / 3),
        "id_purity": 1.0,
        "main_camera": 1,
    }
    assert table.loc[1].to_dict() == {
        "size": 2,
        "cameras": 1,
        "ids": 2,
        "camera_purity": 1.0,
        "id_purity": 0.5,
        "main_camera": 2,
    }
    by_identity = group_table(PIDS, CAMIDS, PIDS)  # the true ids as groups: id 3 spans cameras 2 and 1
    assert by_identity["cameras"].to_dict() == {1: 2, 2: 1, 3: 2}
    assert group_table(np.full(3, -1), [0, 1, 2], [1, 2, 3]).empty


def test_pick_clusters():
    table = pd.DataFrame(
        {"size": [5, 9, 4, 7], "cameras": [1, 1, 3, 2], "camera_purity": [1.0, 1.0, 0.4, 0.6]}, index=[10, 11, 12, 13]
    )
    assert pick_clusters(table, n=2) == {"camera-pure": [11, 10], "mixed": [12, 13]}


def test_clustering_report_by_hand():
    features = np.eye(6, dtype=np.float32)
    report = clustering_report(pseudo_labels_from(features, LABELS), PIDS, CAMIDS)
    assert (report["num_clusters"], report["num_outliers"], report["num_true_ids"]) == (2, 1, 3)
    assert report["lost_ids"] == 0  # id 3 keeps one image in cluster 1
    assert report["single_camera_clusters"] == 0.5  # cluster 1 only
    assert report["single_camera_ids"] == pytest.approx(1 / 3)  # id 2 only
    assert report["pairwise_precision"] == pytest.approx(3 / 4)  # pairs in clusters: 3 same-id + 1 mixed
    # H(camera) - H(camera | cluster) over the 5 clustered images: cameras 1/5, 2/5, 2/5; cluster 0 holds 1:2.
    expected_mi = (math.log(5) - 0.8 * math.log(2)) - 0.6 * (math.log(3) - 2 / 3 * math.log(2))
    assert report["mi_pseudo_camera"] == pytest.approx(expected_mi)
    assert report["ami_pseudo_camera"] == pytest.approx(camera_adjusted_mutual_information(LABELS, CAMIDS))
    assert report["ami_pseudo_camera"] < report["mi_pseudo_camera"]
    table = diagnostics_table(report)
    assert table.loc["MI less its chance value, nats", "this clustering"] == f"{report['ami_pseudo_camera']:.3f}"
    assert table.loc["clusters", "this clustering"] == "2 (ok)"
    assert table.loc["groups from a single camera"].tolist() == ["50% of clusters", "33% of true ids"]


def test_degenerate_report_and_table():
    report = clustering_report(pseudo_labels_from(np.eye(6, dtype=np.float32), np.full(6, -1)), PIDS, CAMIDS)
    assert report["status"] == "no_clusters" and report["lost_ids"] == 3
    assert math.isnan(report["single_camera_clusters"])
    assert diagnostics_table(report).loc["clusters", "this clustering"] == "0 (no_clusters)"


def test_feature_report_rows():
    features, pids, camids = blobs()
    checks = feature_report(features, pids, camids, k=5)
    assert checks["neighbours_identity"]["same_label_rate"] == 1.0  # tight blobs: all neighbours share the id
    table = diagnostics_table(clustering_report(pseudo_labels_from(features, pids), pids, camids), checks)
    assert table.loc["neighbours sharing the identity", "this clustering"] == "100.0%"
    assert table.loc["camera probe accuracy", "reference"] == "50.0% (chance)"


def test_camera_bias_narrative_reads_the_report():
    features, pids, camids = blobs()
    checks = feature_report(features, pids, camids, k=5)
    # clusters that follow the cameras (the last image an outlier): on the five clustered images the camera is
    # the cluster (MI = H(camera) = 1.05 nats), where the true ids leave camera 1 shared (0.67)
    by_camera = np.array([0, 1, 1, 2, 2, -1])
    report = clustering_report(pseudo_labels_from(np.eye(6, dtype=np.float32), by_camera), PIDS, CAMIDS)
    text = camera_bias_narrative(report, checks, min_samples=4)
    assert (round(report["mi_pseudo_camera"], 2), round(report["mi_true_camera"], 2)) == (1.05, 0.67)
    assert (round(report["ami_pseudo_camera"], 2), round(report["ami_true_camera"], 2)) == (0.44, 0.11)
    assert (
        "The clusters follow cameras more than people do: chance-adjusted MI(pseudo-labels; camera) = 0.44 nats "
        "against 0.11 for the true ids (plug-in: 1.05 against 0.67;"
    ) in text
    assert "100% of the 3 clusters hold images of a single camera, while 33% of the 3 true identities" in text
    assert "50% of the pairs inside a cluster show one person" in text
    # LABELS on the same five images: as much camera information as the true ids, no more
    same = clustering_report(pseudo_labels_from(np.eye(6, dtype=np.float32), LABELS), PIDS, CAMIDS)
    assert same["mi_pseudo_camera"] == pytest.approx(same["mi_true_camera"])
    assert text.startswith("What the features carry: a linear probe predicts the camera for ")

    by_identity = clustering_report(pseudo_labels_from(np.eye(6, dtype=np.float32), PIDS - 1), PIDS, CAMIDS)
    assert "These clusters follow cameras no more than people do (by more than 0.02 nats): chance-adjusted MI" in (
        camera_bias_narrative(by_identity, checks, 4)
    )  # -0.01 against -0.01: the same labels
    degenerate = clustering_report(pseudo_labels_from(np.eye(6, dtype=np.float32), np.full(6, -1)), PIDS, CAMIDS)
    assert "This clustering is degenerate (no cluster: all 6 points are outliers" in camera_bias_narrative(
        degenerate, checks, 4
    )


def test_plot_umap_panels(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 2))
    labelings = {
        "camera": rng.integers(1, 4, 60),
        "identity": np.arange(60) // 2,
        "pseudo-label": np.where(np.arange(60) < 10, -1, np.arange(60) // 5),
    }
    fig = plot_umap(points, labelings, path=tmp_path / "umap.png", max_groups=5)
    assert_saved(fig, tmp_path / "umap.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "coloured by camera"
    assert "5 random of 30 groups" in titles[1]
    assert "10 outliers grey" in titles[2]
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None


def drawn_groups(ax):
    """The distinct (colour, marker) pairs of the points drawn in a panel, the grey ones (the first collection) left
    out: seaborn gives each point its own colour and marker path."""
    groups = set()
    for collection in ax.collections[1:]:
        for colour, path in zip(collection.get_facecolors(), collection.get_paths(), strict=True):
            groups.add((tuple(np.round(colour, 3)), tuple(np.round(path.vertices, 3).ravel())))
    return groups


def test_eight_cameras_get_eight_colour_blind_safe_colours_and_markers(tmp_path):
    rng = np.random.default_rng(0)
    cameras = np.arange(80) % 8 + 1
    identities = np.arange(80) // 2  # 40 identities: more than the palette has colours
    fig = plot_umap(rng.normal(size=(80, 2)), {"camera": cameras, "identity": identities}, max_groups=30)
    camera_panel, identity_panel = fig.axes[:2]
    by_camera = drawn_groups(camera_panel)
    safe = {tuple(np.round(to_rgba(c), 3)) for c in CATEGORY_COLOURS}
    assert len(by_camera) == 8  # each camera one colour and one marker, no two alike in either
    assert {colour for colour, _ in by_camera} == safe and len({marker for _, marker in by_camera}) == 8
    assert [t.get_text() for t in camera_panel.get_legend().get_texts()] == [str(c) for c in range(1, 9)]
    # identities: only as many are coloured as there are colours, so no colour stands for two of them
    by_identity = drawn_groups(identity_panel)
    assert len({colour for colour, _ in by_identity}) == 8 == len(by_identity)
    assert "8 random of 40 groups" in identity_panel.get_title()


def test_same_camera_neighbours_bars_and_chance(tmp_path):
    table = pd.DataFrame(
        {"same_camera": [0.53, 0.4, 0.2], "chance": [0.12] * 3},
        index=pd.Index(["source", "MMT", "CANU"], name="model"),
    )
    fig = plot_same_camera_neighbours(table, k=10, path=tmp_path / "neighbours.png")
    assert_saved(fig, tmp_path / "neighbours.png")
    ax = fig.axes[0]
    assert [round(bar.get_height(), 2) for bar in ax.patches] == [0.53, 0.4, 0.2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["source", "MMT", "CANU"]
    assert [t.get_text() for t in ax.texts] == ["53%", "40%", "20%"]
    assert ax.lines[0].get_ydata()[0] == 0.12
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chance (12%)"]
    with pytest.raises(ValueError, match="not of the same images"):
        plot_same_camera_neighbours(table.assign(chance=[0.12, 0.12, 0.2]), k=10)


def test_umap_embedding_keeps_groups_apart_and_repeats_for_a_seed():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 16))
    groups = np.repeat(np.arange(3), 12)
    features = directions[groups] + 0.05 * rng.normal(size=(36, 16))
    points = umap_embedding(features, seed=1)
    assert points.shape == (36, 2) and np.array_equal(points, umap_embedding(features, seed=1))
    # every point's nearest other point in the plane belongs to its own group
    distances = np.linalg.norm(points[:, None] - points[None], axis=2) + np.diag(np.full(36, np.inf))
    assert np.array_equal(groups[distances.argmin(axis=1)], groups)
    assert umap_embedding(features[:8], seed=1).shape == (8, 2)  # fewer points than UMAP's 15 neighbours


def test_plot_umap_all_outliers(tmp_path):
    fig = plot_umap(np.zeros((4, 2)), {"pseudo-label": np.full(4, -1)}, path=tmp_path / "none.png")
    assert_saved(fig, tmp_path / "none.png")


def test_plot_camera_composition(tmp_path):
    fig = plot_camera_composition(LABELS, CAMIDS, PIDS, num_cameras=3, path=tmp_path / "composition.png")
    assert_saved(fig, tmp_path / "composition.png")
    bars, spread = fig.axes[:2]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["0", "1"]
    heights = [p.get_height() for p in spread.patches]  # clusters over 1..3 cameras, then true ids
    assert heights == pytest.approx([0.5, 0.5, 0.0, 1 / 3, 2 / 3, 0.0])


def test_plot_camera_composition_without_clusters(tmp_path):
    fig = plot_camera_composition(np.full(6, -1), CAMIDS, PIDS, num_cameras=3, path=tmp_path / "empty.png")
    assert_saved(fig, tmp_path / "empty.png")


def test_plot_cluster_samples(tmp_path, records):
    fig = plot_cluster_samples(records, LABELS, [1, 0], path=tmp_path / "samples.png", n_images=4)
    assert_saved(fig, tmp_path / "samples.png")
    assert len(fig.axes) == 2 * 4
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 0, 0, 1, 1, 1, 0]  # cluster sizes 2 and 3
    assert fig.axes[0].get_ylabel() == "cluster 1\n2 imgs\n1 cams, 2 ids"
    empty = plot_cluster_samples(records, LABELS, [], path=tmp_path / "empty.png")
    assert_saved(empty, tmp_path / "empty.png")
    assert empty.axes[0].texts[0].get_text() == "no cluster to show"
    assert shown_as_png(empty)  # IPython shows a figure without axes as "<Figure size ... with 0 Axes>"


def shown_as_png(fig) -> bool:
    """Whether a notebook displays `fig` as a picture: IPython's inline PNG formatter gives it bytes."""
    from IPython.core.pylabtools import print_figure

    data = print_figure(fig, "png")
    return data is not None and data[:4] == b"\x89PNG"


def test_cluster_browser_shows_the_chosen_cluster(records):
    browser = cluster_browser(records, LABELS, n_images=3)  # not manual: draws the first option at once
    dropdown = browser.children[0]
    assert [value for _, value in dropdown.options] == [0, 1]
    assert dropdown.options[0][0] == "cluster 0: 3 images, 2 cameras, 1 ids"
    assert isinstance(browser.result, Figure) and len(browser.result.axes) == 3
    dropdown.value = 1
    assert browser.result.axes[0].get_ylabel().startswith("cluster 1")
    assert shown_as_png(browser.result)


def test_cluster_browser_says_when_there_is_no_cluster(records):
    browser = cluster_browser(records, [-1] * len(records))  # the smoke run's degenerate clustering
    dropdown = browser.children[0]
    assert dropdown.options == (("no cluster: every image is an outlier", -1),) and dropdown.disabled
    assert shown_as_png(browser.result)


def test_recluster_widget_runs_on_demand(capsys):
    features, pids, camids = blobs()
    # Blobs of 10 > k1 points: no neighbourhood crosses blobs, so every cross-blob distance is 1 and any eps < 1
    # that links each blob internally gives 3 clusters.
    widget = recluster_widget(features, pids, camids, num_cameras=2, eps=0.9, k1=5, k2=2, min_samples=3)
    assert widget.result is None  # manual: nothing runs before the button
    widget.update()  # what the button does
    assert isinstance(widget.result, Figure)
    assert widget.result.get_suptitle().startswith("3 clusters, 0 outliers among 30 points")
    assert "3 (ok)" in capsys.readouterr().out  # the diagnostics table, displayed above the figure
    rho_start = recluster_widget(features, pids, camids, num_cameras=2, eps=None, k1=5, k2=2)
    rule = rho_eps(upper_jaccard_distance(features, k1=5, k2=2), rho=0.0016)
    assert rho_start.children[0].value == pytest.approx(np.clip(rule, 0.01, 0.99))


def test_umaps_compiled_functions_are_cached_on_disk_after_the_first_embedding():
    """UMAP compiles its embedding's numba functions without numba's disk cache: every new process (each notebook
    kernel) paid about 8 s for them. After cache_umap_compilation every one of them keeps its machine code on disk."""
    import umap.layouts
    import umap.umap_
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    cache_umap_compilation()
    compiled = [f for m in (umap.umap_, umap.layouts) for f in vars(m).values() if isinstance(f, CPUDispatcher)]
    assert len(compiled) >= 10  # fuzzy_simplicial_set's helpers and the layout's epochs
    assert not [f.py_func.__name__ for f in compiled if isinstance(f._cache, NullCache)]

"""The first clusterings of two pretraining runs side by side (notebook 02's compare_pretrain_run): the table by hand,
its figure, and the report of a compared run built as notebook 02 builds its own."""

import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

from canu_core.cluster import clustering_report, feature_report
from canu_core.cluster.pseudo_labels import DBSCANClustering
from canu_core.config import make_params
from canu_core.data.catalog import load_dataset
from canu_core.data.image_dataset import ImageDataset
from canu_core.data.transforms import build_test_transform
from canu_core.engine import first_clustering_report
from canu_core.evaluation import extract_features
from canu_core.models import build_model
from canu_core.viz.pretraining import (
    REFERENCE,
    compare_first_clusterings,
    plot_first_clusterings,
)


def report(clusters, outliers, precision, recall, nmi, mi, probe, ami=None):
    """A report of `first_clustering_report`'s form; the references: 9 true ids, MI 0.2 (0.05 adjusted), chance
    0.25."""
    out = {
        "num_clusters": clusters,
        "num_outliers": outliers,
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "nmi": nmi,
        "mi_pseudo_camera": mi,
        "mi_true_camera": 0.2,
        "num_true_ids": 9,
        "features": {"camera_probe": {"accuracy": probe, "accuracy_std": 0.1, "chance": 0.25}},
    }
    if ami is not None:
        out.update(ami_pseudo_camera=ami, ami_true_camera=0.05)
    return out


def test_table_sets_each_run_beside_the_reference():
    table = compare_first_clusterings(
        {
            "with_target": report(7, 3, 0.8, 0.6, 0.9, 0.3, 0.5, ami=0.1),
            "source_only": report(4, 10, float("nan"), 0.2, 0.7, 0.6, 0.9, ami=0.4),
        }
    )
    assert table.columns.tolist() == ["with_target", "source_only", REFERENCE]
    assert table.index.tolist() == [
        "clusters",
        "outliers",
        "pairwise precision",
        "pairwise recall",
        "NMI",
        "MI(pseudo-labels; camera), nats",
        "MI less its chance value, nats",
        "camera probe accuracy",
    ]
    assert table["with_target"].tolist() == [7, 3, 0.8, 0.6, 0.9, 0.3, 0.1, 0.5]
    assert table["source_only"].tolist()[2:] == pytest.approx([math.nan, 0.2, 0.7, 0.6, 0.4, 0.9], nan_ok=True)
    assert table[REFERENCE].tolist() == [9, 0, 1, 1, 1, 0.2, 0.05, 0.25]
    assert json.loads(json.dumps(table.to_dict()))["source_only"]["clusters"] == 4  # metrics.json keeps plain floats


def test_adjusted_mi_row_only_when_every_report_has_it():
    table = compare_first_clusterings(
        {"a": report(7, 3, 0.8, 0.6, 0.9, 0.3, 0.5, ami=0.1), "b": report(4, 10, 0.5, 0.2, 0.7, 0.6, 0.9)}
    )
    assert "MI less its chance value, nats" not in table.index and len(table) == 7
    with pytest.raises(ValueError, match="no report"):
        compare_first_clusterings({})


def test_figure_has_a_panel_per_quantity_and_is_saved(tmp_path):
    table = compare_first_clusterings(
        {
            "with_target": report(7, 3, 0.8, 0.6, 0.9, 0.3, 0.5),
            "source_only": report(4, 10, float("nan"), 0.2, 0.7, 0.6, 0.9),
        }
    )
    path = tmp_path / "figures" / "pretraining_comparison.png"
    fig = plot_first_clusterings(table, path=path, title="first clusterings")
    assert isinstance(fig, Figure) and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == table.index.tolist()
    precision = panels[2]
    assert [label.get_text() for label in precision.texts] == ["0.8", "n/a"]  # a missing value is said, not drawn
    assert [tick.get_text() for tick in precision.get_xticklabels()] == ["with_target", "source_only"]
    assert precision.lines[0].get_ydata()[0] == 1.0  # the reference line


def test_compared_run_is_clustered_as_notebook_02_clusters_its_own(tiny_data_root):
    """first_clustering_report on a model gives what notebook 02's cells give for it: the same features (test
    transform, eval mode), a fresh clustering with the notebook's parameters, the same reports."""
    params = make_params(
        {"data_root": str(tiny_data_root), "device": "cpu", "target": "synthetic:tiny_target", "k1": 10, "rho": 0.2}
    )
    target = load_dataset(params.target, params.data_root)
    model = build_model("compact", num_classes=5)

    loader = DataLoader(
        ImageDataset(target.train, build_test_transform(params.height, params.width)), batch_size=params.eval_batch_size
    )
    features, pids, camids = extract_features(model, loader, device="cpu")
    clusterer = DBSCANClustering(
        eps=params.eps, rho=params.rho, min_samples=params.min_samples, k1=params.k1, k2=params.k2
    )
    expected = {
        **clustering_report(clusterer(features), pids, camids),
        "features": feature_report(features, pids, camids, seed=params.seed),
    }
    found = first_clustering_report(model, target.train, params)
    assert json.dumps(found, sort_keys=True, default=float) == json.dumps(expected, sort_keys=True, default=float)
    assert found["num_points"] == len(target.train) and np.isfinite(found["mi_true_camera"])

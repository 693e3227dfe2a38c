"""Notebook 02 headless on the tiny worlds: a pretraining run made directly by the engine, then the notebook."""

import math

import nbformat
import pytest
from course_form import check_exercises

from canu_core.config import load_params
from canu_core.data.catalog import load_dataset
from canu_core.notebook import run_notebook
from canu_core.runs import RunFolder, project_root
from canu_core.training import pretrain
from canu_core.viz.pretraining import REFERENCE

SMOKE = project_root() / "params" / "smoke.yaml"
FIGURES = ("clusters_umap.png", "cluster_cameras.png", "cluster_samples_pure.png", "cluster_samples_mixed.png")
pytestmark = pytest.mark.notebook


def pretraining(data_root, run_name: str, **changes) -> RunFolder:
    """What notebook 01 leaves in its run folder (params.yaml, checkpoints), for one smoke model."""
    params = load_params(
        SMOKE, overrides={"data_root": str(data_root), "device": "cpu", "n_models": 1, "run_name": run_name, **changes}
    )
    run = RunFolder.for_run(params.run_name)
    run.record(params, "01_pretrain")
    pretrain(params, load_dataset(params.source, params.data_root), load_dataset(params.target, params.data_root), run)
    return run


@pytest.fixture
def pretrain_run(tiny_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path / "outputs"))
    return pretraining(tiny_data_root, "smoke_pretrain")


def notebook_text(notebook) -> str:
    return "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )


def test_02_clusters_smoke(tiny_data_root, pretrain_run):
    # eps: SpCL's fixed value. On the tiny world's 50 images the rho rule averages the 2 smallest of 1225 distances,
    # which can both be 0, an eps that sklearn's DBSCAN rejects.
    overrides = {
        "data_root": str(tiny_data_root),
        "device": "cpu",
        "run_name": "nb02",
        "pretrain_run": pretrain_run.path.name,
        "eps": 0.6,
    }
    executed = run_notebook("02_clusters", [SMOKE], overrides)
    run = RunFolder.for_run("nb02")
    notebook = nbformat.read(executed, as_version=4)
    assert executed == run.path / "02_clusters.ipynb"
    assert notebook.metadata["papermill"]["exception"] is None

    metrics = run.read_metrics()
    num_images = len(load_dataset("synthetic:tiny_target", tiny_data_root).train)
    assert metrics["num_points"] == num_images and metrics["clustering"] == "dbscan"
    assert metrics["status"] in {"ok", "single_cluster", "no_clusters"}
    assert metrics["num_clusters"] + metrics["num_outliers"] <= num_images
    assert 0.0 <= metrics["outlier_fraction"] <= 1.0 and 0.0 < metrics["eps"] <= 1.0
    assert 0 <= metrics["lost_ids"] <= metrics["num_true_ids"]
    assert metrics["mi_true_camera"] > 0.0 and metrics["mi_pseudo_camera"] >= 0.0
    assert 0.0 <= metrics["single_camera_ids"] <= 1.0
    assert math.isnan(metrics["single_camera_clusters"]) == (metrics["num_clusters"] == 0)
    probe = metrics["features"]["camera_probe"]
    assert 0.0 <= probe["accuracy"] <= 1.0 and 0.0 < probe["chance"] < 1.0
    assert set(metrics["features"]) == {"camera_probe", "neighbours_camera", "neighbours_identity"}

    for figure in FIGURES:
        assert (run.figure_path(figure)).read_bytes()[:4] == b"\x89PNG"
    shown = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(shown) == len(FIGURES)  # each figure displayed once, as an image
    explanation = "degenerate" if metrics["status"] != "ok" else "MI(pseudo-labels; camera)"
    assert explanation in notebook_text(notebook)
    # by hand, each asserted equal to the library's in its cell (an exception would have stopped the run)
    assert f"Jaccard distance of {num_images} images by hand: equal to the library's" in notebook_text(notebook)
    assert "eps by the rho rule on" in notebook_text(notebook)  # the rho exercise's answer ran
    if metrics["status"] == "ok":
        assert "exact" in notebook_text(notebook) and "adjusted MI(pseudo-labels; camera):" in notebook_text(notebook)
        assert "gap" in notebook_text(notebook) and "against a margin of" in notebook_text(notebook)
    shown = "".join(output.get("data", {}).get("text/plain", "") for output in notebook.cells[-1].outputs)
    assert "the first pseudo-labels carry" in shown  # the closing cell: committed claims
    assert "No comparison: pass -p compare_pretrain_run <run_name>" in notebook_text(notebook)
    assert metrics["pretraining_comparison"] is None


def test_02_sets_the_first_clustering_of_another_pretraining_run_beside_this_one(tiny_data_root, pretrain_run):
    source_only = pretraining(tiny_data_root, "smoke_source_only", pretrain_target_forward=False)
    overrides = {
        "data_root": str(tiny_data_root),
        "device": "cpu",
        "run_name": "nb02_compare",
        "eps": 0.6,
        "pretrain_run": pretrain_run.path.name,
        "compare_pretrain_run": source_only.path.name,
        "source_checkpoint": "last",
    }
    executed = run_notebook("02_clusters", [SMOKE], overrides)
    run = RunFolder.for_run("nb02_compare")
    notebook = nbformat.read(executed, as_version=4)
    assert notebook.metadata["papermill"]["exception"] is None

    metrics = run.read_metrics()
    comparison = metrics["pretraining_comparison"]
    assert set(comparison) == {"smoke_pretrain", "smoke_source_only", REFERENCE}
    this, other, reference = comparison["smoke_pretrain"], comparison["smoke_source_only"], comparison[REFERENCE]
    quantities = {
        "clusters",
        "outliers",
        "pairwise precision",
        "pairwise recall",
        "NMI",
        "MI(pseudo-labels; camera), nats",
        "camera probe accuracy",
    }
    if "ami_pseudo_camera" in metrics:  # the chance-adjusted MI, where the report has it
        quantities.add("MI less its chance value, nats")
    assert set(this) == set(other) == set(reference) == quantities
    # this run's column is the report above; the other run's is a clustering of its own model's features
    assert (this["clusters"], this["outliers"]) == (metrics["num_clusters"], metrics["num_outliers"])
    assert this["NMI"] == pytest.approx(metrics["nmi"])
    assert this["MI(pseudo-labels; camera), nats"] == pytest.approx(metrics["mi_pseudo_camera"])
    assert this["camera probe accuracy"] == pytest.approx(metrics["features"]["camera_probe"]["accuracy"])
    assert other["clusters"] + other["outliers"] <= metrics["num_points"] and 0 <= other["NMI"] <= 1
    assert 0.0 <= other["camera probe accuracy"] <= 1.0
    assert other != this  # the BatchNorm statistics differ, so do the features and what is measured on them
    assert reference["clusters"] == metrics["num_true_ids"] and reference["outliers"] == 0
    assert reference["MI(pseudo-labels; camera), nats"] == pytest.approx(metrics["mi_true_camera"])

    assert run.figure_path("pretraining_comparison.png").read_bytes()[:4] == b"\x89PNG"
    shown = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(shown) == len(FIGURES) + 1
    assert "No comparison" not in notebook_text(notebook)


def test_02_exercises_follow_the_course_convention():
    check_exercises(
        project_root() / "notebooks" / "02_clusters.ipynb", minimum_questions=10, findings_filter="first pseudo-labels"
    )

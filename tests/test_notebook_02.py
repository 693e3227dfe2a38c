"""Notebook 02 headless on the tiny worlds: a pretraining run made directly by the engine, then the notebook."""
import math

import nbformat
import pytest

from canu_core.config import load_params
from canu_core.data.catalog import load_dataset
from canu_core.engine.pretrain import pretrain
from canu_core.notebook import run_notebook
from canu_core.runs import RunFolder, project_root

SMOKE = project_root() / "params" / "smoke.yaml"
FIGURES = ("clusters_umap.png", "cluster_cameras.png", "cluster_samples_pure.png", "cluster_samples_mixed.png")
pytestmark = pytest.mark.notebook


@pytest.fixture
def pretrain_run(tiny_data_root, tmp_path, monkeypatch):
    """What notebook 01 leaves in its run folder (params.yaml, checkpoints), for one smoke model."""
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path / "outputs"))
    params = load_params(SMOKE, overrides={"data_root": str(tiny_data_root), "device": "cpu", "n_models": 1,
                                           "run_name": "smoke_pretrain"})
    run = RunFolder.for_run(params.run_name)
    run.record(params, "01_pretrain")
    pretrain(params, load_dataset(params.source, params.data_root), load_dataset(params.target, params.data_root), run)
    return run


def notebook_text(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)


def test_02_clusters_smoke(tiny_data_root, pretrain_run):
    # eps: SpCL's fixed value. On the tiny world's 50 images the rho rule averages the 2 smallest of 1225 distances,
    # which can both be 0, an eps that sklearn's DBSCAN rejects.
    overrides = {"data_root": str(tiny_data_root), "device": "cpu", "run_name": "nb02",
                 "pretrain_run": pretrain_run.path.name, "eps": 0.6}
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
    assert metrics["camera_mi_true_ids"] > 0.0 and metrics["camera_mi_pseudo_labels"] >= 0.0
    assert 0.0 <= metrics["single_camera_ids"] <= 1.0
    assert math.isnan(metrics["single_camera_clusters"]) == (metrics["num_clusters"] == 0)
    probe = metrics["features"]["camera_probe"]
    assert 0.0 <= probe["accuracy"] <= 1.0 and 0.0 < probe["chance"] < 1.0
    assert set(metrics["features"]) == {"camera_probe", "neighbours_camera", "neighbours_identity"}

    for figure in FIGURES:
        assert (run.figure_path(figure)).read_bytes()[:4] == b"\x89PNG"
    shown = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
             if "image/png" in output.get("data", {})]
    assert len(shown) == len(FIGURES)  # each figure displayed once, as an image
    explanation = "degenerate" if metrics["status"] != "ok" else "MI(pseudo-labels; camera)"
    assert explanation in notebook_text(notebook)

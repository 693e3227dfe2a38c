"""Notebook 03 headless on the tiny worlds: a pretraining run made directly by the engine, then the adaptation
notebook for CANU-MMT and for SSG with the plain adversary; and plain papermill rejecting a misspelled name."""

import math
import subprocess
import sys

import nbformat
import pytest
from course_form import check_exercises

from canu_core.config import load_params
from canu_core.data.catalog import load_dataset
from canu_core.notebook import run_notebook
from canu_core.runs import RunFolder, project_root
from canu_core.training import pretrain

SMOKE = project_root() / "params" / "smoke.yaml"
FIGURES = ("umap_before.png", "adaptation_curves.png", "umap_after.png")
# params/smoke.yaml as it is (its k1 and rho give the tiny target a few clusters, so that epochs train), on the CPU.
TINY = {"device": "cpu"}
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CANU_OUTPUTS", str(path))
        yield path


@pytest.fixture(scope="module")
def pretrain_run(tiny_data_root, outputs):
    """What notebook 01 leaves in its run folder (params.yaml, checkpoints): two source models, one epoch each."""
    params = load_params(
        SMOKE, overrides={**TINY, "data_root": str(tiny_data_root), "epochs": 1, "run_name": "smoke_pretrain"}
    )
    run = RunFolder.for_run(params.run_name)
    run.record(params, "01_pretrain")
    pretrain(params, load_dataset(params.source, params.data_root), load_dataset(params.target, params.data_root), run)
    return run


@pytest.mark.parametrize(
    "method, adversary, mu, loss_columns",
    [
        ("mmt", "canu", 0.1, ["loss_ce1", "loss_soft_tri", "loss_adv1", "disc_acc_1", "disc_acc_2"]),
        ("ssg", "adv", 0.05, ["loss_tri_full", "loss_adv_upper", "disc_acc_full", "disc_acc_lower"]),
    ],
)
def test_03_train_smoke(tiny_data_root, pretrain_run, method, adversary, mu, loss_columns):
    run_name = f"nb03_{method}"
    overrides = {
        **TINY,
        "data_root": str(tiny_data_root),
        "pretrain_run": pretrain_run.path.name,
        "run_name": run_name,
        "method": method,
        "adversary": adversary,
        "mu": mu,
        "adapt_epochs": 2,
        "adapt_iters_per_epoch": 2,
    }
    executed = run_notebook("03_train", [SMOKE], overrides)
    run = RunFolder.for_run(run_name)
    notebook = nbformat.read(executed, as_version=4)
    assert executed == run.path / "03_train.ipynb"
    assert notebook.metadata["papermill"]["exception"] is None
    assert run.read_params()["method"] == method and run.read_params()["adversary"] == adversary

    history = run.read_history()
    assert list(history["epoch"]) == [0, 1] and set(history["method"]) == {method}
    assert set(history["adversary"]) == {adversary} and (history["mu"] == mu).all()
    for column in [
        "status",
        "num_clusters",
        "num_outliers",
        "lost_ids",
        "mi_pseudo_camera",
        "mi_true_camera",
        "ami_pseudo_camera",
        "ami_true_camera",
        "target_mAP",
        "target_R1",
        *loss_columns,
    ]:
        assert column in history, column
    trained = history[history["status"] == "trained"]
    assert len(trained) >= 1  # the tiny-world settings give usable clusters
    assert trained[loss_columns].notna().all().all()
    assert ((trained["target_mAP"] >= 0) & (trained["target_mAP"] <= 100)).all()
    assert (history["mi_true_camera"] > 0).all()  # on each epoch's clustered images

    for figure in FIGURES:
        assert run.figure_path(figure).read_bytes()[:4] == b"\x89PNG"
    shown = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(shown) == len(FIGURES)

    metrics = run.read_metrics()
    assert {
        "method",
        "adversary",
        "mu",
        "pretrain_run",
        "epochs",
        "epochs_trained",
        "last",
        "best_by_target_labels",
    } <= set(metrics)
    assert metrics["method"] == method and metrics["epochs"] == 2 and metrics["epochs_trained"] == len(trained)
    last = metrics["last"]
    assert last["epoch"] == 1
    last_row = history.iloc[-1]
    if last_row["status"] == "trained":
        assert math.isclose(last["target_mAP"], last_row["target_mAP"])
    best = metrics["best_by_target_labels"]
    assert best is not None and best["target_mAP"] == pytest.approx(trained["target_mAP"].max())
    assert "best by target labels (reference only)" in "".join(
        output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )  # the CANU step by hand
    assert "two samples share a condition exactly when they share a cluster: True" in printed
    # CANU by hand: each piece asserted equal to the library's in its cell (an exception would have stopped the run)
    assert "condition rows by hand: equal to the library's" in printed
    assert "weights, the library's" in printed and "the library's D took the same 30 steps" in printed
    assert "through a gradient reversal layer gives the term's gradient" in printed
    assert "gradient on the network's weights from D's steps: False" in printed
    assert "reaches: {'feature extractor': True, 'discriminator': False, 'centroid condition': False}" in printed
    assert "camera accuracy after 10 steps: product" in printed  # the merge exercise's answer ran
    shown = "".join(
        output.get("data", {}).get("text/plain", "") for cell in notebook.cells[-1:] for output in cell.outputs
    )
    assert "CANU is at least as good as" in shown  # the closing cell: the committed claims


def test_03_plain_papermill_rejects_a_misspelled_name(tmp_path):
    """papermill only warns about an unknown -p name; the notebook's second cell must stop the run."""
    output = tmp_path / "out.ipynb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(project_root() / "notebooks" / "03_train.ipynb"),
            str(output),
            "-p",
            "muu",
            "0.1",
            "-p",
            "run_name",
            "nb03_typo",
            "-k",
            "python3",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "CANU_OUTPUTS": str(tmp_path / "outputs")},
    )
    assert result.returncode != 0
    assert "unknown parameter(s): 'muu' (did you mean 'mu'?)" in result.stdout + result.stderr
    assert not (tmp_path / "outputs" / "nb03_typo").exists()  # failed before the run folder was made


def test_03_committed_form():
    """Committed without outputs, kernelspec python3, one `parameters` cell whose names are all parameters, and
    the validation right after it."""
    notebook = nbformat.read(project_root() / "notebooks" / "03_train.ipynb", as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == "python3" and "papermill" not in notebook.metadata
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    tagged = [i for i, cell in enumerate(code) if "parameters" in cell.metadata.get("tags", [])]
    assert tagged == [0]
    namespace = {}
    exec(code[0].source, namespace)
    params = load_params(overrides={k: v for k, v in namespace.items() if not k.startswith("__")})
    assert (params.run_name, params.method, params.adversary, params.mu) == ("train", "mmt", "canu", 0.1)
    assert "P = params_from_namespace(globals())" in code[1].source


def test_03_exercises_follow_the_course_convention():
    check_exercises(project_root() / "notebooks" / "03_train.ipynb", minimum_questions=10, findings_filter="CANU")

"""Notebook 04 from nothing on the tiny worlds: it runs notebook 01 for the source models, then nine tiny
adaptation runs (MMT without adversary, +Adv., CANU: Table IV, and Table III at one mu, shared with it; CANU with
the oracle condition; MMT on the target's labels, the upper bound; the first four again on the target at camera
coverage 0) through notebook 03, and builds the tables, the claims and the figures; a second pass finds every run
finished and runs nothing. Then the fashion sweep over two pairs of source models."""

import json

import nbformat
import pandas as pd
import pytest
from tiny import TINY

from canu_core.config import load_params
from canu_core.notebook import run_notebook
from canu_core.runs import RunFolder, project_root
from canu_core.study import execute_study, plan_study

SMOKE = project_root() / "params" / "smoke.yaml"
FIGURES = (
    "fig3_mi_per_epoch.png",
    "fig4_lost_ids.png",
    "map_vs_mu.png",
    "map_vs_coverage.png",
    "umap_0.png",
    "umap_3.png",
    "claims.png",
)
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def study_outputs(tmp_path_factory):
    """One outputs/ for the module: the fashion sweep's first pair is the source models notebook 01 made for the
    study from nothing (the same parameters), so notebook 01 runs three times, not four."""
    return tmp_path_factory.mktemp("outputs")


def test_04_ablations_smoke_from_nothing(tiny_data_root, study_outputs, monkeypatch):
    monkeypatch.setenv("CANU_OUTPUTS", str(study_outputs))
    overrides = {
        **TINY,
        "device": "cpu",
        "data_root": str(tiny_data_root),
        "run_name": "smoke_study",
        "pretrain_run": "smoke_source",
        "target": "synthetic:tiny_target",
        "studies": ["table_iv", "oracle", "table_iii", "coverage"],
        "coverage_grid": [0.0, 0.5],  # 0.5: the tiny target's own coverage (Table IV's runs)
        "methods": ["mmt"],
        "mu_grid": [0.1],
        "seeds": [0],
        "sweep_seeds": [0],
        "adapt_epochs": 2,
        "adapt_iters_per_epoch": 2,
        "parallel_runs": 2,
        "umap_figures": False,  # as params/study.yaml: the study draws its own UMAPs, not one per run
    }
    executed = run_notebook("04_ablations", [SMOKE], overrides)
    assert nbformat.read(executed, as_version=4).metadata["papermill"]["exception"] is None

    assert (study_outputs / "smoke_source" / "01_pretrain.ipynb").is_file()  # notebook 01 ran first
    runs = [
        "smoke_study-mmt-none-seed0",
        "smoke_study-mmt-adv-mu0.1-seed0",
        "smoke_study-mmt-canu-mu0.1-seed0",
        "smoke_study-mmt-canu-oracle-mu0.1-seed0",
        "smoke_study-mmt-none-supervised-seed0",
        "smoke_study-mmt-none-cov0.0-seed0",
        "smoke_study-mmt-adv-mu0.1-cov0.0-seed0",
        "smoke_study-mmt-canu-mu0.1-cov0.0-seed0",
        "smoke_study-mmt-canu-oracle-mu0.1-cov0.0-seed0",
    ]
    for name in runs:
        run = RunFolder.for_run(name)
        assert (run.path / "03_train.ipynb").is_file() and (run.path / "metrics.json").is_file()
        assert run.read_params()["pretrain_run"] == "smoke_source"
    # a study's run executes the lesson without its exercises: they teach, and would cost every run their time
    course = {"exercise", "solution"}
    tagged = [
        c
        for c in nbformat.read(project_root() / "notebooks/03_train.ipynb", as_version=4).cells
        if course & set(c.metadata.get("tags", []))
    ]
    executed = nbformat.read(RunFolder.for_run(runs[0]).path / "03_train.ipynb", as_version=4).cells
    assert tagged and not [c for c in executed if course & set(c.metadata.get("tags", []))]

    study = RunFolder.for_run("smoke_study")
    results = pd.read_csv(study.path / "results.csv")
    assert sorted(results["run_name"]) == sorted(runs)
    assert set(results["epoch"]) == {1}  # the last epoch of each run
    table = pd.read_csv(study.path / "tables" / "table_iv.csv", dtype={"mAP": str})  # "mean ± std" text
    assert list(table["Method"]) == ["MMT (DBSCAN)", "MMT+Adv.", "CANU-MMT"] and set(table["seeds"]) == {1}
    canu = results.set_index("run_name").loc["smoke_study-mmt-canu-mu0.1-seed0"]
    assert table.set_index("Method").loc["CANU-MMT", "mAP"] == f"{canu['target_mAP']:.1f}"
    assert list(pd.read_csv(study.path / "tables" / "table_iii.csv")["mu"]) == [0.1, 0.1]  # +Adv., CANU
    differences = pd.read_csv(study.path / "tables" / "table_iii_differences.csv")
    assert differences[["comparison", "verdict"]].values.tolist() == [
        ["CANU-MMT - MMT+Adv. at mu 0.1", "too few units"]
    ]
    assert differences["agreeing"].item() in {"0/1", "1/1"}  # one seed, one paired difference
    assert RunFolder.for_run(runs[3]).read_params()["canu_condition"] == "oracle"
    oracle = pd.read_csv(study.path / "tables" / "oracle.csv")
    assert list(oracle["Method"]) == [
        "MMT (DBSCAN)",
        "MMT (DBSCAN) [target labels: upper bound]",
        "CANU-MMT",
        "CANU-MMT [oracle condition]",
    ]
    supervised = RunFolder.for_run("smoke_study-mmt-none-supervised-seed0")
    assert supervised.read_params()["clustering"] == "true_ids"
    first = supervised.read_history().iloc[0]  # every training image kept, under its own identity
    assert (first["num_outliers"], first["lost_ids"], first["nmi"]) == (0, 0, 1.0)
    gaps = pd.read_csv(study.path / "tables" / "gap_closed.csv")
    assert list(gaps["Method"]) == ["MMT (DBSCAN)", "MMT+Adv.", "CANU-MMT"]
    claims = pd.read_csv(study.path / "tables" / "claims.csv")
    assert {"CANU-MMT [oracle condition] - CANU-MMT", "MMT (DBSCAN) - direct transfer - 5"} <= set(claims["comparison"])
    direct = pd.read_csv(study.path / "tables" / "direct_transfer.csv")
    assert list(direct["evaluated as"]) == ["MMT (one feature)"] and 0 <= direct["mAP"].item() <= 100
    assert set(claims["verdict"]) <= {"too few units", "not measured"}  # one seed: no verdict
    coverage = pd.read_csv(study.path / "tables" / "coverage.csv")
    assert sorted(set(coverage["target_coverage"])) == [0.0, 0.5] and len(coverage) == 8
    coverage_direct = pd.read_csv(study.path / "tables" / "coverage_direct_transfer.csv")
    assert list(coverage_direct["target_coverage"]) == [0.0, 0.5]
    assert coverage_direct["mAP"].between(0, 100).all()
    # the default world's row is the direct transfer of Table IV's world
    assert coverage_direct["mAP"].iloc[1] == pytest.approx(direct["mAP"].item(), abs=0.05)
    assert {
        "(CANU-MMT - MMT+Adv.) at coverage 0 - at coverage 0.5",
        "CANU-MMT [oracle condition] - MMT+Adv. at coverage 0",
    } <= set(claims["comparison"])
    for figure in FIGURES:
        assert study.figure_path(figure).read_bytes()[:4] == b"\x89PNG", figure
    metrics = study.read_metrics()
    assert (metrics["runs"], metrics["executed"]) == (9, 9)

    params = load_params(SMOKE, overrides=overrides)
    outcome = execute_study(params, plan_study(params, "smoke_study"))
    assert list(outcome["before"]) == ["finished"] * 9 and list(outcome["after"]) == ["finished"] * 9


def test_04_fashion_study_adapts_every_pair_in_every_world(tiny_data_root, study_outputs, monkeypatch):
    """Notebook 04's fashion sweep on two pairs of source models at lambda 1: notebook 01's seed 1 is pretrain_run
    (made by the test above, or here when run alone), seed 3 runs into <pretrain_run>-seed3, eight tiny runs each
    read their pair's models in the lambda-1 world, and the fashion table, the pair-level claims and the figure come
    out of them."""
    monkeypatch.setenv("CANU_OUTPUTS", str(study_outputs))
    overrides = {
        **TINY,
        "device": "cpu",
        "data_root": str(tiny_data_root),
        "run_name": "smoke_fashion",
        "pretrain_run": "smoke_source",
        "target": "synthetic:tiny_target",
        "studies": ["fashion"],
        "fashion_grid": [1.0],
        "pretrain_seeds": [1, 3],
        "seed": 1,
        "methods": ["mmt"],
        "sweep_seeds": [0],
        "adapt_epochs": 1,
        "adapt_iters_per_epoch": 2,
        "parallel_runs": 2,
        "umap_figures": False,
    }
    executed = run_notebook("04_ablations", [SMOKE], overrides)
    assert nbformat.read(executed, as_version=4).metadata["papermill"]["exception"] is None

    assert RunFolder.for_run("smoke_source").read_params()["seed"] == 1
    assert RunFolder.for_run("smoke_source-seed3").read_params()["seed"] == 3
    for pair, folder in ((1, "smoke_source"), (3, "smoke_source-seed3")):
        run = RunFolder.for_run(f"smoke_fashion-mmt-adv-mu0.1-fashion1.0-pair{pair}-seed0")
        recorded = run.read_params()
        assert (recorded["pretrain_run"], recorded["target_area_fashion"]) == (folder, 1.0)
    study = RunFolder.for_run("smoke_fashion")
    swept = pd.read_csv(study.path / "fashion_results.csv")
    assert len(swept) == 8 and set(swept["pretrain_seed"]) == {1, 3}
    probes = swept[["attribute_probe_accuracy", "attribute_chance"]]
    assert ((probes >= 0) & (probes <= 1)).all().all()
    kept = json.loads((RunFolder.for_run(swept["run_name"].iloc[0]).path / "attribute_probes.json").read_text())
    assert kept["upper colour"]["accuracy"] == swept["attribute_probe_accuracy"].iloc[0]  # computed once, kept
    table = pd.read_csv(study.path / "tables" / "fashion.csv")
    assert list(table["Method"]) == ["MMT (DBSCAN)", "MMT+Adv.", "CANU-MMT", "CANU-MMT [oracle condition]"]
    assert set(table["pairs"]) == {2}
    claims = pd.read_csv(study.path / "tables" / "fashion_claims.csv")
    assert set(claims["unit"]) == {"pairs (1 seed each)"}
    assert set(claims["verdict"]) <= {"too few units"}  # two pairs: no verdict
    assert study.figure_path("canu_minus_adv_vs_fashion.png").read_bytes()[:4] == b"\x89PNG"

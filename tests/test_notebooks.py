"""Headless smoke runs of the notebooks through papermill, on params/smoke.yaml and the tiny worlds."""

import json

import nbformat
import pandas as pd
import pytest

from canu_core.config import ConfigError
from canu_core.notebook import run_notebook
from canu_core.runs import project_root

SMOKE = project_root() / "params" / "smoke.yaml"
pytestmark = pytest.mark.notebook


def test_01_pretrain_smoke(tiny_data_root, outputs):
    executed = run_notebook("01_pretrain", [SMOKE], {"data_root": str(tiny_data_root), "run_name": "nb01"})
    run = outputs / "nb01"
    assert executed == run / "01_pretrain.ipynb"
    assert nbformat.read(executed, as_version=4).metadata["papermill"]["exception"] is None
    history = pd.read_csv(run / "history.csv")
    assert sorted(history.groupby("model")["epoch"].apply(list).to_dict().items()) == [(1, [0, 1]), (2, [0, 1])]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["model"] for m in metrics["models"]] == [1, 2]
    assert set(metrics["target_neighbours"]) == {"camera", "identity"}
    for figure in ("pretrain_curves.png", "target_umap.png"):
        assert (run / "figures" / figure).stat().st_size > 0
    for model in (1, 2):
        assert (run / "checkpoints" / f"model{model}_last.pt").is_file()


def test_unknown_parameter_fails_before_the_kernel_starts(outputs):
    with pytest.raises(ConfigError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        run_notebook("01_pretrain", [SMOKE], {"epoch": 3})

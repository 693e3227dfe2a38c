import json

import torch
import yaml

from canu_core.config import make_params
from canu_core.runs import RunFolder, atomic_write_text, project_root, resolve_path


def test_project_root_from_subfolder(monkeypatch):
    root = project_root()
    assert (root / "pyproject.toml").is_file()
    monkeypatch.chdir(root / "tests")
    assert project_root() == root
    assert resolve_path("outputs") == root / "outputs"


def test_params_history_metrics_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.record(make_params({"seed": 7, "run_name": "run"}), "01_pretrain")
    saved = yaml.safe_load((run.path / "params.yaml").read_text())
    assert saved["seed"] == 7 and saved["notebook"] == "01_pretrain" and "git_commit" in saved and "cpu_model" in saved

    run.append_history({"epoch": 0, "loss": 2.0})
    run.append_history({"epoch": 1, "loss": 1.5})
    history = run.append_history({"epoch": 1, "loss": 1.25})  # a resumed epoch replaces its row
    assert history["epoch"].tolist() == [0, 1]
    assert run.read_history()["loss"].tolist() == [2.0, 1.25]

    other = RunFolder(tmp_path / "two_models")
    other.append_history({"model": 1, "epoch": 0, "loss": 3.0}, key=("model", "epoch"))
    other.append_history({"model": 2, "epoch": 0, "loss": 4.0}, key=("model", "epoch"))
    history = other.append_history({"model": 2, "epoch": 0, "loss": 3.5}, key=("model", "epoch"))
    assert history[["model", "loss"]].values.tolist() == [[1, 3.0], [2, 3.5]]

    run.write_metrics({"mAP": 12.5, "diagnostics": {"precision": float("nan"), "per_epoch": [1.0, float("inf")]}})
    assert json.loads((run.path / "metrics.json").read_text()) == {
        "mAP": 12.5,
        "diagnostics": {"precision": None, "per_epoch": [1.0, None]},
    }

    assert run.load_checkpoint("last") is None
    run.save_checkpoint({"epoch": 3, "w": torch.arange(3)}, "last")
    state = run.load_checkpoint("last")
    assert state["epoch"] == 3 and state["w"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["last.pt"]


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "b.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]


def test_run_name_must_be_a_folder_name():
    import pytest

    with pytest.raises(ValueError, match="expected a plain folder name"):
        RunFolder.for_run("../escape")


def test_a_rebuilt_study_records_the_studies_it_now_holds(tmp_path):
    """Uncompared parameters (a study's studies and seeds, where the data lie) never refuse a folder, but its
    record must say what the folder shows now, with an entry for the change; compared ones stay as first recorded."""
    run = RunFolder(tmp_path / "study")
    first = make_params({"run_name": "study", "studies": ["table_iv"], "seeds": [0]})
    run.record(first, "04_ablations")
    run.record(first, "04_ablations")  # the same: nothing to add
    assert "continued" not in run.read_params()
    run.write_metrics({"runs": 1})  # the study has a result: its record is kept, not replaced

    run.record(
        make_params({"studies": ["table_iii"], "sweep_seeds": [0], "data_root": "elsewhere"}, base=first),
        "04_ablations",
    )
    record = run.read_params()
    assert (record["studies"], record["sweep_seeds"], record["data_root"], record["seeds"]) == (
        ["table_iii"],
        [0],
        "elsewhere",
        [0],
    )
    (entry,) = record["continued"]
    assert entry["changed"] == {
        "studies": [["table_iv"], ["table_iii"]],
        "sweep_seeds": [[0, 1, 2], [0]],
        "data_root": ["data", "elsewhere"],
    }


def test_a_checkpoint_written_under_its_older_name_is_found_under_the_new_one(tmp_path):
    """A run folder from before the rename of `<method>_best_oracle` (the best epoch by target labels) still loads
    its checkpoint, and goes on writing that file."""
    run = RunFolder(tmp_path / "old")
    run.save_checkpoint({"epoch": 3}, "mmt_best_oracle")
    assert run.load_checkpoint("mmt_best_by_target_labels") == {"epoch": 3}
    assert run.checkpoint_path("mmt_best_by_target_labels").name == "mmt_best_oracle.pt"
    fresh = RunFolder(tmp_path / "new")
    assert fresh.checkpoint_path("mmt_best_by_target_labels").name == "mmt_best_by_target_labels.pt"


def test_a_history_written_before_a_column_was_renamed_reads_under_the_new_name(tmp_path):
    run = RunFolder(tmp_path / "old")
    run.path.mkdir()
    run.history_path.write_text("epoch,camera_probe_acc\n0,0.9\n")
    assert run.read_history().to_dict("list") == {"epoch": [0], "camera_probe_accuracy": [0.9]}

"""What happens when things go wrong (docs/guide.md, the section of that name): a checkpoint that carries code,
a run folder re-run with other parameters or from another notebook, a failed run over a finished one, a run that
trains no epoch, divergence, damaged files, bad names, a thread count that would leave the bit-exact path, and a
run killed with SIGKILL that resumes to the same bytes. Bad dataset files: tests/test_faults_data.py."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
import yaml
from test_mmt import assert_same
from tiny import TINY, flags

from canu_core import cli
from canu_core.cluster.pseudo_labels import rho_rule_note
from canu_core.config import ConfigError, load_params, make_params
from canu_core.data.catalog import load_dataset
from canu_core.engine.adaptation import adaptation_metrics
from canu_core.engine.checkpoints import load_source_model
from canu_core.engine.mmt import train_mmt
from canu_core.notebook import run_notebook
from canu_core.runs import (
    CheckpointError,
    DivergenceError,
    RunConflictError,
    RunFolder,
    atomic_write_text,
    open_run,
    read_checkpoint,
    resolve_run,
)
from canu_core.training import pretrain
from canu_core.viz.adaptation import plot_adaptation

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"


def smoke(data_root, **changes):
    return load_params(SMOKE, overrides={"data_root": str(data_root), "device": "cpu", **changes})


def worlds(params):
    return load_dataset(params.source, params.data_root), load_dataset(params.target, params.data_root)


def pretrained(params, notebook="01_pretrain") -> RunFolder:
    """A pretraining run as notebook 01 leaves it: recorded, then trained."""
    run, params = open_run(params, notebook)
    run.record(params, notebook)
    pretrain(params, *worlds(params), run)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. no code execution from a run folder


class RunsCode:
    """Unpickling this calls exec: what a hostile .pt can carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_checkpoint_carrying_code_is_refused_and_nothing_runs(tiny_data_root, outputs, tmp_path):
    source_run = pretrained(smoke(tiny_data_root, run_name="shared", n_models=1, epochs=1))
    marker = tmp_path / "pwned"
    planted = source_run.checkpoint_path("model1_best")
    state = torch.load(planted, weights_only=True)
    torch.save({**state, "extra": RunsCode(marker)}, planted)

    with pytest.raises(CheckpointError) as refused:
        load_source_model(source_run, 1, "best")
    assert f"refused to load {planted}" in str(refused.value)
    assert "exec" in str(refused.value) and "could run code" in str(refused.value)
    assert not marker.exists()


def test_every_checkpoint_the_lab_writes_loads_with_weights_only(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="safe", n_models=2, epochs=1, adapt_epochs=1)
    source_run = pretrained(params)
    adapt = RunFolder.for_run("safe_mmt")
    train_mmt(
        make_params({"run_name": "safe_mmt", "pretrain_run": "safe"}, base=params), worlds(params)[1], adapt, source_run
    )
    names = sorted(p.name for run in (source_run, adapt) for p in (run.path / "checkpoints").glob("*.pt"))
    assert names == [
        "mmt_best_by_target_labels.pt",
        "mmt_last.pt",
        "mmt_state.pt",
        "model1_best.pt",
        "model1_last.pt",
        "model2_best.pt",
        "model2_last.pt",
    ]
    for run in (source_run, adapt):
        for path in (run.path / "checkpoints").glob("*.pt"):
            torch.load(path, weights_only=True)  # raises if anything but tensors and plain values is inside


@pytest.mark.parametrize("damage, size", [(lambda data: data[: len(data) // 2], "4"), (lambda data: b"", "0 bytes")])
def test_damaged_checkpoint_names_the_file(tmp_path, damage, size):
    path = tmp_path / "checkpoints" / "model1_last.pt"
    RunFolder(tmp_path).save_checkpoint({"w": torch.arange(1000)}, "model1_last")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"cannot read checkpoint {path} ({path.stat().st_size} bytes: ") and size in message
    assert "damaged or incomplete" in message and "delete it" in message


# --- 2. run folders that cannot be clobbered


def test_finished_run_with_other_parameters_is_refused_listing_each_difference(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="finished", n_models=1, epochs=1)
    run = pretrained(params)
    run.write_metrics({"done": True})
    before = snapshot(run.path)
    with pytest.raises(RunConflictError) as refused:
        open_run(make_params({"lr": 0.01, "seed": 7}, base=params), "01_pretrain")
    assert (
        f"run folder {run.path} holds a run with other parameters (lr: 0.00035 there, 0.01 asked, seed: 0 "
        "there, 7 asked)" in str(refused.value)
    )
    with pytest.raises(RunConflictError, match=r"rho: 0.15 there, 0.004 asked\): to keep both"):
        open_run(make_params({"rho": 0.004}, base=params), "01_pretrain")
    with pytest.raises(RunConflictError, match="holds a run of notebook 01_pretrain: give this 03_train run its own"):
        open_run(params, "03_train")
    with pytest.raises(RunConflictError, match=r"add -p amend true"):
        open_run(make_params({"epochs": 2}, base=params), "01_pretrain")
    with pytest.raises(
        RunConflictError,
        match=r"amend changes only adapt_epochs, disc_lr, epochs, lr, mmt_lr, "
        r"ssg_lr \(epochs only grow\)",
    ):
        open_run(make_params({"epochs": 2, "seed": 3, "amend": True}, base=params), "01_pretrain")
    assert snapshot(run.path) == before


def test_amend_extends_epochs_and_changes_the_learning_rate(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="extended", n_models=1, epochs=1, iters_per_epoch=2)
    run = pretrained(params)
    amended = make_params({"epochs": 3, "lr": 0.0001, "amend": True}, base=params)
    run, amended = open_run(amended, "01_pretrain")
    run.record(amended, "01_pretrain")
    pretrain(amended, *worlds(amended), run)

    history = run.read_history()
    assert history["epoch"].tolist() == [0, 1, 2]
    # warm-up (1 epoch) over, milestone at epoch 1: the new base rate, then x0.1
    assert history["lr"].tolist() == pytest.approx([0.00035 * 0.01, 0.0001 * 0.1, 0.0001 * 0.1])
    record = run.read_params()
    assert (record["epochs"], record["lr"]) == (3, 0.0001) and "amend" not in record
    (entry,) = record["continued"]
    assert entry["after_history_rows"] == 1 and entry["changed"] == {"epochs": [1, 3], "lr": [0.00035, 0.0001]}
    with pytest.raises(RunConflictError, match=r"epochs: 3 there, 2 asked\): amend changes only"):
        open_run(make_params({"epochs": 2, "amend": True}, base=amended), "01_pretrain")


def test_failed_runs_leave_an_existing_folder_byte_identical(tiny_data_root, outputs):
    """Through the notebooks, as a user meets it: a finished notebook 03 run, then the same command with another
    rho, after its pretraining run was moved away, and with a damaged source checkpoint; and a new run whose
    pretraining run is missing."""
    import papermill

    source = pretrained(smoke(tiny_data_root, run_name="nb_source", n_models=2, epochs=1, **TINY))
    run_03 = {
        **TINY,
        "data_root": str(tiny_data_root),
        "device": "cpu",
        "run_name": "nb_train",
        "pretrain_run": "nb_source",
        "adapt_epochs": 1,
        "umap_figures": False,
    }
    finished = Path(run_notebook("03_train", [SMOKE], run_03)).parent
    before = snapshot(finished)
    assert "03_train.ipynb" in before and "metrics.json" in before

    with pytest.raises(RunConflictError, match=r"rho: 0.2 there, 0.5 asked"):
        run_notebook("03_train", [SMOKE], {**run_03, "rho": 0.5})
    source.path.rename(outputs / "moved")
    with pytest.raises(papermill.PapermillExecutionError, match="no pretraining run 'nb_source'") as failed:
        run_notebook("03_train", [SMOKE], run_03)
    assert f"executed copy of the failed notebook: {outputs}/.failed/nb_train/03_train.ipynb" in failed.value.__notes__
    (outputs / "moved").rename(source.path)
    damaged = source.checkpoint_path("model2_best")
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(papermill.PapermillExecutionError, match=f"cannot read checkpoint {damaged}"):
        run_notebook("03_train", [SMOKE], run_03)
    assert snapshot(finished) == before

    with pytest.raises(papermill.PapermillExecutionError, match="no pretraining run 'missing'"):
        run_notebook("03_train", [SMOKE], {**run_03, "run_name": "never_made", "pretrain_run": "missing"})
    assert not (outputs / "never_made").exists()


# --- 3. the smoke set trains; a run that trains nothing ends cleanly and says why


def test_rho_rule_says_what_it_could_not_do():
    assert rho_rule_note(0.004, 2000, 0.3) == ""
    assert rho_rule_note(0.004, 20, 0.3) == ""  # 0.76 of a pair rounds to one
    assert rho_rule_note(0.001, 20, 0.3) == (
        "rho 0.001 takes 0.19 of the 190 pairs of 20 points, fewer than one: the smallest distance was used"
    )
    assert rho_rule_note(0.004, 2000, 0.3, stored_pairs=7996) == ""  # takes round(0.004 * 1,999,000) = 7,996
    assert rho_rule_note(0.004, 2000, 0.9, stored_pairs=5000) == (
        "rho 0.004 takes 7996 pairs of 2000 points (4 per point), more than the 5000 that share a k-reciprocal "
        "neighbour: the other 2996 count at distance 1 and pull eps (0.9) towards it; lower rho"
    )
    assert rho_rule_note(0.004, 50, 4.4e-17) == (
        "the rho rule's eps (4.4e-17) is zero: the smallest Jaccard "
        "distances are ties at 0, so DBSCAN joins only those; raise rho "
        "or set eps"
    )


def test_run_that_trains_no_epoch_finishes_and_says_why(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="no_train_source", n_models=2, epochs=1)
    source_run = pretrained(params)
    adapt = make_params({"run_name": "no_train", "rho": 0.004, "k1": 20}, base=params)
    run, adapt = open_run(adapt, "03_train")
    run.record(adapt, "03_train")
    train_mmt(adapt, worlds(adapt)[1], run, source_run)
    history = run.read_history()
    assert set(history["status"]) == {"skipped"} and "target_mAP" not in history
    metrics = adaptation_metrics(history, None, adapt)
    assert metrics["epochs_trained"] == 0 and metrics["best_by_target_labels"] is None
    assert metrics["not_trained"].startswith(
        "no epoch trained, the model is the source model: epoch 1: epoch "
        "skipped, the model is unchanged: target clustering:"
    )
    assert "the rho rule's eps" in metrics["not_trained"] and "epoch 2:" in metrics["not_trained"]
    figure = plot_adaptation(history, num_cameras=4, path=run.figure_path("curves.png"))
    assert "not evaluated\n(no epoch trained)" in [text.get_text() for text in figure.axes[5].texts]
    assert run.figure_path("curves.png").is_file()


# --- 4. divergence stops the run and keeps the last good checkpoint


def test_divergence_stops_and_a_resume_with_a_smaller_rate_continues(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="diverging", n_models=1, epochs=1)
    run = pretrained(params)
    good = run.checkpoint_path("model1_last").read_bytes()
    exploding = make_params({"epochs": 2, "lr": 1000000.0, "amend": True}, base=params)
    run, exploding = open_run(exploding, "01_pretrain")
    run.record(exploding, "01_pretrain")
    with pytest.raises(DivergenceError) as diverged:
        pretrain(exploding, *worlds(exploding), run)
    message = str(diverged.value)
    assert re.match(r"training diverged at epoch 2, iteration \d+: .*(past loss_limit 1e\+06|not finite)", message)
    assert message.endswith("run the same command again with a smaller lr and -p amend true to continue from there")
    assert run.checkpoint_path("model1_last").read_bytes() == good
    assert run.read_history()["epoch"].tolist() == [0]

    calm = make_params({"lr": 0.00035, "amend": True}, base=exploding)
    run, calm = open_run(calm, "01_pretrain")
    run.record(calm, "01_pretrain")
    pretrain(calm, *worlds(calm), run)
    assert run.read_history()["epoch"].tolist() == [0, 1]


def test_non_finite_adaptation_stops_before_saving(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="nan_source", n_models=2, epochs=1)
    source_run = pretrained(params)
    adapt = make_params({"run_name": "nan_mmt", "mmt_lr": 1.0e30}, base=params)
    run = RunFolder.for_run("nan_mmt")
    with pytest.raises(DivergenceError, match=r"training diverged (at|in) epoch 1.*smaller mmt_lr"):
        train_mmt(adapt, worlds(adapt)[1], run, source_run)
    assert not run.checkpoint_path("mmt_state").exists() and not run.checkpoint_path("mmt_last").exists()


# --- 5. messages that name the cause


def test_bad_run_name_is_a_parameter_error():
    for name in ("../x", "a/b", ".hidden", "", "x y"):
        with pytest.raises(ConfigError, match=r"parameter 'run_name': expected a plain folder name"):
            make_params({"run_name": name})
    with pytest.raises(ConfigError, match=r"parameter 'pretrain_run': expected a plain folder name"):
        make_params({"pretrain_run": "../../etc"})


def test_cli_reports_refusals_without_a_traceback(capsys, outputs):
    assert cli.main(["notebook", "01_pretrain", "-p", "run_name", "../x"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("canu: parameter 'run_name': expected a plain folder name") and "Traceback" not in error


def test_the_command_line_reads_parameters_without_the_training_stack():
    """A refusal comes before torchvision, scikit-learn, faiss and matplotlib are loaded (seconds of every `canu`
    call that only starts a kernel; torch is, by the run folders); the package's run-folder names still resolve."""
    check = (
        "import sys\n"
        "from canu_core import cli\n"
        "assert cli.main(['notebook', '01_pretrain', '-p', 'run_name', '../x']) == 2\n"
        "heavy = sorted({'torchvision', 'sklearn', 'faiss', 'matplotlib'} & set(sys.modules))\n"
        "assert heavy == [], heavy\n"
        "from canu_core import RunFolder, open_run\n"
        "assert RunFolder.__module__ == open_run.__module__ == 'canu_core.runs'\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_leftover_temporaries_are_removed_and_writes_are_flushed(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    (run.path / "checkpoints").mkdir(parents=True)
    leftovers = [run.path / ".params.yaml.tmp", run.path / "checkpoints" / ".model1_best.pt.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a write")
    run.record(make_params({"run_name": "run"}), "01_pretrain")
    assert not any(path.exists() for path in leftovers)

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write_text(run.path / "metrics.json", "{}")
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, then the folder


# --- 6. the thread count is part of the record


def test_threads_are_recorded_and_a_resume_takes_them(tmp_path, outputs):
    params = make_params({"run_name": "threaded", "threads": 1})
    run, params = open_run(params, "01_pretrain")
    run.record(params, "01_pretrain")
    run.append_history({"model": 1, "epoch": 0})  # a run that has trained something: its record holds
    record = run.read_params()
    assert record["threads"] == 1 and record["cpu_model"] and record["notebook"] == "01_pretrain"
    assert torch.get_num_threads() == 1
    _, resumed = resolve_run(make_params({"run_name": "threaded"}), "01_pretrain")  # threads unset: as recorded
    assert resumed.threads == 1
    with pytest.raises(RunConflictError, match="threads: 1 there, 2 asked"):
        resolve_run(make_params({"run_name": "threaded", "threads": 2}), "01_pretrain")
    _, fresh = resolve_run(make_params({"run_name": "fresh"}), "01_pretrain")
    assert fresh.threads == torch.get_num_threads()


# --- kill -9 in the middle of notebook 03, then the same command: the same bytes as a run never interrupted


@pytest.mark.notebook
def test_kill_9_then_resume_gives_the_uninterrupted_result(tiny_data_root, outputs):
    pretrained(smoke(tiny_data_root, run_name="kill_source", n_models=2, epochs=1, **TINY))
    command = [
        sys.executable,
        "-m",
        "canu_core",
        "notebook",
        "03_train",
        "-f",
        str(SMOKE),
        "-p",
        "data_root",
        str(tiny_data_root),
        "-p",
        "device",
        "cpu",
        "-p",
        "pretrain_run",
        "kill_source",
        "-p",
        "adapt_epochs",
        "2",  # killed after epoch 1's checkpoint, resumed for epoch 2
        "-p",
        "umap_figures",
        "false",
        "-p",
        "threads",
        "2",
        *flags(TINY),
    ]
    env = {**os.environ, "CANU_OUTPUTS": str(outputs)}

    def run_to_end(name):
        subprocess.run(command + ["-p", "run_name", name], env=env, check=True, capture_output=True, cwd=ROOT)

    run_to_end("whole")
    killed = subprocess.Popen(
        command + ["-p", "run_name", "killed"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = outputs / "killed" / "checkpoints" / "mmt_state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # the runner and its kernel
    killed.wait()
    assert state.exists() and not (outputs / "killed" / "metrics.json").exists()  # stopped in the middle
    run_to_end("killed")

    whole, resumed = RunFolder(outputs / "whole"), RunFolder(outputs / "killed")
    assert resumed.history_path.read_bytes() == whole.history_path.read_bytes()
    assert json.loads((resumed.path / "metrics.json").read_text()) == json.loads(
        (whole.path / "metrics.json").read_text()
    )
    for name in ("mmt_state", "mmt_last", "mmt_best_by_target_labels"):
        expected, found = whole.load_checkpoint(name), resumed.load_checkpoint(name)
        assert_same(expected, found, name)
    notebook = nbformat.read(resumed.path / "03_train.ipynb", as_version=4)
    assert notebook.metadata["papermill"]["exception"] is None
    assert yaml.safe_load((resumed.path / "params.yaml").read_text())["threads"] == 2

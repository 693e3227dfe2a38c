"""Runs that cannot be mixed or stranded (docs/guide.md "What happens when things go wrong"): one process per run
folder, every value checked before anything is written, strict YAML, advice that works when followed, unfinished inputs
refused, and failures (a full disk, a damaged world manifest) in one line. Each case asserts the message and that
nothing written before is lost."""

import errno
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_faults import pretrained, smoke, snapshot, worlds
from test_mmt import assert_same

from canu_core import cli
from canu_core.config import ConfigError, load_params, make_params
from canu_core.data.catalog import dataset_root, load_dataset
from canu_core.engine.checkpoints import load_source_model, pretraining_record
from canu_core.engine.mmt import train_mmt
from canu_core.jobs import open_training_run
from canu_core.runs import (
    CheckpointError,
    DiskFullError,
    RunBusyError,
    RunConflictError,
    RunFolder,
    UnfinishedRunError,
    atomic_write_text,
    lock_path,
    open_run,
    read_checkpoint,
)
from canu_core.training import pretrain

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if a notebook's kernel would start: what is refused must be refused before."""
    import papermill

    def started(*args, **kwargs):
        raise AssertionError("the kernel started: the refusal came too late")

    monkeypatch.setattr(papermill, "execute_notebook", started)


# --- 1. one process per run folder

HOLD = """
import sys, time
from canu_core.config import make_params
from canu_core.runs import open_run
open_run(make_params({"run_name": sys.argv[1]}), "01_pretrain")
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_never_blocks(outputs):
    env = {**os.environ, "CANU_OUTPUTS": str(outputs)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, "busy"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunBusyError) as refused:
            open_run(make_params({"run_name": "busy"}), "01_pretrain")
        message = str(refused.value)
        assert message.startswith(f"run folder {outputs / 'busy'} is in use by process {holder.pid} on ")
        assert re.search(r"\(started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d: ", message)
        assert "wait for it to end" in message and "another run_name" in message
        assert not (outputs / "busy").exists()  # the refusal wrote nothing
        assert cli.main(["notebook", "01_pretrain", "-p", "run_name", "busy"]) == 2
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the advice, followed: once the holder has ended (killed here), the same call takes the folder
    run, _ = open_run(make_params({"run_name": "busy"}), "01_pretrain")
    assert json.loads(lock_path(run).read_text())["pid"] == os.getpid()


TRIALS = 20  # ten with equal parameters, then ten with different ones


def race(barrier, outputs: str, mu_if_different: float, results) -> None:
    """One of two processes that, trial after trial, start together on one new run folder: open it, record, write
    three epochs of history (each with this process's mu), then metrics; report 'finished' or the refusal."""
    os.environ["CANU_OUTPUTS"] = outputs
    for trial in range(TRIALS):
        mu = 0.1 if trial < TRIALS // 2 else mu_if_different
        params = make_params({"run_name": f"trial{trial}", "mu": mu, "adversary": "canu", "threads": 1})
        barrier.wait()
        try:
            run, params = open_run(params, "03_train")
        except RunConflictError as err:  # RunBusyError, or the other process's finished record
            results.put((trial, mu, f"refused: {err}"))
            continue
        run.record(params, "03_train")
        for epoch in range(3):
            run.append_history({"epoch": epoch, "mu": mu})
            time.sleep(0.01)
        run.write_metrics({"mu": mu})
        results.put((trial, mu, "finished"))


def test_two_processes_started_together_never_mix_one_run(outputs):
    """Ten trials with equal parameters and ten with different ones (mu 0.1 / 0.5), both processes released at
    once by a barrier: each time one finishes and the other is refused, and the folder holds one run's history and
    record, never both."""
    context = multiprocessing.get_context("spawn")
    results, barrier = context.Queue(), context.Barrier(2)
    workers = [context.Process(target=race, args=(barrier, str(outputs), mu, results)) for mu in (0.1, 0.5)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * TRIALS)]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    for trial in range(TRIALS):
        mine = [outcome for outcome in outcomes if outcome[0] == trial]
        finished = [mu for _, mu, state in mine if state == "finished"]
        refused = [state for _, _, state in mine if state != "finished"]
        assert len(finished) == 1 and len(refused) == 1, mine
        assert "is in use by process" in refused[0] or "holds a run with other parameters" in refused[0]
        run = RunFolder(outputs / f"trial{trial}")
        history = run.read_history()
        assert history["epoch"].tolist() == [0, 1, 2] and set(history["mu"]) == {finished[0]}
        record = run.read_params()
        assert record["mu"] == finished[0] and "continued" not in record
        assert run.read_metrics() == {"mu": finished[0]}
    busy = sum("is in use by process" in state for _, _, state in outcomes)
    print(f"{busy} of {TRIALS} refusals came while the other process held the folder")


@pytest.mark.notebook
def test_two_notebook_runs_of_one_folder_one_finishes_one_is_refused(tiny_data_root, outputs):
    """The case as a user meets it: notebook 03 twice at once on one run_name, mu 0.1 and mu 0.5."""
    pretrained(smoke(tiny_data_root, run_name="race_source", n_models=2, epochs=1))
    env = {**os.environ, "CANU_OUTPUTS": str(outputs)}
    common = ["-f", str(SMOKE), "-p", "data_root", str(tiny_data_root), "-p", "device", "cpu"]
    common += ["-p", "pretrain_run", "race_source", "-p", "adapt_epochs", "1", "-p", "umap_figures", "false"]
    common += ["-p", "run_name", "race", "-p", "threads", "1"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "canu_core", "notebook", "03_train", *common, "-p", "mu", mu],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mu in ("0.1", "0.5")
    ]
    ends = [(run.wait(300), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in ends)
    assert codes == [0, 2], ends
    (winner,) = [i for i, (code, _, _) in enumerate(ends) if code == 0]
    loser_err = ends[1 - winner][2]
    assert re.match(rf"canu: run folder {outputs / 'race'} is in use by process \d+ on ", loser_err), loser_err
    history = RunFolder(outputs / "race").read_history()
    assert set(history["mu"]) == {(0.1, 0.5)[winner]}
    assert "continued" not in RunFolder(outputs / "race").read_params()
    assert (outputs / "race" / "03_train.ipynb").is_file()
    assert not (outputs / ".executing" / "race").exists() and not (outputs / ".failed").exists()


# --- 2. every value checked before anything is written

BAD_VALUES = [
    ("k1", "0", "int >= 1"),
    ("k2", "-3", "int >= 1"),
    ("mu", "-1", "a finite float >= 0"),
    ("mu", ".nan", "a finite float >= 0"),
    ("lr", ".nan", "a finite float > 0"),
    ("lr", "0", "a finite float > 0"),
    ("mmt_lr", ".nan", "a finite float > 0"),
    ("mmt_lr", "-0.1", "a finite float > 0"),
    ("ssg_lr", ".inf", "a finite float > 0"),
    ("disc_lr", "0.0", "a finite float > 0"),
    ("batch_ids", "0", "int >= 2"),
    ("instances", "1", "int >= 2"),
    ("epochs", "-1", "int >= 1"),
    ("adapt_epochs", "0", "int >= 1"),
    ("iters_per_epoch", "0", "int >= 1"),
    ("eval_batch_size", "0", "int >= 1"),
    ("rho", "0", "a finite float in (0, 1]"),
    ("eps", "-0.5", "a finite float > 0"),
    ("min_samples", "0", "int >= 1"),
    ("ema_alpha", "1.5", "a finite float in [0, 1]"),
    ("label_smoothing", "1.0", "a finite float in [0, 1)"),
    ("target_coverage", "-0.2", "a finite float in [0, 1]"),
    ("weight_decay", "-0.0005", "a finite float >= 0"),
    ("threads", "0", "int >= 1"),
    ("nproc", "0", "int >= 1"),
    ("milestones", "[12, -1]", "int >= 0"),
    ("mu_grid", "[0.1, -0.2]", "a finite float >= 0"),
    ("seed", "-1", "int >= 0"),
]


@pytest.mark.parametrize("name, value, allowed", BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_a_bad_value_is_refused_before_anything_runs(name, value, allowed, outputs, no_kernel, capsys):
    assert cli.main(["notebook", "03_train", "-f", str(SMOKE), "-p", name, value]) == 2
    error = capsys.readouterr().err
    shown = yaml.safe_load(value)
    assert error.startswith(f"canu: parameter {name!r}") or error.startswith(f"canu: parameter '{name}[")
    assert f"expected {allowed}, found " in error and repr(shown if not isinstance(shown, list) else shown[1]) in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not outputs.exists()  # no folder, nothing that could refuse the corrected command


def test_a_parameter_file_with_a_bad_value_is_refused_naming_the_file(tmp_path, outputs, no_kernel, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: fine\nk1: 0\n")
    assert cli.main(["notebook", "03_train", "-f", str(bad)]) == 2
    assert capsys.readouterr().err == f"canu: {bad}: parameter 'k1': expected int >= 1, found 0\n"
    assert not outputs.exists()


def test_a_start_that_recorded_but_produced_nothing_does_not_block_the_corrected_command(tiny_data_root, outputs):
    """A run refused at run time after its record (here, the tiny source's 6 identities cannot fill a batch of 16,
    and the message says what to pass): the corrected command runs in that folder."""
    params = smoke(tiny_data_root, run_name="too_big", n_models=1, epochs=1, batch_ids=16)
    run, params = open_run(params, "01_pretrain")
    run.record(params, "01_pretrain")
    with pytest.raises(ValueError, match="6 identities cannot fill a batch of 16 identities: pass -p batch_ids 6"):
        pretrain(params, *worlds(params), run)
    corrected = smoke(tiny_data_root, run_name="too_big", n_models=1, epochs=1, batch_ids=6)
    run, corrected = open_run(corrected, "01_pretrain")
    run.record(corrected, "01_pretrain")
    assert run.read_params()["batch_ids"] == 6
    pretrain(corrected, *worlds(corrected), run)
    assert run.read_history()["epoch"].tolist() == [0]
    with pytest.raises(RunConflictError, match="batch_ids: 6 there, 16 asked"):  # now it holds a run
        open_run(smoke(tiny_data_root, run_name="too_big", n_models=1, epochs=1, batch_ids=16), "01_pretrain")


def test_record_itself_never_writes_an_unallowed_change(tiny_data_root, outputs):
    run = pretrained(smoke(tiny_data_root, run_name="guarded", n_models=1, epochs=1))
    before = snapshot(run.path)
    other = smoke(tiny_data_root, run_name="guarded", n_models=1, epochs=1, mu=0.5)
    with pytest.raises(RunConflictError, match=r"mu: 0.1 there, 0.5 asked"):
        run.record(other, "01_pretrain")
    assert snapshot(run.path) == before


# --- 3. strict YAML


def test_duplicate_keys_are_refused_naming_the_key_file_and_lines(tmp_path, capsys, no_kernel):
    twice = tmp_path / "twice.yaml"
    twice.write_text("run_name: a\nmu: 0.1\nk1: 20\nmu: 0.5\n")
    with pytest.raises(ConfigError) as refused:
        load_params(twice)
    assert str(refused.value) == (
        f"{twice}, line 4, column 1: not valid YAML: duplicate key 'mu' (first at line 2): give each parameter once"
    )
    assert cli.main(["notebook", "03_train", "-p", "mu", "0.1", "-p", "mu", "0.5"]) == 2
    assert capsys.readouterr().err == "canu: -p mu given twice (0.1, then 0.5): give each parameter once\n"


def test_yaml_syntax_errors_are_one_line_with_the_file_and_line(tmp_path, capsys, no_kernel):
    tabbed = tmp_path / "tabbed.yaml"
    tabbed.write_text("run_name: a\n\tmu: 0.1\n")
    assert cli.main(["notebook", "03_train", "-f", str(tabbed)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"canu: {tabbed}, line 2, column 1: not valid YAML: ") and error.count("\n") == 1
    assert cli.main(["notebook", "03_train", "-p", "mu", "{"]) == 2
    error = capsys.readouterr().err
    assert re.match(r"canu: -p mu '\{', line \d+, column \d+: not valid YAML: ", error) and error.count("\n") == 1


@pytest.mark.parametrize(
    "content, found",
    [("", "it is empty"), ("notebook: [unclosed\n", "not valid YAML"), ("- a list\n", "it holds a list")],
)
def test_a_damaged_params_yaml_is_named_and_its_advice_works(tiny_data_root, outputs, content, found):
    run = pretrained(smoke(tiny_data_root, run_name="record", n_models=1, epochs=1))
    run.params_path.write_text(content)
    params = smoke(tiny_data_root, run_name="record", n_models=1, epochs=1)
    with pytest.raises(RunConflictError) as refused:
        open_run(params, "01_pretrain")
    message = str(refused.value)
    assert message.startswith(str(run.params_path)) and found in message
    assert f"move the folder {run.path} away and run again" in message
    run.path.rename(outputs / "record-damaged")  # the advice, followed
    run, params = open_run(params, "01_pretrain")
    run.record(params, "01_pretrain")
    pretrain(params, *worlds(params), run)
    assert run.read_params()["notebook"] == "01_pretrain" and run.read_history()["epoch"].tolist() == [0]


# --- 4. advice that works when followed: a damaged checkpoint, deleted, is rebuilt by the same command


def follow_damaged_checkpoint_advice(path: Path, rerun) -> None:
    """Damage `path`, check the error names it and says what to do, do that, and check the rebuilt file holds what
    the original held (the seed repeats the run on this machine)."""
    original = read_checkpoint(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as damaged:
        read_checkpoint(path)
    message = str(damaged.value)
    assert message.startswith(f"cannot read checkpoint {path} (200 bytes: ")
    notebook = RunFolder(path.parent.parent).read_params()["notebook"]
    assert f"delete it and run notebook {notebook} with run_name {path.parent.parent.name!r} again" in message
    path.unlink()
    rerun()
    assert_same(original, read_checkpoint(path), path.name)


@pytest.mark.parametrize("name", ["model1_best", "model1_last"])
def test_a_deleted_pretraining_checkpoint_is_rebuilt_by_rerunning(tiny_data_root, outputs, name):
    params = smoke(tiny_data_root, run_name="rebuilt", n_models=1, epochs=2, threads=1)
    run = pretrained(params)
    follow_damaged_checkpoint_advice(run.checkpoint_path(name), lambda: pretrain(params, *worlds(params), run))
    assert run.read_history()["epoch"].tolist() == [0, 1]


def test_a_deleted_best_checkpoint_is_rebuilt_by_the_same_command(tiny_data_root, outputs):
    """The issue's case, followed as a user would: model1_best deleted, then the command that trained it again
    (`python -m canu_core run 01_pretrain`: notebook 01's training, without its figures)."""
    command = ["run", "01_pretrain", "-f", str(SMOKE), "-p", "data_root", str(tiny_data_root), "-p", "device", "cpu"]
    command += ["-p", "run_name", "rebuilt_cli", "-p", "n_models", "1", "-p", "epochs", "1", "-p", "threads", "1"]
    assert cli.main(command) == 0
    run = RunFolder(outputs / "rebuilt_cli")
    follow_damaged_checkpoint_advice(run.checkpoint_path("model1_best"), lambda: cli.main(command))
    load_source_model(run, 1, "best")


@pytest.mark.parametrize("name", ["mmt_best_by_target_labels", "mmt_last", "mmt_state"])
def test_a_deleted_adaptation_checkpoint_is_rebuilt_by_rerunning(tiny_data_root, outputs, name):
    params = smoke(tiny_data_root, run_name="rebuilt_source", n_models=2, epochs=1, threads=1)
    source = pretrained(params)
    adapt = make_params({"run_name": "rebuilt_mmt", "pretrain_run": "rebuilt_source", "adapt_epochs": 2}, base=params)
    run, adapt = open_run(adapt, "03_train")
    run.record(adapt, "03_train")
    target = worlds(adapt)[1]
    train_mmt(adapt, target, run, source)
    history = run.read_history()
    follow_damaged_checkpoint_advice(run.checkpoint_path(name), lambda: train_mmt(adapt, target, run, source))
    assert run.read_history().equals(history)


# --- 5. inputs that are finished


def test_an_unfinished_pretraining_run_is_refused_unless_accepted_and_recorded(tiny_data_root, outputs):
    params = smoke(tiny_data_root, run_name="half", n_models=2, epochs=2, threads=1)
    run, params = open_run(params, "01_pretrain")
    run.record(params, "01_pretrain")  # recorded for 2 epochs, stopped after model 1's first (a kill)
    from canu_core.engine.pretrain import pretrain_model

    pretrain_model(make_params({"epochs": 1}, base=params), *worlds(params), run, index=1, seed=params.seed)
    adapt = make_params({"run_name": "from_half", "pretrain_run": "half"}, base=params)
    with pytest.raises(UnfinishedRunError) as refused:
        open_training_run("03_train", adapt)
    assert str(refused.value) == (
        "pretraining run 'half' did not finish: model 1 trained 1 of 2 epochs; model 2 trained 0 of 2 epochs. "
        "Run notebook 01 again with run_name 'half' and its parameters (it resumes where it stopped), or pass "
        "-p accept_unfinished_pretraining true to adapt from it as it is"
    )
    assert cli.main(["run", "03_train", "-f", str(SMOKE), "-p", "pretrain_run", "half", "-p", "data_root",
                     str(tiny_data_root), "-p", "run_name", "from_half_cli"]) == 2  # fmt: skip
    accepted = make_params({"accept_unfinished_pretraining": True}, base=adapt)
    folder, accepted, _ = open_training_run("03_train", accepted)
    folder.record(accepted, "03_train")
    assert folder.read_params()["accept_unfinished_pretraining"] is True
    # the other advice, followed: notebook 01 again finishes the run, and adaptation takes it without the flag
    pretrain(params, *worlds(params), run)
    assert pretraining_record(run, adapt)["epochs"] == 2


# --- 6. failures in one line


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_old_file_leaves_no_temporary_and_says_where(tmp_path, monkeypatch):
    path = tmp_path / "run" / "history.csv"
    atomic_write_text(path, "epoch\n0\n")
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(DiskFullError) as full:
        atomic_write_text(path, "epoch\n0\n1\n")
    assert re.fullmatch(
        rf"no space left to write history.csv in {tmp_path / 'run'} \(\d+\.\d MiB free\): free some space and run "
        r"the same command again \(it resumes from the last checkpoint; nothing written before is lost\)",
        str(full.value),
    )
    assert path.read_text() == "epoch\n0\n" and sorted(p.name for p in path.parent.iterdir()) == ["history.csv"]


FILL_THEN_FREE = """
mount -t tmpfs -o size=30m tmpfs "$OUTS" || exit 3
"$PY" -m canu_core run 01_pretrain "$@" > "$LOGS/full.out" 2> "$LOGS/full.err"; echo $? > "$LOGS/full.code"
find "$OUTS" -name '.*.tmp' > "$LOGS/leftovers"
mount -o remount,size=80m "$OUTS" || exit 4
"$PY" -m canu_core run 01_pretrain "$@" > "$LOGS/freed.out" 2> "$LOGS/freed.err"; echo $? > "$LOGS/freed.code"
cp -r "$OUTS/full" "$LOGS/full" || exit 5
"""


def test_a_real_full_disk_is_one_line_and_the_same_command_resumes_after_space_is_freed(tiny_data_root, tmp_path):
    """A real 30 MiB file system (tmpfs, in a mount namespace of its own, so that nothing outside sees it) holds the
    outputs: the second epoch's checkpoints do not fit. Then the file system grows, as if space were freed, and the
    same command finishes with the checkpoints of a run that never ran out of space."""
    flags = ["-f", str(SMOKE), "-p", "data_root", str(tiny_data_root), "-p", "device", "cpu", "-p", "threads", "1"]
    flags += ["-p", "n_models", "1", "-p", "epochs", "2"]
    outs, logs, spacious = tmp_path / "outs", tmp_path / "logs", tmp_path / "spacious"
    outs.mkdir(), logs.mkdir()
    env = {**os.environ, "OUTS": str(outs), "LOGS": str(logs), "PY": sys.executable, "CANU_OUTPUTS": str(outs)}
    namespace = ["unshare", "--mount", "--map-root-user", "sh", "-c", FILL_THEN_FREE, "sh", *flags]
    subprocess.run([*namespace, "-p", "run_name", "full"], env=env, cwd=ROOT, check=True)
    assert (logs / "full.code").read_text().strip() == "1"
    output = (logs / "full.err").read_text()  # the progress bars, then the cause in one line
    error = output.rsplit("\r", 1)[-1].splitlines(keepends=True)[-1]
    assert "Traceback" not in output
    assert re.fullmatch(
        rf"canu: no space left to write model1_\w+\.pt in {outs / 'full' / 'checkpoints'} \(\d+\.\d MiB free\): "
        r"free some space and run the same command again \(it resumes from the last checkpoint; nothing written "
        r"before is lost\)\n",
        error,
    ), error
    assert (logs / "leftovers").read_text() == ""
    assert (logs / "freed.code").read_text().strip() == "0", (logs / "freed.err").read_text()
    assert "model1: resuming after epoch 0" in (logs / "freed.out").read_text()
    env["CANU_OUTPUTS"] = str(spacious)
    subprocess.run([sys.executable, "-m", "canu_core", "run", "01_pretrain", *flags, "-p", "run_name", "full"],
                   env=env, cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    whole, resumed = RunFolder(spacious / "full"), RunFolder(logs / "full")
    for name in ("model1_best", "model1_last"):
        assert_same(whole.load_checkpoint(name), resumed.load_checkpoint(name), name)
    assert resumed.read_history()["epoch"].tolist() == [0, 1]


def test_a_full_disk_in_a_notebook_is_one_line_and_keeps_no_cut_off_copy(outputs, monkeypatch, capsys):
    import papermill

    def fills_up(source, executing, **kwargs):  # papermill's write of the executed copy finds no space
        Path(executing).write_text('{"cells": [{"cell_type": "code", "sou')
        try:
            enospc()
        except OSError as err:
            raise RuntimeError("papermill could not save the notebook") from err

    monkeypatch.setattr(papermill, "execute_notebook", fills_up)
    assert cli.main(["notebook", "01_pretrain", "-p", "run_name", "full_nb"]) == 1
    error = capsys.readouterr().err
    assert re.fullmatch(
        rf"canu: no space left to write 01_pretrain.ipynb in {outputs / '.executing' / 'full_nb'} \(\d+\.\d MiB "
        r"free\): .*; the executed copy was cut off by the failure and was not kept\n",
        error,
    )
    assert not (outputs / ".failed").exists() and not (outputs / ".executing" / "full_nb").exists()


def test_a_damaged_world_manifest_is_regenerated_with_a_warning(tmp_path):
    root = tmp_path / "data"
    load_dataset("synthetic:tiny", tmp_path / "first")
    shutil.copytree(dataset_root("synthetic:tiny", tmp_path / "first"), dataset_root("synthetic:tiny", root))
    manifest = dataset_root("synthetic:tiny", root) / "world.json"
    original = json.loads(manifest.read_text())
    for damage in ("{ garbage", "{}", "[]"):
        manifest.write_text(damage)
        with pytest.warns(UserWarning, match=rf"{manifest} is not (valid JSON|a world manifest).*generating the world"):
            world = load_dataset("synthetic:tiny", root)
        assert (
            json.loads(manifest.read_text()) == original and len(world.train) == original["files"]["bounding_box_train"]
        )


def test_a_bad_image_in_a_synthetic_world_removed_as_advised_is_generated_again(tiny_data_root, tmp_path):
    from canu_core.data.checks import BadImageFilesError

    world = dataset_root("synthetic:tiny", tmp_path)
    shutil.copytree(dataset_root("synthetic:tiny", tiny_data_root), world)
    damaged = sorted((world / "query").glob("*.png"))[0]
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[:100])
    with pytest.raises(BadImageFilesError, match=r"Replace these files or remove them from the dataset folder"):
        load_dataset("synthetic:tiny", tmp_path)
    damaged.unlink()  # the advice, followed
    with pytest.warns(UserWarning, match="the world is incomplete; generating it again"):
        load_dataset("synthetic:tiny", tmp_path)
    assert damaged.read_bytes() == whole


# --- 7. make lab as root


def test_make_lab_starts_on_loopback_with_a_token(tmp_path):
    from lab_browser import free_port

    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path)}
    lab = subprocess.Popen(
        ["make", "-o", ".venv/.installed-lab-test", "lab", f"LAB_ARGS=--port {port} --no-browser"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, lines, url = time.monotonic() + 120, [], None
        while url is None and time.monotonic() < deadline and lab.poll() is None:
            line = lab.stdout.readline()
            lines.append(line)
            url = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", line)
        assert url is not None, "".join(lines)  # as root, jupyter refuses to start without --allow-root
        import urllib.error
        import urllib.request

        for _ in range(60):  # the server answers (an error status is an answer)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={url[1]}", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=10)
        assert no_token.value.code == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={url[1]}", timeout=10) as answer:
            names = {item["name"] for item in json.load(answer)["content"]}
        assert "03_train.ipynb" in names
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(30)

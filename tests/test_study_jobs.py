"""Notebook 04's runs as submitit jobs (executor "submitit_local": the jobs a Slurm cluster would get, run as local
processes with real job folders and logs): a job that fails is reported with its log, the others finish; a job
killed in the middle leaves a partial run, which the next execution resubmits and which resumes from its
checkpoint."""

import time

import psutil
import pytest
from tiny import TINY, flags

from canu_core.cli import main
from canu_core.config import load_params
from canu_core.data.catalog import dataset_root
from canu_core.runs import RunFolder, project_root
from canu_core.study import execute_study, job_executor, run_one, run_parameters, study_run

SMOKE = str(project_root() / "params" / "smoke.yaml")
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The module's outputs folder, in the environment the jobs inherit."""
    folder = tmp_path_factory.mktemp("outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CANU_OUTPUTS", str(folder))
        yield folder


@pytest.fixture(scope="module")
def study_params(tiny_data_root, outputs):
    """A study that runs its jobs with submitit's local executor, from a 1-epoch tiny pretraining."""
    common = {"data_root": str(tiny_data_root), "device": "cpu", "threads": 1, **TINY}
    pretraining = {**common, "run_name": "source", "epochs": 1}
    assert main(["run", "01_pretrain", "-f", SMOKE, *flags(pretraining)]) == 0
    return load_params(
        SMOKE,
        overrides={
            **common,
            "run_name": "jobs",
            "pretrain_run": "source",
            "executor": "submitit_local",
            "cpus_per_run": 1,
            "umap_figures": False,
        },
    )


def test_failed_job_is_reported_with_its_log_and_the_others_finish(study_params, outputs):
    good = study_run("jobs", "mmt", "none", 0.1, seed=0)
    bad = study_run("jobs", "mmt", "none", 0.1, seed=0, target_coverage=0.9)
    # its target world's folder holds someone else's file: the job fails in the kernel, when it reads the target
    foreign = dataset_root(study_params.target, study_params.data_root, 0, {"camera_coverage": 0.9})
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    outcome = execute_study(study_params, [good, bad]).set_index("run_name")

    assert outcome.loc[good.name, ["before", "after", "error"]].tolist() == ["new", "finished", ""]
    assert (outputs / good.name / "metrics.json").is_file() and (outputs / good.name / "03_train.ipynb").is_file()
    assert outcome.loc[bad.name, "after"] == "failed" and "holds no world.json" in outcome.loc[bad.name, "error"]
    log = outcome.loc[bad.name, "log"]
    assert log.startswith(str(outputs / ".jobs" / "jobs")) and "holds no world.json" in open(log).read()
    assert (outputs / ".failed" / bad.name / "03_train.ipynb").is_file()


def test_killed_job_is_resubmitted_and_resumes(study_params, outputs):
    run = study_run("jobs", "mmt", "canu", 0.1, seed=0)
    job = job_executor(study_params).submit(run_one, run_parameters(study_params, run))
    state = outputs / run.name / "checkpoints" / "mmt_state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher = psutil.Process(job._process.pid)  # the job and the notebook kernel it started, as scancel would
    processes = [*launcher.children(recursive=True), launcher]
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=30)
    assert state.exists() and not (outputs / run.name / "metrics.json").exists()

    outcome = execute_study(study_params, [run])
    assert outcome[["before", "after", "error"]].values.tolist() == [["partial", "finished", ""]]
    folder = RunFolder(outputs / run.name)
    assert folder.read_history()["epoch"].tolist() == [0, 1]  # the smoke set's 2 epochs, the second after the kill
    assert "mmt: resuming after epoch" in (folder.path / "03_train.ipynb").read_text()

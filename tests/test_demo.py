"""`make demo` on the tiny worlds: pretraining, MMT and CANU-MMT as run folders of their own (each stage's two
trainings in processes of their own), the table of the three models and the before / after figure; run again, it
starts no process and prints the same table."""

import math
import re

import pandas as pd
import pytest
from tiny import TINY, flags

from canu_core import jobs
from canu_core.cli import main
from canu_core.runs import RunFolder, project_root

SMOKE = str(project_root() / "params" / "smoke.yaml")
pytestmark = pytest.mark.notebook


def test_demo_runs_the_job_and_resumes(tiny_data_root, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path))
    argv = [
        "demo",
        "-f",
        SMOKE,
        "-p",
        "data_root",
        str(tiny_data_root),
        "-p",
        "device",
        "cpu",
        "-p",
        "run_name",
        "demo",
        "-p",
        "threads",
        "1",
        "-p",
        "eval_every_epoch",
        "false",
        *flags(TINY),  # the test checks the job's stages and its resume, not its numbers
    ]
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "A short CPU schedule" in out and "make study" in out
    assert re.search(r"epoch \d+:", out)  # the stages' processes print their epochs here

    demo = RunFolder.for_run("demo")
    table = pd.read_csv(demo.path / "demo_table.csv", index_col="model")
    assert list(table.index) == ["direct transfer", "MMT", "CANU-MMT"]
    assert table["mAP"].between(0, 100).all() and table["R1"].between(0, 100).all()
    # the true ids' reference is measured on each model's clustered images (its outliers left out), so it is each
    # row's own: adjusted MI in nats, below the camera entropy's bound (ln of the tiny target's 4 cameras)
    assert table["adj. MI(true ids; camera)"].between(-0.5, math.log(4)).all()
    assert demo.figure_path("before_after_umap.png").read_bytes()[:4] == b"\x89PNG"
    assert RunFolder.for_run("demo-pretrain").read_params()["notebook"] == "01_pretrain"
    for name, adversary in (("demo-mmt", "none"), ("demo-canu-mmt", "canu")):
        recorded = RunFolder.for_run(name).read_params()
        assert (recorded["notebook"], recorded["adversary"], recorded["pretrain_run"]) == (
            "03_train",
            adversary,
            "demo-pretrain",
        )
        assert len(RunFolder.for_run(name).read_history()) == 2  # the smoke set's adapt_epochs
    assert table.loc["MMT", "mAP"] != table.loc["direct transfer", "mAP"]

    started = []  # what each stage starts processes for
    monkeypatch.setattr(jobs, "in_processes", lambda calls, threads: started.append(calls))
    assert main(argv) == 0  # every training finished: no process starts, and the table is the same
    assert started == [[], []]
    pd.testing.assert_frame_equal(pd.read_csv(demo.path / "demo_table.csv", index_col="model"), table)

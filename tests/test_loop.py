"""The training loop every trainer runs (engine/loop.py), on a counting trainer: epochs, history, the best and last
checkpoints, resuming after the state's epoch (also from a state written before the loop existed), a lost model
checkpoint rebuilt, and the one definition of the history's columns."""

import pytest

from canu_core.engine.loop import Trainer, check_history_columns, finished, fit
from canu_core.runs import RunFolder


class Counting(Trainer):
    label, history_key, state_name, best_name, last_name = (
        "count",
        ("epoch",),
        "count_state",
        "count_best",
        "count_last",
    )
    best_metric = "target_mAP"
    method_state = load_method_state = None  # its whole state is its count: state_dict is its own

    def __init__(self, scores):
        self.scores, self.steps, self.ran = scores, 0, []

    def run_epoch(self, epoch):
        self.steps += 1
        self.ran.append(epoch)
        return {"epoch": epoch, "loss": float(self.steps), "target_mAP": self.scores[epoch]}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]

    def synchronised(self):
        return {}

    def model_checkpoint(self, row):
        return {"epoch": row["epoch"], "steps": self.steps}


def test_fit_writes_rows_the_best_and_last_and_resumes_after_the_state(tmp_path, capsys):
    run = RunFolder(tmp_path / "run")
    scores = [10.0, 30.0, 20.0, 25.0]
    fit(Counting(scores), run, epochs=3)
    assert run.read_history()["epoch"].tolist() == [0, 1, 2]
    assert run.load_checkpoint("count_best")["epoch"] == 1 and run.load_checkpoint("count_last")["epoch"] == 2
    assert run.load_checkpoint("count_state") == {"steps": 3, "epoch": 2, "best": 30.0}

    again = Counting(scores)
    fit(again, run, epochs=4)  # one more epoch: only epoch 3 runs, from the restored state
    assert again.ran == [3] and again.steps == 4 and "count: resuming after epoch 2" in capsys.readouterr().out
    assert run.read_history()["loss"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert run.load_checkpoint("count_best")["epoch"] == 1  # 25 did not beat 30

    done = Counting(scores)
    fit(done, run, epochs=4)
    assert done.ran == []


def test_a_state_written_before_the_loop_resumes_with_its_best_score(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.save_checkpoint({"steps": 2, "epoch": 1, "best_oracle_mAP": 40.0}, "count_state")
    best = run.save_checkpoint({"score": 40.0}, "count_best").read_bytes()
    run.save_checkpoint({"epoch": 1}, "count_last")
    trainer = Counting([10.0, 30.0, 20.0])
    fit(trainer, run, epochs=3)
    assert trainer.ran == [2] and run.checkpoint_path("count_best").read_bytes() == best  # 20 < 40: no new best
    assert run.load_checkpoint("count_state")["best"] == 40.0


@pytest.mark.parametrize("lost", ["count_best", "count_last"])
def test_a_lost_model_checkpoint_is_rebuilt_by_training_again_from_the_start(tmp_path, capsys, lost):
    run = RunFolder(tmp_path / "run")
    fit(Counting([10.0, 30.0, 20.0]), run, epochs=3)
    kept = {name: run.checkpoint_path(name).read_bytes() for name in ("count_best", "count_last", "count_state")}
    run.checkpoint_path(lost).unlink()
    again = Counting([10.0, 30.0, 20.0])
    fit(again, run, epochs=3)
    assert again.ran == [0, 1, 2] and f"count: {lost} missing: training again from the start" in capsys.readouterr().out
    assert {name: run.checkpoint_path(name).read_bytes() for name in kept} == kept
    assert run.read_history()["epoch"].tolist() == [0, 1, 2]


def test_a_training_is_finished_exactly_when_fit_would_train_nothing(tmp_path):
    run = RunFolder(tmp_path / "run")
    names = ("count_state", "count_best", "count_last", "target_mAP")
    assert not finished(run, 3, *names)  # nothing written yet
    fit(Counting([10.0, 30.0, 20.0, 25.0]), run, epochs=3)
    assert finished(run, 3, *names)
    assert not finished(run, 4, *names)  # one more epoch to go
    run.checkpoint_path("count_best").unlink()  # fit would train again to rebuild it
    assert not finished(run, 3, *names)


def test_history_columns_are_defined_once():
    check_history_columns({"epoch": 0, "loss_tri_full": 1.0, "disc_acc_1": 0.5, "eps_upper": 0.3, "train_acc2": 1.0})
    with pytest.raises(KeyError, match=r"not defined in engine/loop.py's HISTORY_COLUMNS: \['mystery'\]"):
        check_history_columns({"epoch": 0, "mystery": 1})

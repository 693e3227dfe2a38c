"""The outer loop every trainer runs (torchreid's Engine.run): resume from the state checkpoint, then per epoch the
method's own epoch (which returns its history row), the row appended, the best and last models saved, and the state
to resume from written last, so that a run stopped anywhere resumes from its last finished epoch. Pretraining, SSG
and MMT supply only what differs (a `Trainer`). The columns a history may hold are defined here, once."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..reproducibility import rng_state, set_rng_state
from ..runs import RunFolder
from .common import MixedPrecision, check_finite

# Every column of a history.csv, with its meaning: pretraining's (one row per model and epoch) and adaptation's (one
# row per epoch). Families with one column per network, part or loss term are patterns (HISTORY_PATTERNS).
HISTORY_COLUMNS = {
    "model": "pretraining: which source model (1, 2, ...)",
    "seed": "pretraining: the model's seed",
    "method": "adaptation: ssg or mmt",
    "epoch": "0-based epoch",
    "adversary": "none, adv or canu",
    "mu": "weight of the adversarial term",
    "status": "trained, or skipped (the pseudo-labels could not train; the model is unchanged)",
    "message": "what the clustering found, or why the epoch was skipped",
    "lr": "the learning rate of the epoch",
    "iterations": "training steps taken",
    "loss": "the total loss, mean over the epoch's steps",
    "train_acc": "pretraining: classification accuracy on the training batches",
    "source_mAP": "pretraining: mAP on the source test split",
    "source_R1": "pretraining: rank-1 on the source test split",
    "target_mAP": "mAP on the target test split (direct transfer in pretraining)",
    "target_R1": "rank-1 on the target test split",
    "eps": "MMT: DBSCAN's radius (the rho rule's at the first epoch, then kept)",
    "num_points": "target training images clustered",
    "num_clusters": "clusters found (SSG: of the images every part clusters)",
    "num_outliers": "images left out of every cluster",
    "outlier_fraction": "num_outliers / num_points",
    "largest_cluster": "images in the largest cluster",
    "pairwise_precision": "of the pairs put together, the share that are the same identity",
    "pairwise_recall": "of the same-identity pairs, the share put together",
    "nmi": "normalised MI between clusters and true ids",
    "ari": "adjusted Rand index between clusters and true ids",
    "mi_pseudo_camera": "plug-in MI(pseudo-labels; camera), nats (paper Fig. 3)",
    "mi_true_camera": "plug-in MI(true ids; camera), nats, over the clustered images: the reference",
    "ami_pseudo_camera": "MI(pseudo-labels; camera) minus its expectation under labels that ignore the camera",
    "ami_true_camera": "the same for the true ids",
    "lost_ids": "true identities with no image in any cluster (paper Fig. 4)",
    "camera_probe_accuracy": "cross-validated linear probe's camera accuracy on the clustering features",
    "camera_probe_chance": "the probe's chance level (the largest camera's share)",
    "camera_identity_alone": "the camera accuracy reachable from the true identity alone (each id's main camera)",
}
HISTORY_PATTERNS = {
    r"loss_\w+": "one loss term, mean over the epoch's steps",
    r"train_acc\d": "MMT: student k's classification accuracy on the training batches",
    r"disc_(loss|acc)_\w+": "a camera discriminator's loss and accuracy (one per MMT student or SSG part)",
    r"(eps|num_clusters|num_outliers)_(full|upper|lower)": "SSG: each part's own clustering",
}


def with_derived_columns(history: pd.DataFrame) -> pd.DataFrame:
    """`history` with the columns computed from its own when histories of several runs are put together
    (study.collect_histories), so that methods compare in one column: `disc_acc`, the mean camera accuracy of the
    run's discriminators (MMT: one per student; SSG: one per part; NaN without any)."""
    accuracies = history.filter(regex=r"^disc_acc_")
    return history.assign(disc_acc=accuracies.mean(axis=1) if accuracies.shape[1] else math.nan)


# The best score's key in state checkpoints written before this loop existed, so that such runs still resume.
LEGACY_BEST = {"source_mAP": "best_source_mAP", "target_mAP": "best_oracle_mAP"}


def check_history_columns(row: Mapping[str, Any]) -> None:
    """A trainer's row may hold only the columns defined above: a new one is defined there first."""
    unknown = [
        name for name in row if name not in HISTORY_COLUMNS and not any(re.fullmatch(p, name) for p in HISTORY_PATTERNS)
    ]
    if unknown:
        raise KeyError(f"history columns not defined in engine/loop.py's HISTORY_COLUMNS: {unknown}")


@dataclass
class StepOutput:
    """What a method's training step gives the batch loop: the total loss it steps on, the loss terms whose epoch
    means go into the history, the tensors that must be finite before the step, and per-step metrics (accuracies,
    the discriminators' loss and accuracy) averaged beside the losses."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    watched: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)


class Averages:
    """Running means of per-step metrics, for the epoch's history row."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        """Each metric's mean, and "iterations": the number of steps added."""
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        return {"iterations": max(self.counts.values(), default=0), **means}


def train_batches(
    step: Callable[[Any], StepOutput],
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    precision: MixedPrecision,
    *,
    epoch: int,
    total: int,
    desc: str,
    loss_limit: float,
    lr_parameter: str,
    after_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """The one batch loop of every trainer: for each batch, the method's `step` (its forwards and losses), the
    divergence check before anything changes, the optimizer step (mixed precision's), the method's `after_step`
    (MMT's mean teachers), and the running means. Returns "iterations", "loss" (the total), each term and each
    metric, as the epoch's history columns."""
    averages = Averages()
    for index, batch in enumerate(tqdm(batches, total=total, desc=desc, leave=False)):
        output = step(batch)
        values = {name: term.item() for name, term in output.terms.items()}
        check_finite(values, output.watched, epoch, index, loss_limit, lr_parameter)
        precision.step(output.loss, optimizer)
        if after_step is not None:
            after_step(index)
        averages.add({"loss": output.loss.item(), **values, **output.metrics})
    return averages.means()


class Trainer(ABC):
    """What one method supplies to `fit`: its epoch, its resumable state and what its model checkpoints hold."""

    label: str  # its name in printed lines ("model1", "mmt")
    history_key: tuple[str, ...]  # the columns that identify a row (a resumed epoch replaces its own)
    state_name: str  # the checkpoint a run resumes from
    best_name: str  # the model of the epoch with the best `best_metric`
    best_metric: str
    last_name: str | None = None  # the model of the last epoch, when the state is not already that

    @abstractmethod
    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train (or skip) epoch `epoch`, evaluate if due; return its history row."""

    precision: MixedPrecision  # its loss scale is part of the state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after this epoch (the loop adds the epoch and the best score): the
        method's own state, the loss scale and the random state."""
        return {**self.method_state(), "scaler": self.precision.state_dict(), "rng": rng_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved, the random state last."""
        self.load_method_state(state)
        self.precision.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])

    @abstractmethod
    def method_state(self) -> dict[str, Any]:
        """The method's models, optimizer and whatever else it needs to continue exactly."""

    @abstractmethod
    def load_method_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `method_state` saved, with the parameters' learning rates (an amended rate takes effect
        from the next epoch)."""

    @abstractmethod
    def synchronised(self) -> dict[str, Any]:
        """The models (and tensors) every rank of a torchrun launch must hold identically after each epoch."""

    @abstractmethod
    def model_checkpoint(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """What the best and last model checkpoints hold: the weights and what rebuilds the model."""


def best_score(best_metric: str, state: Mapping[str, Any]) -> float:
    """The best `best_metric` a state checkpoint records (under its older key in states written before the loop)."""
    return state["best"] if "best" in state else state[LEGACY_BEST[best_metric]]


def lost_checkpoints(
    run: RunFolder, state: Mapping[str, Any] | None, best_metric: str, best_name: str, last_name: str | None
) -> list[str]:
    """The model checkpoints a run with this `state` has written and no longer has (deleted, say, after it was
    found damaged)."""
    if state is None:
        return []
    written = [last_name] if last_name is not None else []
    if best_score(best_metric, state) > -math.inf:
        written.append(best_name)
    return [name for name in written if not run.checkpoint_path(name).is_file()]


def finished(
    run: RunFolder, epochs: int, state_name: str, best_name: str, last_name: str | None, best_metric: str
) -> bool:
    """Whether `fit` would train nothing in `run`: its state records the last of `epochs` epochs and no model
    checkpoint it wrote is lost. A caller that skips a finished training saves the start of the process that would
    find it finished."""
    state = run.load_checkpoint(state_name)
    if state is None or state["epoch"] + 1 < epochs:
        return False
    return not lost_checkpoints(run, state, best_metric, best_name, last_name)


def fit(trainer: Trainer, run: RunFolder, epochs: int) -> None:
    """Run `trainer` to `epochs` epochs in `run`, resuming after the last epoch its state checkpoint holds. Under
    torchrun every rank resumes from the same checkpoint and runs the epochs; rank 0 alone writes."""
    main = distributed.group().main
    start, best = 0, -math.inf
    state = run.load_checkpoint(trainer.state_name)
    lost = lost_checkpoints(run, state, trainer.best_metric, trainer.best_name, trainer.last_name)
    if lost:  # a model checkpoint cannot be rebuilt from the state: train again from the start (the seed repeats it)
        if main:
            print(f"{trainer.label}: {', '.join(lost)} missing: training again from the start to rebuild it")
        state = None
    if state is not None:
        trainer.load_state_dict(state)
        start = state["epoch"] + 1
        best = best_score(trainer.best_metric, state)
        if start < epochs and main:
            print(f"{trainer.label}: resuming after epoch {state['epoch']}")
    for epoch in range(start, epochs):
        row = trainer.run_epoch(epoch)
        distributed.check_same_on_every_rank(trainer.synchronised())
        if not main:
            continue
        check_history_columns(row)
        run.append_history(row, key=trainer.history_key)
        if row.get(trainer.best_metric, -math.inf) > best:
            best = row[trainer.best_metric]
            run.save_checkpoint(trainer.model_checkpoint(row), trainer.best_name)
        if trainer.last_name is not None:
            run.save_checkpoint(trainer.model_checkpoint(row), trainer.last_name)
        run.save_checkpoint({**trainer.state_dict(), "epoch": epoch, "best": best}, trainer.state_name)
    distributed.barrier()  # the other ranks read the run folder only once rank 0 has written it

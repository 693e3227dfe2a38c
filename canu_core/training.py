"""The two trainings a notebook or a script starts, where it is decided, once, whether they run in this process or
launch under torchrun (params.nproc > 1 outside torchrun: `torchrun -m canu_core run <notebook>`, whose ranks call
the engine directly; the models are then read from the run folder)."""

from __future__ import annotations

from . import distributed
from .config import Params
from .data.catalog import load_dataset
from .data.records import ReidDataset
from .engine.checkpoints import load_adapted_model, load_source_model
from .engine.mmt import train_mmt
from .engine.pretrain import pretrain_model
from .engine.ssg import train_ssg
from .models import ReidModel
from .runs import RunFolder


def pretrain(params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder) -> list[ReidModel]:
    """Train (or resume, or load if finished) notebook 01's `params.n_models` source models in run folder `run`,
    with seeds seed, seed+1, ... (MMT adapts two differently seeded ones)."""
    if distributed.needs_launch(params):
        distributed.launch("01_pretrain", params, run)
        return [load_source_model(run, k + 1, "last") for k in range(params.n_models)]
    return [
        pretrain_model(params, source, target, run, index=k + 1, seed=params.seed + k) for k in range(params.n_models)
    ]


def adapt(
    params: Params,
    target: ReidDataset,
    run: RunFolder,
    source_run: RunFolder | None = None,
    source: ReidDataset | None = None,
) -> ReidModel:
    """Adapt the source models of `source_run` (default: the run `params.pretrain_run`) to `target` with
    `params.method` (SSG or MMT, + the camera adversary `params.adversary`) in run folder `run`, resuming from its
    state checkpoint if it has one; returns the delivered model (MMT's mean teacher 1). SSG's clustering distance
    reads the source training set when ssg_source_weight > 0: `source`, or the dataset params.source names."""
    if distributed.needs_launch(params):
        distributed.launch("03_train", params, run)
        return load_adapted_model(run, params.method, "last")
    if params.method == "ssg":
        if source is None and params.ssg_source_weight > 0:
            source = load_dataset(params.source, params.data_root, params.world_seed)
        return train_ssg(params, target, run, source_run, source=source)
    return train_mmt(params, target, run, source_run)

"""The two trainings a notebook or a script starts, where it is decided, once, whether they run in this process or
launch under torchrun (params.nproc > 1 outside torchrun: `torchrun -m canu_core run <notebook>`, whose ranks call
the engine directly; the models are then read from the run folder)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from . import distributed
from .config import Params, as_dict
from .data.catalog import load_dataset
from .data.records import ReidDataset
from .engine.checkpoints import load_adapted_model, load_source_model
from .engine.mmt import train_mmt
from .engine.pretrain import pretrain_model
from .engine.ssg import train_ssg
from .models import ReidModel
from .runs import RunFolder, atomic_write_text


def pretrain(params: Params, source: ReidDataset, target: ReidDataset, run: RunFolder) -> list[ReidModel]:
    """Train (or resume, or load if finished) notebook 01's `params.n_models` source models in run folder `run`,
    with seeds seed, seed+1, ... (MMT adapts two differently seeded ones)."""
    if needs_launch(params):
        launch("01_pretrain", params, run)
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
    if needs_launch(params):
        launch("03_train", params, run)
        return load_adapted_model(run, params.method, "last")
    if params.method == "ssg":
        if source is None and params.ssg_source_weight > 0:
            source = load_dataset(params.source, params.data_root, params.world_seed)
        return train_ssg(params, target, run, source_run, source=source)
    return train_mmt(params, target, run, source_run)


def needs_launch(params: Params) -> bool:
    """A training asked for `params.nproc` > 1 processes, called outside torchrun: it must launch them."""
    return params.nproc > 1 and not distributed.launched_by_torchrun()


def launch(notebook: str, params: Params, run: RunFolder) -> None:
    """Train `notebook`'s run (`run`, the folder of `params.run_name`) on `params.nproc` processes of this machine:
    `torchrun --standalone -m canu_core run <notebook>` with these parameters, its output shown here line by line
    (in a notebook, in the cell). Raises if a rank failed."""
    if run.path != RunFolder.for_run(params.run_name).path:
        raise ValueError(f"the processes write outputs/{params.run_name}, not {run.path}: pass that run folder")
    run.path.mkdir(parents=True, exist_ok=True)
    parameters = run.path / ".torchrun_params.yaml"  # the resolved parameters, for the ranks to read
    atomic_write_text(parameters, yaml.safe_dump(as_dict(params), sort_keys=False))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={params.nproc}"]
    command += ["-m", "canu_core", "run", notebook, "-f", str(parameters)]
    print(f"torchrun --standalone --nproc_per_node={params.nproc} -m canu_core run {notebook}", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            if "it/s]" not in line and "batch/s]" not in line:  # the ranks' progress bars, redrawn each step
                print(line, end="", flush=True)
    parameters.unlink(missing_ok=True)
    if process.returncode:
        raise RuntimeError(f"torchrun exited with {process.returncode}: a rank failed (its traceback is above)")

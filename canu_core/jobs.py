"""Whole jobs that the command line starts: each writes run folders under outputs/."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import pandas as pd

from . import distributed
from .cluster.diagnostics import clustering_report
from .cluster.pseudo_labels import make_clustering
from .config import ConfigError, Params
from .data.catalog import load_dataset, target_world
from .data.records import ReidDataset, ids_and_cameras
from .device import resolve_device
from .engine.adaptation import Adaptation, adaptation_metrics
from .engine.checkpoints import (
    adaptation_checkpoints,
    load_adapted_model,
    load_source_model,
    pretraining_checkpoints,
    pretraining_record,
)
from .engine.loop import finished
from .engine.mmt import train_mmt
from .engine.pretrain import PretrainTrainer, pretrain_model
from .evaluation import evaluate, train_set_features
from .reproducibility import set_threads
from .runs import RunFolder, open_run
from .training import adapt, launch, needs_launch, pretrain
from .viz.embedding import camera_and_identity, plot_umap_grid, umap_embedding

# The demo's three models, in the table's order: what each row is and the run folder suffix it comes from.
DEMO_ROWS = {"direct transfer": "pretrain", "MMT": "mmt", "CANU-MMT": "canu-mmt"}


def run_demo(params: Params) -> pd.DataFrame:
    """The lab's main job on a short CPU schedule (params/demo.yaml): pretrain two source models, then adapt them to
    the target with MMT, without adversary and with CANU (each stage's two trainings in two processes at once, the
    threads shared between them); print what each stage gives (direct transfer, MMT,
    CANU-MMT: mAP, R1, the camera bias of its clusters, lost ids) and draw the target features before and after,
    by camera and by identity, into outputs/<run_name>/. Each stage is a run folder of its own beside it
    (<run_name>-pretrain, -mmt, -canu-mmt), which notebooks 02 and 03 can open; run again, a finished training is
    read, not redone, and starts no process."""
    started = time.monotonic()
    run, params = open_run(params, "demo")
    source = load_dataset(params.source, params.data_root, params.world_seed)
    target = load_dataset(params.target, params.data_root, params.world_seed, target_world(params))
    run.record(params, "demo")
    print(
        f"CANU-ReID demo: {params.epochs} pretraining epochs x {params.iters_per_epoch} iterations, then "
        f"{params.adapt_epochs} MMT epochs x {params.adapt_iters_per_epoch} iterations, on {params.source} -> "
        f"{params.target}. A short CPU schedule, to show the job, not the study: the study's regime and its "
        '5-seed results are in README ("Results on the synthetic world"), run with `make study`.'
    )

    threads = max(1, params.threads // 2)  # each of the two processes of a stage
    pretrain_params, pretrain_run = stage(params, "pretrain", "01_pretrain", threads=threads)
    print(f"\n== 1/3 source pretraining, {params.n_models} models at once: {pretrain_run.path}")
    in_processes(
        [
            (pretrain_model, (pretrain_params, source, target, pretrain_run, k + 1, params.seed + k))
            for k in range(params.n_models)
            if not finished(pretrain_run, params.epochs, *pretraining_checkpoints(k + 1), PretrainTrainer.best_metric)
        ],
        threads,
    )

    adaptations = {
        row: stage(
            params,
            DEMO_ROWS[row],
            "03_train",
            method="mmt",
            adversary=adversary,
            pretrain_run=pretrain_run.path.name,
            threads=threads,
        )
        for row, adversary in (("MMT", "none"), ("CANU-MMT", "canu"))
    }
    print(
        "\n== 2/3 MMT and CANU-MMT at once, from the same source models: "
        + ", ".join(str(run.path) for _, run in adaptations.values())
    )
    in_processes(
        [
            (train_mmt, (p, target, run, pretrain_run))
            for p, run in adaptations.values()
            if not finished(run, p.adapt_epochs, *adaptation_checkpoints("mmt"), Adaptation.best_metric)
        ],
        threads,
    )
    models = {"direct transfer": load_source_model(pretrain_run, params.model_index, params.source_checkpoint)}
    models |= {row: load_adapted_model(run, "mmt", "last") for row, (_, run) in adaptations.items()}

    set_threads(params.threads)
    print("\n== 3/3 the three models on the target: test split, and a clustering of the training images each")
    table, features = demo_table(models, target, params)
    print(table.to_string())
    points = {row: umap_embedding(feature.numpy(), seed=params.seed) for row, feature in features.items()}
    labelings = camera_and_identity(target.train)
    figure = run.figure_path("before_after_umap.png")
    plot_umap_grid(
        points,
        labelings,
        path=figure,
        seed=params.seed,
        title=f"Target training features: source model {params.model_index}, then after MMT and CANU-MMT (last epoch)",
    )
    table.to_csv(run.path / "demo_table.csv")
    minutes = (time.monotonic() - started) / 60
    run.write_metrics({"table": table.reset_index().to_dict(orient="records"), "minutes": minutes})
    print(
        f"\nfigure: {figure}\ntable: {run.path / 'demo_table.csv'}\n{minutes:.1f} min. A short schedule on one "
        "seed: differences of a few mAP between MMT and CANU-MMT are within the seed-to-seed spread that README's "
        "study measures over 5 seeds."
    )
    return table


def in_processes(calls: list[tuple[Callable, tuple]], threads: int) -> None:
    """Each call (a module-level function and its arguments) in a process of its own, all at once, with `threads`
    threads each: on the 2-core machine two one-threaded processes get about 1.2x the work of one two-threaded one
    done (docs/guide.md "`make demo`"). What they train is in their run folders; the first error is raised here.
    No call, no process (a stage whose trainings all finished)."""
    if not calls:
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(calls), mp_context=context, initializer=set_threads, initargs=(threads,)) as pool:
        for future in [pool.submit(_without_result, function, *arguments) for function, arguments in calls]:
            future.result()


def _without_result(function: Callable, *arguments) -> None:
    """Call `function`, keeping its result (a trained model) in the worker: the run folder has it."""
    function(*arguments)


def stage(params: Params, suffix: str, notebook: str, **changes) -> tuple[Params, RunFolder]:
    """The parameters and run folder `<run_name>-<suffix>` of one stage, recorded as a run of `notebook`."""
    stage_params = dataclasses.replace(params, run_name=f"{params.run_name}-{suffix}", **changes)
    run, stage_params = open_run(stage_params, notebook)
    run.record(stage_params, notebook)
    return stage_params, run


def demo_table(models: dict, target: ReidDataset, params: Params) -> tuple[pd.DataFrame, dict]:
    """Per model: target test mAP and R1 (one feature, as MMT evaluates), and a fresh clustering of its target
    training features (MMT's DBSCAN, eps by the rho rule on its own distances): how much more than the true ids
    the clusters tell of the camera (adjusted MI), their pair precision and the ids they lose. Also returns the
    features."""
    pids, camids = ids_and_cameras(target.train)
    rows, features = {}, {}
    for name, model in models.items():
        scores = evaluate(
            model,
            target,
            params.height,
            params.width,
            batch_size=params.eval_batch_size,
            device=params.device,
            num_workers=params.num_workers,
        )
        features[name] = train_set_features(model, target.train, params)
        report = clustering_report(make_clustering(params, target.train)(features[name]), pids, camids)
        rows[name] = {
            "mAP": scores["mAP"],
            "R1": scores["R1"],
            "clusters": report["num_clusters"],
            "pair precision": report["pairwise_precision"],
            "adj. MI(clusters; camera)": report["ami_pseudo_camera"],
            "adj. MI(true ids; camera)": report["ami_true_camera"],
            "lost ids": report["lost_ids"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index").round(3)
    table.index.name = "model"
    return table, features


TRAINING_JOBS = ("01_pretrain", "03_train")


def run_training(notebook: str, params: Params) -> RunFolder:
    """What notebook `notebook` (01_pretrain or 03_train) trains, without its figures: in this process, or as one
    rank of a torchrun launch (`torchrun --nproc_per_node N -m canu_core run 03_train -f ...`; DistributedDataParallel,
    nccl on CUDA, gloo on the CPU). Rank 0 checks and records the run folder (and generates a synthetic world that
    is missing) before the other ranks open it; it alone writes the history, checkpoints and metrics.json, which the
    notebook's figures read. Resumes like the notebook."""
    if notebook not in TRAINING_JOBS:
        raise ConfigError(f"`run` trains {' or '.join(TRAINING_JOBS)}; found {notebook!r}")
    if needs_launch(params):  # nproc > 1: the ranks open, train and write the run themselves
        run, params = open_run(params, notebook)  # a conflicting run folder is refused before any process starts
        launch(notebook, params, run)
        return run
    group = distributed.start(distributed.local_device(resolve_device(params.device)))
    if group.distributed and group.world_size != params.nproc:  # torchrun by hand: the record says how it ran
        params = dataclasses.replace(params, nproc=group.world_size)
    if group.main:
        run, params, datasets = open_training_run(notebook, params)
        run.record(params, notebook)
    distributed.barrier()
    if not group.main:  # rank 0 holds the run folder's lock for the launch
        run, params, datasets = open_training_run(notebook, params, lock=False)
    if notebook == "01_pretrain":
        pretrain(params, datasets["source"], datasets["target"], run)
        if group.main:
            final = run.read_history().sort_values("epoch").groupby("model").tail(1)
            columns = ["model", "seed", "source_mAP", "source_R1", "target_mAP", "target_R1"]
            run.write_metrics({"models": final[columns].to_dict("records"), "processes": params.nproc})
    else:
        source_run = RunFolder.for_run(params.pretrain_run)
        adapt(params, datasets["target"], run, source_run, source=datasets.get("source"))
        if group.main:
            oracle = run.load_checkpoint(f"{params.method}_best_by_target_labels")
            metrics = adaptation_metrics(run.read_history(), oracle["metrics"] if oracle else None, params)
            run.write_metrics(metrics | {"processes": params.nproc})
    distributed.barrier()
    return run


def open_training_run(
    notebook: str, params: Params, lock: bool = True
) -> tuple[RunFolder, Params, dict[str, ReidDataset]]:
    """The run folder (refused as the notebook refuses it) and the datasets the training reads."""
    run, params = open_run(params, notebook, lock=lock)
    datasets = {"target": load_dataset(params.target, params.data_root, params.world_seed, target_world(params))}
    if notebook == "01_pretrain" or (params.method == "ssg" and params.ssg_source_weight > 0):
        datasets["source"] = load_dataset(params.source, params.data_root, params.world_seed)
    if notebook == "03_train":
        pretraining_record(RunFolder.for_run(params.pretrain_run), params)
    return run, params, datasets

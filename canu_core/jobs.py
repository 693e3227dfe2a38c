"""Whole jobs that the command line starts: each writes run folders under outputs/."""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from .config import Params
from .data.catalog import load_dataset
from .data.records import ReidDataset, ids_and_cameras
from .engine.adaptation import load_adapted_model, make_clustering, train_set_features
from .engine.mmt import train_mmt
from .engine.pretrain import load_source_model, pretrain
from .evaluate import evaluate
from .runs import RunFolder, open_run
from .viz.clusters import clustering_report
from .viz.embedding import camera_and_identity, plot_umap_grid, umap_embedding

# The demo's three models, in the table's order: what each row is and the run folder suffix it comes from.
DEMO_ROWS = {"direct transfer": "pretrain", "MMT": "mmt", "CANU-MMT": "canu-mmt"}


def run_demo(params: Params) -> pd.DataFrame:
    """The lab's main job on a short CPU schedule (params/demo.yaml): pretrain two source models, then adapt them to
    the target with MMT, without adversary and with CANU; print what each stage gives (direct transfer, MMT,
    CANU-MMT: mAP, R1, the camera bias of its clusters, lost ids) and draw the target features before and after,
    by camera and by identity, into outputs/<run_name>/. Each stage is a run folder of its own beside it
    (<run_name>-pretrain, -mmt, -canu-mmt), which notebooks 02 and 03 can open; run again, finished stages are
    read, not redone."""
    started = time.monotonic()
    run, params = open_run(params, "demo")
    source = load_dataset(params.source, params.data_root, params.world_seed)
    target = load_dataset(params.target, params.data_root, params.world_seed, params.target_coverage)
    run.record(params, "demo")
    print(
        f"CANU-ReID demo: {params.epochs} pretraining epochs x {params.iters_per_epoch} iterations, then "
        f"{params.adapt_epochs} MMT epochs x {params.adapt_iters_per_epoch} iterations, on {params.source} -> "
        f"{params.target}. A short CPU schedule, to show the job, not the study: the study's regime and its "
        '5-seed results are in README ("The synthetic study"), run with `make study`.'
    )

    pretrain_params, pretrain_run = stage(params, "pretrain", "01_pretrain")
    print(f"\n== 1/4 source pretraining ({params.n_models} models): {pretrain_run.path}")
    pretrain(pretrain_params, source, target, pretrain_run)

    models = {"direct transfer": load_source_model(pretrain_run, params.model_index, params.source_checkpoint)}
    for step, (row, adversary) in enumerate((("MMT", "none"), ("CANU-MMT", "canu")), start=2):
        adapt_params, adapt_run = stage(
            params, DEMO_ROWS[row], "03_train", method="mmt", adversary=adversary, pretrain_run=pretrain_run.path.name
        )
        print(f"\n== {step}/4 {row} from the same source models: {adapt_run.path}")
        train_mmt(adapt_params, target, adapt_run, pretrain_run)
        models[row] = load_adapted_model(adapt_run, "mmt", "last")

    print("\n== 4/4 the three models on the target: test split, and a clustering of the training images each")
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
        report = clustering_report(make_clustering(params)(features[name]), pids, camids)
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

"""The docs' figures of the current setting, redrawn from the committed runs: the target's training features of the
source model and of MMT, MMT+Adv. and CANU-MMT adapted from it (the default target world, source pair 1, adaptation
seed 0 of the fashion study's lambda 0 arms, which is the default world), as
  - same_camera_neighbours.png: the share of each image's 10 nearest neighbours from its own camera, per model;
  - target_umap_before_after.png: their UMAPs by camera and by true identity;
  - ../regime/pretrain_target_umap.png: notebook 01's UMAP of the source model (its last epoch).

    CANU_OUTPUTS=<folder of the runs> python docs/figures/build_figures.py

reads the runs (nothing is written there) and writes the figures beside this file: about 1 min of CPU (8 min of wall
clock on the shared 2-core machine)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from canu_core import (
    Params,
    ids_and_cameras,
    load_adapted_model,
    load_dataset,
    load_source_model,
    make_params,
    target_world,
    train_set_features,
)
from canu_core.cluster import same_camera_neighbours
from canu_core.runs import RunFolder
from canu_core.viz import camera_and_identity, plot_same_camera_neighbours, plot_umap, plot_umap_grid, umap_embedding

HERE = Path(__file__).resolve().parent
SOURCE_RUN = "pretrain"
ADAPTED_RUNS = {
    "MMT": "fashion-mmt-none-pair1-seed0",
    "MMT+Adv.": "fashion-mmt-adv-mu0.1-pair1-seed0",
    "CANU-MMT": "fashion-mmt-canu-mu0.1-pair1-seed0",
}
NEIGHBOURS = 10  # as notebook 01 and 02's feature reports


def recorded_params(run: RunFolder) -> Params:
    """The parameters a run recorded, less what the record adds to them (notebook, commit, CPU, continuations)."""
    fields = {field.name for field in dataclasses.fields(Params)}
    return make_params({name: value for name, value in run.read_params().items() if name in fields})


def main() -> None:
    runs = {row: RunFolder.for_run(name) for row, name in ADAPTED_RUNS.items()}
    params = recorded_params(runs["CANU-MMT"])
    target = load_dataset(params.target, params.data_root, params.world_seed, target_world(params))
    source = RunFolder.for_run(params.pretrain_run)
    models = {"source": load_source_model(source, params.model_index, params.source_checkpoint)}
    models |= {row: load_adapted_model(run, params.method, "last") for row, run in runs.items()}
    features = {row: train_set_features(model, target.train, params).numpy() for row, model in models.items()}

    _, camids = ids_and_cameras(target.train)
    table = same_camera_neighbours(features, camids, k=NEIGHBOURS)
    print(table.to_string(float_format=lambda share: f"{share:.3f}"))
    plot_same_camera_neighbours(
        table,
        k=NEIGHBOURS,
        path=HERE / "same_camera_neighbours.png",
        title="Target training images: how much the features group by camera, before and after adaptation",
    )
    labelings = camera_and_identity(target.train)
    points = {row: umap_embedding(row_features, seed=params.seed) for row, row_features in features.items()}
    plot_umap_grid(
        points,
        labelings,
        path=HERE / "target_umap_before_after.png",
        seed=params.seed,
        title=f"Target training features: source model {params.model_index}, then MMT, MMT+Adv. and CANU-MMT "
        "(last epoch)",
    )
    last_epoch = train_set_features(load_source_model(source, params.model_index, "last"), target.train, params)
    plot_umap(
        umap_embedding(last_epoch.numpy(), seed=params.seed),
        labelings,
        path=HERE.parent / "regime" / "pretrain_target_umap.png",
        seed=params.seed,
        title=f"Target training features after source pretraining ({params.target})",
    )


if __name__ == "__main__":
    main()

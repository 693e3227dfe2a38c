"""Whole jobs that the command line and the notebooks start: each writes a run folder under outputs/."""
from __future__ import annotations

from .config import Params
from .data.catalog import load_dataset
from .data.synthetic import world_statistics
from .evaluate import evaluate
from .models import build_model
from .reproducibility import seed_everything
from .runs import open_run
from .viz.world import plot_camera_samples


def run_demo(params: Params) -> dict:
    """Generate (or read) the source and target worlds, show their statistics and sample images, and evaluate an
    untrained network on both: the floor every later stage is measured against."""
    run, params = open_run(params, "demo")
    worlds = {
        "source": load_dataset(params.source, params.data_root, params.world_seed),
        "target": load_dataset(params.target, params.data_root, params.world_seed, params.target_coverage),
    }
    run.record(params, "demo")
    for role, dataset in worlds.items():
        print(f"\n== {role}: {dataset.name}")
        print(world_statistics(dataset).to_string())
        plot_camera_samples(dataset, path=run.figure_path(f"{role}_cameras.png"))

    seed_everything(params.seed)
    model = build_model(params.arch, num_classes=0)
    metrics = {}
    for role, dataset in worlds.items():
        result = evaluate(model, dataset, params.height, params.width, batch_size=params.eval_batch_size,
                          device=params.device, flip=params.flip_eval, rerank=params.rerank,
                          num_workers=params.num_workers)
        metrics[role] = result
        print(f"untrained {params.arch} on {role} test: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()
                                                                        if k != "skipped")
              + f" ({result['skipped']} queries without a true match skipped)")
    run.write_metrics({"untrained": metrics})
    print(f"\nrun folder: {run.path}")
    return metrics
